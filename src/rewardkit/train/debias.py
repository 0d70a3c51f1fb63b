"""Length-debiased training (ODIN, Chen et al. 2024): a quality head and a length head on one backbone.

The model's head has two outputs: column 0 is the quality reward (the one exported and served),
column 1 the length reward. The pair loss is

    BT(q_c + l_c, q_r + l_r)                                  the preference, explained by both heads
    + length_weight        * (1 - |Pearson(l, length)|)       the length head carries length
    + decorrelation_weight * |Pearson(q, length)|             the quality head does not
    + orthogonality_weight * |w_q . w_l|                      the two heads read different directions

where the Pearson correlations are taken over the batch's 2B answers (chosen and rejected) and the
last `window` answers of earlier batches (`CorrelationMemory`, detached: gradients flow through the
batch only), and `length` is each answer's token count after the pair's shared prompt. ODIN's length
term is 1 - Pearson(l, length): on its data longer answers win. Here the length head may carry length
either way (|Pearson|), so on data where the shorter answer tends to win (HH-harmless: refusals) the
length head, not the quality head, absorbs that shortcut. The losses are pure functions
(tested against hand-worked numbers in tests/unit/test_robust_loss.py); `debias_objective` is the
RewardTrainer's `objective=` hook that feeds them from a batch.

After training, `residualize_quality_head` folds the length head into the exported one: the quality
row becomes w_q - c * w_l (bias likewise), with c = cov(q, length) / cov(l, length) over the
validation pairs' answers (the training pairs' without validation), so that the exported reward's
covariance with length on those answers is exactly 0. It stays one linear row: a plain one-logit
classifier. The in-training decorrelation term alone left |Pearson| well above the target on HH data
(docs/robustness.md, measured).
"""

from __future__ import annotations

import torch

from rewardkit.core.packing import CHOSEN, REJECTED
from rewardkit.core.rewards import head_name, unwrap
from rewardkit.train.loss import bradley_terry_loss

QUALITY, LENGTH = 0, 1  # the head's output columns under --length_debias


def batch_pearson(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of two 1-D tensors, differentiable; 0 when either side is constant.

    Example:
        >>> round(batch_pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0])).item(), 4)
        0.982
    """
    dx, dy = x - x.mean(), y - y.mean()
    denom = torch.sqrt((dx * dx).sum() * (dy * dy).sum())
    if denom.item() <= eps:
        return (dx * dy).sum() * 0.0  # keeps the graph; no correlation to remove or to learn
    return (dx * dy).sum() / denom


class CorrelationMemory:
    """The last `size` answers' (quality reward, length reward, length), detached, for steadier correlations.

    A batch of 4 pairs gives a Pearson correlation over 8 answers: too noisy to decorrelate a head
    with. `window(q, l, n)` returns the batch's values followed by the remembered ones, then
    remembers the batch's (keeping the newest `size`). size 0 remembers nothing.

    Example:
        >>> m = CorrelationMemory(3)
        >>> _ = m.window(torch.tensor([1.0, 2.0]), torch.zeros(2), torch.ones(2))
        >>> [t.tolist() for t in m.window(torch.tensor([3.0, 4.0]), torch.zeros(2), torch.ones(2))][0]
        [3.0, 4.0, 1.0, 2.0]
        >>> m.past[0].tolist()
        [3.0, 4.0, 1.0]
    """

    def __init__(self, size: int):
        self.size = size
        self.past: tuple[torch.Tensor, ...] | None = None

    def window(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.past is not None and self.past[0].device != values[0].device:
            self.past = None
        joined = values if self.past is None else tuple(torch.cat([v, p]) for v, p in zip(values, self.past))
        if self.size > 0:
            self.past = tuple(j.detach()[: self.size] for j in joined)
        return joined


def length_debias_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    chosen_len: torch.Tensor,
    rejected_len: torch.Tensor,
    w_quality: torch.Tensor,
    w_length: torch.Tensor,
    *,
    length_weight: float = 1.0,
    decorrelation_weight: float = 1.0,
    orthogonality_weight: float = 1.0,
    margin: torch.Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
    memory: CorrelationMemory | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The ODIN loss of a batch of pairs, and its parts (for logging).

    Args:
        chosen, rejected: (pairs, 2) head outputs, column 0 quality, column 1 length.
        chosen_len, rejected_len: (pairs,) answer lengths in tokens.
        w_quality, w_length: the two heads' weight vectors (hidden,).
        length_weight, decorrelation_weight, orthogonality_weight: weights of the three added terms.
        margin, center_rewards_coefficient: as in `bradley_terry_loss`, on the summed rewards.
        memory: earlier batches' answers to take the correlations over too (None: this batch only).

    Returns:
        (loss, {"bt", "length_pearson", "quality_pearson", "orthogonality"}).
    """
    total_c = chosen[:, QUALITY] + chosen[:, LENGTH]
    total_r = rejected[:, QUALITY] + rejected[:, LENGTH]
    bt = bradley_terry_loss(total_c, total_r, margin, center_rewards_coefficient)
    lengths = torch.cat([chosen_len, rejected_len]).to(chosen.dtype)
    quality = torch.cat([chosen[:, QUALITY], rejected[:, QUALITY]])
    length = torch.cat([chosen[:, LENGTH], rejected[:, LENGTH]])
    if memory is not None:
        quality, length, lengths = memory.window(quality, length, lengths)
    rho_length = batch_pearson(length, lengths)
    rho_quality = batch_pearson(quality, lengths)
    ortho = (w_quality.float() * w_length.float()).sum().abs()
    loss = (
        bt
        + length_weight * (1.0 - rho_length.abs())
        + decorrelation_weight * rho_quality.abs()
        + orthogonality_weight * ortho
    )
    parts = {
        "bt": bt.item(),
        "length_pearson": rho_length.item(),
        "quality_pearson": rho_quality.item(),
        "orthogonality": ortho.item(),
    }
    return loss, parts


