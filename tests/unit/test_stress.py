"""`rewardkit eval --stress` perturbations and the ensemble / calibration summaries, worked exactly."""

import math
import random

import numpy as np
import pytest

from rewardkit.data.schema import NWayItem
from rewardkit.eval import metrics as M
from rewardkit.eval.metrics import auroc
from rewardkit.eval.robust import calibrated_summary, ensemble_summary, mutual_information, robust_markdown
from rewardkit.eval.stress import (
    CLOSERS,
    OPENERS,
    changed_only_credits,
    first_sentences,
    pad_with_filler,
    perturbed_items,
    split_sentences,
    stress_markdown,
    stress_summary,
    to_markdown_list,
)


def test_split_sentences():
    assert split_sentences("  Yes. It is 4!  Really?\n\nDone ") == ["Yes.", "It is 4!", "Really?", "Done"]
    assert split_sentences("Pi is 3.14 roughly") == ["Pi is 3.14 roughly"]  # no space after the dot
    assert split_sentences("") == []


def test_pad_with_filler_is_seeded_and_keeps_the_answer():
    padded = pad_with_filler(" No. ", random.Random(0))
    r = random.Random(0)
    expected_opener, expected_closer = r.choice(OPENERS), r.choice(CLOSERS)
    assert padded == f"{expected_opener} No. {expected_closer}"
    assert (
        padded
        == "I'd be delighted to help you with this. No. Please don't hesitate to ask if you need anything more."
    )


def test_markdown_and_shorten_exact():
    assert to_markdown_list("Mix it. Then bake it!\nDone") == "- Mix it.\n- Then bake it!\n- Done"
    assert first_sentences("It is 4. Two plus two is four. Yes.") == "It is 4."
    assert first_sentences("It is 4. Two plus two is four. Yes.", 2) == "It is 4. Two plus two is four."
    assert first_sentences("Only one sentence here.") is None


def _items():
    return [
        NWayItem([{"role": "user", "content": "q0"}], ["Good. Detailed."], ["Bad."], source="f:1"),
        NWayItem([{"role": "user", "content": "q1"}], ["Good."], ["Bad one. Bad two."], source="f:2"),
        NWayItem([{"role": "user", "content": "q2"}], ["a"], ["b", "c"], source="f:3"),  # N-way: skipped
    ]


def test_perturbed_items_apply_where_safe():
    items = _items()
    filler = perturbed_items(items, "filler", seed=7)
    assert [i for i, _ in filler] == [0, 1]
    assert filler[0][1].rejected == [pad_with_filler("Bad.", random.Random("7:0"))]
    assert filler[0][1].chosen == ["Good. Detailed."] and filler[0][1].source == "f:1"
    markdown = perturbed_items(items, "markdown", seed=7)
    assert [(i, it.rejected) for i, it in markdown] == [(0, ["- Bad."]), (1, ["- Bad one.\n- Bad two."])]
    shorten = perturbed_items(items, "shorten", seed=7)
    assert [(i, it.chosen) for i, it in shorten] == [(0, ["Good."])]  # item 1's chosen has one sentence


def _record(source, chosen, rejected, subs=None):
    return M.ItemScores(source, "s", [chosen], [rejected], [1.0], [1.0], [False, False], subs or [{}, {}])


def test_stress_summary_counts_drops_on_the_same_pairs():
    items = _items()
    plain = [
        _record("f:1", 1.0, 0.0),
        _record("f:2", 1.0, 0.0),
        M.ItemScores("f:3", "s", [1], [0, 0], [1], [1, 1], [False] * 3, [{}] * 3),
    ]

    def score(its, subsets):  # a length-loving toy model: the longer answer wins
        return [_record(it.source, len(it.chosen[0]), len(it.rejected[0])) for it in its]

    out = stress_summary(score, items, plain, n_boot=0, seed=0)["perturbations"]
    # filler: both rejected answers become longer than the chosen ones -> both wrong, drop 100 points
    assert out["filler"]["n"] == 2 and out["filler"]["accuracy"]["value"] == 0.0
    assert out["filler"]["plain_accuracy"] == 1.0 and out["filler"]["drop"]["value"] == 1.0
    assert out["filler"]["flipped_wrong"] == 2
    # markdown: "- Bad." (6) < "Good. Detailed." (15) right; "- Bad one.\n- Bad two." (21) > "Good." (5) wrong
    assert out["markdown"]["accuracy"]["value"] == 0.5 and out["markdown"]["drop"]["value"] == 0.5
    # shorten: only pair 0, "Good." (5) vs "Bad." (4): still right
    assert out["shorten"]["n"] == 1 and out["shorten"]["drop"]["value"] == 0.0
    text = "\n".join(stress_markdown({"seed": 0, "perturbations": out}))
    assert "| filler: rejected answer padded with polite filler | 2 | 0.0 | – | 100.0 | 100.0 | – |" in text


