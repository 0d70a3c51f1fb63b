"""The one message reader: every format, `rewardkit score` and the serve routes read messages here.

A message is `{"role", "content"}` (OpenAI/TRL) or `{"from", "value"}` (ShareGPT); `content` is a
string or a list of typed parts, `{"type": "text", "text": ...}` (OpenAI, TRL) or
`{"type": "text", "value": ...}` (LLaMA-Factory), whose text parts are joined in order. Roles are
normalised to system / user / assistant (`ROLES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rewardkit.data.schema import Message
from rewardkit.errors import DataError

ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


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
    """One message, normalised to {"role": system|user|assistant, "content": str}."""
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
    return {"role": ROLES[role.lower()], "content": read_content(content, source, field)}


def read_content(content: Any, source: str, field: str) -> str:
    """A message's text: a string, or the text parts of a typed-parts list joined in order.

    Example:
        >>> read_content([{"type": "text", "text": "a"}, {"type": "text", "value": "b"}], "", "m")
        'ab'
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
        return "".join(texts)
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
