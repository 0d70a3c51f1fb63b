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


def head_weight(model) -> torch.Tensor:
    """The trained weight matrix (outputs, hidden) of the reward head, under LoRA's modules_to_save too."""
    name = head_name(model)
    trained = [
        p
        for n, p in unwrap(model).named_parameters()
        if n.split(".")[0] == name and n.endswith("weight") and p.requires_grad
    ]
    if not trained:
        raise ValueError(f"no trainable `{name}` weight found on {type(unwrap(model)).__name__}")
    return trained[-1]


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
