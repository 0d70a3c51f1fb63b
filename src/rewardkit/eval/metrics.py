"""The maths of `rewardkit eval`: pure functions on lists and numpy arrays.

Every function here is tested against numbers worked out by hand in `tests/unit/test_metrics.py`.
The rules, stated once:

* **Credit of an item.** A pair (one chosen, one rejected answer) is right when the chosen score is
  strictly higher: a tie counts wrong (RewardBench v1). Any other item (N-way: several rejected
  and/or several chosen answers) gets RewardBench 2's best-of-N credit, generalised to several
  chosen answers: with ``k`` answers sharing the top score, of which ``c`` are chosen answers, the
  credit is ``c / k`` -- the chance that picking the top-scored answer, ties broken at random,
  picks a chosen one. So one chosen answer alone on top scores 1, one chosen tied with ``k - 1``
  rejected scores ``1/k``, and any rejected answer strictly above every chosen one scores 0.
* **Margin of an item:** best chosen score minus best rejected score (for a pair, chosen - rejected).
  Ties and near ties, calibration and the margin plot all read this number. A near tie is
  ``|margin| < tol``; `rewardkit eval` sets tol = 1e-3 x the std of all scores in the run, so it
  means the same for logits and for 1-10 ratings.
* **Length** is `Score.num_tokens` when the model reports it for every conversation (the whole
  conversation; the shared prompt cancels within an item), else the answer's characters. Length
  buckets use d = (chosen - rejected) / longer; N-way items use each side's mean length.
* **Calibration** is symmetric: ``p = sigmoid(margin)`` is the model's P(chosen wins); the
  confidence is that of the predicted winner, ``max(p, 1 - p)``, and the prediction is right when
  ``margin > 0``. (Measured as P(chosen) against labels that always say "chosen", every bit of
  honest uncertainty would count as miscalibration.) Bins are equal-width on [0.5, 1].
* **Bootstrap** resamples items with replacement *within each subset* (stratified), so every
  resample keeps each subset's size and a section score always has all its subsets; the interval
  is the percentile interval of the resampled statistic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardkit.scorers.base import Score

# Keys a generative judge may put in `Score.sub_scores`; `rewardkit eval` only aggregates them.
ORDER_CONSISTENT = "order_consistent"  # 1.0 when the verdict held with the answers swapped, else 0.0
PARSE_FAILED = "parse_failed"  # share of the judge's outputs that could not be parsed (0.0 .. 1.0)

DEFAULT_LENGTH_EDGES = (-0.5, -0.1, 0.1, 0.5)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """The logistic function, without overflow for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def item_credit(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Credit in [0, 1] for one item (rules in the module docstring).

    Example:
        >>> item_credit([2.0], [1.0]), item_credit([2.0], [2.0]), item_credit([2.0], [2.0, 2.0, 1.0])
        (1.0, 0.0, 0.3333333333333333)
    """
    if len(chosen) == 1 and len(rejected) == 1:
        return 1.0 if chosen[0] > rejected[0] else 0.0
    top = max(max(chosen), max(rejected))
    on_top_chosen = sum(1 for s in chosen if s == top)
    on_top = on_top_chosen + sum(1 for s in rejected if s == top)
    return on_top_chosen / on_top


def item_margin(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Best chosen score minus best rejected score."""
    return float(max(chosen) - max(rejected))


@dataclass
class ItemScores:
    """A model's verdict on one item: scores and lengths of its chosen and rejected answers.

    Lengths are in the run's unit (tokens or characters); `truncated` and `sub_scores` hold one
    entry per scored conversation, chosen answers first.
    """

    source: str
    subset: str
    chosen: list[float]
    rejected: list[float]
    chosen_len: list[float]
    rejected_len: list[float]
    truncated: list[bool]
    sub_scores: list[dict[str, float]]
    id: str | int | None = None

    @classmethod
    def from_scores(
        cls,
        source: str,
        subset: str,
        scores: list[Score],
        lengths: list[float],
        *,
        n_chosen: int,
        item_id: str | int | None = None,
    ):
        vals = [float(s.score) for s in scores]
        return cls(
            source,
            subset,
            vals[:n_chosen],
            vals[n_chosen:],
            lengths[:n_chosen],
            lengths[n_chosen:],
            [bool(s.truncated) for s in scores],
            [dict(s.sub_scores) for s in scores],
            item_id,
        )

    @property
    def credit(self) -> float:
        return item_credit(self.chosen, self.rejected)

    @property
    def margin(self) -> float:
        return item_margin(self.chosen, self.rejected)

    def as_row(self) -> dict:
        return {
            **({"id": self.id} if self.id is not None else {}),
            "source": self.source,
            "subset": self.subset,
            "chosen_scores": self.chosen,
            "rejected_scores": self.rejected,
            "correct": self.credit,
            "margin": self.margin,
            "truncated": any(self.truncated),
        }


def tie_rates(margins: np.ndarray, tol: float) -> tuple[float, float]:
    """(share of items with margin exactly 0, share with |margin| < tol)."""
    m = np.asarray(margins, dtype=float)
    return float(np.mean(m == 0.0)), float(np.mean(np.abs(m) < tol))


def group_means(values: np.ndarray, labels: Sequence[Hashable]) -> dict[Hashable, float]:
    """Mean of `values` per label, labels in sorted order."""
    values = np.asarray(values, dtype=float)
    labels_arr = np.asarray(labels, dtype=object)
    return {g: float(values[labels_arr == g].mean()) for g in sorted(set(labels))}


def weighted_mean(parts: Mapping[Hashable, Any], weights: Mapping[Hashable, float]) -> Any:
    """sum(w * part) / sum(w) over the keys of `weights`; parts may be floats or arrays of resamples."""
    total = float(sum(weights.values()))
    return sum(parts[k] * w for k, w in weights.items()) / total


# ---------------------------------------------------------------------------------------- sections


def check_sections(
    sections: Mapping[str, Mapping[str, float | None]], data_subsets: Sequence[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Compare a section file with the subsets in the data.

    Returns:
        (missing, unused): ``(section, subset)`` pairs the file lists but the data lacks (an error:
        that section's score would not mean what the file says), and data subsets no section lists
        (a warning: they count in the per-subset table and overall accuracy, not in section scores).
    """
    present = set(data_subsets)
    missing = [(sec, sub) for sec, subs in sections.items() for sub in subs if sub not in present]
    listed = {sub for subs in sections.values() for sub in subs}
    return missing, sorted(present - listed)


def section_weights(
    sections: Mapping[str, Mapping[str, float | None]], subset_counts: Mapping[str, int]
) -> dict[str, dict[str, float]]:
    """Weight of each subset inside its section: the given weight, else its number of examples.

    RewardBench v1's rule is "inside a section, weight subsets by example count"; a section file
    can override the counts (RewardBench v1 counts math-prm as 984 examples, the six hep-* subsets
    together, so it weighs as much as all the code subsets).
    """
    return {
        sec: {sub: float(subset_counts[sub] if w is None else w) for sub, w in subs.items()}
        for sec, subs in sections.items()
    }


def section_scores(
    subset_acc: Mapping[str, Any], weights: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """Score of each section: the weighted mean of its subsets' accuracies (floats or resample arrays)."""
    return {sec: weighted_mean(subset_acc, w) for sec, w in weights.items()}


def mean_of_sections(scores: Mapping[str, Any]) -> Any:
    """The overall score: the plain mean of the section scores."""
    return sum(scores.values()) / len(scores)


# --------------------------------------------------------------------------------------- bootstrap


def bootstrap_group_means(
    values: np.ndarray, labels: Sequence[Hashable], n_boot: int, seed: int
) -> dict[Hashable, np.ndarray]:
    """Stratified bootstrap: for each label, `n_boot` means of its items resampled with replacement.

    Resampling one array of per-item differences (model A's credit minus model B's on the same
    items) with this function is the paired bootstrap: both models see the same resampled items.

    Returns:
        label -> array of shape (n_boot,), labels in sorted order (the order the generator is used).
    """
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=float)
    labels_arr = np.asarray(labels, dtype=object)
    out = {}
    for g in sorted(set(labels)):
        x = values[labels_arr == g]
        rows = max(1, 4_000_000 // len(x))  # bound memory at ~32 MB of indices per chunk
        chunks = []
        for start in range(0, n_boot, rows):
            idx = rng.integers(0, len(x), size=(min(rows, n_boot - start), len(x)))
            chunks.append(x[idx].mean(axis=1))
        out[g] = np.concatenate(chunks) if chunks else np.empty(0)
    return out


def percentile_ci(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap resamples (numpy's linear interpolation between order statistics)."""
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(np.asarray(boot, dtype=float), [tail, 100.0 - tail])
    return float(lo), float(hi)


def ci_stat(point: float, boot: np.ndarray | None) -> dict:
    """{"value", "ci_low", "ci_high"}: a point estimate with its percentile interval (None without resamples)."""
    lo, hi = (None, None) if boot is None else percentile_ci(boot)
    return {"value": float(point), "ci_low": lo, "ci_high": hi}


def mean_stats(
    values: np.ndarray, labels: Sequence[Hashable], n_boot: int, seed: int
) -> tuple[dict, dict[Hashable, dict], dict[Hashable, np.ndarray] | None]:
    """The mean of `values` overall and per label, each with a 95% CI (stratified bootstrap).

    Returns:
        (overall `ci_stat`, {label: `ci_stat`}, the resampled means per label, or None if n_boot == 0).
    """
    values = np.asarray(values, dtype=float)
    boot = bootstrap_group_means(values, labels, n_boot, seed) if n_boot else None
    overall = ci_stat(values.mean(), None if boot is None else weighted_mean(boot, Counter(labels)))
    per = {g: ci_stat(m, None if boot is None else boot[g]) for g, m in group_means(values, labels).items()}
    return overall, per, boot


def paired_comparison(
    ours: np.ndarray, theirs: np.ndarray, labels: Sequence[Hashable], n_boot: int, seed: int
) -> dict:
    """Two models' credit on the same items: accuracies, and this-minus-baseline with a paired bootstrap CI.

    The per-item differences are resampled, so both models always see the same resampled items and
    the interval reflects only the items where they disagree.
    """
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    diff = ours - theirs
    overall, per, _ = mean_stats(diff, labels, n_boot, seed)
    lab = np.asarray(labels, dtype=object)
    subsets = {
        g: {
            "n": int((lab == g).sum()),
            "this": float(ours[lab == g].mean()),
            "baseline": float(theirs[lab == g].mean()),
            "diff": stat,
        }
        for g, stat in per.items()
    }
    return {
        "n_matched": len(diff),
        "this": float(ours.mean()),
        "baseline": float(theirs.mean()),
        "diff": overall,
        "better": int((diff > 0).sum()),
        "worse": int((diff < 0).sum()),
        "subsets": subsets,
    }


# ------------------------------------------------------------------------------------- calibration


def pair_confidence(margins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted winner, whether that prediction is right) for each item."""
    m = np.asarray(margins, dtype=float)
    return sigmoid(np.abs(m)), m > 0


def reliability_table(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> list[dict]:
    """Equal-width bins on [0.5, 1]: each row is bin edges, count, mean confidence, empirical accuracy.

    Bins are closed on the left, the last one on both sides; empty bins have None for the means.
    """
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        rows.append(
            {
                "bin_low": float(edges[b]),
                "bin_high": float(edges[b + 1]),
                "count": n,
                "mean_confidence": float(conf[sel].mean()) if n else None,
                "accuracy": float(ok[sel].mean()) if n else None,
            }
        )
    return rows


def expected_calibration_error(table: Sequence[Mapping[str, Any]]) -> float:
    """ECE = sum over bins of (count / total) * |accuracy - mean confidence|."""
    total = sum(r["count"] for r in table)
    return float(
        sum(r["count"] / total * abs(r["accuracy"] - r["mean_confidence"]) for r in table if r["count"])
    )


# ------------------------------------------------------------------------------------- length bias


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation; None when either side is constant (or has fewer than 2 values)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if len(x) > 1 and denom > 0 else None


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    x = np.asarray(x, dtype=float)
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    _, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, weights=ranks) / np.bincount(inverse))[inverse]


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for the `positive` items (Mann-Whitney U / (n_pos·n_neg)).

    A tie between a positive and a negative counts 1/2. None when either class is empty.

    Example:
        >>> auroc([0.9, 0.4, 0.4, 0.1], [True, True, False, False])  # (2 + 1.5) / 4
        0.875
    """
    s = np.asarray(scores, dtype=float)
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return None
    rank_sum = average_ranks(s)[pos].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman correlation: Pearson on average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def relative_length_diff(chosen_len: np.ndarray, rejected_len: np.ndarray) -> np.ndarray:
    """(chosen - rejected) / the longer of the two, in [-1, 1]; 0 when both are empty."""
    c, r = np.asarray(chosen_len, dtype=float), np.asarray(rejected_len, dtype=float)
    longer = np.maximum(np.maximum(c, r), 1e-12)
    return (c - r) / longer


def bucket_labels(edges: Sequence[float] = DEFAULT_LENGTH_EDGES) -> list[str]:
    """Names of the buckets `bucket_index` uses, e.g. ['d < -0.5', '-0.5 <= d < -0.1', ..., 'd >= 0.5']."""
    names = [f"d < {edges[0]:g}"]
    names += [f"{lo:g} <= d < {hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return names + [f"d >= {edges[-1]:g}"]


def bucket_index(values: np.ndarray, edges: Sequence[float] = DEFAULT_LENGTH_EDGES) -> np.ndarray:
    """Bucket of each value: i such that edges[i-1] <= value < edges[i] (0 and len(edges) at the ends)."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="right")


# ------------------------------------------------------------------------ judges and truncation


def judge_stats(sub_scores: Sequence[Mapping[str, float]]) -> dict | None:
    """Aggregate generative-judge details over scored conversations; None when no score reports them.

    Returns:
        {"order_consistent": {"reported": n, "rate": mean} | None,
         "parse_failed": {"reported": n, "count": conversations with any failure, "rate": mean} | None}
    """
    out: dict[str, dict | None] = {}
    for key in (ORDER_CONSISTENT, PARSE_FAILED):
        vals = np.array([float(s[key]) for s in sub_scores if key in s])
        if not len(vals):
            out[key] = None
        elif key == ORDER_CONSISTENT:
            out[key] = {"reported": len(vals), "rate": float(vals.mean())}
        else:
            out[key] = {"reported": len(vals), "count": int((vals > 0).sum()), "rate": float(vals.mean())}
    return out if any(out.values()) else None


def truncation_stats(truncated: Sequence[Sequence[bool]]) -> dict:
    """Counts from per-item lists of `Score.truncated` flags (one flag per scored conversation)."""
    return {
        "items_truncated": sum(1 for flags in truncated if any(flags)),
        "conversations_truncated": sum(sum(1 for f in flags if f) for flags in truncated),
        "conversations": sum(len(flags) for flags in truncated),
    }
