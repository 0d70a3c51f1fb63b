"""`rewardkit eval` for process reward models: step metrics, ProcessBench's first-error F1, best-of-N
by aggregate; results.json, report.md and a plot, as for pairs.

Threshold: given (`threshold=`), or chosen on a seeded validation split (`validation_fraction` of
the solutions) to maximise ProcessBench F1, the metrics then reported on the other solutions only.
Intervals: seeded bootstrap over solutions (every step of a resampled solution comes with it).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rewardkit.core.steps import AGGREGATES, aggregate
from rewardkit.data.steps import StepExample, load_step_examples
from rewardkit.eval.metrics import ci_stat
from rewardkit.eval.prm_metrics import (
    auroc,
    bad_step_f1,
    best_threshold,
    first_error,
    first_error_stats,
    predicted_first_error,
    step_accuracy,
)


def run_step_eval(
    model,
    data_paths: Sequence[str | Path],
    *,
    output_dir: str | Path | None = None,
    threshold: float | None = None,
    validation_fraction: float = 0.2,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    neutral: str = "good",
    model_name: str = "",
) -> dict:
    """Score every step of the step-labelled solutions in `data_paths` with a PRM and summarise."""
    examples, report = load_step_examples(list(data_paths), neutral=neutral)
    scores: list[list[float]] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        scores += [
            s.step_scores for s in model.score_solutions([(e.prompt_messages(), e.steps) for e in chunk])
        ]
    labels = [
        list(e.labels[: len(s)]) for e, s in zip(examples, scores)
    ]  # steps that did not fit are not scored
    chosen_on = "given"
    evaluate = list(range(len(examples)))
    if threshold is None:
        order = list(range(len(examples)))
        random.Random(seed).shuffle(order)
        n_val = max(1, int(round(validation_fraction * len(order)))) if len(order) > 1 else 0
        val, evaluate = sorted(order[:n_val]), sorted(order[n_val:])
        threshold = best_threshold([scores[i] for i in val], [labels[i] for i in val]) if val else 0.5
        chosen_on = f"validation split of {len(val)} solutions (seed {seed})"
    summary = summarize_steps(
        [scores[i] for i in evaluate],
        [labels[i] for i in evaluate],
        [examples[i] for i in evaluate],
        threshold,
        n_boot,
        seed,
    )
    summary.update(threshold=threshold, threshold_chosen_on=chosen_on, data=report.to_dict())
    results = {
        "model": model_name or getattr(model, "name", ""),
        "data": [str(p) for p in data_paths],
        "summary": summary,
        "solutions": [
            {
                "source": examples[i].source,
                "step_scores": scores[i],
                "labels": labels[i],
                "evaluated": i in set(evaluate),
            }
            for i in range(len(examples))
        ],
    }
    if output_dir is not None:
        write_step_outputs(results, Path(output_dir))
    return results


def eval_command(model, args, model_name: str) -> str:
    """`rewardkit eval` with a PRM: run on `args` (EvalArguments) and return the line to print."""
    results = run_step_eval(
        model,
        args.data,
        output_dir=args.output_dir,
        threshold=args.step_threshold,
        validation_fraction=args.validation_fraction,
        n_boot=args.n_boot,
        seed=args.seed,
        batch_size=args.batch_size,
        model_name=model_name,
    )
    s = results["summary"]
    return (
        f"step AUROC {s['steps']['auroc']['value']:.3f}, ProcessBench F1 "
        f"{s['first_error']['processbench_f1']['value']:.3f} (threshold {s['threshold']:.2f}) on "
        f"{s['n_solutions']} solutions; report: {args.output_dir}/report.md"
    )


def summarize_steps(
    scores, labels, examples: Sequence[StepExample], threshold: float, n_boot: int, seed: int
) -> dict:
    """Step metrics and first-error metrics with bootstrap intervals, by position, and best-of-N."""
    flat_s = [s for row in scores for s in row]
    flat_y = [y for row in labels for y in row]

    def stats(idx):
        s = [x for i in idx for x in scores[i]]
        y = [x for i in idx for x in labels[i]]
        first = first_error_stats([scores[i] for i in idx], [labels[i] for i in idx], threshold)
        # the position-only baseline: a step scored by how early it comes (bad steps tend to be late ones)
        earliness = [-k for i in idx for k in range(len(scores[i]))]
        return [
            step_accuracy(s, y, threshold),
            auroc(s, y),
            bad_step_f1(s, y, threshold),
            first["processbench_f1"],
            auroc(earliness, y),
        ]

    point = stats(range(len(scores)))
    boot = None
    if n_boot and len(scores) > 1:
        rng = np.random.default_rng(seed)
        boot = np.array([stats(rng.integers(0, len(scores), len(scores))) for _ in range(n_boot)])
    names = ["accuracy", "auroc", "bad_f1", "processbench_f1", "position_auroc"]
    cis = {n: ci_stat(point[k], _finite(None if boot is None else boot[:, k])) for k, n in enumerate(names)}
    first = first_error_stats(scores, labels, threshold)
    first["processbench_f1"] = cis.pop("processbench_f1")
    return {
        "n_solutions": len(scores),
        "n_steps": sum(1 for y in flat_y if y is not None),
        "n_bad_steps": sum(1 for y in flat_y if y is not None and y < 0.5),
        "steps": cis,
        "first_error": first,
        "first_error_confusion": _confusion(scores, labels, threshold),
        "by_position": _by_position(scores, labels),
        "best_of_n": _best_of_n(scores, labels, examples),
        "mean_step_score": float(np.mean(flat_s)) if flat_s else None,
    }


def _finite(boot):
    """The resamples where the statistic is defined, or None when it never is (no interval)."""
    if boot is None:
        return None
    boot = boot[~np.isnan(boot)]
    return boot if len(boot) else None


def _confusion(scores, labels, threshold: float) -> dict[str, int]:
    """Predicted vs true first error: exact, too early, too late, missed (no error found), false alarm."""
    out = dict.fromkeys(["exact", "too_early", "too_late", "missed", "false_alarm", "correct_ok"], 0)
    for s, y in zip(scores, labels):
        pred, true = predicted_first_error(s, threshold), first_error(y)
        if true < 0:
            out["correct_ok" if pred < 0 else "false_alarm"] += 1
        elif pred < 0:
            out["missed"] += 1
        else:
            out["exact" if pred == true else "too_early" if pred < true else "too_late"] += 1
    return out


def _by_position(scores, labels) -> list[dict]:
    """Mean step score at each step position, for good and for bad steps."""
    rows: dict[int, dict[str, list[float]]] = defaultdict(lambda: {"good": [], "bad": []})
    for s, y in zip(scores, labels):
        for k, (score, label) in enumerate(zip(s, y)):
            if label is not None:
                rows[k]["good" if label >= 0.5 else "bad"].append(score)
    return [
        {
            "position": k + 1,
            **{f"mean_{c}": (float(np.mean(v)) if v else None) for c, v in rows[k].items()},
            **{f"n_{c}": len(v) for c, v in rows[k].items()},
        }
        for k in sorted(rows)
    ]


def _best_of_n(scores, labels, examples: Sequence[StepExample]) -> dict | None:
    """Over prompts with several solutions, some correct and some not: how often the top solution by
    each aggregate is a correct one (ties: the first). None when there are no such prompts."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[json.dumps(e.prompt_messages())].append(i)
    mixed = [g for g in groups.values() if len({first_error(labels[i]) < 0 for i in g}) == 2]
    if not mixed:
        return None
    out = {
        "n_prompts": len(mixed),
        "chance": float(np.mean([np.mean([first_error(labels[i]) < 0 for i in g]) for g in mixed])),
    }
    for how in AGGREGATES:
        hits = [first_error(labels[max(g, key=lambda i: aggregate(scores[i], how))]) < 0 for g in mixed]
        out[how] = float(np.mean(hits))
    return out


