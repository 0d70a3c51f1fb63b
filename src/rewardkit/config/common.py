"""Each setting's accepted values, defined once (the loaders validate against these same tuples)."""

from __future__ import annotations

from rewardkit.data.templates import templates_help
from rewardkit.errors import RewardkitError

KINDS = ("auto", "seq_classifier", "value_head", "remote_code", "function", "generative", "dpo", "prm")
DTYPE_NAMES = ("auto", "bfloat16", "float16", "float32")
JUDGE_MODES = ("pairwise", "pointwise", "logprob")
ENSEMBLE_AGGREGATES = ("mean", "min", "mean_minus_std")  # what `Score.score` of a head ensemble is
STEP_ATTENTIONS = ("causal", "bidirectional")  # a PRM encoder's attention (core.steps.make_causal)
TEMPLATES_HELP = templates_help()  # from the template registry (data/templates.py); validated against it


def check_choice(flag: str, value, accepted: tuple) -> None:
    """Raise naming `--flag` when `value` is not one of `accepted` (argparse checks only the command line)."""
    if value not in accepted:
        raise RewardkitError(f"--{flag} {value}: accepted values are {', '.join(accepted)}")


def check_at_least(flag: str, value: int | None, low: int) -> None:
    """Raise naming `--flag` when `value` (None: unset) is below `low`."""
    if value is not None and value < low:
        raise RewardkitError(f"--{flag} {value}: must be at least {low}")


def check_dataset_info(dataset_info: str | None, dataset: str | None) -> None:
    """--dataset_info and --dataset come together (train and eval alike)."""
    if bool(dataset_info) != bool(dataset):
        raise RewardkitError("--dataset_info and --dataset go together (a dataset_info.json and entry names)")
