"""Recognise which preference-data layout a row uses, and read it into the normal form.

The layouts accepted are named in `FORMATS` (docs/formats.md shows each with an example). A file's format is detected from its first row
(`detect_format`); `normalize_row` turns one row into a `PreferencePair`, `normalize_item` into an
`NWayItem` (for evaluation, where pairwise rows are one-chosen-one-rejected items).

Every format may also carry `system` (str), `margin` (number) and `subset` (str) columns; any other
column that the format does not use is kept in `PreferencePair.extra`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rewardkit.data import fields as F
from rewardkit.data.messages import fail, kind, read_message, read_messages, read_tools, split_system, where
from rewardkit.data.schema import Message, NWayItem, PreferencePair
from rewardkit.errors import DataError

FORMATS: dict[str, str] = {
    "medicalgpt": "{system?, history?, question, response_chosen, response_rejected}",
    "trl": "{prompt, chosen, rejected} as strings or as message lists",
    "trl_implicit": "{chosen, rejected} as message lists sharing their leading turns, or as texts sharing "
    "their beginning (the prompt)",
    "hh": "{chosen, rejected} as '\\n\\nHuman: ...\\n\\nAssistant: ...' transcripts",
    "sharegpt": "{conversations, chosen, rejected} with chosen/rejected one {from, value} message each "
    "or plain strings (MedicalGPT)",
    "alpaca": "{instruction, input?, chosen, rejected, system?, history?} (Alpaca ranking)",
    "messages_pair": "{chosen_messages, rejected_messages}: two whole conversations (LLaMA-Factory v1)",
    "nway": "{prompt, chosen: [str, ...], rejected: [str, ...], subset?}",
}

COMMON_COLUMNS = frozenset({"system", "margin", "subset", "tools"})
_COLUMNS = {
    "medicalgpt": {"history", "question", "response_chosen", "response_rejected"},
    "trl": {"prompt", "chosen", "rejected"},
    "trl_implicit": {"chosen", "rejected"},
    "hh": {"chosen", "rejected"},
    "sharegpt": {"conversations", "chosen", "rejected"},
    "alpaca": {"instruction", "input", "history", "chosen", "rejected"},
    "messages_pair": {"chosen_messages", "rejected_messages"},
    "nway": {"prompt", "chosen", "rejected"},
}
_HH_MARKER = re.compile(r"\n\n(Human|Assistant):")


class SkipRow(DataError):
    """A well-formed row that still cannot become a pair; loaders drop it and count it under `reason`."""

    def __init__(self, reason: str, message: str, source: str):
        path, line = where(source)
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
        raise fail(source, f"expected a JSON object, got {kind(row)}")
    if {"question", "response_chosen", "response_rejected"} & row.keys():
        return "medicalgpt"
    if "conversations" in row:
        return "sharegpt"
    if "chosen_messages" in row or "rejected_messages" in row:
        return "messages_pair"
    if "instruction" in row and ("chosen" in row or "rejected" in row):
        return "alpaca"
    if "chosen" not in row or "rejected" not in row:
        if "chosen" in row or "rejected" in row:
            missing = "rejected" if "chosen" in row else "chosen"
            raise fail(source, "missing (rows need both 'chosen' and 'rejected')", missing)
        keys = ", ".join(sorted(row)) or "none"
        accepted = "; ".join(f"{name} {columns}" for name, columns in FORMATS.items())
        raise fail(source, f"row matches no known format (its keys: {keys}); accepted: {accepted}")
    chosen = row["chosen"]
    if isinstance(chosen, str):
        if "prompt" in row:
            return "trl"
        return "hh" if chosen.startswith("Human:") or _HH_MARKER.search(chosen) else "trl_implicit"
    if isinstance(chosen, list) and chosen:
        if all(isinstance(c, str) for c in chosen):
            return "nway"
        if all(isinstance(c, Mapping) for c in chosen):
            return "trl" if "prompt" in row else "trl_implicit"
    expected = "a string, a list of messages or a list of strings"
    raise fail(source, f"expected {expected}, got {kind(chosen)}", "chosen")


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
            raise fail(source, message, "chosen")
        prompt, chosen, rejected, system = item.prompt, item.chosen[0], item.rejected[0], item.system
        _check_prompt(prompt, source, "prompt")
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
        elif fmt == "alpaca":
            head_system, prompt, chosen, rejected = _alpaca(row, source)
        elif fmt == "messages_pair":
            head_system, prompt, chosen, rejected = _messages_pair(row, source)
        else:
            raise fail(source, f"unknown format {fmt!r}; accepted: {', '.join(FORMATS)}")
        system = _merge_system(row, head_system, source)
        _check_prompt(prompt, source, "prompt")
    extra = {k: v for k, v in row.items() if k not in _COLUMNS[fmt] | COMMON_COLUMNS}
    margin, subset = F.margin(row, source), F.subset(row, source)
    (chosen, chosen_calls), (rejected, rejected_calls) = _text_and_calls(chosen), _text_and_calls(rejected)
    tools = read_tools(row.get("tools"), source)
    return PreferencePair(
        prompt, chosen, rejected, system, margin, subset, source, extra, tools, chosen_calls, rejected_calls
    )


def normalize_item(row: Mapping[str, Any], *, source: str, fmt: str | None = None) -> NWayItem:
    """Read one row into an `NWayItem`: N-way rows as they are, pairwise rows as one chosen and one rejected.

    Raises:
        SkipRow, DataError: as `normalize_row`.
    """
    fmt = fmt or detect_format(row, source)
    if fmt != "nway":
        pair = normalize_row(row, source=source, fmt=fmt)
        chosen = pair.chosen_answer() if pair.chosen_tool_calls else pair.chosen
        rejected = pair.rejected_answer() if pair.rejected_tool_calls else pair.rejected
        return NWayItem(
            pair.prompt, [chosen], [rejected], pair.system, pair.subset, source, F.row_id(row), pair.tools
        )
    head_system, prompt = _prompt(F.get(row, "prompt", source), source)
    system = _merge_system(row, head_system, source)
    _check_prompt(prompt, source, "prompt")
    chosen, rejected = F.str_list(row, "chosen", source), F.str_list(row, "rejected", source)
    tools = read_tools(row.get("tools"), source)
    return NWayItem(prompt, chosen, rejected, system, F.subset(row, source), source, F.row_id(row), tools)


def _medicalgpt(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    prompt = _history(row, source) + [{"role": "user", "content": F.text(row, "question", source)}]
    return None, prompt, F.text(row, "response_chosen", source), F.text(row, "response_rejected", source)


def _alpaca(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    # LLaMA-Factory's alpaca converter: the query is the instruction, then the input on a new line.
    query = F.text(row, "instruction", source)
    extra_input = row.get("input")
    if extra_input is not None and not isinstance(extra_input, str):
        raise fail(source, f"expected a string or null, got {kind(extra_input)}", "input")
    if extra_input:
        query = f"{query}\n{extra_input}"
    prompt = _history(row, source) + [{"role": "user", "content": query}]
    return None, prompt, _answer_text(row, "chosen", source), _answer_text(row, "rejected", source)


def _history(row: Mapping[str, Any], source: str) -> list[Message]:
    history = row.get("history") or []
    if not isinstance(history, list):
        expected = "a list of [question, answer] pairs or null"
        raise fail(source, f"expected {expected}, got {kind(history)}", "history")
    prompt: list[Message] = []
    for i, turn in enumerate(history):
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            expected = "a [question, answer] pair of strings"
            raise fail(source, f"expected {expected}, got {kind(turn)}", f"history[{i}]")
        prompt += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    return prompt


def _trl(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    system, prompt = _prompt(F.get(row, "prompt", source), source)
    chosen, rejected = _answer_messages(row, "chosen", source), _answer_messages(row, "rejected", source)
    # Earlier answer messages (tool calls, follow-ups) can only join the prompt when both sides share them.
    if chosen[:-1] != rejected[:-1]:
        message = "chosen and rejected differ before their last message; only the last may differ"
        raise fail(source, message, "chosen")
    return system, prompt + chosen[:-1], _answer(chosen[-1]), _answer(rejected[-1])


def _trl_implicit(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    if isinstance(row.get("chosen"), str):
        return (
            None,
            *split_text_prompt(F.text(row, "chosen", source), F.text(row, "rejected", source), source),
        )
    return _two_conversations(row, "chosen", "rejected", source)


def _messages_pair(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    return _two_conversations(row, "chosen_messages", "rejected_messages", source)


def _two_conversations(
    row: Mapping[str, Any], chosen_name: str, rejected_name: str, source: str
) -> tuple[str | None, list[Message], str, str]:
    sys_c, chosen = _conversation(row, chosen_name, source)
    sys_r, rejected = _conversation(row, rejected_name, source)
    if sys_c != sys_r:
        raise fail(source, "chosen and rejected start with different system messages", rejected_name)
    for name, msgs in ((chosen_name, chosen), (rejected_name, rejected)):
        if not msgs or msgs[-1]["role"] != "assistant":
            ends = msgs[-1]["role"] if msgs else "the system message"
            raise fail(source, f"must end with an assistant message, ends with {ends}", name)
    split = shared_prefix(chosen, rejected)
    if split is None:
        message = "after their shared leading turns each side must have exactly one assistant message"
        raise fail(source, message, chosen_name)
    return (sys_c, *split)


def _hh(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    chosen = _hh_messages(F.text(row, "chosen", source), source, "chosen")
    rejected = _hh_messages(F.text(row, "rejected", source), source, "rejected")
    split = shared_prefix(chosen, rejected)
    if split is None:  # real HH has a few such pairs: no single answer to compare, so drop rather than fail
        raise SkipRow("prompts_differ", "chosen and rejected differ before their last assistant turn", source)
    return (None, *split)


def _sharegpt(row: Mapping[str, Any], source: str) -> tuple[str | None, list[Message], str, str]:
    system, prompt = _conversation(row, "conversations", source)
    return system, prompt, _one_answer(row, "chosen", source), _one_answer(row, "rejected", source)


def split_text_prompt(chosen: str, rejected: str, source: str = "") -> tuple[list[Message], str, str]:
    """Split two full texts at their shared beginning, as TRL's `extract_prompt` does for strings.

    The cut is the first differing character, moved back to the last whitespace before it, so that no
    word is split between prompt and answer; the answers keep that whitespace at their start (TRL
    moves one space the same way), so prompt + answer is the row's text exactly.

    Raises:
        DataError: the texts share no beginning up to a word boundary (nothing to call a prompt).

    Example:
        >>> split_text_prompt("The sky is blue.", "The sky is green.")
        ([{'role': 'user', 'content': 'The sky is'}], ' blue.', ' green.')
    """
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    cut = max(chosen.rfind(c, 0, n + 1) for c in " \n\t")  # whitespace at index <= n: shared before it
    if cut <= 0 or not chosen[:cut].strip():
        message = (
            "chosen and rejected share no beginning to take as the prompt (TRL implicit prompt); "
            "add a 'prompt' column, or write them as '\\n\\nHuman: ...\\n\\nAssistant: ...' transcripts"
        )
        raise fail(source, message, "chosen")
    return [{"role": "user", "content": chosen[:cut]}], chosen[cut:], rejected[cut:]


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
    return chosen[:n], _answer(tail_c[0]), _answer(tail_r[0])


def _answer(msg: Message) -> str | Message:
    """An answer's text, or the whole assistant message when it calls tools."""
    return msg if msg.get("tool_calls") else msg["content"]


