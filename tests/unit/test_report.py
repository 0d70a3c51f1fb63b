"""`rewardkit.eval.report`: report.md tables, files written whole or not at all, the baseline reader."""

from __future__ import annotations

import json

import pytest

from rewardkit.errors import RewardkitError
from rewardkit.eval.metrics import ItemScores
from rewardkit.eval.report import load_baseline, render_markdown, write_outputs
from rewardkit.eval.run import summarize


def _results(n_boot: int = 0) -> dict:
    # s1: 1 > 0 right, 0 = 0 tie wrong -> 50% ; s2: best-of-2, rejected 3 above chosen 2 -> 0 ; overall 1/3
    records = [
        ItemScores("f:1", "s1", [1.0], [0.0], [5.0], [3.0], [False, False], [{}, {}]),
        ItemScores("f:2", "s1", [0.0], [0.0], [2.0], [2.0], [False, False], [{}, {}]),
        ItemScores("f:3", "s2", [2.0], [1.0, 3.0], [4.0], [4.0, 4.0], [False, True, False], [{}, {}, {}]),
    ]
    summary = summarize(records, n_boot=n_boot, n_bins=5, warnings=["a warning"])
    settings = {"n_boot": n_boot, "seed": 0, "sections_file": None, "baseline_scores": None}
    return {"model": "m", "settings": settings, "summary": summary, "items": [r.as_row() for r in records]}


def test_markdown_tables_by_hand():
    md = render_markdown(_results())
    assert md.startswith("# rewardkit eval: m\n")
    assert "3 items (2 pairs, 1 N-way) in 2 subsets; 7 conversations scored." in md
    assert "| accuracy | 33.3 | – |" in md
    assert "| tie rate (margin = 0) | 33.3 |  |" in md  # f:2
    assert "| s1 | 2 | 50.0 | – | 50.0 | 50.0 |" in md
    assert "| s2 | 1 | 0.0 | – | 0.0 | 0.0 |" in md
    # margins 1, 0, -1: confidences sigmoid(1) = 0.731 (right), 0.5 (tie, wrong), 0.731 (wrong)
    assert "| [0.50, 0.60) | 1 | 0.500 | 0.000 |" in md
    assert "| [0.70, 0.80) | 2 | 0.731 | 0.500 |" in md
    assert "| [0.90, 1.00] | 0 | – | – |" in md
    # longer wins: f:1 5 > 3 right, f:2 equal wrong, f:3 all 4 -> 1/3 chosen on top -> (1 + 0 + 1/3) / 3 = 44.4
    assert '"Longer answer wins" baseline: 44.4 –' in md
    assert "1 of 3 items had a conversation truncated to fit the model (1 of 7 conversations)." in md
    assert "No drop report from the loader." in md
    assert "## Warnings\n\n- a warning" in md
    for absent in ("## Sections", "## Comparison with baseline", "## Generative judge"):
        assert absent not in md


def test_write_outputs_from_a_results_json_alone(tmp_path):
    results = json.loads(json.dumps(_results(n_boot=50)))
    write_outputs(results, tmp_path / "deep" / "out")
    out = tmp_path / "deep" / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "length_buckets.png",
        "margins.png",
        "reliability.png",
        "report.md",
        "results.json",
        "rewards.png",
    ]
    assert json.loads((out / "results.json").read_text()) == results
    assert all((out / n).read_bytes()[:4] == b"\x89PNG" for n in ("rewards.png", "reliability.png"))
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]


def test_a_failed_write_leaves_nothing(tmp_path):
    results = _results()
    results["summary"]["tie_rate"] = float("nan")  # JSON has no NaN: the write fails part-way
    with pytest.raises(ValueError):
        write_outputs(results, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_load_baseline_reads_credit_by_source(tmp_path):
    p = tmp_path / "results.json"
    p.write_text(
        json.dumps({"items": [{"source": "a:1", "correct": 1.0}, {"source": "a:2", "correct": 0.5}]})
    )
    assert load_baseline(p, ["a:2", "a:3"]) == {"a:1": 1.0, "a:2": 0.5}


@pytest.mark.parametrize(
    ("text", "sources", "message"),
    [
        (None, ["a:1"], "cannot read it"),
        ('{"source": "a:1", "score": 1.0}\n{"source": "a:2", "score": 0.0}\n', ["a:1"], "not a JSON file"),
        ('{"items": [{"source": "a:1"}]}', ["a:1"], "no 'items' list with 'source' and 'correct'"),
        ('{"items": [{"source": "a:1", "correct": 1}]}', ["a:1", "a:1"], "'a:1' appears twice in the data"),
        (
            '{"items": [{"source": "b:1", "correct": 1}]}',
            ["a:1"],
            "no item source matches (e.g. 'a:1' here, 'b:1' there)",
        ),
    ],
)
def test_load_baseline_errors(tmp_path, text, sources, message):
    p = tmp_path / "base.json"
    if text is not None:
        p.write_text(text)
    with pytest.raises(RewardkitError) as err:
        load_baseline(p, sources)
    assert message in str(err.value) and str(err.value).startswith(f"--baseline_scores {p}: ")
