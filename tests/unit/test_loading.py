"""Finding and reading data files, drop counts, splitting, and every bad-input message."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import pytest

from rewardkit.data.loading import (
    DropReport,
    HubDataset,
    content_fraction,
    find_inputs,
    iter_rows,
    load_eval_items,
    load_pairs,
    split_pairs,
)
from rewardkit.data.schema import NWayItem, PreferencePair
from rewardkit.errors import DataError, RewardkitError
from rewardkit.train.data import read_splits

DATA = Path(__file__).parents[1] / "fixtures" / "data"


def U(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


# ---- the real HH-RLHF harmless dev file ----


def test_hh_dev_counts_and_a_known_row(hh_dev):
    pairs, report = load_pairs(hh_dev)
    assert (report.total, report.kept, len(pairs)) == (1804, 1800, 1800)
    assert dict(report.counts) == {"empty_answer": 2, "prompts_differ": 2}
    assert report.examples == {
        "empty_answer": [f"{hh_dev}:63", f"{hh_dev}:721"],
        "prompts_differ": [f"{hh_dev}:974", f"{hh_dev}:1313"],
    }
    assert report.summary() == "kept 1800 of 1804 pairs; dropped: empty_answer=2, prompts_differ=2"
    first = pairs[0]
    assert first.source == f"{hh_dev}:1"
    assert [m["role"] for m in first.prompt] == ["user", "assistant", "user", "assistant", "user"]
    assert first.prompt[0] == U("what are some pranks with a pen i can do?")
    assert first.prompt[-1] == U("okay some of these do not have anything to do with pens")
    assert first.chosen.startswith("No, sorry!  All of these involve a pen")
    assert first.system is None and first.margin is None


def test_hh_dev_as_eval_items(hh_dev):
    items, report = load_eval_items(hh_dev)
    assert len(items) == 1800
    assert report.summary() == "kept 1800 of 1804 items; dropped: empty_answer=2, prompts_differ=2"
    assert all(len(i.chosen) == len(i.rejected) == 1 for i in items)


def test_iter_rows_streams_hh_dev_with_line_numbers(hh_dev):
    rows = iter_rows(hh_dev)
    assert next(rows)[0] == 1
    assert sum(1 for _ in rows) == 1803


# ---- drops and the report ----


def test_drops_are_counted_by_reason_with_example_sources():
    pairs, report = load_pairs(DATA / "hh.jsonl")
    src = str(DATA / "hh.jsonl")
    assert [p.source for p in pairs] == [f"{src}:1", f"{src}:2"]
    assert report.summary() == "kept 2 of 5 pairs; dropped: identical=1, empty_answer=1, prompts_differ=1"
    assert report.examples == {
        "identical": [f"{src}:3"],
        "empty_answer": [f"{src}:4"],
        "prompts_differ": [f"{src}:5"],
    }


def test_report_add_from_a_later_stage_and_example_cap():
    report = DropReport(total=10)
    for i in range(5):
        report.add("too_long", f"d.jsonl:{i + 1}")
    report.add("identical", "d.jsonl:9")
    assert report.summary() == "kept 4 of 10 pairs; dropped: too_long=5, identical=1"
    assert report.examples["too_long"] == ["d.jsonl:1", "d.jsonl:2", "d.jsonl:3"]
    assert report.to_dict()["dropped"] == {"too_long": 5, "identical": 1}
    assert DropReport(total=2).summary() == "kept 2 of 2 pairs; dropped: none"


def test_report_merge():
    train, validation = DropReport(total=5), DropReport(total=3)
    for i in range(3):
        train.add("identical", f"t:{i}")
    validation.add("identical", "v:1")
    validation.add("empty_answer", "v:2")
    train.merge(validation)
    assert train.summary() == "kept 3 of 8 pairs; dropped: identical=4, empty_answer=1"
    assert train.examples == {"identical": ["t:0", "t:1", "t:2"], "empty_answer": ["v:2"]}


def test_nway_identical_answer_is_dropped(tmp_path):
    path = tmp_path / "rb2.jsonl"
    rows = [
        {"prompt": "q", "chosen": ["a"], "rejected": ["b", "a"]},
        {"prompt": "q", "chosen": ["a"], "rejected": ["c"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, report = load_eval_items(path)
    assert items == [NWayItem([U("q")], ["a"], ["c"], source=f"{path}:2")]
    assert dict(report.counts) == {"identical": 1}


# ---- inputs: lists, directories, json arrays, parquet, limit ----


def test_list_of_files_in_order_and_limit():
    pairs, report = load_pairs([DATA / "trl.jsonl", str(DATA / "medicalgpt.jsonl")])
    assert [p.chosen for p in pairs] == ["4", "Paris", "Please see a doctor.", "Usually, in small doses."]
    pairs, report = load_pairs([DATA / "trl.jsonl", DATA / "medicalgpt.jsonl"], limit=3)
    assert len(pairs) == 3 and report.total == 3
    with pytest.raises(RewardkitError, match="limit must be a positive number"):
        load_pairs(DATA / "trl.jsonl", limit=0)


def test_directory_is_read_recursively_in_sorted_order(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    shutil.copy(DATA / "trl.jsonl", tmp_path / "b" / "deep" / "x.jsonl")
    shutil.copy(DATA / "sharegpt.json", tmp_path / "a.json")
    shutil.copy(DATA / "hh.jsonl", tmp_path / "b" / "c.jsonl")
    shutil.copy(DATA / "bad_json.jsonl", tmp_path / ".hidden" / "skipped.jsonl")
    (tmp_path / "notes.txt").write_text("not data")
    assert find_inputs(tmp_path) == [tmp_path / "a.json", tmp_path / "b/c.jsonl", tmp_path / "b/deep/x.jsonl"]
    pairs, report = load_pairs(tmp_path)
    expected = ["Bonjour", "6", "Hello! How can I help?", " Water, yeast and salt.", "4", "Paris"]
    assert [p.chosen for p in pairs] == expected
    assert report.total == 2 + 5 + 2


def test_json_lines_in_a_json_file(tmp_path):
    path = tmp_path / "lines.json"
    shutil.copy(DATA / "trl.jsonl", path)
    pairs, _ = load_pairs(path)
    assert [p.source for p in pairs] == [f"{path}:1", f"{path}:2"]
    (tmp_path / "pretty.json").write_text('{\n  "prompt": "a", "chosen": "b", "rejected": "c"\n}\n')
    with pytest.raises(
        DataError, match=r"pretty.json:1: malformed JSON.*a JSON array of rows or one JSON object per line"
    ):
        load_pairs(tmp_path / "pretty.json")


def test_parquet_rows_with_nested_messages(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (DATA / "trl_messages.jsonl").read_text().splitlines()]
    rows[0]["subset"] = None  # pyarrow takes the columns from the first row
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    pairs, report = load_pairs(tmp_path / "d.parquet")
    expected, _ = load_pairs(DATA / "trl_messages.jsonl")
    assert [(p.prompt, p.chosen, p.rejected, p.system, p.subset) for p in pairs] == [
        (p.prompt, p.chosen, p.rejected, p.system, p.subset) for p in expected
    ]
    assert [p.source for p in pairs] == [f"{tmp_path / 'd.parquet'}:1", f"{tmp_path / 'd.parquet'}:2"]


def test_parquet_sharegpt_with_mixed_message_spellings(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def gpt(text: str) -> dict[str, str]:
        return {"from": "gpt", "value": text}

    def assistant(text: str) -> dict[str, str]:
        return {"role": "assistant", "content": text}

    rows = [
        {"conversations": [{"from": "human", "value": "Hi"}], "chosen": gpt("a"), "rejected": gpt("b")},
        {"conversations": [U("Yo")], "chosen": assistant("c"), "rejected": assistant("d")},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "s.parquet")
    pairs, _ = load_pairs(tmp_path / "s.parquet")
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [([U("Hi")], "a", "b"), ([U("Yo")], "c", "d")]


# ---- bad inputs: every message names the file, the line and (where there is one) the field ----


@pytest.mark.parametrize(
    ("name", "where", "words"),
    [
        ("bad_json.jsonl", "bad_json.jsonl:2: ", "malformed JSON"),
        ("wrong_type.jsonl", "wrong_type.jsonl:2: field 'chosen': ", "got a number"),
        ("unknown_format.jsonl", "unknown_format.jsonl:1: ", "row matches no known format"),
        (
            "mixed_formats.jsonl",
            "mixed_formats.jsonl:2: ",
            "format 'hh' but the file's first row (line 1) is",
        ),
        ("missing_field.jsonl", "missing_field.jsonl:1: field 'response_rejected': ", "missing"),
        ("trl_implicit_bad.jsonl", "trl_implicit_bad.jsonl:1: field 'chosen': ", "exactly one assistant"),
        ("empty.jsonl", "empty.jsonl: ", "file has no rows"),
    ],
)
def test_bad_files(name, where, words):
    with pytest.raises(DataError) as err:
        load_pairs(DATA / name)
    message = str(err.value)
    assert message.startswith(str(DATA / where)), message
    assert words in message and "\n" not in message


def test_iter_rows_reports_malformed_json_after_good_rows():
    rows = iter_rows(DATA / "bad_json.jsonl")
    assert next(rows)[0] == 1
    with pytest.raises(DataError, match=r"bad_json.jsonl:2: malformed JSON"):
        next(rows)


def test_bad_json_array_and_non_object_rows(tmp_path):
    (tmp_path / "a.json").write_text('[{"prompt": "a", "chosen": "b", "rejected": "c"},\n  oops]')
    with pytest.raises(DataError, match=r"a.json:2: malformed JSON"):
        load_pairs(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('[{"prompt": "a", "chosen": "b", "rejected": "c"}, [1, 2]]')
    with pytest.raises(DataError, match=r"b.json:2: expected a JSON object per row, got list"):
        load_pairs(tmp_path / "b.json")
    (tmp_path / "c.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"c.parquet: not a readable parquet file"):
        load_pairs(tmp_path / "c.parquet")


def test_missing_paths_and_empty_directories(tmp_path):
    with pytest.raises(DataError, match=r"nope/train.jsonl: no such file or directory"):
        load_pairs(str(tmp_path / "nope" / "train.jsonl"))
    with pytest.raises(DataError, match=r"data.jsonl: no such file or directory"):
        load_pairs("data.jsonl")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"empty: directory has no data files \(.json, .jsonl, .parquet\)"):
        load_pairs(tmp_path / "empty")
    with pytest.raises(DataError, match=r"readme.txt: unsupported file type .txt"):
        load_pairs(tmp_path / "empty" / "readme.txt")
    with pytest.raises(DataError, match="no data paths given"):
        load_pairs([])


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_hub_name_fails_at_once_when_offline(monkeypatch, variable):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(variable, "1")
    name = "rewardkit-tests/no-such-prefs:test"
    assert find_inputs(name) == [HubDataset("rewardkit-tests/no-such-prefs", "test")]
    start = time.monotonic()
    with pytest.raises(RewardkitError) as err:
        load_pairs(name)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert f"'{name}' is not an existing file or directory" in message
    assert f"{variable} is set" in message and "local .jsonl" in message


def test_paths_that_cannot_be_hub_names_are_missing_files():
    for text in ("a/b/c", "./prefs", "prefs.parquet", "my data"):
        with pytest.raises(DataError, match=f"{text}: no such file or directory"):
            find_inputs(text)


# ---- splitting ----


def test_split_is_deterministic_by_seed_and_sized_by_percentage():
    pairs = [PreferencePair([U(str(i))], "a", "b") for i in range(100)]
    train, val = split_pairs(pairs, 10, seed=42)
    assert (len(train), len(val)) == (90, 10)
    assert sorted(p.prompt[0]["content"] for p in train + val) == sorted(str(i) for i in range(100))
    again = split_pairs(pairs, 10, seed=42)
    assert again == (train, val)
    assert split_pairs(pairs, 10, seed=43)[1] != val
    assert split_pairs(pairs, 0, seed=42) == (split_pairs(pairs, 0, seed=42)[0], [])
    assert len(split_pairs(pairs, 0, seed=1)[0]) == 100


def test_split_edges():
    assert split_pairs(list(range(3)), 1, seed=0)[1] != []  # rounds up: a small set still gets validation
    assert len(split_pairs(list(range(2)), 99, seed=0)[0]) == 1  # training always keeps one
    assert split_pairs([], 10, seed=0) == ([], [])
    with pytest.raises(RewardkitError, match=r"validation_split_percentage must be in \[0, 100\), got 100"):
        split_pairs([1, 2], 100, seed=0)


def test_hash_split_follows_content_not_order_seed_or_source():
    pairs = [PreferencePair([U(str(i))], "a", "b", source=f"a.jsonl:{i}") for i in range(400)]
    train, val = split_pairs(pairs, 25, seed=0, by="hash")
    assert 70 <= len(val) <= 130 and len(train) + len(val) == 400  # about a quarter, not exactly
    assert [p for p in pairs if p in val] == val  # both parts keep input order
    moved = [dataclasses.replace(p, source=f"b.jsonl:{i}") for i, p in enumerate(reversed(pairs))]
    _, val_moved = split_pairs(moved, 25, seed=7, by="hash")
    assert sorted(p.prompt[0]["content"] for p in val_moved) == sorted(p.prompt[0]["content"] for p in val)
    copy = dataclasses.replace(val[0], source="c.jsonl:1")
    assert split_pairs([copy], 25, seed=3, by="hash") == ([], [copy])  # a duplicate cannot cross sides
    # the answers count too: the same prompt with other answers gets its own fraction
    assert content_fraction(pairs[0]) != content_fraction(dataclasses.replace(pairs[0], chosen="c"))
    assert split_pairs(pairs, 0, seed=0, by="hash") == (pairs, [])
    with pytest.raises(RewardkitError, match="validation split 'random': use one of shuffle, hash"):
        split_pairs(pairs, 10, seed=0, by="random")


def test_read_splits_hash_matches_split_pairs(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "yes", "rejected": "no"} for i in range(60)]
    file = tmp_path / "d.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train, val, _ = read_splits(
        dataset_name=None,
        train_file_dir=str(file),
        validation_file_dir=None,
        validation_split_percentage=30,
        validation_split="hash",
        max_train_samples=None,
        max_eval_samples=None,
        seed=123,
    )
    pairs, _ = load_pairs(str(file))
    assert (train, val) == split_pairs(pairs, 30, seed=0, by="hash") and val
