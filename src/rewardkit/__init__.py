"""rewardkit: train, score, evaluate and serve reward models.

Example:
    >>> from rewardkit import load_reward_model
    >>> rm = load_reward_model("outputs/demo/model")
    >>> rm.score_pairs(["2+2?"], ["4"], ["5"])
    ([2.1...], [-1.3...])

The names below are imported on first use, so `import rewardkit` (and `rewardkit --help`) stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # scoring (any kind of reward model)
    "load_reward_model": "rewardkit.scorers.load",
    "RewardModel": "rewardkit.scorers.base",
    "Score": "rewardkit.scorers.base",
    "Comparison": "rewardkit.scorers.base",
    "ClassifierRM": "rewardkit.scorers.classifier",
    # data
    "PreferencePair": "rewardkit.data.schema",
    "NWayItem": "rewardkit.data.schema",
    "load_pairs": "rewardkit.data.loading",
    "load_eval_items": "rewardkit.data.loading",
    "Conversation": "rewardkit.data.templates",
    "register_conv_template": "rewardkit.data.templates",
    "get_conv_template": "rewardkit.data.templates",
    "install_chat_template": "rewardkit.data.tokenize",
    # training
    "run_train": "rewardkit.train.run",
    "RewardTrainer": "rewardkit.train.trainer",
    "PairwiseCollator": "rewardkit.train.collator",
    "bradley_terry_loss": "rewardkit.train.loss",
    "export_model": "rewardkit.train.export",
    "ModelArguments": "rewardkit.config",
    "DataArguments": "rewardkit.config",
    "ScriptArguments": "rewardkit.config",
    # evaluation and serving
    "run_eval": "rewardkit.eval.run",
    "create_app": "rewardkit.serve.app",
    "RewardkitError": "rewardkit.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rewardkit' has no attribute {name!r}")
