"""Every preference format read into the normal form, with the exact output written out."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardkit.data.formats import SkipRow, detect_format, normalize_item, normalize_row, shared_prefix
from rewardkit.data.loading import iter_rows
from rewardkit.data.schema import NWayItem, PreferencePair
from rewardkit.errors import DataError

DATA = Path(__file__).parents[1] / "fixtures" / "data"


def U(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def A(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def S(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def read(name: str) -> list[PreferencePair]:
    """Normalise a fixture row by row, as the loader does, but without its drop filter."""
    path = DATA / name
    return [normalize_row(row, source=f"{path}:{line}") for line, row in iter_rows(path)]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("medicalgpt.jsonl", "medicalgpt"),
        ("trl.jsonl", "trl"),
        ("trl_messages.jsonl", "trl"),
        ("trl_implicit.jsonl", "trl_implicit"),
        ("hh.jsonl", "hh"),
        ("sharegpt.json", "sharegpt"),
        ("nway.jsonl", "nway"),
    ],
)
def test_detect_format_of_every_fixture_row(name, fmt):
    assert {detect_format(row, f"{name}:{line}") for line, row in iter_rows(DATA / name)} == {fmt}


def test_medicalgpt():
    src = str(DATA / "medicalgpt.jsonl")
    assert read("medicalgpt.jsonl") == [
        PreferencePair(
            [U("I have a cough."), A("For how long?"), U("Two weeks.")],
            "Please see a doctor.",
            "Ignore it.",
            system="You are a doctor.",
            source=f"{src}:1",
        ),
        PreferencePair(
            [U("Is aspirin safe?")],
            "Usually, in small doses.",
            "Never.",
            margin=2.0,
            subset="safety",
            source=f"{src}:2",
        ),
    ]


def test_trl_strings_keep_unknown_columns_in_extra():
    src = str(DATA / "trl.jsonl")
    assert read("trl.jsonl") == [
        PreferencePair([U("2+2?")], "4", "5", source=f"{src}:1"),
        PreferencePair(
            [U("Capital of France?")], "Paris", "Lyon", margin=0.5, source=f"{src}:2", extra={"id": "q2"}
        ),
    ]


def test_trl_messages_shared_answer_turns_join_the_prompt():
    src = str(DATA / "trl_messages.jsonl")
    assert read("trl_messages.jsonl") == [
        PreferencePair([U("Hi")], "Hello!", "Go away.", system="Be brief.", source=f"{src}:1"),
        PreferencePair(
            [U("Weather?"), A("Checking."), U("And?")],
            "Sunny.",
            "No idea.",
            subset="multi",
            source=f"{src}:2",
        ),
    ]


def test_trl_implicit_prompt_is_the_shared_prefix():
    src = str(DATA / "trl_implicit.jsonl")
    assert read("trl_implicit.jsonl") == [
        PreferencePair([U("Hi")], "Hello!", "What?", source=f"{src}:1"),
        PreferencePair(
            [U("Name?"), A("Ann."), U("Age?")],
            "30.",
            "None of your business.",
            system="Be kind.",
            source=f"{src}:2",
        ),
    ]


def test_hh_transcripts_split_into_turns_and_strip_one_space():
    path = DATA / "hh.jsonl"
    rows = dict(iter_rows(path))
    assert normalize_row(rows[1], source="hh.jsonl:1") == PreferencePair(
        [U("Hi there")], "Hello! How can I help?", "What do you want?", source="hh.jsonl:1"
    )
    # Only one space is layout; the second of "Assistant:  Water" is kept as written.
    assert normalize_row(rows[2], source="hh.jsonl:2") == PreferencePair(
        [U("How do I bake bread?"), A("With flour."), U("And?")],
        " Water, yeast and salt.",
        "Buy it.",
        source="hh.jsonl:2",
    )
    # Identical and empty answers are normalised here; dropping them is the loader's job.
    assert (
        normalize_row(rows[3], source="s:3").chosen == normalize_row(rows[3], source="s:3").rejected == "Yes."
    )
    assert normalize_row(rows[4], source="s:4").chosen == ""


def test_hh_pair_that_differs_before_the_last_turn_is_skipped_with_a_reason():
    row = dict(iter_rows(DATA / "hh.jsonl"))[5]
    with pytest.raises(SkipRow) as err:
        normalize_row(row, source="hh.jsonl:5")
    assert err.value.reason == "prompts_differ"
    assert str(err.value).startswith("hh.jsonl:5: ")


def test_sharegpt_from_a_json_array():
    src = str(DATA / "sharegpt.json")
    assert read("sharegpt.json") == [
        PreferencePair([U("Hello")], "Bonjour", "Hello", system="Answer in French.", source=f"{src}:1"),
        PreferencePair([U("1+1?"), A("2"), U("Times 3?")], "6", "5", system="Be exact.", source=f"{src}:2"),
    ]


def test_sharegpt_accepts_role_content_spelling_and_parquet_style_none_keys():
    row = {
        "conversations": [{"role": "user", "content": "Hi", "from": None, "value": None}],
        "chosen": {"role": "assistant", "content": "Hello"},
        "rejected": [{"from": "gpt", "value": "Bye"}],
    }
    assert normalize_row(row, source="x:1") == PreferencePair([U("Hi")], "Hello", "Bye", source="x:1")


def test_nway_items_and_pairwise_rows_as_items():
    path = DATA / "nway.jsonl"
    items = [normalize_item(row, source=f"n:{line}") for line, row in iter_rows(path)]
    assert items == [
        NWayItem([U("Pick a prime.")], ["7"], ["8", "9", "10"], subset="Math", source="n:1", id="1"),
        NWayItem(
            [U("Greet me.")],
            ["Hi!", "Hello!"],
            ["No."],
            system="Be nice.",
            subset="Ties",
            source="n:2",
            id="2",
        ),
    ]
    pair_row = {"prompt": "2+2?", "chosen": "4", "rejected": "5", "subset": "math"}
    assert normalize_item(pair_row, source="p:1") == NWayItem(
        [U("2+2?")], ["4"], ["5"], subset="math", source="p:1"
    )


def test_one_against_one_nway_row_is_a_pair_but_n_way_is_not():
    pair = normalize_row({"prompt": "q", "chosen": ["a"], "rejected": ["b"], "id": 7}, source="n:1")
    assert pair == PreferencePair([U("q")], "a", "b", source="n:1", extra={"id": 7})
    with pytest.raises(DataError, match=r"n:1: field 'chosen': an N-way row with 1 chosen and 3 rejected"):
        normalize_row(dict(iter_rows(DATA / "nway.jsonl"))[1], source="n:1")


def test_shared_prefix():
    assert shared_prefix([U("a"), A("b")], [U("a"), A("c")]) == ([U("a")], "b", "c")
    assert shared_prefix([U("a"), A("b")], [U("a"), A("b")]) == (
        [U("a")],
        "b",
        "b",
    )  # identical: kept for the loader
    assert shared_prefix([U("a"), A("b")], [U("a"), A("b"), U("c"), A("d")]) is None
    assert shared_prefix([U("a"), A("b"), U("x")], [U("a"), A("b"), U("y")]) is None  # ends with a user turn


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"prompt": "a", "chosen": 3, "rejected": "c"}, "chosen", "got a number"),
        (
            {"prompt": "a", "chosen": ["x", {"role": "assistant"}], "rejected": "c"},
            "chosen",
            "object and string",
        ),
        ({"prompt": "a", "chosen": "b"}, "rejected", "missing"),
        ({"question": "q", "response_chosen": "a"}, "response_rejected", "missing"),
        (
            {"question": "q", "response_chosen": "a", "response_rejected": "b", "history": [["x"]]},
            "history[0]",
            "pair",
        ),
        ({"prompt": [U("a")], "chosen": [U("b")], "rejected": [A("c")]}, "chosen", "end with an assistant"),
        (
            {"prompt": [U("a")], "chosen": [A("x"), A("b")], "rejected": [A("y"), A("c")]},
            "chosen",
            "differ before",
        ),
        (
            {"prompt": [U("a")], "chosen": [{"role": "robot", "content": "b"}], "rejected": [A("c")]},
            "chosen[0]",
            "role",
        ),
        (
            {"prompt": [U("a")], "chosen": [{"role": "assistant", "content": 5}], "rejected": [A("c")]},
            "chosen[0]",
            "string",
        ),
        ({"prompt": [U("a"), S("b")], "chosen": "x", "rejected": "y"}, "prompt", "only come first"),
        ({"prompt": [A("a")], "chosen": "x", "rejected": "y"}, "prompt", "end with a user message"),
        ({"chosen": "no markers", "rejected": "x"}, "chosen", "share no beginning"),
        (
            {"conversations": [U("a")], "chosen": 3, "rejected": {"from": "gpt", "value": "c"}},
            "chosen",
            "one message",
        ),
        (
            {"conversations": [U("a")], "chosen": {"from": "human", "value": "b"}, "rejected": A("c")},
            "chosen",
            "assistant",
        ),
        ({"prompt": "a", "chosen": "b", "rejected": "c", "margin": "big"}, "margin", "number"),
        ({"prompt": "a", "chosen": "b", "rejected": "c", "subset": 3}, "subset", "string"),
        ({"prompt": [S("x"), U("a")], "chosen": "b", "rejected": "c", "system": "y"}, "system", "differs"),
        ({"prompt": "a", "chosen": ["b"], "rejected": [1]}, "rejected", "list of strings"),
    ],
)
def test_bad_rows_name_line_and_field(row, field, words):
    with pytest.raises(DataError) as err:
        normalize_row(row, source="data/bad.jsonl:7")
    message = str(err.value)
    assert message.startswith(f"data/bad.jsonl:7: field '{field}': "), message
    assert words in message
    assert "\n" not in message


def test_trl_implicit_with_more_than_one_answer_turn_is_an_error():
    ((line, row),) = iter_rows(DATA / "trl_implicit_bad.jsonl")
    with pytest.raises(DataError, match=r"x.jsonl:1: field 'chosen': after their shared leading turns"):
        normalize_row(row, source=f"x.jsonl:{line}")


def test_unknown_format_lists_the_accepted_ones():
    with pytest.raises(DataError) as err:
        detect_format({"instruction": "hi", "output": "yo"}, "f.jsonl:3")
    message = str(err.value)
    assert message.startswith("f.jsonl:3: row matches no known format (its keys: instruction, output)")
    for name in (
        "medicalgpt",
        "trl",
        "trl_implicit",
        "hh",
        "sharegpt",
        "nway",
        "response_chosen",
        "conversations",
    ):
        assert name in message
