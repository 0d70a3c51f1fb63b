"""Step-labelled solutions for process reward models (PRMs): one normal form, four readers.

Normal form (`StepExample`): prompt messages, the solution's steps, one label per step (1.0 good,
0.0 bad, a float in between for a soft label such as a completion rate, None for "not labelled":
ProcessBench says nothing about the steps after the first error), and an optional system prompt.

Formats, detected per file from its first row as for pairs:

| format | keys |
|---|---|
| `trl_stepwise` (TRL) | `prompt`, `completions` (steps), `labels` (bools or floats in [0, 1]) |
| `math_shepherd` | `input` (question and steps, each step followed by ` ки`), `label` (the same text with `+`/`-` in place of each tag) |
| `ratings` (PRM800K-style) | `prompt` (or `problem`/`question`), `completions` (or `steps`), `ratings` (-1/0/1) |
| `prm800k` (PRM800K's own) | `question.problem`, `label.steps[].completions[].rating`, `chosen_completion` |
| `processbench` | `problem`, `steps`, `label` (index of the first wrong step, or -1 for none) |
| `steps` (unlabelled, for scoring) | `prompt`, `completions` (or `steps`) |

A rating of 0 ("neutral") is read as good (`neutral="good"`, as in Qwen's PRM work) or bad
(`neutral="bad"`, as TRL's old PRM800K script did).

Example:
    >>> ex = normalize_step_row({"prompt": "2+2?", "completions": ["2+2=4", "So 4."], "labels": [True, False]})
    >>> ex.steps, ex.labels, ex.first_error()
    (['2+2=4', 'So 4.'], [1.0, 0.0], 1)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rewardkit.data.formats import _prompt
from rewardkit.data.loading import DropReport, Paths, _row_sources, find_inputs
from rewardkit.data.messages import fail as _fail
from rewardkit.data.schema import Message
from rewardkit.errors import DataError, RewardkitError

STEP_FORMATS = ("trl_stepwise", "math_shepherd", "ratings", "prm800k", "processbench", "steps")
NEUTRAL_CHOICES = ("good", "bad")
MATH_SHEPHERD_TAG = " ки"
# The sentence Math-Shepherd's GSM8K rows end their question with (they join it to the first step with
# a space): a question, or an instruction such as "Calculate the total ...".
_ASKS = re.compile(r"\b(calculate|find|determine|compute|work out|how many|how much|what is)\b", re.I)


@dataclass
class StepExample:
    """One solution to score or train on, step by step.

    Attributes:
        prompt: the conversation before the solution (user turns), without the system message.
        steps: the solution's steps, in order.
        labels: per step 1.0 (good), 0.0 (bad), a float in [0, 1] (soft), or None (unlabelled);
            the whole list is None for rows to score.
        system: the system prompt, or None.
        subset: a label for grouping results in `rewardkit eval`, or None.
        source: "file:line" of the row.
    """

    prompt: list[Message]
    steps: list[str]
    labels: list[float | None] | None = None
    system: str | None = None
    subset: str | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def prompt_messages(self) -> list[Message]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(self.prompt)

    def first_error(self) -> int:
        """Index of the first step labelled bad (below 0.5), or -1 when every labelled step is good."""
        for i, label in enumerate(self.labels or []):
            if label is not None and label < 0.5:
                return i
        return -1


def detect_step_format(row: Mapping[str, Any]) -> str | None:
    """The step format of `row` (one of STEP_FORMATS), or None when it is not a step row."""
    keys = set(row)
    if {"input", "label"} <= keys and isinstance(row["input"], str) and MATH_SHEPHERD_TAG in row["input"]:
        return "math_shepherd"
    if {"problem", "steps", "label"} <= keys and isinstance(row["steps"], list):
        return "processbench"
    if isinstance(row.get("question"), Mapping) and isinstance(row.get("label"), Mapping):
        return "prm800k"
    has_steps = isinstance(row.get("completions"), list) or isinstance(row.get("steps"), list)
    has_prompt = any(k in keys for k in ("prompt", "problem", "question"))
    if has_steps and has_prompt:
        if "ratings" in keys:
            return "ratings"
        if "labels" in keys:
            return "trl_stepwise"
        return "steps"
    return None


def is_step_row(row: Mapping[str, Any]) -> bool:
    """True for rows in a step format (what `rewardkit score` and `eval` hand to a PRM)."""
    return detect_step_format(row) is not None


def normalize_step_row(
    row: Mapping[str, Any], *, source: str = "", fmt: str | None = None, neutral: str = "good"
) -> StepExample:
    """One row of any step format as a `StepExample`; a bad row raises DataError naming file:line."""
    if neutral not in NEUTRAL_CHOICES:
        raise RewardkitError(f"neutral={neutral!r}: accepted values are {', '.join(NEUTRAL_CHOICES)}")
    fmt = fmt or detect_step_format(row)
    if fmt is None:
        raise _fail(
            source,
            f"not a step-labelled row (keys: {', '.join(sorted(row)) or 'none'}); expected one of: "
            "prompt+completions+labels (TRL), input+label with ' ки' tags (Math-Shepherd), "
            "prompt+completions+ratings, problem+steps+label (ProcessBench), PRM800K's question+label",
        )
    if fmt == "math_shepherd":
        prompt, steps, labels = _math_shepherd(row, source)
    elif fmt == "processbench":
        prompt, steps = _str_field(row, "problem", source), _steps(row, "steps", source)
        labels = _first_error_labels(row.get("label"), len(steps), source)
    elif fmt == "prm800k":
        prompt, steps, labels = _prm800k(row, source, neutral)
    else:
        prompt = row.get("prompt", row.get("problem", row.get("question")))
        steps = _steps(row, "completions" if "completions" in row else "steps", source)
        labels = None
        if fmt == "trl_stepwise":
            labels = [_label(v, source, i) for i, v in enumerate(_list(row, "labels", len(steps), source))]
        elif fmt == "ratings":
            labels = [
                _rating(v, source, i, neutral)
                for i, v in enumerate(_list(row, "ratings", len(steps), source))
            ]
    system, messages = _prompt(prompt, source)
    subset = row.get("subset")
    return StepExample(messages, steps, labels, system, subset if isinstance(subset, str) else None, source)


def load_step_examples(
    paths: Paths, *, neutral: str = "good", limit: int | None = None, labelled: bool = True
) -> tuple[list[StepExample], DropReport]:
    """Read step rows from files, folders or a Hub dataset (as `load_pairs` does for pairs).

    Args:
        paths: a path, a Hub name, or a list of them.
        neutral: what a PRM800K rating of 0 means, "good" or "bad".
        limit: stop once this many examples are kept.
        labelled: require labels (training and evaluation); False accepts unlabelled `steps` rows.

    Returns:
        The examples in input order and a DropReport (solutions with no steps are dropped as "no_steps").
    """
    report = DropReport(noun="solutions")
    kept: list[StepExample] = []
    for label, rows in _row_sources(find_inputs(paths)):
        fmt = None
        for lineno, row in rows:
            source = f"{label}:{lineno}"
            row_fmt = detect_step_format(row)
            fmt = fmt or row_fmt
            if row_fmt != fmt:
                raise DataError(
                    f"row is in step format '{row_fmt}' but the file's first row is '{fmt}'; "
                    "every row of a file must use one format",
                    path=label,
                    line=lineno,
                )
            example = normalize_step_row(row, source=source, fmt=fmt, neutral=neutral)
            report.total += 1
            if labelled and example.labels is None:
                raise _fail(source, "the row has no step labels ('labels', 'ratings' or 'label')")
            if not example.steps:
                report.add("no_steps", source)
                continue
            kept.append(example)
            if limit is not None and len(kept) >= limit:
                return kept, report
    return kept, report


# ---- formats ----


def _math_shepherd(row: Mapping[str, Any], source: str) -> tuple[str, list[str], list[float]]:
    text, tagged = _str_field(row, "input", source), _str_field(row, "label", source)
    segments = text.split(MATH_SHEPHERD_TAG)
    if segments[-1].strip():
        raise _fail(source, "the text after the last ' ки' tag is not followed by a tag", "input")
    segments, labels, pos = segments[:-1], [], 0
    for i, seg in enumerate(segments):
        mark = tagged[pos + len(seg) : pos + len(seg) + 2]
        if tagged[pos : pos + len(seg)] != seg or mark not in (" +", " -"):
            raise _fail(source, f"does not match 'input' with ' +' or ' -' in place of tag {i + 1}", "label")
        labels.append(1.0 if mark == " +" else 0.0)
        pos += len(seg) + 2
    question, first = _split_question(segments[0], source)
    return question, [first] + [s.strip() for s in segments[1:]], labels


def _split_question(segment: str, source: str) -> tuple[str, str]:
    """Math-Shepherd joins the question and the first step with a space: split after the last sentence
    (not counting the step's own last) that ends in "?", else after the last that instructs
    ("..., calculate the total."). Right on all 60 rows of the shared GSM8K sample."""
    text = segment.strip()
    ends = [m.start() for m in re.finditer(r"(?<=[.?!])\s+", text)]  # where each sentence but the last ends
    starts = [0] + [m.end() for m in re.finditer(r"(?<=[.?!])\s+", text)]
    for asks in (lambda s: s.endswith("?"), _ASKS.search):
        for i in range(len(ends) - 1, -1, -1):
            if asks(text[starts[i] : ends[i]]):
                return text[: ends[i]], text[starts[i + 1] :]
    raise _fail(source, "cannot tell the question from the first step (no sentence ends in '?')", "input")


def _prm800k(row: Mapping[str, Any], source: str, neutral: str) -> tuple[str, list[str], list[float]]:
    problem = row["question"].get("problem")
    if not isinstance(problem, str):
        raise _fail(source, "expected a string", "question.problem")
    steps, labels = [], []
    for i, step in enumerate(row["label"].get("steps") or []):
        options = step.get("completions") or []
        chosen = step.get("chosen_completion")
        if chosen is None:  # the labeller stopped here: keep the rejected step, if rated, and end
            pick = next((c for c in options if c.get("rating") == -1), None)
            if pick is None:
                break
        elif isinstance(chosen, int) and 0 <= chosen < len(options):
            pick = options[chosen]
        else:
            raise _fail(source, f"step {i}: chosen_completion {chosen!r} is not an index of its completions")
        steps.append(str(pick.get("text", "")).strip())
        labels.append(_rating(pick.get("rating"), source, i, neutral))
        if chosen is None:
            break
    return problem, steps, labels


def _first_error_labels(value: Any, n: int, source: str) -> list[float | None]:
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < n:
        raise _fail(
            source, f"expected the index of the first wrong step (0 to {n - 1}) or -1, got {value!r}", "label"
        )
    if value == -1:
        return [1.0] * n
    return [1.0] * value + [0.0] + [None] * (n - value - 1)


def _label(value: Any, source: str, i: int) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise _fail(source, f"step {i}: expected true/false or a number in [0, 1], got {value!r}", "labels")


def _rating(value: Any, source: str, i: int, neutral: str) -> float:
    if isinstance(value, bool) or value not in (-1, 0, 1):
        raise _fail(source, f"step {i}: expected a rating -1, 0 or 1, got {value!r}", "ratings")
    return 1.0 if value == 1 or (value == 0 and neutral == "good") else 0.0


def _steps(row: Mapping[str, Any], name: str, source: str) -> list[str]:
    value = row.get(name)
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _fail(source, "expected a list of step strings", name)
    return list(value)


def _list(row: Mapping[str, Any], name: str, n: int, source: str) -> list:
    value = row.get(name)
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} entries" if isinstance(value, list) else type(value).__name__
        raise _fail(source, f"expected a list of {n} entries (one per step), got {got}", name)
    return value


def _str_field(row: Mapping[str, Any], name: str, source: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, "expected a non-empty string", name)
    return value
