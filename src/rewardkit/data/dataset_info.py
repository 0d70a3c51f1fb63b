"""LLaMA-Factory's `dataset_info.json`: train on a user's existing LLaMA-Factory data setup as it is.

`rewardkit train --dataset_info data/dataset_info.json --dataset dpo_en_demo[,other]` reads each named
entry's `file_name` (relative to the folder of dataset_info.json, LLaMA-Factory's `dataset_dir`) or
`hf_hub_url` (a Hub dataset), renames its columns from the entry's `columns` mapping to the names the
readers here know, and reads the rows as usual. Only `ranking: true` entries are preference data.

LLaMA-Factory column roles, by `formatting`:

* `sharegpt`: messages (default "conversations"), chosen, rejected, system, tools;
* `alpaca` (LLaMA-Factory's default): prompt ("instruction"), query ("input"), history, system,
  chosen, rejected.

Messages keep LLaMA-Factory's default tags (`from`/`value`, human/gpt/system) or OpenAI's
(`role`/`content`); other `tags` are refused with an error naming them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rewardkit.errors import RewardkitError

# (LLaMA-Factory's column role -> the column name the readers here use), per formatting
CANONICAL = {
    "sharegpt": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "system": "system"},
    "alpaca": {
        "prompt": "instruction",
        "query": "input",
        "history": "history",
        "system": "system",
        "chosen": "chosen",
        "rejected": "rejected",
    },
}
_TAGS_OK = {
    "role_tag": ("from", "role"),
    "content_tag": ("value", "content"),
    "user_tag": ("human", "user"),
    "assistant_tag": ("gpt", "assistant"),
    "system_tag": ("system",),
}


@dataclass
class DatasetSpec:
    """One dataset_info.json entry, resolved: where the rows are and how to rename their columns."""

    name: str
    path: str  # a local file/folder, or a Hub dataset name
    columns: dict[str, str]  # file's column -> reader's column


def resolve(info_file: str, names: str) -> list[DatasetSpec]:
    """The entries `names` (comma-separated) of a LLaMA-Factory dataset_info.json.

    Raises:
        RewardkitError: the file is missing or not JSON, a name is not in it, an entry is not a
            ranking (preference) dataset, or it uses a formatting/tags this reader does not know.
    """
    path = Path(info_file)
    flag = f"--dataset_info {info_file}"
    if not path.is_file():
        raise RewardkitError(f"{flag}: no such file")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RewardkitError(f"{flag}: not valid JSON ({e})") from None
    specs = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        if name not in info:
            raise RewardkitError(
                f"--dataset {name}: not in {info_file}; it has: {', '.join(info) or 'nothing'}"
            )
        specs.append(_spec(name, info[name], path.parent, flag))
    if not specs:
        raise RewardkitError("--dataset: give one or more dataset_info.json entry names (comma-separated)")
    return specs


def read_entries(info_file: str, names: str, reader):
    """(entry, rows, DropReport) for each entry `names` of `info_file`, read by `reader(path, columns=...)`
    (`load_pairs` for training, `load_eval_items` for eval), with the entry's column mapping."""
    for spec in resolve(info_file, names):
        rows, report = reader(spec.path, columns=spec.columns)
        yield spec, rows, report


def _spec(name: str, entry: dict, root: Path, flag: str) -> DatasetSpec:
    where = f"{flag}: entry '{name}'"
    if not isinstance(entry, dict):
        raise RewardkitError(f"{where}: expected an object")
    if not entry.get("ranking"):
        raise RewardkitError(
            f"{where} is not preference data ('ranking': true); reward models train on pairs"
        )
    formatting = entry.get("formatting", "alpaca")
    if formatting not in CANONICAL:
        raise RewardkitError(f"{where}: formatting '{formatting}'; accepted: {', '.join(CANONICAL)}")
    for tag, value in (entry.get("tags") or {}).items():
        if tag in _TAGS_OK and value not in _TAGS_OK[tag]:
            accepted = " or ".join(_TAGS_OK[tag])
            raise RewardkitError(f"{where}: tags.{tag} '{value}' is not supported; accepted: {accepted}")
    # LLaMA-Factory's defaults for unmapped roles are the readers' own names (instruction, input, ...)
    mapping = dict(CANONICAL[formatting]) | dict(entry.get("columns") or {})
    unknown = sorted(set(mapping) - set(CANONICAL[formatting]) - {"tools", "images", "videos", "audios"})
    if unknown:
        raise RewardkitError(
            f"{where}: columns {', '.join(unknown)} are not {formatting} ranking columns; "
            f"accepted: {', '.join(CANONICAL[formatting])}"
        )
    columns = {
        theirs: CANONICAL[formatting][role]
        for role, theirs in mapping.items()
        if role in CANONICAL[formatting]
    }
    if entry.get("file_name"):
        source = str(root / entry["file_name"])
    elif entry.get("hf_hub_url"):
        source = entry["hf_hub_url"] + (f":{entry['split']}" if entry.get("split") else "")
    else:
        raise RewardkitError(f"{where}: has neither 'file_name' nor 'hf_hub_url'")
    return DatasetSpec(name, source, columns)
