"""The one message reader: every format, `rewardkit score` and the serve routes read messages here.

A message is `{"role", "content"}` (OpenAI/TRL) or `{"from", "value"}` (ShareGPT); `content` is a
string or a list of typed parts, `{"type": "text", "text": ...}` (OpenAI, TRL) or
`{"type": "text", "value": ...}` (LLaMA-Factory), whose text parts are joined in order with a newline
(as vLLM does). Roles are
normalised to system / user / assistant / tool (`ROLES`).

Tool calling: an assistant message may carry OpenAI-style `tool_calls` (its `content` may then be
empty or null); a ShareGPT `function_call` turn (its value the JSON call `{"name", "arguments"}`) is
read as an assistant message with that tool call; `tool` and ShareGPT `observation` turns are tool
results. A row's `tools` (a list, or a JSON string of one) is read by `read_tools`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rewardkit.data.schema import Message
from rewardkit.errors import DataError

ROLES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "observation": "tool",
}


def read_messages(value: Any, source: str, field: str) -> list[Message]:
    """A non-empty list of messages in any accepted spelling, normalised.

    Raises:
        DataError: not a non-empty list, or a message with an unknown role or unreadable content.

    Example:
        >>> read_messages([{"from": "human", "value": "Hi"}], "d.jsonl:1", "conversations")
        [{'role': 'user', 'content': 'Hi'}]
    """
    if not isinstance(value, list) or not value:
        raise fail(source, f"expected a non-empty list of messages, got {kind(value)}", field)
    return [read_message(m, source, f"{field}[{i}]") for i, m in enumerate(value)]


def read_message(msg: Any, source: str, field: str) -> Message:
    """One message, normalised to {"role": system|user|assistant|tool, "content": str}, plus
    `tool_calls` on an assistant message that calls tools (and `name`/`tool_call_id` on a tool result)."""
    if not isinstance(msg, Mapping):
        expected = "a message object {'role', 'content'} or {'from', 'value'}"
        raise fail(source, f"expected {expected}, got {kind(msg)}", field)
    # Parquet unions both spellings into one struct, so the unused pair is present as None.
    role = msg.get("role") if msg.get("role") is not None else msg.get("from")
    content = msg.get("content") if msg.get("content") is not None else msg.get("value")
    if not isinstance(role, str) or role.lower() not in ROLES:
        raise fail(
            source, f"unknown role {role!r} (its 'role' or 'from'); accepted: {', '.join(ROLES)}", field
        )
    if role.lower() == "function_call":  # ShareGPT: the value is the call itself, as JSON
        return {"role": "assistant", "content": "", "tool_calls": [_sharegpt_call(content, source, field)]}
    calls = msg.get("tool_calls")
    if calls and ROLES[role.lower()] == "assistant":
        if not isinstance(calls, list) or not all(isinstance(c, Mapping) for c in calls):
            raise fail(source, f"tool_calls must be a list of objects, got {kind(calls)}", field)
        text = "" if content is None else read_content(content, source, field)
        return {"role": "assistant", "content": text, "tool_calls": [dict(c) for c in calls]}
    out = {"role": ROLES[role.lower()], "content": read_content(content, source, field)}
    if out["role"] == "tool":
        out |= {k: msg[k] for k in ("name", "tool_call_id") if isinstance(msg.get(k), str)}
    return out


def read_tools(value: Any, source: str, field: str = "tools") -> list[dict] | None:
    """A row's tool list: a list of tool schemas, or a JSON string of one; None when empty or absent."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            message = f"not valid JSON ({e.msg}, column {e.colno}); expected a list of tools"
            raise fail(source, message, field) from None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise fail(source, f"expected a list of tool objects, got {kind(value)}", field)
    return [dict(t) for t in value] or None


def _sharegpt_call(value: Any, source: str, field: str) -> dict:
    call = value
    if isinstance(value, str):
        try:
            call = json.loads(value)
        except json.JSONDecodeError:
            call = None
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise fail(source, "a function_call turn's value must be JSON {'name': ..., 'arguments': ...}", field)
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass  # kept as the string it is
    return {"type": "function", "function": {"name": call["name"], "arguments": arguments}}


def read_content(content: Any, source: str, field: str) -> str:
    """A message's text: a string, or the text parts of a typed-parts list joined in order with a
    newline (as vLLM joins them for a text-only model, so /pooling and every other route agree).

    Example:
        >>> read_content([{"type": "text", "text": "a"}, {"type": "text", "value": "b"}], "", "m")
        'a\\nb'
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            text = part.get("text", part.get("value")) if isinstance(part, Mapping) else None
            if (
                not isinstance(part, Mapping)
                or part.get("type", "text") != "text"
                or not isinstance(text, str)
            ):
                got = f"type {part.get('type')!r}" if isinstance(part, Mapping) else kind(part)
                message = (
                    f"content part {i}: expected a text part {{'type': 'text', 'text' or 'value': str}}, "
                    f"got {got} (reward models here read text only)"
                )
                raise fail(source, message, field)
            texts.append(text)
        return "\n".join(texts)
    raise fail(
        source, f"message content must be a string or a list of text parts, got {kind(content)}", field
    )


def split_system(msgs: list[Message], source: str, field: str) -> tuple[str | None, list[Message]]:
    """A leading system message taken out; a system message anywhere else is an error."""
    system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
    rest = msgs[1:] if system is not None else msgs
    if any(m["role"] == "system" for m in rest):
        raise fail(source, "a system message may only come first", field)
    return system, rest


def kind(value: Any) -> str:
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


def where(source: str) -> tuple[str | None, int | None]:
    """("file", line) from a "file:line" source."""
    path, sep, line = source.rpartition(":")
    if sep and line.isdigit():
        return path, int(line)
    return source or None, None


def fail(source: str, message: str, field: str | None = None) -> DataError:
    """A one-line DataError at `source` ("file:line"), naming `field`."""
    path, line = where(source)
    return DataError(message, path=path, line=line, field=field)