def _text_and_calls(answer: str | Message) -> tuple[str, list | None]:
    if isinstance(answer, str):
        return answer, None
    return answer["content"], answer.get("tool_calls")


def _hh_messages(text: str, source: str, field: str) -> list[Message]:
    if text.startswith("Human:"):
        text = "\n\n" + text
    parts = _HH_MARKER.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise fail(
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
    return split_system(read_messages(value, source, "prompt"), source, "prompt")


def _answer_messages(row: Mapping[str, Any], name: str, source: str) -> list[Message]:
    value = F.get(row, name, source)
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    msgs = read_messages(value, source, name)
    if msgs[-1]["role"] != "assistant":
        raise fail(source, f"must end with an assistant message, ends with {msgs[-1]['role']}", name)
    if any(m["role"] == "system" for m in msgs):
        message = "a system message belongs in the prompt or the 'system' column, not in an answer"
        raise fail(source, message, name)
    return msgs


def _one_answer(row: Mapping[str, Any], name: str, source: str) -> str | Message:
    value = F.get(row, name, source)
    if isinstance(value, str):  # MedicalGPT's current reward data: the answers as plain strings
        return value
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, Mapping):
        expected = "one message like {'from': 'gpt', 'value': ...} or a string"
        raise fail(source, f"expected {expected}, got {kind(value)}", name)
    msg = read_message(value, source, name)
    if msg["role"] != "assistant":
        raise fail(source, f"expected an assistant ('gpt') message, got role {msg['role']!r}", name)
    return _answer(msg)


