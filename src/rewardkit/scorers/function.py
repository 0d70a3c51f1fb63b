"""Kind 2, own code: a Python function used as a reward model (`--model module.path:function`).

The function is named `module.path:function` or `path/to/file.py:function` and called on batches of
conversations; it returns one float, or one dict with a "score" (other numeric entries become
sub-scores), per conversation.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import numbers
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rewardkit.errors import RewardkitError, first_line
from rewardkit.scorers.base import Messages, PointwiseMixin, Score

SPEC_FORMS = "module.path:function or path/to/file.py:function"


def _import_module(name: str, spec: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            raise RewardkitError(
                f"--model {spec}: no module named '{e.name}' on sys.path (give {SPEC_FORMS})"
            ) from e
        raise RewardkitError(f"--model {spec}: importing '{name}' failed: {first_line(e)}") from e
    except Exception as e:  # the user's module raised while importing
        raise RewardkitError(
            f"--model {spec}: importing '{name}' failed: {type(e).__name__}: {first_line(e)}"
        ) from e


def _import_file(file: Path, spec: str):
    if not file.is_file():
        raise RewardkitError(f"--model {spec}: no such file '{file}'")
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]
    name = f"rewardkit_user_{file.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise RewardkitError(
            f"--model {spec}: running '{file}' failed: {type(e).__name__}: {first_line(e)}"
        ) from e
    return module


def import_function(spec: str) -> Callable:
    """The callable named by `module.path:function` or `path/to/file.py:function`."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise RewardkitError(f"--model {spec}: a Python scorer is given as {SPEC_FORMS}")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    obj = _import_file(Path(target), spec) if is_file else _import_module(target, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None)))
            raise RewardkitError(
                f"--model {spec}: '{target}' has no attribute '{attr}' "
                f"(callables there: {', '.join(public) or 'none'})"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise RewardkitError(f"--model {spec}: '{attr}' is a {type(obj).__name__}, not a function")
    return obj


class FunctionRM(PointwiseMixin):
    """A Python function used as a reward model: `fn(conversations) -> list[float] | list[dict]`.

    Each dict has a "score" and optionally more numeric entries, kept as sub-scores.

    Example:
        >>> rm = FunctionRM(lambda convs: [float(len(c[-1]["content"])) for c in convs], "len")
        >>> rm.compare("Say hi", ["hi", "hello"]).ranking
        [1, 0]
    """

    kind = "function"

    def __init__(self, fn: Callable, spec: str, batch_size: int = 32):
        if batch_size < 1:
            raise RewardkitError(f"--batch_size {batch_size}: must be at least 1")
        self.fn, self.name, self.batch_size = fn, spec, batch_size

    def score_detailed(self, conversations: Sequence[Messages]) -> list[Score]:
        scores: list[Score] = []
        for start in range(0, len(conversations), self.batch_size):
            batch = [list(conv) for conv in conversations[start : start + self.batch_size]]
            scores += self._check(self.fn(batch), len(batch))
        return scores

    def _check(self, result, expected: int) -> list[Score]:
        if hasattr(result, "tolist") and not isinstance(result, (list, tuple)):  # numpy array, torch tensor
            result = result.tolist()
        if not isinstance(result, (list, tuple)):
            raise RewardkitError(
                f"--model {self.name}: the function returned a {type(result).__name__}; "
                "expected a list of floats or of dicts with a 'score'"
            )
        if len(result) != expected:
            raise RewardkitError(
                f"--model {self.name}: the function returned {len(result)} scores "
                f"for {expected} conversations"
            )
        return [self._to_score(item, i) for i, item in enumerate(result)]

    def _to_score(self, item, i: int) -> Score:
        if _is_number(item):
            return Score(float(item))
        if isinstance(item, dict) and _is_number(item.get("score")):
            subs = {str(k): float(v) for k, v in item.items() if k != "score" and _is_number(v)}
            return Score(float(item["score"]), sub_scores=subs)
        raise RewardkitError(
            f"--model {self.name}: result {i} is {item!r:.80}; expected a number "
            "or a dict with a numeric 'score'"
        )


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def load_function(spec: str, *, batch_size: int = 32, **_ignored) -> FunctionRM:
    """A reward model from a Python function named `module.path:function` or `path/to/file.py:function`.

    The function is called on batches of at most `batch_size` conversations (lists of
    {"role", "content"} messages) and returns one float, or one dict with a "score", per conversation.

    Example:
        >>> import pathlib, tempfile
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "my_rewards.py"
        >>> _ = file.write_text("def length_penalty(convs):\\n    return [-len(c[-1]['content']) / 10 for c in convs]")
        >>> rm = load_function(f"{file}:length_penalty")
        >>> rm.score([[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]])
        [-0.5]
    """
    return FunctionRM(import_function(spec), spec, batch_size)
