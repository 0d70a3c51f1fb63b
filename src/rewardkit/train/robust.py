"""What `rewardkit train` adds for --length_debias, --ensemble_size and --calibrate (docs/robustness.md)."""

from __future__ import annotations

import functools
import logging

import torch

from rewardkit.core.ensemble import CONFIG_KEY
from rewardkit.train.calibrate import calibration_nll, fit_temperature
from rewardkit.train.debias import QUALITY, CorrelationMemory, debias_objective, residualize_quality_head
from rewardkit.train.ensemble import EnsembleObjective
from rewardkit.train.heads import widen_head

logger = logging.getLogger("rewardkit.train")


def robust_training(model, script_args, seed: int):
    """Grow the head for the chosen defence, before LoRA wraps it.

    Returns:
        (the RewardTrainer `objective` or None, the head rows to export or None, config.json entries).
    """
    if script_args.length_debias:
        widen_head(model, 2)
        objective = functools.partial(
            debias_objective,
            length_weight=script_args.length_weight,
            decorrelation_weight=script_args.decorrelation_weight,
            orthogonality_weight=script_args.orthogonality_weight,
            center_rewards_coefficient=script_args.center_rewards_coefficient,
            memory=CorrelationMemory(script_args.debias_window),
        )
        extra = {
            "rewardkit_length_debias": {
                "length_weight": script_args.length_weight,
                "decorrelation_weight": script_args.decorrelation_weight,
                "orthogonality_weight": script_args.orthogonality_weight,
                "window": script_args.debias_window,
                "residualized": script_args.debias_residualize,
                "exported": "quality head only",
            }
        }
        return objective, [QUALITY], extra
    k = script_args.ensemble_size
    if k > 1:
        widen_head(model, k)
        objective = EnsembleObjective(
            k,
            seed,
            script_args.center_rewards_coefficient,
            script_args.ensemble_aggregate,
            script_args.ensemble_lambda,
        )
        extra = {
            CONFIG_KEY: {
                "size": k,
                "aggregate": script_args.ensemble_aggregate,
                "lambda": script_args.ensemble_lambda,
                "members": "score heads on one backbone, each trained on its own bootstrap of the pairs",
            },
            "id2label": {i: f"member_{i}" for i in range(k)},
            "label2id": {f"member_{i}": i for i in range(k)},
        }
        return objective, None, extra
    return None, None, {}


def residualize(trainer, extra_config: dict, eval_ds, train_ds) -> None:
    """--length_debias --debias_residualize: fold the length head into the quality head (train.debias)
    on the validation pairs, else the training pairs; record how in `extra_config`."""
    on, dataset = ("validation", eval_ds) if eval_ds is not None else ("train", train_ds)
    entry = residualize_quality_head(trainer, dataset)
    logger.info(
        "--debias_residualize on %d %s answers: quality - %.4g * length; Pearson(quality, length) %.3f -> %.3f",
        entry["answers"],
        on,
        entry["coefficient"],
        entry["pearson_before"],
        entry["pearson_after"],
    )
    extra_config["rewardkit_length_debias"]["residualized"] = {**entry, "on": on}


def calibration_entries(predictions) -> dict:
    """Fit the temperature on the validation pairs' margins ((pairs, 2) chosen/rejected rewards);
    the config.json entries to save."""
    predictions = torch.as_tensor(predictions).float()
    margins = (predictions[:, 0] - predictions[:, 1]).tolist()
    temperature = fit_temperature(margins)
    logger.info(
        "calibration on %d validation pairs: temperature %.4f (NLL %.4f -> %.4f)",
        len(margins),
        temperature,
        calibration_nll(margins, 1.0),
        calibration_nll(margins, temperature),
    )
    return {"reward_temperature": temperature, "reward_temperature_pairs": len(margins)}
