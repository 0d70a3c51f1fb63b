"""RewardBench's own scoring rules where they differ from plain accuracy (pure functions).

* RewardBench 2's **Ties** subset (`rewardbench/utils.py: process_single_model`): items come in
  pairs sharing a prompt number, "ref:N" (one correct answer) and "tied:N" (several equally correct
  answers). The subset's score is 0.30 tied accuracy + 0.30 ref accuracy + 0.20 "correct answers
  closer to each other than to the best wrong one" + 0.20 the same against the smaller of the
  ref/tied margins + 0.01 a tanh tie-break term; an item is accurate when its worst correct answer
  beats its best wrong one.
* Section files with explicit weights (RewardBench's fixed `EXAMPLE_COUNTS`) weight subsets by those
  counts whatever the rows present, and with `missing_subsets: skip` a subset absent from the data
  is left out of its section, as RewardBench's `calculate_scores_per_section` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TIES = "ties"


def is_ties_subset(name: str) -> bool:
    return name.lower() == TIES


def ties_score(
    ids: Sequence[str | None], chosen: Sequence[Sequence[float]], rejected: Sequence[Sequence[float]]
) -> float | None:
    """RewardBench 2's Ties score of one model, or None when the ids are not "ref:N"/"tied:N".

    Args:
        ids: each item's `id` ("ref:12", "tied:12").
        chosen, rejected: each item's scores of its correct and its wrong answers.

    Example:
        >>> ties_score(["ref:0", "tied:0"], [[3.0], [3.0, 2.9]], [[1.0], [1.0]])  # all accurate, tight
        1.01
    """
    stats: dict[str, dict[int, tuple[bool, float | None, float]]] = {"ref": {}, "tied": {}}
    for item_id, good, bad in zip(ids, chosen, rejected, strict=True):
        kind, _, number = str(item_id).partition(":")
        if kind not in stats or not number.lstrip("-").isdigit():
            return None
        worst_good, best_bad = min(good), max(bad)
        spread = max(good) - worst_good if len(good) > 1 else None
        stats[kind][int(number)] = (worst_good - best_bad > 0, spread, worst_good - best_bad)
    ref_acc = float(np.mean([s[0] for s in stats["ref"].values()])) if stats["ref"] else 0.0
    tied_acc = float(np.mean([s[0] for s in stats["tied"].values()])) if stats["tied"] else 0.0
    both = sorted(set(stats["ref"]) & set(stats["tied"]))
    spread = np.array([stats["tied"][p][1] for p in both], dtype=float)
    gap_tied = np.array([stats["tied"][p][2] for p in both], dtype=float)
    gap_ref = np.array([stats["ref"][p][2] for p in both], dtype=float)
    if both:
        preferred = float(np.mean(gap_tied > spread))
        preferred_hard = float(np.mean(np.minimum(gap_ref, gap_tied) > spread))
        with np.errstate(divide="ignore", invalid="ignore"):
            tie_break = float(
                np.mean(np.nan_to_num(np.tanh(np.minimum(gap_ref, gap_tied) / spread - 1), nan=0.0))
            )
    else:
        preferred = preferred_hard = tie_break = 0.0
    return 0.30 * tied_acc + 0.30 * ref_acc + 0.20 * preferred + 0.20 * preferred_hard + 0.01 * tie_break


def missing_subsets_rule(raw: dict) -> str:
    """A section file's `missing_subsets` setting: "error" (the default) or "skip"."""
    rule = raw.get("missing_subsets", "error")
    return rule if rule in ("error", "skip") else "invalid"


def skip_missing(
    sections: dict[str, dict[str, float | None]], present: set[str]
) -> tuple[dict[str, dict[str, float | None]], list[str]]:
    """Sections without the subsets the data lacks (sections left empty are dropped), and warnings."""
    kept, warnings = {}, []
    for name, subs in sections.items():
        have = {s: w for s, w in subs.items() if s in present}
        gone = [s for s in subs if s not in present]
        if gone:
            warnings.append(
                f"section '{name}': subsets not in the data, left out (RewardBench's rule): {', '.join(gone)}"
            )
        if have:
            kept[name] = have
        else:
            warnings.append(f"section '{name}': none of its subsets are in the data; the section is left out")
    return kept, warnings
