"""`rewardkit.eval.run`: the eval flow with a fake reward model whose scores come from a dict."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from rewardkit.data.schema import NWayItem
from rewardkit.errors import RewardkitError
from rewardkit.eval import metrics as M
from rewardkit.eval.run import load_sections, run_eval, run_eval_files
from rewardkit.scorers.base import PointwiseMixin, Score

ROOT = Path(__file__).resolve().parents[2]

# answer text -> score. Hand-worked:
#   chat (pairs)  A: 2 > 1 right | B: 1 = 1 tie, wrong | C: 0 < 3 wrong | D: 5 > 1 right  -> 2/4 = 0.5
#   math (1 of 4) E: 4 ties e1 at the top -> 1/2      | F: 3 alone on top -> 1           -> 1.5/2 = 0.75
#   overall 3.5 / 6 ; margins 1, 0, -3, 4, 0, 1 -> tie rate 2/6
#   lengths (characters): A 4>2 right, B 2<4 wrong, C 3=3 wrong, D 6>3 right, E 8 longest right, F 1 shortest wrong
#   -> "longer answer wins" 3/6
SCORES = {
    "aaaa": 2.0,
    "aa": 1.0,
    "bb": 1.0,
    "bbbb": 1.0,
    "ccc": 0.0,
    "CCC": 3.0,
    "dddddd": 5.0,
    "ddd": 1.0,
    "eeeeeeee": 4.0,
    "e1": 4.0,
    "e22": 1.0,
    "e333": 0.0,
    "f": 3.0,
    "f1": 1.0,
    "f22": 2.0,
    "f333": 0.0,
}


def _item(name, chosen, rejected, subset, system=None):
    return NWayItem(
        [{"role": "user", "content": f"q{name}"}], chosen, rejected, system, subset, f"d.jsonl:{name}"
    )


ITEMS = [
    _item("A", ["aaaa"], ["aa"], "chat", system="be brief"),
    _item("B", ["bb"], ["bbbb"], "chat"),
    _item("C", ["ccc"], ["CCC"], "chat"),
    _item("D", ["dddddd"], ["ddd"], "chat"),
    _item("E", ["eeeeeeee"], ["e1", "e22", "e333"], "math"),
    _item("F", ["f"], ["f1", "f22", "f333"], "math"),
]


class FakeModel(PointwiseMixin):
    """Scores from a dict; marks some answers truncated and attaches judge details to others."""

    kind = "fake"

    def __init__(self, scores=SCORES, tokens=None, truncated=(), sub_scores=None):
        self.scores, self.tokens, self.truncated = scores, tokens or {}, set(truncated)
        self.sub_scores = sub_scores or {}
        self.batches: list[list] = []

    def score_detailed(self, conversations):
        self.batches.append(list(conversations))
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            out.append(
                Score(
                    self.scores[text],
                    self.tokens.get(text, 0),
                    text in self.truncated,
                    sub_scores=dict(self.sub_scores.get(text, {})),
                )
            )
        return out


class FakeDropReport:
    """Like `rewardkit.data.loading.DropReport`: a `counts` mapping and a one-line `summary` property."""

    counts = {"empty chosen": 2}

    @property
    def summary(self):
        return "dropped 2 of 8 rows (empty chosen: 2)"


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    (d / "sections.yaml").write_text("Chat: [chat]\nMath: [math]\n")
    model = FakeModel(
        truncated={"ccc"}, sub_scores={"aaaa": {M.ORDER_CONSISTENT: 1.0}, "aa": {M.PARSE_FAILED: 1.0}}
    )
    results = run_eval(
        model,
        ITEMS,
        output_dir=d / "out",
        sections_file=d / "sections.yaml",
        n_boot=200,
        seed=0,
        drop_report=FakeDropReport(),
        model_name="fake-rm",
        batch_size=3,
        progress=False,
    )
    return results, d / "out", model


def test_scores_every_answer_in_batches_after_the_prompt(main_run):
    _, _, model = main_run
    # whole items per call (4 pairs, then 2 items of 4 answers), about batch_size 3: 2+2 > 3, so one each
    assert [len(b) for b in model.batches] == [2, 2, 2, 2, 4, 4]
    first = model.batches[0][0]
    assert first == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "qA"},
        {"role": "assistant", "content": "aaaa"},
    ]


def test_accuracies_sections_and_ties_by_hand(main_run):
    results, _, _ = main_run
    s = results["summary"]
    assert s["accuracy"]["value"] == pytest.approx(3.5 / 6)
    assert s["accuracy"]["ci_low"] <= s["accuracy"]["value"] <= s["accuracy"]["ci_high"]
    assert s["subsets"]["chat"]["accuracy"]["value"] == 0.5
    assert s["subsets"]["math"]["accuracy"]["value"] == 0.75
    assert s["tie_rate"] == pytest.approx(2 / 6)
    assert s["subsets"]["chat"]["tie_rate"] == 0.25  # B
    # sections: Chat 0.5, Math 0.75 -> mean 0.625
    assert s["sections"]["Chat"]["score"]["value"] == 0.5
    assert s["section_score"]["value"] == pytest.approx(0.625)
    assert (s["n_items"], s["n_pairs"], s["n_conversations"]) == (6, 4, 16)


def test_length_truncation_judge_and_drops_by_hand(main_run):
    results, _, _ = main_run
    s = results["summary"]
    assert results["settings"]["length_unit"] == "characters"
    assert s["length_bias"]["longer_wins_accuracy"]["value"] == 0.5
    assert sum(b["count"] for b in s["length_bias"]["buckets"]) == 6
    assert s["truncation"] == {"items_truncated": 1, "conversations_truncated": 1, "conversations": 16}
    assert s["judge"] == {
        "order_consistent": {"reported": 1, "rate": 1.0},
        "parse_failed": {"reported": 1, "count": 1, "rate": 1.0},
    }
    assert s["dropped"] == {"counts": {"empty chosen": 2}, "summary": "dropped 2 of 8 rows (empty chosen: 2)"}


def test_results_json_has_per_item_scores(main_run):
    results, out, _ = main_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results
    e = on_disk["items"][4]
    assert e == {
        "source": "d.jsonl:E",
        "subset": "math",
        "chosen_scores": [4.0],
        "rejected_scores": [4.0, 1.0, 0.0],
        "correct": 0.5,
        "margin": 0.0,
        "truncated": False,
    }
    assert [it["correct"] for it in on_disk["items"]] == [1.0, 0.0, 0.0, 1.0, 0.5, 1.0]


def test_report_md_tables_and_pngs(main_run):
    _, out, _ = main_run
    md = (out / "report.md").read_text()
    assert "| accuracy | 58.3 |" in md
    assert "| section score (mean of sections) | 62.5 |" in md
    assert "| Chat | chat | 4 | 50.0 |" in md
    assert "| math | 2 | 75.0 |" in md
    for heading in (
        "## Calibration",
        "## Length bias",
        "## Generative judge",
        "## Truncation and dropped rows",
    ):
        assert heading in md
    assert "dropped 2 of 8 rows" in md
    for name in ("rewards.png", "margins.png", "reliability.png", "length_buckets.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # no temp folder left


def test_tokens_as_length_unit_and_unlisted_subsets_warn(tmp_path):
    (tmp_path / "s.yaml").write_text("Chat: [chat]\n")
    tokens = {t: 10 + len(t) for t in SCORES}  # prompt tokens cancel inside an item
    res = run_eval(
        FakeModel(tokens=tokens),
        ITEMS,
        output_dir=tmp_path / "o",
        sections_file=tmp_path / "s.yaml",
        n_boot=0,
        progress=False,
    )
    s = res["summary"]
    assert res["settings"]["length_unit"] == "tokens"
    assert s["length_bias"]["longer_wins_accuracy"] == {"value": 0.5, "ci_low": None, "ci_high": None}
    assert s["warnings"] == [
        f"--sections {tmp_path / 's.yaml'}: data subsets in no section (in the subset table, not in section scores): math"
    ]
    assert s["section_score"] == {"value": 0.5, "ci_low": None, "ci_high": None}
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## Warnings" in md and "| accuracy | 58.3 | – |" in md


def test_answer_tokens_from_the_models_tokenizer(tmp_path):
    """A model with a tokenizer: lengths are each answer's own tokens, not the whole conversation's
    (whose prompt would make Pearson a correlation with prompt length across items)."""

    class WithTokenizer(FakeModel):
        @staticmethod
        def tokenizer(text, add_special_tokens=True):
            assert add_special_tokens is False
            return {"input_ids": list(range(len(text) // 2))}  # one token per two characters

    # conversation token counts that would correlate with the score (prompt-dominated) are ignored
    tokens = {t: 100 * int(SCORES[t]) + 1 for t in SCORES}
    res = run_eval(
        WithTokenizer(tokens=tokens), ITEMS[:4], output_dir=tmp_path / "o", n_boot=0, progress=False
    )
    lb = res["summary"]["length_bias"]
    assert res["settings"]["length_unit"] == "answer tokens" and lb["unit"] == "answer tokens"
    # answers aaaa aa bb bbbb ccc CCC dddddd ddd -> tokens 2 1 1 2 1 1 3 1; scores 2 1 1 1 0 3 5 1
    lengths, scores = [2, 1, 1, 2, 1, 1, 3, 1], [2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 5.0, 1.0]
    assert lb["pearson"] == pytest.approx(M.pearson(lengths, scores))
    answers = ["aaaa", "aa", "bb", "bbbb", "ccc", "CCC", "dddddd", "ddd"]
    assert lb["pearson"] != pytest.approx(M.pearson([tokens[a] for a in answers], scores))  # not these


def test_baseline_paired_comparison_by_hand(tmp_path, main_run):
    _, out, _ = main_run
    better = dict(SCORES, ccc=5.0)  # fixes C: credits 1,0,1,1,.5,1 -> 4.5/6 vs 3.5/6
    res = run_eval(
        FakeModel(better),
        ITEMS,
        output_dir=tmp_path / "o",
        baseline_scores=out / "results.json",
        n_boot=200,
        progress=False,
    )
    b = res["summary"]["baseline"]
    assert (b["n_matched"], b["n_only_here"], b["n_only_baseline"], b["better"], b["worse"]) == (
        6,
        0,
        0,
        1,
        0,
    )
    assert b["diff"]["value"] == pytest.approx(1 / 6)
    assert b["diff"]["ci_low"] >= 0.0  # every per-item difference is >= 0
    assert b["subsets"]["chat"]["diff"]["value"] == 0.25
    assert b["subsets"]["math"]["diff"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert "## Comparison with baseline" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize(
    ("items", "sections", "baseline", "message"),
    [
        ([], None, None, "no items to evaluate"),
        (
            [_item("X", ["aa"], [], "chat")],
            None,
            None,
            "d.jsonl:X: item has chosen answers but no rejected answer",
        ),
        ([_item("Y", [], ["aa"], "chat")], None, None, "d.jsonl:Y: item has no chosen answer"),
        (ITEMS, "Chat: [chta]\nMath: [math]\n", None, "'chta' (section Chat; did you mean 'chat'?)"),
        (ITEMS, "Chat: {chat: -1}\n", None, "subset 'chat' has weight -1; weights must be positive numbers"),
        (ITEMS, "Chat: [chat]\nMath: [chat]\n", None, "subset 'chat' is also in section 'Chat'"),
        (ITEMS, "- chat\n", None, "expected a mapping of section name"),
        (ITEMS, None, '{"items": [{"source": "other.jsonl:1", "correct": 1}]}', "no item source matches"),
        (ITEMS, None, '{"score": 1}\n', "no 'items' list with 'source' and 'correct'"),
    ],
)
def test_bad_input_raises_one_line_before_scoring_and_writes_nothing(
    tmp_path, items, sections, baseline, message
):
    kwargs = {}
    if sections is not None:
        (tmp_path / "s.yaml").write_text(sections)
        kwargs["sections_file"] = tmp_path / "s.yaml"
    if baseline is not None:
        (tmp_path / "b.json").write_text(baseline)
        kwargs["baseline_scores"] = tmp_path / "b.json"
    model = FakeModel()
    with pytest.raises(RewardkitError) as err:
        run_eval(model, items, output_dir=tmp_path / "out", n_boot=10, progress=False, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert model.batches == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (dict(SCORES, f333=float("nan")), "d.jsonl:F: the model gave a non-finite score (nan)"),
        (None, "the model returned 0 scores for 2 conversations"),  # the first item: a pair
    ],
)
def test_bad_model_output_raises_and_writes_nothing(tmp_path, scores, message):
    model = FakeModel(scores or SCORES)
    if scores is None:
        model.score_detailed = lambda convs: []
    with pytest.raises(RewardkitError) as err:
        run_eval(model, ITEMS, output_dir=tmp_path / "out", n_boot=0, batch_size=3, progress=False)
    assert message in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_settings_are_checked():
    with pytest.raises(RewardkitError, match="--n_boot must be >= 0"):
        run_eval(FakeModel(), ITEMS, output_dir="unused", n_boot=-1, progress=False)


def test_run_eval_files_reads_through_the_loader_into_an_existing_folder(tmp_path, monkeypatch):
    seen = []

    def load_eval_items(paths):
        seen.append(paths)
        return ITEMS, FakeDropReport()

    monkeypatch.setitem(
        sys.modules, "rewardkit.data.loading", types.SimpleNamespace(load_eval_items=load_eval_items)
    )
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "results.json").write_text("old")
    res = run_eval_files(FakeModel(), [tmp_path / "a.jsonl"], output_dir=out, n_boot=0, progress=False)
    assert seen == [[str(tmp_path / "a.jsonl")]]
    assert res["summary"]["dropped"]["counts"] == {"empty chosen": 2}
    # files of the earlier run are replaced, other files stay, no temp folder is left beside it
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "results.json").read_text())["model"] == "fake"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_shipped_rewardbench_v1_sections_file():
    sections = load_sections(ROOT / "configs" / "rewardbench_v1_sections.yaml")
    assert list(sections) == ["Chat", "Chat Hard", "Safety", "Reasoning"]
    assert [len(v) for v in sections.values()] == [5, 6, 5, 7]
    assert sections["Chat"] == {  # RewardBench's fixed EXAMPLE_COUNTS, whatever rows are present
        "alpacaeval-easy": 100,
        "alpacaeval-length": 95,
        "alpacaeval-hard": 95,
        "mt-bench-easy": 28,
        "mt-bench-med": 40,
    }
    reasoning = sections["Reasoning"]
    hep = {k: w for k, w in reasoning.items() if k.startswith("hep-")}
    assert len(hep) == 6 and reasoning["math-prm"] == sum(hep.values()) == 984


class GroupingModel(FakeModel):
    """Records the groups each `score_groups` call gets (whole items: all answers to one prompt)."""

    def __init__(self):
        super().__init__()
        self.chunks: list[list[int]] = []

    def score_groups(self, groups):
        self.chunks.append([len(g.answers) for g in groups])
        return [self.score_detailed(g.conversations()) for g in groups]


def test_prefix_sharing_models_get_whole_items(main_run, tmp_path):
    grouping = GroupingModel()
    res = run_eval(grouping, ITEMS, output_dir=tmp_path, n_boot=0, batch_size=3, progress=False)
    assert sum(map(sum, grouping.chunks)) == 16
    assert [n for chunk in grouping.chunks for n in chunk] == [
        len(it.chosen) + len(it.rejected) for it in ITEMS
    ]
    assert all(
        sum(chunk) <= 3 or len(chunk) == 1 for chunk in grouping.chunks
    )  # about batch_size, items whole
    assert res["summary"]["accuracy"]["value"] == main_run[0]["summary"]["accuracy"]["value"]


def test_calibration_correlations_and_length_buckets_by_hand(main_run):
    import math

    import numpy as np

    s = main_run[0]["summary"]
    # confidence sigmoid(|margin|), "right" when margin > 0. Margins 1, 0, -3, 4, 0, 1:
    #   bin [0.5, 0.55): B, E (0.5, both wrong); [0.7, 0.75): A, F (sigmoid(1), both right);
    #   [0.95, 1.0]: C (sigmoid(3), wrong) and D (sigmoid(4), right)
    s1, s3, s4 = (1 / (1 + math.exp(-m)) for m in (1, 3, 4))
    table = [row for row in s["calibration"]["table"] if row["count"]]
    assert [(r["bin_low"], r["count"], r["accuracy"]) for r in table] == [
        (0.5, 2, 0.0),
        (0.7, 2, 1.0),
        (0.95, 2, 0.5),
    ]
    assert [r["mean_confidence"] for r in table] == pytest.approx([0.5, s1, (s3 + s4) / 2])
    ece = (2 * 0.5 + 2 * (1 - s1) + 2 * abs(0.5 - (s3 + s4) / 2)) / 6
    assert s["calibration"]["ece"] == pytest.approx(ece)  # 0.41208
    # reward vs length (characters) over all 16 answers, in ITEMS order
    lengths = [4, 2, 2, 4, 3, 3, 6, 3, 8, 2, 3, 4, 1, 2, 3, 4]
    scores = [2, 1, 1, 1, 0, 3, 5, 1, 4, 4, 1, 0, 3, 1, 2, 0]
    lb = s["length_bias"]
    assert lb["pearson"] == pytest.approx(np.corrcoef(lengths, scores)[0, 1])
    # Spearman: Pearson on average ranks (ties share the mean of their places), ranked by hand
    length_ranks = [12.5, 3.5, 3.5, 12.5, 8, 8, 15, 8, 16, 3.5, 8, 12.5, 1, 3.5, 8, 12.5]
    score_ranks = [10.5, 6.5, 6.5, 6.5, 2, 12.5, 16, 6.5, 14.5, 14.5, 6.5, 2, 12.5, 6.5, 10.5, 2]
    assert lb["spearman"] == pytest.approx(np.corrcoef(length_ranks, score_ranks)[0, 1])
    # d = (chosen - rejected) / longer, N-way sides by mean length:
    #   A 2/4 = .5, B -2/4 = -.5, C 0, D 3/6 = .5, E (8-3)/8, F (1-3)/3 -> credits 1, 0, 0, 1, .5, 1
    got = {b["bucket"]: (b["count"], b["accuracy"]["value"]) for b in lb["buckets"]}
    assert got == {
        "d < -0.5": (1, 1.0),
        "-0.5 <= d < -0.1": (1, 0.0),
        "-0.1 <= d < 0.1": (1, 0.0),
        "d >= 0.5": (3, pytest.approx(2.5 / 3)),
    }
