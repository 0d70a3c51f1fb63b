"""Find preference-data files, read them into the normal form, count what was dropped, and split.

Inputs are files (`.jsonl`; `.json` holding a JSON array or JSON Lines; `.parquet`), directories
(searched recursively, in sorted order), lists of these, or a Hugging Face Hub dataset name
(`owner/name` or `owner/name:split`) for anything that is not an existing path.

Example:
    >>> import json, pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "trl.jsonl"
    >>> rows = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}, {"prompt": "Hi", "chosen": "Hello", "rejected": ""}]
    >>> _ = file.write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> pairs, report = load_pairs(str(file))
    >>> pairs[0].prompt, pairs[0].chosen, report.summary()
    ([{'role': 'user', 'content': '2+2?'}], '4', 'kept 1 of 2 pairs; dropped: empty_answer=1')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlparse

from rewardkit.data.formats import SkipRow, detect_format, normalize_item, normalize_row
from rewardkit.data.schema import NWayItem, PreferencePair
from rewardkit.errors import DataError, RewardkitError

DATA_SUFFIXES = (".json", ".jsonl", ".parquet")
_HUB_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?(:[\w.-]+)?")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
T = TypeVar("T")
Paths = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass
class DropReport:
    """How many rows were read and, by reason, how many were dropped (with a few example sources).

    Reasons used by the readers: "identical" (chosen equals rejected), "empty_answer",
    "prompts_differ" (a transcript pair that differs before its last answer). Later stages add
    their own, e.g. the tokenizer's `report.add("too_long", pair.source)`.

    Example:
        >>> r = DropReport(total=3)
        >>> r.add("identical", "d.jsonl:2")
        >>> r.summary()
        'kept 2 of 3 pairs; dropped: identical=1'
    """

    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    noun: str = "pairs"
    max_examples: int = 3

    @property
    def dropped(self) -> int:
        return sum(self.counts.values())

    @property
    def kept(self) -> int:
        return self.total - self.dropped

    def add(self, reason: str, source: str) -> None:
        """Count one dropped row under `reason`, keeping its source if fewer than `max_examples` are kept."""
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(source)

    def merge(self, other: DropReport) -> None:
        """Add another report's rows, drops and examples to this one (e.g. train and validation files)."""
        self.total += other.total
        for reason, n in other.counts.items():
            self.counts[reason] += n
            shown = self.examples.setdefault(reason, [])
            shown += other.examples.get(reason, [])[: max(self.max_examples - len(shown), 0)]

    def summary(self) -> str:
        """One line, e.g. "kept 1790 of 1804 pairs; dropped: identical=10, empty_answer=4"."""
        dropped = ", ".join(f"{reason}={n}" for reason, n in self.counts.most_common()) or "none"
        return f"kept {self.kept} of {self.total} {self.noun}; dropped: {dropped}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for run reports."""
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(self.counts),
            "examples": {reason: list(sources) for reason, sources in self.examples.items()},
        }


def load_pairs(
    paths: Paths, *, limit: int | None = None, columns: dict[str, str] | None = None
) -> tuple[list[PreferencePair], DropReport]:
    """Read every pairwise row from files, directories or a Hub dataset, dropping unusable pairs.

    Args:
        paths: a path, a Hub name, or a list of them (see the module docstring).
        limit: stop once this many pairs are kept (None reads everything).
        columns: rename the rows' columns first ({file's name: reader's name}), e.g. from a
            LLaMA-Factory dataset_info.json entry (`data.dataset_info`).

    Returns:
        The kept pairs in input order, and a `DropReport` of what was left out and why.

    Raises:
        DataError: a missing or unreadable input, or a row that fits no format (message names file:line).
        RewardkitError: a Hub name that cannot be loaded (e.g. offline).
    """
    return _read(paths, normalize_row, DropReport(noun="pairs"), limit, columns)


def load_eval_items(
    paths: Paths, *, limit: int | None = None, columns: dict[str, str] | None = None
) -> tuple[list[NWayItem], DropReport]:
    """Like `load_pairs`, but as `NWayItem`s: N-way rows as they are, pairwise rows as 1-vs-1 items."""
    return _read(paths, normalize_item, DropReport(noun="items"), limit, columns)


SPLITS = ("shuffle", "hash")


