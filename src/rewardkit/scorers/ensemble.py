"""Scoring a head-ensemble checkpoint: `Score.score` is the chosen aggregate, the members in sub-scores.

See `rewardkit.core.ensemble` for the checkpoint layout and the aggregates; docs/robustness.md.
"""

from __future__ import annotations

import functools

from rewardkit.config import ENSEMBLE_AGGREGATES
from rewardkit.core.ensemble import column_names, ensemble_columns, ensemble_config
from rewardkit.errors import RewardkitError


def checkpoint_ensemble(
    path: str, gguf_file: str | None = None, trust_remote_code: bool = False
) -> dict | None:
    """The `rewardkit_ensemble` entry of the checkpoint's config.json, or None (read before the weights)."""
    if gguf_file:
        return None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None  # the model loader reports the problem with its own message
    entry = ensemble_config(config)
    if entry is not None and not (isinstance(entry.get("size"), int) and entry["size"] >= 2):
        raise RewardkitError(
            f"{path}/config.json: rewardkit_ensemble.size must be an integer >= 2, got {entry}"
        )
    return entry


def use_ensemble(rm, entry: dict, how: str | None = None, lam: float | None = None) -> None:
    """Make a `ClassifierRM` over K member outputs score with the aggregate (`how`, `lam` override the saved)."""
    how = how or entry.get("aggregate", "mean")
    lam = float(entry.get("lambda", 1.0) if lam is None else lam)
    if how not in ENSEMBLE_AGGREGATES:
        raise RewardkitError(
            f"--ensemble_aggregate {how}: accepted values are {', '.join(ENSEMBLE_AGGREGATES)}"
        )
    if lam < 0:
        raise RewardkitError(f"--ensemble_lambda must be >= 0, got {lam}")
    rm.columns = functools.partial(ensemble_columns, how=how, lam=lam)
    rm.sub_score_names, rm.reward_column = column_names(entry["size"]), 0
    rm.ensemble = {"size": entry["size"], "aggregate": how, "lambda": lam}
