"""Recognise which preference-data layout a row uses, and read it into the normal form.

Six layouts are accepted, named in `FORMATS`. A file's format is detected from its first row
(`detect_format`); `normalize_row` turns one row into a `PreferencePair`, `normalize_item` into an
`NWayItem` (for evaluation, where pairwise rows are one-chosen-one-rejected items).

Every format may also carry `system` (str), `margin` (number) and `subset` (str) columns; any other
column that the format does not use is kept in `PreferencePair.extra`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rewardkit.data.schema import Message, NWayItem, PreferencePair
from rewardkit.errors import DataError

FORMATS: dict[str, str] = {
    "medicalgpt": "{system?, history?, question, response_chosen, response_rejected}",
    "trl": "{prompt, chosen, rejected} as strings or as message lists",
    "trl_implicit": "{chosen, rejected} as message lists sharing their leading turns",
    "hh": "{chosen, rejected} as '\\n\\nHuman: ...\\n\\nAssistant: ...' transcripts",
    "sharegpt": "{conversations, chosen, rejected} with chosen/rejected one {from, value} message each",
    "nway": "{prompt, chosen: [str, ...], rejected: [str, ...], subset?}",
}

COMMON_COLUMNS = frozenset({"system", "margin", "subset"})
_COLUMNS = {
    "medicalgpt": {"history", "question", "response_chosen", "response_rejected"},
    "trl": {"prompt", "chosen", "rejected"},
    "trl_implicit": {"chosen", "rejected"},
    "hh": {"chosen", "rejected"},
    "sharegpt": {"conversations", "chosen", "rejected"},
    "nway": {"prompt", "chosen", "rejected"},
}
ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}
_HH_MARKER = re.compile(r"\n\n(Human|Assistant):")


class SkipRow(DataError):
    """A well-formed row that still cannot become a pair; loaders drop it and count it under `reason`."""

    def __init__(self, reason: str, message: str, source: str):
        path, line = _where(source)
        super().__init__(message, path=path, line=line)
        self.reason = reason


def detect_format(row: Mapping[str, Any], source: str = "") -> str:
    """Name the layout of one row: one of the keys of `FORMATS`.

    Args:
        row: one record (a JSON object).
        source: "file:line", used in error messages.

    Raises:
        DataError: the row is not an object, lacks `chosen`/`rejected`, has a `chosen` of the wrong
            type, or matches no format (the message lists the accepted ones).
    """
    if not isinstance(row, Mapping):
        raise _fail(source, f"expected a JSON object, got {_kind(row)}")
    if {"question", "response_chosen", "response_rejected"} & row.keys():
        return "medicalgpt"
    if "conversations" in row:
        return "sharegpt"
    if "chosen" not in row or "rejected" not in row:
        if "chosen" in row or "rejected" in row:
            missing = "rejected" if "chosen" in row else "chosen"
            raise _fail(source, "missing (rows need both 'chosen' and 'rejected')", missing)
        keys = ", ".join(sorted(row)) or "none"
        accepted = "; ".join(f"{name} {columns}" for name, columns in FORMATS.items())
        raise _fail(source, f"row matches no known format (its keys: {keys}); accepted: {accepted}")
    chosen = row["chosen"]
    if isinstance(chosen, str):
        return "trl" if "prompt" in row else "hh"
    if isinstance(chosen, list) and chosen:
        if all(isinstance(c, str) for c in chosen):
            return "nway"
        if all(isinstance(c, Mapping) for c in chosen):
            return "trl" if "prompt" in row else "trl_implicit"
    expected = "a string, a list of messages or a list of strings"
    raise _fail(source, f"expected {expected}, got {_kind(chosen)}", "chosen")


def normalize_row(row: Mapping[str, Any], *, source: str, fmt: str | None = None) -> PreferencePair:
    """Read one row of any pairwise format (or a one-against-one N-way row) into a `PreferencePair`.

    Args:
        row: one record.
        source: "file:line", stored on the pair and used in error messages.
        fmt: the row's format if already known (a file's rows share the first row's format).

    Raises:
        SkipRow: a transcript whose chosen and rejected differ before the last answer ("prompts_differ").
        DataError: a field is missing or has the wrong type or shape.

    Example:
        >>> normalize_row({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, source="d.jsonl:1").prompt
        [{'role': 'user', 'content': '2+2?'}]
    """
    fmt = fmt or detect_format(row, source)
    if fmt == "nway":
        item = normalize_item(row, source=source, fmt=fmt)
        if len(item.chosen) != 1 or len(item.rejected) != 1:
            counts = f"{len(item.chosen)} chosen and {len(item.rejected)} rejected answers"
            message = f"an N-way row with {counts} is not a pair; use load_eval_items (rewardkit eval)"
            raise _fail(source, message, "chosen")
        prompt, chosen, rejected, system = item.prompt, item.chosen[0], item.rejected[0], item.system
    else:
        if fmt == "medicalgpt":
            head_system, prompt, chosen, rejected = _medicalgpt(row, source)
        elif fmt == "trl":
            head_system, prompt, chosen, rejected = _trl(row, source)
        elif fmt == "trl_implicit":
            head_system, prompt, chosen, rejected = _trl_implicit(row, source)
        elif fmt == "hh":
            head_system, prompt, chosen, rejected = _hh(row, source)
        elif fmt == "sharegpt":
            head_system, prompt, chosen, rejected = _sharegpt(row, source)
        else:
            raise _fail(source, f"unknown format {fmt!r}; accepted: {', '.join(FORMATS)}")
        system = _merge_system(row, head_system, source)
        _check_prompt(prompt, source, "prompt")
    extra = {k: v for k, v in row.items() if k not in _COLUMNS[fmt] | COMMON_COLUMNS}
    margin, subset = _margin(row, source), _subset(row, source)
    return PreferencePair(prompt, chosen, rejected, system, margin, subset, source, extra)


def normalize_item(row: Mapping[str, Any], *, source: str, fmt: str | None = None) -> NWayItem:
    """Read one row into an `NWayItem`: N-way rows as they are, pairwise rows as one chosen and one rejected.

    Raises:
        SkipRow, DataError: as `normalize_row`.
    """
    fmt = fmt or detect_format(row, source)
    if fmt != "nway":
        pair = normalize_row(row, source=source, fmt=fmt)
        return NWayItem(pair.prompt, [pair.chosen], [pair.rejected], pair.system, pair.subset, source)
    head_system, prompt = _prompt(_get(row, "prompt", source), source)
    system = _merge_system(row, head_system, source)
    _check_prompt(prompt, source, "prompt")
    chosen, rejected = _str_list(row, "chosen", source), _str_list(row, "rejected", source)
    return NWayItem(prompt, chosen, rejected, system, _subset(row, source), source)


# ---- one reader per format: each returns (system from a head message, prompt, chosen, rejected) ----


def _medicalgpt(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    history = row.get("history") or []
    if not isinstance(history, list):
        expected = "a list of [question, answer] pairs or null"
        raise _fail(source, f"expected {expected}, got {_kind(history)}", "history")
    prompt: list[Message] = []
    for i, turn in enumerate(history):
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            expected = "a [question, answer] pair of strings"
            raise _fail(source, f"expected {expected}, got {_kind(turn)}", f"history[{i}]")
        prompt += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    prompt.append({"role": "user", "content": _text(row, "question", source)})
    return None, prompt, _text(row, "response_chosen", source), _text(row, "response_rejected", source)


def _trl(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    system, prompt = _prompt(_get(row, "prompt", source), source)
    chosen, rejected = _answer_messages(row, "chosen", source), _answer_messages(row, "rejected", source)
    # Earlier answer messages (tool calls, follow-ups) can only join the prompt when both sides share them.
    if chosen[:-1] != rejected[:-1]:
        message = "chosen and rejected differ before their last message; only the last may differ"
        raise _fail(source, message, "chosen")
    return system, prompt + chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


def _trl_implicit(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    sys_c, chosen = _conversation(row, "chosen", source)
    sys_r, rejected = _conversation(row, "rejected", source)
    if sys_c != sys_r:
        raise _fail(source, "chosen and rejected start with different system messages", "rejected")
    for name, msgs in (("chosen", chosen), ("rejected", rejected)):
        if not msgs or msgs[-1]["role"] != "assistant":
            ends = msgs[-1]["role"] if msgs else "the system message"
            raise _fail(source, f"must end with an assistant message, ends with {ends}", name)
    split = shared_prefix(chosen, rejected)
    if split is None:
        message = "after their shared leading turns each side must have exactly one assistant message"
        raise _fail(source, message, "chosen")
    return (sys_c, *split)


def _hh(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    chosen = _hh_messages(_text(row, "chosen", source), source, "chosen")
    rejected = _hh_messages(_text(row, "rejected", source), source, "rejected")
    split = shared_prefix(chosen, rejected)
    if split is None:  # real HH has a few such pairs: no single answer to compare, so drop rather than fail
        raise SkipRow("prompts_differ", "chosen and rejected differ before their last assistant turn", source)
    return (None, *split)


def _sharegpt(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    system, prompt = _conversation(row, "conversations", source)
    return system, prompt, _one_answer(row, "chosen", source), _one_answer(row, "rejected", source)


# ---- shared pieces ----


def shared_prefix(chosen: list[Message], rejected: list[Message]) -> tuple[list[Message], str, str] | None:
    """Split two conversations into their longest common leading turns and one assistant answer each.

    Returns:
        (prompt, chosen answer, rejected answer), or None when what follows the shared turns is not
        exactly one assistant message on each side.
    """
    n, stop = 0, min(len(chosen), len(rejected)) - 1  # each side keeps at least its last message
    while n < stop and chosen[n] == rejected[n]:
        n += 1
    tail_c, tail_r = chosen[n:], rejected[n:]
    if len(tail_c) != 1 or len(tail_r) != 1 or {tail_c[0]["role"], tail_r[0]["role"]} != {"assistant"}:
        return None
    return chosen[:n], tail_c[0]["content"], tail_r[0]["content"]


def _hh_messages(text: str, source: str, field: str) -> list[Message]:
    if text.startswith("Human:"):
        text = "\n\n" + text
    parts = _HH_MARKER.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise _fail(
            source,
            "not an HH transcript (expected '\\n\\nHuman: ...\\n\\nAssistant: ...'); "
            "for plain-string answers add a 'prompt' column (TRL format)",
            field,
        )
    roles = {"Human": "user", "Assistant": "assistant"}
    # The transcript writes "Human: text": the one space after the colon is layout, not content.
    return [
        {"role": roles[marker], "content": content[1:] if content.startswith(" ") else content}
        for marker, content in zip(parts[1::2], parts[2::2])
    ]


def _prompt(value: Any, source: str) -> tuple[str | None, list[Message]]:
    if isinstance(value, str):
        return None, [{"role": "user", "content": value}]
    return _split_system(_messages(value, source, "prompt"), source, "prompt")


def _answer_messages(row: Mapping[str, Any], name: str, source: str) -> list[Message]:
    value = _get(row, name, source)
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    msgs = _messages(value, source, name)
    if msgs[-1]["role"] != "assistant":
        raise _fail(source, f"must end with an assistant message, ends with {msgs[-1]['role']}", name)
    if any(m["role"] == "system" for m in msgs):
        message = "a system message belongs in the prompt or the 'system' column, not in an answer"
        raise _fail(source, message, name)
    return msgs


def _one_answer(row: Mapping[str, Any], name: str, source: str) -> str:
    value = _get(row, name, source)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, Mapping):
        expected = "one message like {'from': 'gpt', 'value': ...}"
        raise _fail(source, f"expected {expected}, got {_kind(value)}", name)
    msg = _message(value, source, name)
    if msg["role"] != "assistant":
        raise _fail(source, f"expected an assistant ('gpt') message, got role {msg['role']!r}", name)
    return msg["content"]


def _conversation(row: Mapping[str, Any], name: str, source: str) -> tuple[str | None, list[Message]]:
    """A message-list column, with a leading system message taken out."""
    return _split_system(_messages(_get(row, name, source), source, name), source, name)


def _messages(value: Any, source: str, field: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise _fail(source, f"expected a non-empty list of messages, got {_kind(value)}", field)
    return [_message(m, source, f"{field}[{i}]") for i, m in enumerate(value)]


def _message(msg: Any, source: str, field: str) -> Message:
    if not isinstance(msg, Mapping):
        expected = "a message object {'role', 'content'} or {'from', 'value'}"
        raise _fail(source, f"expected {expected}, got {_kind(msg)}", field)
    # Parquet unions both spellings into one struct, so the unused pair is present as None.
    role = msg.get("role") if msg.get("role") is not None else msg.get("from")
    content = msg.get("content") if msg.get("content") is not None else msg.get("value")
    if not isinstance(role, str) or role.lower() not in ROLES:
        raise _fail(source, f"unknown role {role!r}; accepted: {', '.join(ROLES)}", field)
    if not isinstance(content, str):
        raise _fail(source, f"message content must be a string, got {_kind(content)}", field)
    return {"role": ROLES[role.lower()], "content": content}


def _split_system(msgs: list[Message], source: str, field: str) -> tuple[str | None, list[Message]]:
    system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
    rest = msgs[1:] if system is not None else msgs
    if any(m["role"] == "system" for m in rest):
        raise _fail(source, "a system message may only come first", field)
    return system, rest


def _merge_system(row: Mapping[str, Any], from_messages: str | None, source: str) -> str | None:
    column = row.get("system")
    if column is not None and not isinstance(column, str):
        raise _fail(source, f"expected a string or null, got {_kind(column)}", "system")
    if column and from_messages and column != from_messages:
        message = "differs from the system message at the head of the conversation; give only one of them"
        raise _fail(source, message, "system")
    return column or from_messages or None


def _check_prompt(prompt: list[Message], source: str, field: str) -> None:
    if not prompt or prompt[-1]["role"] != "user":
        got = prompt[-1]["role"] if prompt else "nothing"
        raise _fail(source, f"the prompt must end with a user message, ends with {got}", field)


def _get(row: Mapping[str, Any], name: str, source: str) -> Any:
    if name not in row:
        raise _fail(source, "missing", name)
    return row[name]


def _text(row: Mapping[str, Any], name: str, source: str) -> str:
    value = _get(row, name, source)
    if not isinstance(value, str):
        raise _fail(source, f"expected a string, got {_kind(value)}", name)
    return value


def _str_list(row: Mapping[str, Any], name: str, source: str) -> list[str]:
    value = _get(row, name, source)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, f"expected a list of strings, got {_kind(value)}", name)
    return list(value)


def _margin(row: Mapping[str, Any], source: str) -> float | None:
    value = row.get("margin")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, f"expected a number or null, got {_kind(value)}", "margin")
    return float(value)


def _subset(row: Mapping[str, Any], source: str) -> str | None:
    value = row.get("subset")
    if value is not None and not isinstance(value, str):
        raise _fail(source, f"expected a string or null, got {_kind(value)}", "subset")
    return value


def _kind(value: Any) -> str:
    """A value's JSON kind for error messages: 'a number', 'a list of object and string items'."""
    if isinstance(value, list):
        items = sorted({_json_type(v) for v in value})
        return f"a list of {' and '.join(items)} items" if value else "an empty list"
    name = _json_type(value)
    return name if name == "null" else ("an " if name[0] in "ao" else "a ") + name


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    return "array" if isinstance(value, (list, tuple)) else type(value).__name__


def _where(source: str) -> tuple[str | None, int | None]:
    path, sep, line = source.rpartition(":")
    if sep and line.isdigit():
        return path, int(line)
    return source or None, None


def _fail(source: str, message: str, field: str | None = None) -> DataError:
    path, line = _where(source)
    return DataError(message, path=path, line=line, field=field)
