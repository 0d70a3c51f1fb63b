"""Head ensembles: K score heads on one backbone, each trained on its own bootstrap resample of the pairs.

The backbone (and its LoRA adapter) is shared, so one forward gives all K rewards and the ensemble
costs about one model. Member k's loss on a batch is the Bradley-Terry loss weighted by how many
times each pair was drawn in member k's resample (a multinomial draw of B pairs from B, seeded), so
the members see different data and start from different random heads. The loss is the members'
mean; metrics and predictions (validation, reward statistics, calibration) use the aggregate
that the exported checkpoint scores with (`--ensemble_aggregate`, default the members' mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rewardkit.core.ensemble import aggregate


def bootstrap_weights(pairs: int, members: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(pairs, members) counts: column k is how often each pair is drawn in member k's resample.

    Each column sums to `pairs` (B draws with replacement from B pairs).

    Example:
        >>> bootstrap_weights(3, 2, torch.Generator().manual_seed(0)).sum(0).tolist()
        [3.0, 3.0]
    """
    draws = torch.randint(0, pairs, (members, pairs), generator=generator)
    counts = torch.zeros(members, pairs)
    counts.scatter_add_(1, draws, torch.ones(members, pairs))
    return counts.T


def ensemble_bt_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    weights: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """Mean over members of each member's weighted Bradley-Terry loss.

    Args:
        chosen, rejected: (pairs, members) rewards.
        weights: (pairs, members) per-pair weights (bootstrap counts; all ones gives plain BT per member).
        margin: (pairs,) optional margin subtracted from every member's difference.
        center_rewards_coefficient: c · weighted mean((r_c + r_r)²) per member, as in `bradley_terry_loss`.

    Returns:
        sum_k [sum_i w_ik · l_ik / sum_i w_ik] / K, with l_ik = -log σ(r_c − r_r − margin).
    """
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin[:, None]
    per_pair = -F.logsigmoid(diff)
    if center_rewards_coefficient:
        per_pair = per_pair + center_rewards_coefficient * (chosen + rejected) ** 2
    w = weights.to(per_pair.dtype)
    per_member = (w * per_pair).sum(0) / w.sum(0).clamp(min=1e-12)
    return per_member.mean()


def member_disagreement(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Mean over pairs of the std (population) across members of the margin r_c − r_r (for logging)."""
    return (chosen - rejected).detach().float().std(-1, unbiased=False).mean().item()


class EnsembleObjective:
    """RewardTrainer `objective=`: bootstrap-weighted BT per head; predictions are the aggregate.

    A class only to carry the seeded generator from batch to batch.
    """

    def __init__(
        self,
        members: int,
        seed: int,
        center_rewards_coefficient: float = 0.0,
        how: str = "mean",
        lam: float = 1.0,
    ):
        self.members, self.center, self.how, self.lam = members, center_rewards_coefficient, how, lam
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model, inputs: dict, chosen: torch.Tensor, rejected: torch.Tensor):
        if model.training:
            weights = bootstrap_weights(chosen.shape[0], self.members, self.generator)
        else:  # validation: every member on every pair, so the loss is comparable between runs
            weights = torch.ones(chosen.shape[0], self.members)
        loss = ensemble_bt_loss(
            chosen, rejected, weights.to(chosen.device), inputs.get("margin"), self.center
        )
        stats = {"member_margin_std": member_disagreement(chosen, rejected)}
        return loss, aggregate(chosen, self.how, self.lam), aggregate(rejected, self.how, self.lam), stats
