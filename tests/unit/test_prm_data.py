"""Step-labelled data: every reader to one normal form, bad rows named by file:line, synthetic step labels."""

import json
from pathlib import Path

import pytest

from rewardkit.data.steps import detect_step_format, load_step_examples, normalize_step_row
from rewardkit.demo.synthetic_steps import APPLES_BAD_STEPS, make_step_set
from rewardkit.errors import DataError

SHEPHERD = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "math-shepherd-gsm8k"


@pytest.fixture
def shepherd():
    if not (SHEPHERD / "dev.trl.jsonl").is_file():
        pytest.skip(f"{SHEPHERD} not found (../shared beside the checkout)")
    return SHEPHERD


def test_both_math_shepherd_files_read_to_the_same_normal_form(shepherd):
    trl, trl_report = load_step_examples(shepherd / "dev.trl.jsonl")
    ms, ms_report = load_step_examples(shepherd / "dev.math-shepherd.jsonl")
    assert len(trl) == len(ms) == 60 and trl_report.dropped == ms_report.dropped == 0
    assert [(e.prompt, e.steps, e.labels) for e in trl] == [(e.prompt, e.steps, e.labels) for e in ms]
    assert (
        sum(len(e.steps) for e in trl) == 213 and sum(sum(e.labels) for e in trl) == 54
    )  # the README's counts


def test_math_shepherd_row_by_hand():
    row = {"input": "What is 2+3? 2+3=5. ки\nSo 5. ки", "label": "What is 2+3? 2+3=5. +\nSo 5. -"}
    ex = normalize_step_row(row)
    assert ex.prompt == [{"role": "user", "content": "What is 2+3?"}]
    assert (ex.steps, ex.labels) == (["2+3=5.", "So 5."], [1.0, 0.0])
    row = {"input": "If a is 4, calculate a+1. 4+1=5. ки", "label": "If a is 4, calculate a+1. 4+1=5. +"}
    assert normalize_step_row(row).prompt[0]["content"] == "If a is 4, calculate a+1."


def test_trl_soft_labels_ratings_processbench_and_prm800k():
    ex = normalize_step_row({"prompt": "q", "completions": ["a", "b"], "labels": [0.25, True]})
    assert ex.labels == [0.25, 1.0]
    rated = {"problem": "q", "steps": ["a", "b", "c"], "ratings": [1, 0, -1]}
    assert normalize_step_row(rated, neutral="good").labels == [1.0, 1.0, 0.0]
    assert normalize_step_row(rated, neutral="bad").labels == [1.0, 0.0, 0.0]
    pb = normalize_step_row({"problem": "q", "steps": ["a", "b", "c"], "label": 1})
    assert (pb.labels, pb.first_error()) == ([1.0, 0.0, None], 1)
    assert normalize_step_row({"problem": "q", "steps": ["a"], "label": -1}).labels == [1.0]
    raw = {
        "question": {"problem": "q"},
        "label": {
            "steps": [
                {"completions": [{"text": "a", "rating": 1}], "chosen_completion": 0},
                {
                    "completions": [{"text": "x", "rating": 0}, {"text": "b", "rating": -1}],
                    "chosen_completion": None,
                },
            ]
        },
    }
    assert detect_step_format(raw) == "prm800k"
    ex = normalize_step_row(raw)
    assert (ex.steps, ex.labels) == (["a", "b"], [1.0, 0.0])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"prompt": "q", "completions": ["a", "b"], "labels": [True]},
            "field 'labels': expected a list of 2",
        ),
        ({"prompt": "q", "completions": ["a"], "labels": [2]}, "expected true/false or a number in [0, 1]"),
        (
            {"problem": "q", "steps": ["a"], "label": 3},
            "field 'label': expected the index of the first wrong",
        ),
        ({"input": "q? a. ки", "label": "q? a. ?"}, "field 'label': does not match"),
        ({"prompt": "q", "completions": ["a"], "ratings": [5]}, "expected a rating -1, 0 or 1"),
    ],
)
def test_bad_rows_are_one_line_errors_with_file_and_line(tmp_path, row, message):
    path = tmp_path / "d.jsonl"
    good = {"prompt": "q", "completions": ["a"], "labels": [True]}
    first = good if "labels" in row else row
    path.write_text(json.dumps(first) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as err:
        load_step_examples(path)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"{path}:2:") or text.startswith(f"{path}:1:")


def test_synthetic_steps_are_labelled_from_the_mistake_on():
    examples = make_step_set(200, seed=0)
    assert examples == make_step_set(200, seed=0)  # seeded
    correct, wrong = examples[0::2], examples[1::2]
    assert all(e.first_error() == -1 and e.subset == "correct" for e in correct)
    for good, bad in zip(correct, wrong):
        k = bad.first_error()
        assert k >= 0 and bad.labels == [1.0] * k + [0.0] * (len(bad.labels) - k)
        assert good.steps[:k] == bad.steps[:k] and good.steps[k] != bad.steps[k]  # same until the mistake
    assert {e.extra["mistake"] for e in wrong} == {"arith", "miscount", "final", "rounding"}
    assert APPLES_BAD_STEPS[2].startswith("3. Jane splits the 9 apples equally among her 2 siblings")
