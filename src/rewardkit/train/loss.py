"""The pairwise (Bradley-Terry) reward loss and its metrics, as pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """Mean of -log σ(r_chosen − r_rejected − margin), plus c · mean((r_chosen + r_rejected)²).

    The second term (from "Helping or Herding?", Eisenstein et al. 2023) pulls rewards towards zero
    mean so that scores from different runs are on one scale.

    Example:
        >>> round(bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0])).item(), 4)
        0.3133
    """
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((chosen + rejected) ** 2).mean()
    return loss


def pairwise_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """Accuracy (a tie counts as wrong), mean margin, and the mean chosen and rejected rewards."""
    return metrics_from_sums(pair_metric_sums(chosen, rejected))


def pair_metric_sums(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """[pairs, wins, sum of margins, sum of chosen, sum of rejected] (float64): sums add up across
    batches and processes, so the metrics of several shards are those of all their pairs.

    Example:
        >>> pair_metric_sums(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])).tolist()
        [2.0, 1.0, 0.0, 2.0, 2.0]
    """
    chosen, rejected = chosen.detach().double(), rejected.detach().double()
    wins = (chosen > rejected).double().sum()
    return torch.stack([torch.tensor(float(chosen.numel()), dtype=torch.float64, device=chosen.device),
                        wins, (chosen - rejected).sum(), chosen.sum(), rejected.sum()])  # fmt: skip


def metrics_from_sums(sums: torch.Tensor) -> dict[str, float]:
    """`pairwise_metrics` from `pair_metric_sums` (added over any number of batches or processes)."""
    n, wins, margin, chosen, rejected = sums.tolist()
    n = n or float("nan")
    return {
        "accuracy": wins / n,
        "margin": margin / n,
        "rewards_chosen": chosen / n,
        "rewards_rejected": rejected / n,
    }
