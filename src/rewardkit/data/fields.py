"""Reading one column of a row, with the one-line error that names the row and the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rewardkit.data.messages import fail, kind


def get(row: Mapping[str, Any], name: str, source: str) -> Any:
    if name not in row:
        raise fail(source, "missing", name)
    return row[name]


def text(row: Mapping[str, Any], name: str, source: str) -> str:
    value = get(row, name, source)
    if not isinstance(value, str):
        raise fail(source, f"expected a string, got {kind(value)}", name)
    return value


def str_list(row: Mapping[str, Any], name: str, source: str) -> list[str]:
    value = get(row, name, source)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(source, f"expected a list of strings, got {kind(value)}", name)
    return list(value)


def margin(row: Mapping[str, Any], source: str) -> float | None:
    value = row.get("margin")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(source, f"expected a number or null, got {kind(value)}", "margin")
    return float(value)


def subset(row: Mapping[str, Any], source: str) -> str | None:
    value = row.get("subset")
    if value is not None and not isinstance(value, str):
        raise fail(source, f"expected a string or null, got {kind(value)}", "subset")
    return value


def row_id(row: Mapping[str, Any]) -> str | int | None:
    """The row's `id` as given (RewardBench v1 ids are numbers, v2's strings), for joining results."""
    value = row.get("id")
    return value if value is None or isinstance(value, (str, int)) else str(value)


# ---- one reader per format: each returns (system from a head message, prompt, chosen, rejected) ----