def test_auroc_hand_worked():
    assert auroc([0.9, 0.4, 0.4, 0.1], [True, True, False, False]) == 0.875
    assert auroc([1, 2], [False, False]) is None
    assert auroc([3, 2, 1], [True, False, False]) == 1.0


def test_ensemble_summary_hand_worked():
    def subs(members):
        return {"ensemble_std": 0.0, **{f"member_{i}": v for i, v in enumerate(members)}}

    records = [
        # members agree: margins (1, 1), std 0; aggregate right
        _record("a", 1.0, 0.0, [subs([1.0, 1.0]), subs([0.0, 0.0])]),
        # members disagree: margins (2, -1), std 1.5; mean 0.5 right, min: chosen 0 vs rejected 0 -> tie, wrong
        _record("b", 0.5, 0.0, [subs([2.0, 0.0]), subs([0.0, 1.0])]),
        # disagree, wrong: margins (-3, 1), std 2
        _record("c", -1.0, 0.0, [subs([-2.0, 1.0]), subs([1.0, 0.0])]),
    ]
    out = ensemble_summary(records, lam=1.0, n_boot=0, seed=0)
    assert out["members"] == 2 and out["n_wrong"] == 1
    # disagreement (0, 1.5, 2): the wrong pair has the largest -> AUROC 1
    assert out["disagreement_auroc"] == 1.0 and out["disagreement_mean"] == pytest.approx(3.5 / 3)
    acc = {k: v["value"] for k, v in out["accuracy"].items()}
    # mean margins: 1, 0.5, -1; min: (1 vs 0), (0 vs 0), (-2 vs 0); member 0 margins 1, 2, -3; member 1: 1, -1, 1
    assert acc["mean"] == pytest.approx(2 / 3) and acc["min"] == pytest.approx(1 / 3)
    assert acc["member_0"] == pytest.approx(2 / 3) and acc["member_1"] == pytest.approx(2 / 3)
    # mean - std: a: 1 - 0 vs 0 - 0 right; b: (1 - 1) vs (0.5 - 0.5) tie, wrong; c: (-0.5 - 1.5) vs (0.5 - 0.5) wrong
    assert acc["mean_minus_std (lambda 1)"] == pytest.approx(1 / 3)
    assert out["disagreement_auroc_ci"]["ci_low"] is None  # no resamples, no interval
    signals = {k: v["value"] for k, v in out["uncertainty_auroc"].items()}
    # mutual information: a 0 (same p), b 0.208, c 0.282 (below): the wrong pair highest -> 1;
    # -abs(mean margin): a -1, b -0.5, c -1: c ties a and is below b -> (0.5 + 0) / 2
    assert signals == {
        "std of member margins": 1.0,
        "mutual information": 1.0,
        "-abs(mean margin) (confidence)": 0.25,
    }
    # resampled: every resample holding both classes puts the wrong pair's disagreement on top
    ci = ensemble_summary(records, lam=1.0, n_boot=50, seed=0)["disagreement_auroc_ci"]
    assert (ci["value"], ci["ci_low"], ci["ci_high"]) == (1.0, 1.0, 1.0)
    assert ensemble_summary([_record("x", 1.0, 0.0)], 1.0, 0, 0) is None  # not an ensemble
    text = "\n".join(robust_markdown({"ensemble": out}))
    assert (
        "| mutual information | 1.000 | – |" in text
        and "| -abs(mean margin) (confidence) | 0.250 | – |" in text
    )


def test_mutual_information_hand_worked():
    def h(p):
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))

    p1, p2 = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))  # margins 2 and -1
    expected = h((p1 + p2) / 2) - (h(p1) + h(p2)) / 2
    mi = mutual_information(np.array([[2.0, -1.0], [0.5, 0.5], [-1.0, 2.0], [30.0, 30.0]]))
    assert mi[0] == pytest.approx(expected) and expected == pytest.approx(0.2081, abs=1e-4)
    assert mi[1] == 0.0 and mi[2] == pytest.approx(
        mi[0]
    )  # agreement -> 0; the order of members is irrelevant
    assert mi[3] == pytest.approx(0.0, abs=1e-9)  # both sure of the same answer, however large the margins
    assert mutual_information(np.array([[40.0, -40.0]]))[0] == pytest.approx(math.log(2))  # sure and opposite


