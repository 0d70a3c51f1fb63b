"""Eval's reports on reward-hacking defences: ensemble disagreement and calibrated probabilities.

* **Ensembles** (a checkpoint from `rewardkit train --ensemble_size K`, whose `Score.sub_scores`
  carry `ensemble_std` and `member_i`): each pair's disagreement is the std across members of the
  member margins (member_i(chosen) − member_i(rejected)). Reported: the AUROC of that
  disagreement for predicting the pairs the model ranks wrong (0.5 = uninformative), the same for
  the members' mutual information (disagreement measured on P(chosen wins), where the ranking is
  decided) and for −|mean margin| (the ensemble's own confidence, which any disagreement signal has
  to beat to add something), and the accuracy of each aggregate (mean, min, mean − λ·std) and of
  each member.
* **Calibration** (`--calibrated`, a checkpoint from `rewardkit train --calibrate`): the ECE of
  P(chosen wins) = σ(margin) and of σ(margin / T), on the same reliability bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewardkit.eval import metrics as M


def member_matrix(sub_scores: Sequence[dict[str, float]]) -> np.ndarray | None:
    """(answers, K) member rewards from `Score.sub_scores` (`member_0` ..), or None if not an ensemble."""
    if not sub_scores or "ensemble_std" not in sub_scores[0]:
        return None
    k = sum(1 for key in sub_scores[0] if key.startswith("member_"))
    return np.array([[s[f"member_{i}"] for i in range(k)] for s in sub_scores], dtype=float)


def ensemble_summary(records: Sequence[M.ItemScores], lam: float, n_boot: int, seed: int) -> dict | None:
    """Disagreement AUROC and per-aggregate and per-member accuracy over the pairs, or None (no ensemble).

    Args:
        records: scored items; N-way items are left out.
        lam: λ of the mean − λ·std aggregate (the model's own, from its config).
    """
    pairs = [r for r in records if len(r.chosen) == len(r.rejected) == 1]
    mats = [member_matrix(r.sub_scores) for r in pairs]
    if not pairs or any(m is None for m in mats):
        return None
    chosen, rejected = np.stack([m[0] for m in mats]), np.stack([m[1] for m in mats])  # (pairs, K)
    subsets = [r.subset for r in pairs]
    margins = chosen - rejected
    disagreement = margins.std(axis=1)
    wrong = np.array([r.credit < 1 for r in pairs])
    signals = {
        "std of member margins": disagreement,
        "mutual information": mutual_information(margins),
        "-abs(mean margin) (confidence)": -np.abs(margins.mean(axis=1)),
    }
    aggregates = {
        "mean": (chosen.mean(1), rejected.mean(1)),
        "min": (chosen.min(1), rejected.min(1)),
        f"mean_minus_std (lambda {lam:g})": (
            chosen.mean(1) - lam * chosen.std(1),
            rejected.mean(1) - lam * rejected.std(1),
        ),
    }
    aggregates.update({f"member_{i}": (chosen[:, i], rejected[:, i]) for i in range(chosen.shape[1])})
    return {
        "members": int(chosen.shape[1]),
        "n_pairs": len(pairs),
        "n_wrong": int(wrong.sum()),
        "disagreement_auroc": M.auroc(disagreement, wrong),
        "disagreement_auroc_ci": auroc_ci(disagreement, wrong, n_boot, seed),
        "disagreement_mean": float(disagreement.mean()),
        "uncertainty_auroc": {name: auroc_ci(v, wrong, n_boot, seed) for name, v in signals.items()},
        "accuracy": {
            name: M.mean_stats((c > r).astype(float), subsets, n_boot, seed)[0]
            for name, (c, r) in aggregates.items()
        },
    }


def mutual_information(margins: np.ndarray) -> np.ndarray:
    """Per pair, the members' mutual information H(mean p) − mean H(p_k) in nats, p_k = σ(margin_k).

    The epistemic part of the ensemble's predictive entropy (the "BALD" disagreement of deep
    ensembles): 0 when the members give the same P(chosen wins), highest when they are confident
    about opposite answers; unlike the std of the margins it does not grow with the margins' scale
    where every member is sure of the same answer.

    Example:
        >>> mutual_information(np.array([[1.0, 1.0], [9.0, -9.0]])).round(3).tolist()
        [0.0, 0.692]
    """
    p = 0.5 * (1.0 + np.tanh(np.asarray(margins, dtype=float) / 2))  # σ(x), without overflow at large |x|
    return _entropy(p.mean(axis=1)) - _entropy(p).mean(axis=1)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in nats (0 at p = 0 or 1)."""
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return -(q * np.log(q) + (1 - q) * np.log(1 - q))


def auroc_ci(scores: np.ndarray, positive: np.ndarray, n_boot: int, seed: int) -> dict | None:
    """The AUROC with a percentile interval over pairs resampled with replacement (None: one class only)."""
    point = M.auroc(scores, positive)
    if point is None:
        return None
    rng = np.random.default_rng(seed)
    boot = [
        M.auroc(scores[i], positive[i])
        for i in (rng.integers(0, len(scores), len(scores)) for _ in range(n_boot))
    ]
    boot = np.array([b for b in boot if b is not None])
    return M.ci_stat(point, boot if n_boot and len(boot) else None)


