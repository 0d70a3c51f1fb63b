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
    chosen, rejected = chosen.detach().float(), rejected.detach().float()
    return {
        "accuracy": (chosen > rejected).float().mean().item(),
        "margin": (chosen - rejected).mean().item(),
        "rewards_chosen": chosen.mean().item(),
        "rewards_rejected": rejected.mean().item(),
    }