def test_calibrated_summary_hand_worked():
    # margins 2 (right) and -2 (wrong), T = 2: confidence sigmoid(1) = 0.731 for both, accuracy 0.5
    out = calibrated_summary([2.0, -2.0], temperature=2.0, n_bins=10)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out["ece_before"] == pytest.approx(sig(2) - 0.5) and out["ece_after"] == pytest.approx(
        sig(1) - 0.5
    )
    assert "sigmoid(margin / T)" in "\n".join(robust_markdown({"calibrated": out}))


def test_stress_report_shows_the_baseline_beside(tmp_path):
    import json

    from rewardkit.eval.robust import baseline_stress

    stat = {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75}
    theirs = {"filler": {"n": 2, "accuracy": stat, "drop": {"value": 0.1, "ci_low": 0.0, "ci_high": 0.2}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"summary": {"stress": {"seed": 0, "perturbations": theirs}}}))
    base = baseline_stress(path)
    assert base == {"filler": {"accuracy": stat, "drop": theirs["filler"]["drop"]}}
    ours = {"filler": {"description": "d", "n": 2, "accuracy": stat, "plain_accuracy": 1.0, "drop": stat},
            "shorten": {"description": "s", "n": 0}}  # fmt: skip
    text = "\n".join(stress_markdown({"seed": 0, "perturbations": ours, "baseline": base}))
    assert (
        "| filler: d | 2 | 50.0 | [25.0, 75.0] | 100.0 | 50.0 | [25.0, 75.0] | 50.0 | 10.0 | [0.0, 20.0] |"
        in text
    )
    path.write_text(json.dumps({"summary": {}}))
    assert baseline_stress(path) is None


def test_changed_answers_only_gives_the_full_rescoring_at_half_the_conversations():
    """A model that scores each answer alone: reusing the unchanged side's plain score is exact."""
    items = _items()

    def reward(answer):  # a toy pointwise reward: longer is better, markdown lists are penalised
        return len(answer) - 10.0 * answer.count("- ")

    def records(its):
        return [
            M.ItemScores(
                it.source,
                "s",
                [reward(a) for a in it.chosen],
                [reward(a) for a in it.rejected],
                [1.0] * len(it.chosen),
                [1.0] * len(it.rejected),
                [False] * (len(it.chosen) + len(it.rejected)),
                [{}] * (len(it.chosen) + len(it.rejected)),
            )
            for it in its
        ]

    plain = records(items)
    seen = []

    def score(its, subsets):
        seen.append(sum(len(it.chosen) + len(it.rejected) for it in its))
        return records(its)

    full = stress_summary(score, items, plain, n_boot=50, seed=3)
    both = list(seen)
    seen.clear()
    alone = stress_summary(score, items, plain, n_boot=50, seed=3, answers_alone=True)
    assert alone["perturbations"] == full["perturbations"]
    assert (full["rescored"], alone["rescored"]) == ("both answers", "changed answers only")
    assert both == [4, 4, 2] and seen == [2, 2, 1]  # filler and markdown: 2 pairs; shorten: 1 pair
    assert "Only the changed answer is re-scored" in "\n".join(stress_markdown(alone))
    same = [(0, items[0])]  # a perturbation that changed nothing: nothing is scored, the plain credit stays
    seen.clear()
    assert changed_only_credits(score, items, plain, same, ["s"]) == [plain[0].credit] and seen == []
    assert "Only the changed answer" not in "\n".join(stress_markdown(full))


def test_which_models_score_answers_alone():
    from rewardkit.scorers.base import scores_answers_alone
    from rewardkit.scorers.classifier import ClassifierRM
    from rewardkit.scorers.dpo import DPORewardModel
    from rewardkit.scorers.function import FunctionRM
    from rewardkit.scorers.generative import GenerativeJudge

    assert FunctionRM.answers_alone and DPORewardModel.answers_alone and ClassifierRM.answers_alone
    judge = GenerativeJudge.__new__(GenerativeJudge)
    for mode, alone in (("pointwise", True), ("pairwise", False), ("logprob", False)):
        judge.mode = mode
        assert scores_answers_alone(judge) is alone
    assert not scores_answers_alone(object())  # unknown: both answers re-scored
