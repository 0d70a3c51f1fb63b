"""The typed arguments of every command, each setting's accepted values defined once.

`rewardkit train` parses the seed's three dataclasses plus `transformers.TrainingArguments` (field names
are MedicalGPT's, so its `run_rm.sh` command lines run unchanged); `score`, `eval` and `serve` parse
`RewardModelArguments` (how to load any reward model) plus their own `ScoreArguments`, `EvalArguments`
or `ServeArguments`. All are parsed by `HfArgumentParser` from the command line and a YAML/JSON
`--config` file, and can be built directly in Python. `config.common` holds each setting's accepted
values, `config.train` the training arguments, `config.commands` the other commands'.

Example:
    >>> args = RewardModelArguments(model="my_rewards:length_penalty", kind="function")
    >>> args.kind, args.torch_dtype, args.template_name
    ('function', 'float32', 'auto')
    >>> RewardModelArguments(model="m", torch_dtype="float8")
    Traceback (most recent call last):
    rewardkit.errors.RewardkitError: --torch_dtype float8: accepted values are auto, bfloat16, float16, float32
"""

from rewardkit.config.commands import (
    EvalArguments,
    RewardModelArguments,
    ScoreArguments,
    ServeArguments,
    check_dpo_flags,
    dpo_options,
)
from rewardkit.config.common import (
    DTYPE_NAMES,
    ENSEMBLE_AGGREGATES,
    JUDGE_MODES,
    KINDS,
    STEP_ATTENTIONS,
    TEMPLATES_HELP,
    check_at_least,
    check_choice,
)
from rewardkit.config.train import (
    DataArguments,
    ModelArguments,
    ScriptArguments,
    check_robust_training,
    translate_legacy_args,
    translate_legacy_config,
)

__all__ = [
    "DTYPE_NAMES",
    "ENSEMBLE_AGGREGATES",
    "STEP_ATTENTIONS",
    "JUDGE_MODES",
    "KINDS",
    "TEMPLATES_HELP",
    "DataArguments",
    "EvalArguments",
    "ModelArguments",
    "RewardModelArguments",
    "ScoreArguments",
    "ScriptArguments",
    "ServeArguments",
    "check_at_least",
    "check_choice",
    "check_dpo_flags",
    "check_robust_training",
    "dpo_options",
    "translate_legacy_args",
    "translate_legacy_config",
]