def split_pairs(
    pairs: Sequence[T], validation_split_percentage: float, seed: int, by: str = "shuffle"
) -> tuple[list[T], list[T]]:
    """Cut off a validation part: a seeded shuffle, or a hash of each pair's content.

    by="shuffle": shuffle deterministically by `seed`; the validation part holds
    ceil(n * percentage / 100) items, but always leaves at least one for training.
    by="hash": an item goes to validation when the hash of its content (`content_fraction`) is under
    percentage / 100, so the split is the same for any order, seed or file the item is read from,
    copies of a pair land on the same side, and both parts keep input order.
    A percentage of 0 gives an empty validation list.

    Returns:
        (train, validation).

    Raises:
        RewardkitError: the percentage is outside [0, 100), or `by` is not one of SPLITS.
    """
    if not 0 <= validation_split_percentage < 100:
        got = validation_split_percentage
        raise RewardkitError(f"validation_split_percentage must be in [0, 100), got {got}")
    if by == "hash":
        cut = validation_split_percentage / 100
        held = [content_fraction(item) < cut for item in pairs]
        return [p for p, h in zip(pairs, held) if not h], [p for p, h in zip(pairs, held) if h]
    if by != "shuffle":
        raise RewardkitError(f"validation split {by!r}: use one of {', '.join(SPLITS)}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_val = min(math.ceil(len(pairs) * validation_split_percentage / 100), max(len(pairs) - 1, 0))
    return [pairs[i] for i in order[n_val:]], [pairs[i] for i in order[:n_val]]


def content_fraction(item: Any) -> float:
    """A number in [0, 1) fixed by a dataclass item's content (every field but `source`).

    Example:
        >>> a = PreferencePair([{"role": "user", "content": "2+2?"}], "4", "5", source="a.jsonl:1")
        >>> b = PreferencePair([{"role": "user", "content": "2+2?"}], "4", "5", source="b.jsonl:9")
        >>> content_fraction(a) == content_fraction(b)
        True
    """
    content = {k: v for k, v in dataclasses.asdict(item).items() if k != "source"}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def drop_reason(item: PreferencePair | NWayItem) -> str | None:
    """Why a normalised pair or item should not be used, or None to keep it.

    "empty_answer": an answer is blank (or an N-way list is empty); "identical": a chosen answer equals
    a rejected one (ignoring surrounding whitespace), so there is no preference to learn or measure.
    """
    if isinstance(item, PreferencePair):
        chosen = [_answer_key(item.chosen_answer())]
        rejected = [_answer_key(item.rejected_answer())]
    else:
        chosen, rejected = [_answer_key(a) for a in item.chosen], [_answer_key(a) for a in item.rejected]
    answers = [a.strip() for a in chosen + rejected]
    if not chosen or not rejected or not all(answers):
        return "empty_answer"
    if set(answers[: len(chosen)]) & set(answers[len(chosen) :]):
        return "identical"
    return None


def _answer_key(answer: str | dict) -> str:
    """An answer as text for the empty/identical checks: an answer that calls tools is not empty."""
    if isinstance(answer, str):
        return answer
    calls = answer.get("tool_calls")
    return answer["content"] + (json.dumps(calls, sort_keys=True, default=str) if calls else "")


def iter_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Stream (line number, row) from one data file; `.jsonl` is read in constant memory.

    Line numbers are 1-based file lines for JSON Lines, and row index + 1 for JSON arrays and parquet.

    Raises:
        DataError: the file is missing, of another type, empty, or holds malformed JSON or a non-object row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    if path.suffix not in DATA_SUFFIXES:
        raise _unsupported(path)
    if path.suffix == ".parquet":
        rows = _parquet_rows(path)
    elif path.suffix == ".json" and _first_char(path) == "[":
        rows = _json_array_rows(path)
    else:
        rows = _jsonl_rows(path)
    empty = True
    for lineno, row in rows:
        if not isinstance(row, dict):
            kind = type(row).__name__
            raise DataError(f"expected a JSON object per row, got {kind}", path=str(path), line=lineno)
        empty = False
        yield lineno, row
    if empty:
        raise DataError("file has no rows", path=str(path))


def find_inputs(paths: Paths) -> list[Path | HubDataset]:
    """Resolve inputs to data files (directories expanded, sorted) and Hub dataset names.

    Files and folders whose names start with "." inside a directory (e.g. `.cache`) are skipped.

    Raises:
        DataError: a path that does not exist, a file of another type, or a directory with no data files.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise DataError("no data paths given")
    found: list[Path | HubDataset] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.suffix in DATA_SUFFIXES and _visible(f, path))
            if not files:
                raise DataError(f"directory has no data files ({', '.join(DATA_SUFFIXES)})", path=str(path))
            found += files
        elif path.is_file():
            if path.suffix not in DATA_SUFFIXES:
                raise _unsupported(path)
            found.append(path)
        elif _is_hub_name(str(item)):
            name, _, split = str(item).partition(":")
            found.append(HubDataset(name, split or None))
        else:
            raise DataError("no such file or directory", path=str(item))
    return found


class HubDataset(NamedTuple):
    """A dataset on the Hugging Face Hub, `name` as `owner/name`, `split` None for the default."""

    name: str
    split: str | None = None


# ---- reading ----


def _visible(file: Path, root: Path) -> bool:
    return file.is_file() and not any(part.startswith(".") for part in file.relative_to(root).parts)


def _unsupported(path: Path) -> DataError:
    suffix = path.suffix or "(none)"
    return DataError(f"unsupported file type {suffix}; accepted: {', '.join(DATA_SUFFIXES)}", path=str(path))


def _read(
    paths: Paths,
    convert: Callable[..., T],
    report: DropReport,
    limit: int | None,
    columns: dict[str, str] | None = None,
) -> tuple[list[T], DropReport]:
    """Read every input; each file's format comes from its first row and every later row must match it."""
    if limit is not None and limit < 1:
        raise RewardkitError(f"limit must be a positive number of rows or None, got {limit}")
    kept: list[T] = []
    for label, rows in _row_sources(find_inputs(paths)):
        fmt, first = None, None
        for lineno, row in rows:
            source = f"{label}:{lineno}"
            if columns:
                row = {columns.get(k, k): v for k, v in row.items()}
            row_fmt = detect_format(row, source)
            if fmt is None:
                fmt, first = row_fmt, lineno
            elif row_fmt != fmt:
                raise DataError(
                    f"row is in format '{row_fmt}' but the file's first row (line {first}) is '{fmt}'; "
                    "every row of a file must use one format",
                    path=label,
                    line=lineno,
                )
            report.total += 1
            try:
                item = convert(row, source=source, fmt=fmt)
            except SkipRow as skip:
                report.add(skip.reason, source)
                continue
            reason = drop_reason(item)
            if reason is not None:
                report.add(reason, source)
                continue
            kept.append(item)
            if limit is not None and len(kept) >= limit:
                return kept, report
    return kept, report


def _row_sources(inputs: list[Path | HubDataset]) -> Iterator[tuple[str, Iterator[tuple[int, dict]]]]:
    for item in inputs:
        if isinstance(item, HubDataset):
            yield _hub_rows(item)
        else:
            yield str(item), iter_rows(item)


def _first_char(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        while chunk := f.read(4096):
            if stripped := chunk.lstrip():
                return stripped[0]
    return ""


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    # Read bytes and decode line by line: a text-mode file decodes ahead in blocks, so a bad byte
    # would be reported on the line being parsed rather than the line that holds it.
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                message = f"not UTF-8 text (byte {e.start + 1} of the line)"
                raise DataError(message, path=str(path), line=lineno) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark, as text mode with utf-8-sig drops
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                message = f"malformed JSON: {e.msg} (column {e.colno})"
                if path.suffix == ".json":
                    message += "; a .json file must hold a JSON array of rows or one JSON object per line"
                raise DataError(message, path=str(path), line=lineno) from None
            yield lineno, row


def _json_array_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    except json.JSONDecodeError as e:
        message = f"malformed JSON: {e.msg} (column {e.colno})"
        raise DataError(message, path=str(path), line=e.lineno) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path=str(path)) from None
    yield from enumerate(rows, 1)


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        index = 0
        for batch in batches:
            for row in batch.to_pylist():
                index += 1
                yield index, row
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"not a readable parquet file: {e}", path=str(path)) from None


