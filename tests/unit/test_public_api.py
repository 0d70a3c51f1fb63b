"""The public API: every exported name resolves, internals stay out, and importing stays light."""

import subprocess
import sys

import pytest

import rewardkit

USER_CALLS = {  # what the README and the docs tell users to call
    "load_reward_model",
    "run_train",
    "run_score",
    "run_eval",
    "run_eval_files",
    "create_app",  # (`serve` is not exported: `rewardkit.serve` is the subpackage)
    "ModelArguments",
    "DataArguments",
    "ScriptArguments",
    "RewardModelArguments",
    "ScoreArguments",
    "EvalArguments",
    "ServeArguments",
    "Conversation",
    "register_conv_template",
    "get_conv_template",
    "RewardModel",
    "Score",
    "Comparison",
    "Group",
    "Messages",
    "RewardkitError",
}
INTERNALS = {"RewardTrainer", "PairwiseCollator", "bradley_terry_loss", "export_model", "pad_rows"}


@pytest.mark.parametrize("name", rewardkit.__all__)
def test_every_exported_name_resolves_to_its_module_object(name):
    import importlib

    value = getattr(rewardkit, name)
    assert value is getattr(importlib.import_module(rewardkit._EXPORTS[name]), name)
    assert name in dir(rewardkit)


def test_exports_what_users_call_and_no_internals():
    assert USER_CALLS <= set(rewardkit.__all__)
    assert not INTERNALS & set(rewardkit.__all__)
    with pytest.raises(AttributeError, match="no attribute 'RewardTrainer'"):
        rewardkit.RewardTrainer  # noqa: B018


def test_import_is_lazy():
    """`import rewardkit` and the CLI's module load neither torch nor transformers (`--help` stays fast)."""
    code = (
        "import sys, rewardkit, rewardkit.cli; "
        "heavy = {'torch', 'transformers', 'peft', 'fastapi'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
