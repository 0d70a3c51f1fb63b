"""The reward-hacking flags (docs/robustness.md) in each subcommand's --help, and their checks."""

import pytest

from rewardkit.cli import main
from rewardkit.config import ScriptArguments
from rewardkit.errors import RewardkitError

FLAGS = {
    "train": ["--length_debias", "--length_weight", "--decorrelation_weight", "--orthogonality_weight",
              "--ensemble_size", "--ensemble_aggregate", "--ensemble_lambda", "--calibrate"],
    "score": ["--ensemble_aggregate", "--ensemble_lambda", "--calibrated"],
    "eval": ["--stress", "--calibrated", "--ensemble_aggregate", "--ensemble_lambda"],
    "serve": ["--ensemble_aggregate", "--ensemble_lambda"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_help_lists_robustness_flags(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in FLAGS[command]), [f for f in FLAGS[command] if f not in out]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ensemble_size": 0}, "--ensemble_size must be at least 1"),
        ({"length_weight": -1.0}, "--length_weight must be >= 0"),
        (
            {"ensemble_aggregate": "max"},
            "--ensemble_aggregate: accepted values are mean, min, mean_minus_std",
        ),
        ({"length_debias": True, "ensemble_size": 3}, "choose one"),
        ({"length_debias": True, "export": "adapter"}, "use --export merged"),
        ({"step_contrast_weight": -1.0}, "--step_contrast_weight must be >= 0"),
        (
            {"step_contrast_weight": 1.0, "train_on_last_step_only": True},
            "--train_on_last_step_only only the last",
        ),
        ({"step_attention": "both"}, "step_attention"),
    ],
)
def test_bad_robustness_flags_are_one_line_errors(kwargs, message):
    with pytest.raises(RewardkitError, match=message):
        ScriptArguments(**kwargs)