# ---- the Hub ----


def _is_hub_name(text: str) -> bool:
    """Hub names are `name` or `owner/name`, optionally with `:split`; anything else is a missing path."""
    if text.startswith(".") or Path(text).suffix in DATA_SUFFIXES:
        return False
    return bool(_HUB_NAME.fullmatch(text))


def _hub_rows(dataset: HubDataset) -> tuple[str, Iterator[tuple[int, dict]]]:
    """Load a Hub dataset, failing at once (never hanging on the network) when it cannot be fetched."""
    label = dataset.name if dataset.split is None else f"{dataset.name}:{dataset.split}"
    offline = [var for var in _OFFLINE_VARS if os.environ.get(var, "").upper() in ("1", "ON", "YES", "TRUE")]
    not_a_path = f"'{label}' is not an existing file or directory, so it was taken as a Hub dataset name"
    local = "give a local .jsonl, .json or .parquet path"
    if offline and not _in_hub_cache(dataset.name):
        why = f"{offline[0]} is set and it is not in the local cache"
        raise RewardkitError(f"{not_a_path}, but {why}; {local}")
    if not offline and not _hub_reachable():
        raise RewardkitError(f"{not_a_path}, but the Hub cannot be reached (no network?); {local}")
    import datasets

    try:
        loaded = datasets.load_dataset(dataset.name, split=dataset.split)
    except Exception as e:  # datasets raises many types (network, repo, config): all mean "cannot load"
        raise RewardkitError(f"could not load Hub dataset '{label}': {type(e).__name__}: {e}") from e
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(loaded, dataset.name)
    name = dataset.name if loaded.split is None else f"{dataset.name}[{loaded.split}]"
    return name, ((i, row) for i, row in enumerate(loaded, 1))


def _pick_split(splits: Any, name: str) -> Any:
    if len(splits) == 1:
        return next(iter(splits.values()))
    if "train" in splits:
        return splits["train"]
    raise RewardkitError(f"Hub dataset '{name}' has splits {', '.join(splits)}; pick one as '{name}:SPLIT'")


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}").is_dir()


def _hub_reachable(timeout: float = 3.0) -> bool:
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True
