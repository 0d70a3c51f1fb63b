"""Reading a head ensemble: K member rewards per conversation -> the aggregate and its statistics.

A `rewardkit train --ensemble_size K` checkpoint is a plain `AutoModelForSequenceClassification`
with `num_labels = K` (one output per member) whose config.json records the ensemble under
`rewardkit_ensemble` ({"size", "aggregate", "lambda"}). Shared by training (the validated reward)
and scoring (`Score.score` and its sub-scores), so both read the members the same way.
"""

from __future__ import annotations

import torch

CONFIG_KEY = "rewardkit_ensemble"
# The columns `ensemble_columns` returns, in order: the aggregate, then these named statistics.
STAT_NAMES = ("ensemble_mean", "ensemble_std", "ensemble_min")


def aggregate(members: torch.Tensor, how: str = "mean", lam: float = 1.0) -> torch.Tensor:
    """The ensemble's reward per row of (rows, K) member rewards.

    `mean`; `min` (the worst case); `mean_minus_std`: mean − λ·std, with the population std
    (divide by K), a conservative reward that is lower where the members disagree.

    Example:
        >>> aggregate(torch.tensor([[1.0, 3.0]]), "mean_minus_std", 0.5).tolist()  # 2 - 0.5 * 1
        [1.5]
    """
    if how == "mean":
        return members.mean(-1)
    if how == "min":
        return members.min(-1).values
    if how == "mean_minus_std":
        return members.mean(-1) - lam * members.std(-1, unbiased=False)
    raise ValueError(f"ensemble aggregate {how!r}: accepted values are mean, min, mean_minus_std")


def ensemble_columns(members: torch.Tensor, how: str = "mean", lam: float = 1.0) -> torch.Tensor:
    """(rows, 4 + K): [aggregate, mean, std, min, member_0 .. member_K-1] per row of (rows, K) rewards."""
    stats = [
        aggregate(members, how, lam),
        members.mean(-1),
        members.std(-1, unbiased=False),
        members.min(-1).values,
    ]
    return torch.cat([torch.stack(stats, -1), members], -1)


def column_names(k: int) -> list[str]:
    """Names of `ensemble_columns`' outputs: the aggregate is `Score.score`, the rest sub-scores."""
    return ["ensemble_score", *STAT_NAMES, *(f"member_{i}" for i in range(k))]


def ensemble_config(config) -> dict | None:
    """The checkpoint's `rewardkit_ensemble` entry ({"size", "aggregate", "lambda"}), or None."""
    entry = getattr(config, CONFIG_KEY, None)
    return dict(entry) if isinstance(entry, dict) else None
