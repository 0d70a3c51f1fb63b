"""`rewardkit.eval.metrics` against numbers worked out by hand (in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardkit.eval import metrics as M


def test_sigmoid_values_and_no_overflow():
    # sigmoid(ln 3) = 1 / (1 + 1/3) = 0.75
    assert M.sigmoid(0.0) == 0.5
    assert M.sigmoid(math.log(3)) == pytest.approx(0.75)
    assert M.sigmoid(-math.log(3)) == pytest.approx(0.25)
    with np.errstate(over="raise"):
        assert M.sigmoid(np.array([-1e4, 1e4])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("chosen", "rejected", "credit"),
    [
        ([2.0], [1.0], 1.0),  # pair, chosen higher
        ([1.0], [1.0], 0.0),  # pair, tie counts wrong (RewardBench v1)
        ([0.0], [3.0], 0.0),  # pair, rejected higher
        ([3.0], [1.0, 2.0, 0.0], 1.0),  # best-of-4, chosen alone on top
        ([2.0], [2.0, 1.0, 0.0], 1 / 2),  # chosen shares the top with 1 other: k = 2
        ([2.0], [2.0, 2.0, 1.0], 1 / 3),  # k = 3
        ([2.0], [3.0, 1.0, 1.0], 0.0),  # a rejected answer beats it
        ([2.0, 2.0], [1.0], 1.0),  # several chosen: both chosen on top, no rejected there -> 2/2
        ([2.0, 1.0], [2.0], 1 / 2),  # top = {chosen 2.0, rejected 2.0}: 1 chosen of 2
        ([2.0, 2.0], [2.0], 2 / 3),  # top = {2 chosen, 1 rejected}: 2 of 3
        ([1.0, 0.5], [2.0, 0.0], 0.0),  # a rejected answer above every chosen one
    ],
)
def test_item_credit(chosen, rejected, credit):
    assert M.item_credit(chosen, rejected) == pytest.approx(credit)


def test_item_margin_is_best_chosen_minus_best_rejected():
    assert M.item_margin([1.0, 3.0], [2.0, 5.0]) == -2.0  # 3 - 5
    assert M.item_margin([4.0], [1.5]) == 2.5


def test_tie_rates_exact_and_near():
    # margins 0 (tie), ±0.0005 (near), 0.002 and -1 (neither): ties 1/5, near ties 3/5 at tol 1e-3
    margins = np.array([0.0, 0.0005, -0.0005, 0.002, -1.0])
    assert M.tie_rates(margins, tol=1e-3) == (pytest.approx(0.2), pytest.approx(0.6))
    # |margin| == tol is not a near tie (strictly below)
    assert M.tie_rates(np.array([0.25, -0.25, 0.1]), tol=0.25) == (0.0, pytest.approx(1 / 3))


def test_group_means_and_weighted_mean():
    assert M.group_means(np.array([1.0, 0.0, 1.0, 1.0]), ["b", "b", "a", "a"]) == {"a": 1.0, "b": 0.5}
    # (0.9 * 100 + 0.6 * 50) / 150 = 120 / 150 = 0.8
    assert M.weighted_mean({"x": 0.9, "y": 0.6}, {"x": 100, "y": 50}) == pytest.approx(0.8)


def test_check_sections_missing_is_listed_and_unused_returned():
    sections = {"Chat": {"a": None, "b": None}, "Math": {"c": 1.0}}
    missing, unused = M.check_sections(sections, ["a", "c", "d", "e"])
    assert missing == [("Chat", "b")]
    assert unused == ["d", "e"]


def test_section_scores_count_weighted_then_mean_of_sections():
    acc = {"alpaca": 0.9, "mt": 0.6, "math-prm": 0.5, "hep-go": 0.8, "hep-py": 0.9}
    counts = {"alpaca": 100, "mt": 50, "math-prm": 447, "hep-go": 164, "hep-py": 164}
    sections = {
        "Chat": {"alpaca": None, "mt": None},  # weights = example counts
        "Reasoning": {"math-prm": 2.0, "hep-go": 1.0, "hep-py": 1.0},  # math-prm = both hep together
    }
    weights = M.section_weights(sections, counts)
    assert weights == {
        "Chat": {"alpaca": 100.0, "mt": 50.0},
        "Reasoning": {"math-prm": 2.0, "hep-go": 1.0, "hep-py": 1.0},
    }
    scores = M.section_scores(acc, weights)
    # Chat = (0.9*100 + 0.6*50) / 150 = 0.8 ; Reasoning = (0.5*2 + 0.8 + 0.9) / 4 = 2.7 / 4 = 0.675
    assert scores == {"Chat": pytest.approx(0.8), "Reasoning": pytest.approx(0.675)}
    # overall = (0.8 + 0.675) / 2 = 0.7375
    assert M.mean_of_sections(scores) == pytest.approx(0.7375)
    # with plain counts instead, Reasoning = (0.5*447 + 0.8*164 + 0.9*164) / 775 = 502.3 / 775
    by_count = M.section_scores(
        acc, M.section_weights({"R": dict.fromkeys(["math-prm", "hep-go", "hep-py"])}, counts)
    )
    assert by_count["R"] == pytest.approx(502.3 / 775)


def test_section_scores_work_on_resample_arrays():
    acc = {"a": np.array([1.0, 0.5]), "b": np.array([0.0, 0.5])}
    scores = M.section_scores(acc, {"S": {"a": 3.0, "b": 1.0}})
    # resample 0: (1*3 + 0*1)/4 = 0.75 ; resample 1: (0.5*3 + 0.5)/4 = 0.5
    np.testing.assert_allclose(scores["S"], [0.75, 0.5])


def test_percentile_ci_by_hand():
    # numpy linear percentile of 1..100: position p/100 * 99; 2.5% -> 2.475 -> 3 + 0.475 ; 97.5% -> 96.525 -> 97.525
    lo, hi = M.percentile_ci(np.arange(1, 101))
    assert (lo, hi) == (pytest.approx(3.475), pytest.approx(97.525))


def test_bootstrap_is_seeded_stratified_and_reproducible():
    values = np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=float)
    labels = ["a", "a", "a", "a", "b", "b", "b", "b"]
    one = M.bootstrap_group_means(values, labels, n_boot=50, seed=3)
    two = M.bootstrap_group_means(values, labels, n_boot=50, seed=3)
    other = M.bootstrap_group_means(values, labels, n_boot=50, seed=4)
    assert list(one) == ["a", "b"] and one["a"].shape == (50,)
    np.testing.assert_array_equal(one["a"], two["a"])
    assert not np.array_equal(one["a"], other["a"])
    # each resample keeps the subset's 4 items, so every mean is a multiple of 1/4
    np.testing.assert_allclose(one["b"] * 4, np.round(one["b"] * 4))
    const = M.bootstrap_group_means(np.ones(5), ["x"] * 5, n_boot=20, seed=0)
    assert const["x"].tolist() == [1.0] * 20


def test_mean_stats_ci_contains_the_point_and_has_the_textbook_width():
    values = np.array([1.0, 0.0] * 200)  # p = 0.5, n = 400: standard error 0.025, so CI ~ 0.5 ± 0.049
    labels = ["s"] * 400
    overall, per, boot = M.mean_stats(values, labels, n_boot=2000, seed=0)
    assert overall["value"] == 0.5 and overall["ci_low"] < 0.5 < overall["ci_high"]
    assert 0.445 < overall["ci_low"] < 0.47 and 0.53 < overall["ci_high"] < 0.555
    assert per == {"s": overall} and boot["s"].shape == (2000,)
    assert M.mean_stats(values, labels, n_boot=2000, seed=0)[0] == overall  # seeded: reproducible
    assert M.mean_stats(values, labels, n_boot=0, seed=0) == (
        {"value": 0.5, "ci_low": None, "ci_high": None},
        {"s": {"value": 0.5, "ci_low": None, "ci_high": None}},
        None,
    )


def test_mean_stats_overall_is_the_count_weighted_mean_of_label_resamples():
    # a: [1, 1] always resamples to 1 ; b: [0, 0, 0, 1] ; overall = (2*1 + 4*mean_b) / 6
    values, labels = np.array([1, 1, 0, 0, 0, 1.0]), ["a", "a", "b", "b", "b", "b"]
    overall, per, boot = M.mean_stats(values, labels, n_boot=300, seed=1)
    assert overall["value"] == pytest.approx(0.5) and per["a"] == {
        "value": 1.0,
        "ci_low": 1.0,
        "ci_high": 1.0,
    }
    assert (overall["ci_low"], overall["ci_high"]) == M.percentile_ci((2 * boot["a"] + 4 * boot["b"]) / 6)


def test_paired_comparison_by_hand_and_pairing_removes_shared_noise():
    ours = np.array([1, 1, 0, 1, 0.5])
    theirs = np.array([1, 0, 0, 1, 0.0])
    # per-item differences 0, 1, 0, 0, 0.5 -> mean 1.5 / 5 = 0.3 (= 3.5/5 - 2/5); all >= 0, so every resample >= 0
    res = M.paired_comparison(ours, theirs, ["s"] * 5, n_boot=500, seed=0)
    assert (res["this"], res["baseline"], res["n_matched"]) == (pytest.approx(0.7), pytest.approx(0.4), 5)
    assert res["diff"]["value"] == pytest.approx(0.3)
    assert 0.0 <= res["diff"]["ci_low"] <= 0.3 <= res["diff"]["ci_high"]
    assert (res["better"], res["worse"]) == (2, 0)
    assert res["subsets"]["s"]["diff"] == res["diff"]
    # the same model twice: differences all 0 -> CI exactly [0, 0], though each accuracy alone is uncertain
    x = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    same = M.paired_comparison(x, x, ["s"] * 6, n_boot=200, seed=0)["diff"]
    assert same == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    alone = M.mean_stats(x, ["s"] * 6, n_boot=200, seed=0)[0]
    assert alone["ci_high"] - alone["ci_low"] > 0.3


def test_paired_comparison_per_subset_by_hand():
    # subset a: ours (1, 1, 0), theirs (0, 1, 0): n 3, 2/3 vs 1/3, diff 1/3; b: (1, 0) vs (0, 1): 1/2 vs 1/2, 0
    ours, theirs = [1.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0]
    labels = ["a", "a", "a", "b", "b"]
    res = M.paired_comparison(ours, theirs, labels, n_boot=300, seed=3)
    a, b = res["subsets"]["a"], res["subsets"]["b"]
    assert (a["n"], a["this"], a["baseline"]) == (3, pytest.approx(2 / 3), pytest.approx(1 / 3))
    assert (b["n"], b["this"], b["baseline"]) == (2, 0.5, 0.5)
    assert a["diff"]["value"] == pytest.approx(1 / 3) and b["diff"]["value"] == 0.0
    # the interval is the seeded bootstrap of the per-item differences, the same as mean_stats gives
    diff = np.array(ours) - np.array(theirs)
    assert res["diff"] == M.mean_stats(diff, labels, n_boot=300, seed=3)[0]
    assert res == M.paired_comparison(ours, theirs, labels, n_boot=300, seed=3)


def test_small_correlations_and_integer_labels():
    assert M.pearson([1.0, 2.0], [3.0, 5.0]) == pytest.approx(1.0)  # two points are perfectly correlated
    # tiny spreads (the denominator far below 1): Σdxdy 7.6667e-4 / sqrt(4.6667e-4 * 1.26667e-3) = 0.99718
    assert M.pearson([0.0, 0.01, 0.03], [0.0, 0.02, 0.05]) == pytest.approx(0.99718, abs=1e-5)
    assert M.auroc([0.9, 0.4, 0.4, 0.1], [1, 1, 0, 0]) == 0.875  # 0/1 labels are classes, not indices


def test_pair_confidence_is_the_predicted_winners_probability():
    margins = np.array([math.log(3), -math.log(3), 0.0, math.log(9)])
    conf, correct = M.pair_confidence(margins)
    # sigmoid(ln 3) = 0.75 either way round; tie -> 0.5 and wrong; sigmoid(ln 9) = 9/10
    np.testing.assert_allclose(conf, [0.75, 0.75, 0.5, 0.9])
    assert correct.tolist() == [True, False, False, True]


def test_reliability_table_and_ece_by_hand():
    # 5 bins of width 0.1 on [0.5, 1]:
    #   bin          items (conf, right)         count  mean conf  accuracy  |gap|
    #   [0.5, 0.6)   (0.55, 1) (0.58, 0)         2      0.565      0.5       0.065
    #   [0.6, 0.7)   (0.65, 1)                   1      0.65       1.0       0.35
    #   [0.7, 0.8)   (0.75, 1) (0.78, 0)         2      0.765      0.5       0.265
    #   [0.8, 0.9)   -                           0      -          -         -
    #   [0.9, 1.0]   (0.95, 1)                   1      0.95       1.0       0.05
    # ECE = (2*0.065 + 1*0.35 + 2*0.265 + 1*0.05) / 6 = 1.06 / 6 = 0.17667
    conf = np.array([0.55, 0.58, 0.65, 0.75, 0.78, 0.95])
    right = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    table = M.reliability_table(conf, right, n_bins=5)
    assert [r["count"] for r in table] == [2, 1, 2, 0, 1]
    assert [r["mean_confidence"] for r in table] == [
        pytest.approx(0.565),
        pytest.approx(0.65),
        pytest.approx(0.765),
        None,
        pytest.approx(0.95),
    ]
    assert [r["accuracy"] for r in table] == [0.5, 1.0, 0.5, None, 1.0]
    assert (table[0]["bin_low"], table[-1]["bin_high"]) == (0.5, 1.0)
    assert M.expected_calibration_error(table) == pytest.approx(1.06 / 6)


def test_reliability_table_edges_go_to_the_first_and_last_bins():
    table = M.reliability_table(np.array([0.5, 1.0]), np.array([False, True]), n_bins=5)
    assert [r["count"] for r in table] == [1, 0, 0, 0, 1]
    # an inner edge belongs to the bin it opens: 0.6 to [0.6, 0.7)
    table = M.reliability_table(np.array([0.6, 0.8]), np.array([True, True]), n_bins=5)
    assert [r["count"] for r in table] == [0, 1, 0, 1, 0]


def test_pearson_and_spearman_by_hand():
    # x = 1..4, y = 2,4,5,9: dx = -1.5,-.5,.5,1.5 ; dy = -3,-1,0,4 ; sum dx*dy = 11, sum dx^2 = 5, sum dy^2 = 26
    assert M.pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(130))
    assert M.spearman([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(1.0)
    # ties: ranks x = 1, 2.5, 2.5, 4 ; y = 1, 3, 2, 4 -> rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert M.average_ranks(np.array([10, 20, 20, 30])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert M.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))
    assert M.pearson([1, 1, 1], [1, 2, 3]) is None


def test_relative_length_diff_and_buckets():
    # (10-5)/10 = 0.5 ; (5-10)/10 = -0.5 ; both empty -> 0
    np.testing.assert_allclose(M.relative_length_diff([10, 5, 0], [5, 10, 0]), [0.5, -0.5, 0.0])
    # buckets: d < -0.5 | [-0.5, -0.1) | [-0.1, 0.1) | [0.1, 0.5) | d >= 0.5
    idx = M.bucket_index([-0.6, -0.5, -0.1, 0.0, 0.1, 0.5, 0.7])
    assert idx.tolist() == [0, 1, 2, 2, 3, 4, 4]
    assert M.bucket_labels() == [
        "d < -0.5",
        "-0.5 <= d < -0.1",
        "-0.1 <= d < 0.1",
        "0.1 <= d < 0.5",
        "d >= 0.5",
    ]


def test_longer_answer_baseline_is_item_credit_on_lengths():
    # a pair of equal lengths counts wrong; best-of-4 with the chosen answer longest scores 1
    assert M.item_credit([12.0], [12.0]) == 0.0
    assert M.item_credit([30.0], [10.0, 20.0, 5.0]) == 1.0


def test_judge_stats_aggregates_only_what_is_reported():
    subs = [
        {M.ORDER_CONSISTENT: 1.0, M.PARSE_FAILED: 0.0},
        {M.ORDER_CONSISTENT: 0.0},
        {M.PARSE_FAILED: 0.5},  # one of the judge's two outputs (both answer orders) failed to parse
        {},
    ]
    # order: 2 report it, mean (1 + 0) / 2 ; parse: 2 report it, 1 with any failure, mean (0 + 0.5) / 2
    assert M.judge_stats(subs) == {
        "order_consistent": {"reported": 2, "rate": 0.5},
        "parse_failed": {"reported": 2, "count": 1, "rate": 0.25},
    }
    assert M.judge_stats([{}, {"helpfulness": 3.0}]) is None
    # one of the two reported, the other None (not 0, not "")
    assert M.judge_stats([{M.PARSE_FAILED: 1.0}]) == {
        "order_consistent": None,
        "parse_failed": {"reported": 1, "count": 1, "rate": 1.0},
    }


def test_truncation_stats_counts_items_and_conversations():
    assert M.truncation_stats([[False, False], [True, False, True], [False]]) == {
        "items_truncated": 1,
        "conversations_truncated": 2,
        "conversations": 6,
    }