def render_step_markdown(results: dict) -> str:
    s = results["summary"]
    lines = [f"# PRM evaluation: {results['model']}", "", f"Data: {', '.join(results['data'])}", ""]
    lines += [
        f"{s['n_solutions']} solutions evaluated, {s['n_steps']} labelled steps ({s['n_bad_steps']} bad); "
        f"threshold {s['threshold']:.2f} ({s['threshold_chosen_on']}).",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
    ]
    rows = [
        ("step accuracy", s["steps"]["accuracy"]),
        ("step AUROC", s["steps"]["auroc"]),
        ("step AUROC of position alone (earlier = better; a baseline)", s["steps"]["position_auroc"]),
        ("F1 on bad steps", s["steps"]["bad_f1"]),
        ("ProcessBench F1 (first error)", s["first_error"]["processbench_f1"]),
    ]
    for name, st in rows:
        ci = f"[{st['ci_low']:.3f}, {st['ci_high']:.3f}]" if st["ci_low"] is not None else ""
        lines.append(f"| {name} | {st['value']:.3f} | {ci} |")
    fe = s["first_error"]
    lines += [
        "",
        f"First error: accuracy on erroneous solutions {fe['erroneous_accuracy']:.3f}, on correct "
        f"{fe['correct_accuracy']:.3f}, exact first-error accuracy {fe['first_error_accuracy']:.3f}.",
        "",
        "| predicted vs true first error | solutions |",
        "|---|---|",
    ]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in s["first_error_confusion"].items()]
    lines += ["", "| step | mean score, good steps (n) | mean score, bad steps (n) |", "|---|---|---|"]
    fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    for r in s["by_position"]:
        lines.append(
            f"| {r['position']} | {fmt(r.get('mean_good'))} ({r.get('n_good', 0)}) | {fmt(r.get('mean_bad'))} ({r.get('n_bad', 0)}) |"
        )
    if s["best_of_n"]:
        b = s["best_of_n"]
        lines += [
            "",
            f"Best-of-N on {b['n_prompts']} prompts with correct and wrong solutions (chance {b['chance']:.3f}): "
            + ", ".join(f"{how} {b[how]:.3f}" for how in AGGREGATES)
            + ".",
        ]
    lines += ["", "![step score by position](step_scores.png)", ""]
    return "\n".join(lines)


def write_step_outputs(results: dict, output_dir: Path) -> None:
    """results.json, report.md and step_scores.png (mean step score by position, good vs bad)."""
    from matplotlib.figure import Figure

    output_dir.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(results, default=float).replace("NaN", "null"))
    (output_dir / "results.json").write_text(json.dumps(clean, indent=1) + "\n")
    (output_dir / "report.md").write_text(render_step_markdown(results))
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots(gridspec_kw={"bottom": 0.13})
    rows = results["summary"]["by_position"]
    for cls, color in (("good", "tab:green"), ("bad", "tab:red")):
        pts = [(r["position"], r[f"mean_{cls}"]) for r in rows if r.get(f"mean_{cls}") is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", color=color, label=f"{cls} steps")
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("mean step score")
    ax.set_title("Step score by position", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(output_dir / "step_scores.png", dpi=100)
