"""rewardkit: train, score, evaluate and serve reward models.

Example (a reward model written as a Python function; a checkpoint folder loads the same way):
    >>> import pathlib, tempfile
    >>> from rewardkit import load_reward_model
    >>> scorer = pathlib.Path(tempfile.mkdtemp()) / "my_rewards.py"
    >>> _ = scorer.write_text("def brevity(convs):\\n    return [-len(c[-1]['content']) for c in convs]\\n")
    >>> rm = load_reward_model(f"{scorer}:brevity")
    >>> rm.score_pairs(["2+2?"], ["4"], ["four"])
    ([-1.0], [-4.0])
    >>> rm.compare("2+2?", ["four", "4", "IV."]).ranking
    [1, 2, 0]

The names below are the public API. They are imported on first use, so `import rewardkit` (and
`rewardkit --help`) stays fast. Collators, the Trainer subclass, the loss and the export helpers are
internals (import them from their modules if you must). The server's blocking entry point is
`rewardkit.serve.app.serve` (`rewardkit.serve` is the package's name).
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
    "Group": "rewardkit.scorers.base",
    "Messages": "rewardkit.scorers.base",
    # the commands, callable from Python
    "run_train": "rewardkit.train.run",
    "run_score": "rewardkit.scoring",
    "run_eval": "rewardkit.eval.run",
    "run_eval_files": "rewardkit.eval.run",
    "create_app": "rewardkit.serve.app",
    # their arguments
    "ModelArguments": "rewardkit.config",
    "DataArguments": "rewardkit.config",
    "ScriptArguments": "rewardkit.config",
    "RewardModelArguments": "rewardkit.config",
    "ScoreArguments": "rewardkit.config",
    "EvalArguments": "rewardkit.config",
    "ServeArguments": "rewardkit.config",
    # data
    "PreferencePair": "rewardkit.data.schema",
    "NWayItem": "rewardkit.data.schema",
    "load_pairs": "rewardkit.data.loading",
    "load_eval_items": "rewardkit.data.loading",
    # the conversation-template registry (the seed's API)
    "Conversation": "rewardkit.data.templates",
    "register_conv_template": "rewardkit.data.templates",
    "get_conv_template": "rewardkit.data.templates",
    # errors
    "RewardkitError": "rewardkit.errors",
    "DataError": "rewardkit.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'rewardkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