def _conversation(row: Mapping[str, Any], name: str, source: str) -> tuple[str | None, list[Message]]:
    """A message-list column, with a leading system message taken out."""
    return split_system(read_messages(F.get(row, name, source), source, name), source, name)


def _merge_system(row: Mapping[str, Any], from_messages: str | None, source: str) -> str | None:
    column = row.get("system")
    if column is not None and not isinstance(column, str):
        raise fail(source, f"expected a string or null, got {kind(column)}", "system")
    if column and from_messages and column != from_messages:
        message = "differs from the system message at the head of the conversation; give only one of them"
        raise fail(source, message, "system")
    return column or from_messages or None


def _check_prompt(prompt: list[Message], source: str, field: str) -> None:
    if not prompt or prompt[-1]["role"] not in ("user", "tool"):
        got = prompt[-1]["role"] if prompt else "nothing"
        message = f"the prompt must end with a user message (or a tool result), ends with {got}"
        raise fail(source, message, field)


def _answer_text(row: Mapping[str, Any], name: str, source: str) -> str:
    value = F.get(row, name, source)
    if isinstance(value, Mapping):
        return _one_answer(row, name, source)
    if not isinstance(value, str):
        raise fail(source, f"expected a string or one assistant message, got {kind(value)}", name)
    return value