def _auroc_interval(ci: dict | None) -> str:
    if not ci or ci.get("ci_low") is None:
        return ""
    return f" [95% CI {ci['ci_low']:.3f}, {ci['ci_high']:.3f}]"


def calibrated_summary(margins: Sequence[float], temperature: float, n_bins: int) -> dict:
    """ECE of σ(margin) and of σ(margin / T), with the calibrated reliability table."""
    m = np.asarray(margins, dtype=float)
    before = M.reliability_table(*M.pair_confidence(m), n_bins)
    after = M.reliability_table(*M.pair_confidence(m / temperature), n_bins)
    return {
        "temperature": float(temperature),
        "ece_before": M.expected_calibration_error(before),
        "ece_after": M.expected_calibration_error(after),
        "table_after": after,
    }


def robust_summaries(
    model,
    items,
    records: Sequence[M.ItemScores],
    *,
    score,
    stress: bool,
    calibrated: bool,
    n_boot: int,
    seed: int,
    n_bins: int,
    baseline_scores=None,
) -> dict:
    """The summary entries "ensemble", "calibrated" and "stress" (None where not asked for or not available).

    Args:
        model: the reward model (its `ensemble` and `temperature` attributes are read when present).
        items, records: the eval items and their plain scores, in the same order.
        score: function(items, subsets) -> ItemScores, for the stress tests' re-scoring.
        baseline_scores: the baseline's results.json; its stress drops are shown beside these.
    """
    ensemble = getattr(model, "ensemble", None)
    lam = float(ensemble["lambda"]) if ensemble else 1.0
    out: dict = {"ensemble": ensemble_summary(records, lam, n_boot, seed), "calibrated": None, "stress": None}
    if calibrated:
        out["calibrated"] = calibrated_summary([r.margin for r in records], model.temperature, n_bins)
    if stress:
        from rewardkit.eval.stress import stress_summary
        from rewardkit.scorers.base import scores_answers_alone

        out["stress"] = stress_summary(
            score, items, records, n_boot=n_boot, seed=seed, answers_alone=scores_answers_alone(model)
        )
        if baseline_scores is not None:
            out["stress"]["baseline"] = baseline_stress(baseline_scores)
    return out


def baseline_stress(path) -> dict | None:
    """{perturbation: {"accuracy", "drop"}} from a baseline results.json run with --stress, else None."""
    import json

    with open(path, encoding="utf-8") as f:
        stress = (json.load(f).get("summary") or {}).get("stress")
    if not stress:
        return None
    return {
        name: {"accuracy": p.get("accuracy"), "drop": p.get("drop")}
        for name, p in stress["perturbations"].items()
        if p.get("n")
    }


def robust_markdown(summary: dict) -> list[str]:
    """report.md's sections for an ensemble, calibration and stress tests (those present in `summary`)."""
    lines: list[str] = []
    if summary.get("stress"):
        from rewardkit.eval.stress import stress_markdown

        lines += stress_markdown(summary["stress"])
    ens = summary.get("ensemble")
    if ens:
        auc = ens["disagreement_auroc"]
        lines += [
            "## Ensemble",
            "",
            f"{ens['members']} members. Disagreement = std across members of each pair's margin; its AUROC "
            f"for predicting the {ens['n_wrong']} of {ens['n_pairs']} pairs ranked wrong: "
            f"**{'–' if auc is None else f'{auc:.3f}'}**{_auroc_interval(ens.get('disagreement_auroc_ci'))} "
            "(0.5 = no signal).",
            "",
        ]
        if ens.get("uncertainty_auroc"):
            lines += ["| signal for a wrong pair | AUROC | 95% CI |", "|---|---|---|"]
            for name, ci in ens["uncertainty_auroc"].items():
                value = "–" if not ci else f"{ci['value']:.3f}"
                interval = (
                    "–" if not ci or ci["ci_low"] is None else f"[{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]"
                )
                lines.append(f"| {name} | {value} | {interval} |")
            lines.append("")
        lines += [
            "| score | accuracy | 95% CI |",
            "|---|---|---|",
        ]
        for name, stat in ens["accuracy"].items():
            lines.append(f"| {name} | {_pct(stat['value'])} | {_ci(stat)} |")
        lines.append("")
    cal = summary.get("calibrated")
    if cal:
        lines += [
            "## Calibrated probabilities",
            "",
            f"Temperature T = {cal['temperature']:.4f} (fitted on the validation pairs by `rewardkit train "
            f"--calibrate`). ECE of sigmoid(margin): {cal['ece_before']:.4f}; of sigmoid(margin / T): "
            f"**{cal['ece_after']:.4f}**.",
            "",
            "| bin | count | mean confidence | accuracy |",
            "|---|---|---|---|",
        ]
        for r in cal["table_after"]:
            conf = "–" if r["mean_confidence"] is None else f"{r['mean_confidence']:.3f}"
            acc = "–" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
            lines.append(f"| [{r['bin_low']:.2f}, {r['bin_high']:.2f}] | {r['count']} | {conf} | {acc} |")
        lines.append("")
    return lines


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ci(stat: dict) -> str:
    return "–" if stat["ci_low"] is None else f"[{_pct(stat['ci_low'])}, {_pct(stat['ci_high'])}]"
