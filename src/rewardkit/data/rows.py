"""Rows for `rewardkit score`: a conversation to score, or a preference pair (both sides scored).

The score command reads rows with the same readers as `train` and `eval` (`formats.normalize_row`,
`messages.read_messages`), so a file that `train` reads is read the same way here.

Accepted rows (`ACCEPTED` says it in every error about a row's layout):

* a conversation: a JSON array of messages, or `{"messages": [...]}`, ending with the answer;
* a prompt and a response: `{"prompt": str or messages, "response": str, "system"?: str}`;
* a preference pair in any format of `formats.FORMATS`;
* for a process reward model, a step row (`steps.is_step_row`: prompt + completions/steps,
  Math-Shepherd, ProcessBench).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rewardkit.data.formats import detect_format, normalize_row
from rewardkit.data.messages import fail, read_messages, read_tools
from rewardkit.data.schema import Message, PreferencePair, with_tools
from rewardkit.data.steps import StepExample, is_step_row, normalize_step_row
from rewardkit.errors import DataError, RewardkitError

PAIR_KEYS = frozenset(
    {
        "chosen",
        "rejected",
        "question",
        "response_chosen",
        "response_rejected",
        "conversations",
        "chosen_messages",
        "rejected_messages",
    }
)
ACCEPTED = (
    "a JSON array of messages [{role, content}, ...] ending with the assistant answer; "
    '{"messages": [...]}; {"prompt": str or messages, "response": str}; or a preference pair '
    "(formats: medicalgpt, trl, trl_implicit, hh, sharegpt, alpaca, messages_pair, "
    "nway with one chosen and one rejected); "
    "or, for a process reward model, a step row (prompt + completions/steps, Math-Shepherd, ProcessBench)"
)


@dataclass
class ScoreRow:
    """One parsed input row of `rewardkit score`."""

    kind: str  # "conversation", "pair" or "steps"
    row: dict  # what is written back, plus the scores
    messages: list[Message] | None = None  # a conversation
    pair: PreferencePair | None = None  # a pair
    steps: StepExample | None = None  # a solution step by step, for process reward models


def parse_score_row(path: str, lineno: int, raw: Any) -> ScoreRow | RewardkitError:
    """One input row (a decoded object, or a JSON Lines line as bytes) as a conversation or a pair.

    Returns:
        The row, or the one-line error (naming path:line and what is accepted), so a caller can set
        bad rows aside instead of stopping.
    """
    source = f"{path}:{lineno}"
    try:
        row = decode_line(raw, path, lineno)
        if isinstance(row, list):
            return ScoreRow("conversation", {"messages": row}, messages=conversation(row, source, "messages"))
        if "messages" in row or "response" in row:  # a `tools` column goes to the chat template
            messages = (
                conversation(row["messages"], source, "messages")
                if "messages" in row
                else prompt_response(row, source)
            )
            messages = with_tools(messages, read_tools(row.get("tools"), source))
            return ScoreRow("conversation", dict(row), messages=messages)
        if is_step_row(row):
            return ScoreRow("steps", dict(row), steps=normalize_step_row(row, source=source))
        if PAIR_KEYS & row.keys():
            return ScoreRow(
                "pair", dict(row), pair=normalize_row(row, source=source, fmt=detect_format(row, source))
            )
        keys = ", ".join(sorted(row)) or "none"
        return DataError(
            f"row matches no accepted layout (its keys: {keys}); accepted: {ACCEPTED}", path=path, line=lineno
        )
    except RewardkitError as e:
        return e


def decode_line(raw: Any, path: str, lineno: int) -> Any:
    """A JSON Lines line (bytes) decoded to an object or array; anything else is returned as it is."""
    if not isinstance(raw, bytes):
        return raw
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path=path, line=lineno) from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"malformed JSON: {e.msg} (column {e.colno}); accepted: {ACCEPTED}", path=path, line=lineno
        ) from None
    if not isinstance(row, (dict, list)):
        raise DataError(
            f"expected a JSON object or array, got {type(row).__name__}; accepted: {ACCEPTED}",
            path=path,
            line=lineno,
        )
    return row


def conversation(value: Any, source: str, name: str) -> list[Message]:
    """A message list that ends with the assistant answer to score."""
    messages = read_messages(value, source, name)
    if messages[-1]["role"] != "assistant":
        ends = messages[-1]["role"]
        raise fail(source, f"must end with the assistant answer to score, ends with {ends}", name)
    return messages


def prompt_response(row: Mapping, source: str) -> list[Message]:
    """`{"prompt", "response", "system"?}` as one conversation."""
    prompt, response, system = row.get("prompt"), row["response"], row.get("system")
    if not isinstance(response, str):
        raise fail(source, "expected a string", "response")
    if system is not None and not isinstance(system, str):
        raise fail(source, "expected a string or null", "system")
    if isinstance(prompt, str):
        head = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        head = read_messages(prompt, source, "prompt")
    else:
        raise fail(source, "expected a string or a list of messages", "prompt")
    system_turn = [{"role": "system", "content": system}] if system else []
    return system_turn + head + [{"role": "assistant", "content": response}]