def answer_lengths(inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) answer lengths in tokens: each side's tokens after the pair's shared prefix.

    Reads either batch layout: the packed one (`sides` marks CHOSEN/REJECTED tokens per `pair_ids`)
    or the plain one (rows 0..B-1 chosen, B..2B-1 rejected, with an attention mask).
    """
    if "sides" in inputs:
        sides, pair_ids = inputs["sides"], inputs["pair_ids"]
        pairs = inputs["chosen_index"].shape[0]
        out = []
        for side in (CHOSEN, REJECTED):
            ids = pair_ids[sides == side]
            out.append(torch.bincount(ids, minlength=pairs).float())
        return out[0], out[1]
    ids, mask = inputs["input_ids"], inputs["attention_mask"].bool()
    half = ids.shape[0] // 2
    total = mask.sum(-1).float()
    both = mask[:half] & mask[half:]
    same = (ids[:half] == ids[half:]) & both
    # the shared prefix: the run of equal, real tokens from the start (cumprod stops at the first difference)
    prefix = same.long().cumprod(-1).sum(-1).float()
    return total[:half] - prefix, total[half:] - prefix


def head_weight(model, part: str = "weight") -> torch.Tensor:
    """The trained weight matrix (outputs, hidden) of the reward head, under LoRA's modules_to_save too
    (`part="bias"`: its bias, or a ValueError if it has none)."""
    name = head_name(model)
    trained = [
        p
        for n, p in unwrap(model).named_parameters()
        if n.split(".")[0] == name and n.endswith(part) and p.requires_grad
    ]
    if not trained:
        raise ValueError(f"no trainable `{name}` {part} found on {type(unwrap(model)).__name__}")
    return trained[-1]


def length_coefficient(quality: torch.Tensor, length: torch.Tensor, lengths: torch.Tensor) -> float:
    """c = cov(q, n) / cov(l, n): q - c * l has zero covariance with the lengths n (0 when cov(l, n) is 0).

    Example:
        >>> n = torch.tensor([1.0, 2.0, 3.0])
        >>> length_coefficient(torch.tensor([0.0, 1.0, 0.5]), -2 * n, n)  # cov(q, n) 0.25, cov(l, n) -2
        -0.125
    """
    dn = lengths - lengths.mean()
    cov_l = float(((length - length.mean()) * dn).sum())
    if abs(cov_l) < 1e-12:
        return 0.0
    return float(((quality - quality.mean()) * dn).sum()) / cov_l


def residualize_quality_head(trainer, dataset) -> dict:
    """Fold the length head into the quality head (module docstring); the config.json entry to save."""
    model = trainer.model
    quality, length, lengths = [], [], []
    model.eval()
    with torch.no_grad():
        for inputs in trainer.get_eval_dataloader(dataset):
            inputs = trainer._prepare_inputs(inputs)
            chosen, rejected = trainer.pair_forward(model, inputs)
            chosen_len, rejected_len = answer_lengths(inputs)
            quality.append(torch.cat([chosen[:, QUALITY], rejected[:, QUALITY]]).float().cpu())
            length.append(torch.cat([chosen[:, LENGTH], rejected[:, LENGTH]]).float().cpu())
            lengths.append(torch.cat([chosen_len, rejected_len]).float().cpu())
    q, lr, n = torch.cat(quality), torch.cat(length), torch.cat(lengths)
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None and accelerator.num_processes > 1:
        # every rank folds with the same c: the answers of all ranks (accelerate's even batches give each
        # rank as many; the few repeated to even them out barely move a covariance)
        q, lr, n = (accelerator.gather(t.to(accelerator.device)).cpu() for t in (q, lr, n))
    c = length_coefficient(q, lr, n)
    with torch.no_grad():
        weight = head_weight(model)
        weight[QUALITY] -= c * weight[LENGTH]
        try:
            bias = head_weight(model, "bias")
            bias[QUALITY] -= c * bias[LENGTH]
        except ValueError:
            pass  # a head without bias (Llama's score)
    before = batch_pearson(q, n).item()
    after = batch_pearson(q - c * lr, n).item()
    return {"coefficient": c, "answers": len(n), "pearson_before": before, "pearson_after": after}


def debias_objective(
    model,
    inputs: dict,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    length_weight: float,
    decorrelation_weight: float,
    orthogonality_weight: float,
    center_rewards_coefficient: float = 0.0,
    memory: CorrelationMemory | None = None,
):
    """RewardTrainer `objective=`: the ODIN loss; metrics and predictions use the quality head only.

    `memory` is used (and grows) in training steps only, not in evaluation.
    """
    chosen_len, rejected_len = answer_lengths(inputs)
    weight = head_weight(model)
    loss, parts = length_debias_loss(
        chosen,
        rejected,
        chosen_len.to(chosen.device),
        rejected_len.to(chosen.device),
        weight[QUALITY],
        weight[LENGTH],
        length_weight=length_weight,
        decorrelation_weight=decorrelation_weight,
        orthogonality_weight=orthogonality_weight,
        margin=inputs.get("margin"),
        center_rewards_coefficient=center_rewards_coefficient,
        memory=memory if model.training else None,
    )
    return loss, chosen[:, QUALITY], rejected[:, QUALITY], parts
