"""The maths of step-level evaluation: pure functions, tested against hand-worked numbers.

Conventions, stated once:

* A step's **label** is good when >= 0.5 (soft labels are rounded); unlabelled steps (None/NaN)
  are left out of every step metric. A step is **predicted** good when its score >= threshold.
* **F1 on bad steps**: the positive class is "bad" (what a verifier must catch).
* **First error** of a solution: the index of its first bad step, -1 when none is bad. The
  predicted first error is the first step scored under the threshold (-1 when none is).
* **ProcessBench F1**: accuracy on erroneous solutions (predicted first error == the true one) and
  on correct ones (predicted -1), and their harmonic mean.
* **AUROC** of step scores for good vs bad steps, ties counted half (the Mann-Whitney statistic).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewardkit.eval import metrics as M


def _labelled(scores: Sequence[float], labels: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    y = np.asarray([np.nan if v is None else v for v in labels], dtype=float)
    keep = ~np.isnan(y)
    return s[keep], y[keep] >= 0.5


def step_accuracy(scores: Sequence[float], labels: Sequence[float | None], threshold: float = 0.5) -> float:
    """Fraction of labelled steps whose predicted class (score >= threshold: good) is their label's."""
    s, good = _labelled(scores, labels)
    return float(np.mean((s >= threshold) == good)) if len(s) else float("nan")


def bad_step_f1(scores: Sequence[float], labels: Sequence[float | None], threshold: float = 0.5) -> float:
    """F1 of "bad step" detection (positive: label bad; predicted positive: score < threshold)."""
    s, good = _labelled(scores, labels)
    pred_bad, bad = s < threshold, ~good
    tp = float(np.sum(pred_bad & bad))
    denom = float(np.sum(pred_bad) + np.sum(bad))
    return 2 * tp / denom if denom else float("nan")


def auroc(scores: Sequence[float], labels: Sequence[float | None]) -> float:
    """P(a good step scores above a bad one), ties half; NaN without both classes."""
    value = M.auroc(*_labelled(scores, labels))
    return float("nan") if value is None else value


def first_error(labels: Sequence[float | None]) -> int:
    """Index of the first bad labelled step, -1 when there is none."""
    for i, v in enumerate(labels):
        if v is not None and not np.isnan(v) and v < 0.5:
            return i
    return -1


def predicted_first_error(scores: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first step scored under `threshold`, -1 when none is."""
    for i, s in enumerate(scores):
        if s < threshold:
            return i
    return -1


def first_error_stats(
    step_scores: Sequence[Sequence[float]],
    step_labels: Sequence[Sequence[float | None]],
    threshold: float = 0.5,
) -> dict[str, float]:
    """ProcessBench's metric over solutions: accuracy on erroneous, on correct, their harmonic mean (F1),
    and the plain first-error accuracy over all solutions."""
    pred = np.array([predicted_first_error(s, threshold) for s in step_scores])
    true = np.array([first_error(y) for y in step_labels])
    hit = pred == true
    err, cor = true >= 0, true < 0
    acc_err = float(hit[err].mean()) if err.any() else float("nan")
    acc_cor = float(hit[cor].mean()) if cor.any() else float("nan")
    if np.isnan(acc_err) or np.isnan(
        acc_cor
    ):  # one class absent: F1 undefined (e.g. all solutions erroneous)
        f1 = float("nan")
    else:
        f1 = 2 * acc_err * acc_cor / (acc_err + acc_cor) if acc_err + acc_cor > 0 else 0.0
    return {
        "first_error_accuracy": float(hit.mean()) if len(hit) else float("nan"),
        "erroneous_accuracy": acc_err,
        "correct_accuracy": acc_cor,
        "processbench_f1": float(f1),
    }


def best_threshold(
    step_scores: Sequence[Sequence[float]], step_labels: Sequence[Sequence[float | None]]
) -> float:
    """The threshold maximising ProcessBench F1 on a (validation) set, searched over 0.01 ... 0.99
    (the first best); where F1 is undefined (only erroneous or only correct solutions), the
    threshold maximising the first-error accuracy instead."""
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    stats = [first_error_stats(step_scores, step_labels, float(t)) for t in grid]
    f1s = np.array([s["processbench_f1"] for s in stats])
    if np.isnan(f1s).all():
        f1s = np.array([s["first_error_accuracy"] for s in stats])
    return float(grid[int(np.nanargmax(f1s))])
