"""Step metrics against numbers worked out by hand."""

import math

import pytest

from rewardkit.core.steps import aggregate
from rewardkit.eval.prm_metrics import (
    auroc,
    bad_step_f1,
    best_threshold,
    first_error_stats,
    predicted_first_error,
    step_accuracy,
)
from rewardkit.train.prm import soft_step_loss

SCORES = [0.9, 0.2, 0.6, 0.4]
LABELS = [1.0, 0.0, 0.0, None]  # the last step is unlabelled and left out


def test_step_accuracy_and_bad_f1():
    # predicted good: 0.9, 0.6 -> right, wrong; predicted bad: 0.2 -> right. 2 of 3.
    assert step_accuracy(SCORES, LABELS) == pytest.approx(2 / 3)
    # bad steps: 0.2 (caught), 0.6 (missed); predicted bad: 0.2. tp 1, precision 1, recall 1/2 -> F1 2/3.
    assert bad_step_f1(SCORES, LABELS) == pytest.approx(2 / 3)


def test_auroc_counts_ties_half():
    # good {0.9, 0.5}, bad {0.5, 0.1}: pairs (0.9>0.5) (0.9>0.1) (0.5=0.5: 1/2) (0.5>0.1) -> 3.5 / 4
    assert auroc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))


def test_first_error_and_processbench_f1():
    assert predicted_first_error([0.9, 0.4, 0.1]) == 1 and predicted_first_error([0.9, 0.8]) == -1
    scores = [[0.9, 0.3], [0.9, 0.8, 0.2], [0.8, 0.9], [0.3, 0.9]]
    labels = [[1, 0], [1, 0, 0], [1, 1], [1, 1]]
    stats = first_error_stats(scores, labels)
    # erroneous: first two, predicted 1 (true 1) and 2 (true 1) -> 1/2; correct: 1 of 2 -> 1/2; F1 = 1/2.
    assert stats == {
        "first_error_accuracy": 0.5,
        "erroneous_accuracy": 0.5,
        "correct_accuracy": 0.5,
        "processbench_f1": 0.5,
    }
    # t in (0.8, 0.9] finds both errors but flags both correct solutions (F1 0); t <= 0.3 misses
    # solution 1 (F1 0); every t in (0.3, 0.8] gives 1/2 and 1/2: the search returns the first, 0.31.
    assert best_threshold(scores, labels) == 0.31


def test_aggregates():
    assert aggregate([0.5, 0.25, 1.0], "min") == 0.25
    assert aggregate([0.5, 0.25, 1.0], "prod") == 0.125
    assert aggregate([0.5, 0.25, 1.0], "last") == 1.0
    assert aggregate([0.5, 0.25, 0.75], "mean") == 0.5


def test_soft_step_loss_by_hand():
    import torch

    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)], [5.0, -5.0]])
    # target 1 on [0,0]: ln 2; target 0.25 on p(good)=3/4: -(0.25 ln .75 + .75 ln .25); NaN left out
    labels = torch.tensor([1.0, 0.25, float("nan")])
    expected = (math.log(2) - (0.25 * math.log(0.75) + 0.75 * math.log(0.25))) / 2
    assert soft_step_loss(logits, labels).item() == pytest.approx(expected, abs=1e-6)


def test_processbench_f1_is_undefined_without_correct_solutions():
    stats = first_error_stats([[0.9, 0.2]], [[1, 0]])
    assert stats["erroneous_accuracy"] == 1.0 and math.isnan(stats["correct_accuracy"])
    assert math.isnan(stats["processbench_f1"])
