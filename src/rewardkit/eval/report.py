"""What `rewardkit eval` writes: results.json, report.md and PNG plots, all from the results dict.

The results dict is the whole record of a run (see `rewardkit.eval.run.run_eval`), so a report can
be drawn again from a results.json alone: ``write_outputs(json.load(open(p)), "out2")``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rewardkit.errors import RewardkitError
from rewardkit.eval.robust import robust_markdown

PLOTS = {
    "rewards.png": "Reward distributions, chosen vs rejected answers",
    "margins.png": "Margin (best chosen - best rejected) per item",
    "reliability.png": "Reliability diagram",
    "length_buckets.png": "Accuracy by length difference",
}


def write_outputs(results: dict, output_dir: str | Path) -> None:
    """Write results.json, report.md and the PNGs into a temporary folder, then move them into `output_dir`.

    A new `output_dir` appears whole (one rename); in an existing one, each file is replaced on its own.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        text = json.dumps(results, indent=1, allow_nan=False)
        (tmp / "results.json").write_text(text + "\n", encoding="utf-8")
        (tmp / "report.md").write_text(render_markdown(results), encoding="utf-8")
        write_plots(results, tmp)
        if output_dir.exists():
            for f in tmp.iterdir():
                os.replace(f, output_dir / f.name)
        else:
            tmp.rename(output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_baseline(path: str | Path, sources: Sequence[str]) -> dict[str, float]:
    """Per-item credit ("correct") of an earlier eval's results.json, by item source, checked against ours.

    Raises:
        RewardkitError: unreadable file, not a results.json, duplicate sources here, or no source in common.
    """
    p = Path(path)
    flag, accepted = (
        f"--baseline_scores {p}",
        "the results.json of an earlier `rewardkit eval` on the same data",
    )
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise RewardkitError(f"{flag}: cannot read it ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RewardkitError(f"{flag}: not a JSON file; expected {accepted}") from None
    rows = data.get("items") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("source"), str) and isinstance(r.get("correct"), int | float)
        for r in rows
    ):
        raise RewardkitError(f"{flag}: no 'items' list with 'source' and 'correct'; expected {accepted}")
    base = {r["source"]: float(r["correct"]) for r in rows}
    seen: set[str] = set()
    for s in sources:
        if s in seen:
            raise RewardkitError(f"{flag}: items are matched by source, but '{s}' appears twice in the data")
        seen.add(s)
    if not seen & base.keys():
        ours, theirs = next(iter(sources)), next(iter(base), "(none)")
        raise RewardkitError(
            f"{flag}: no item source matches (e.g. '{ours}' here, '{theirs}' there); expected {accepted}"
        )
    return base


# ----------------------------------------------------------------------------------------- markdown


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ci(stat: dict) -> str:
    return "–" if stat["ci_low"] is None else f"[{_pct(stat['ci_low'])}, {_pct(stat['ci_high'])}]"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def render_markdown(results: dict) -> str:
    """report.md: the tables a person reads first, then the diagnostics."""
    s, settings = results["summary"], results["settings"]
    lines = [
        f"# rewardkit eval: {results['model']}",
        "",
        f"{s['n_items']} items ({s['n_pairs']} pairs, {s['n_items'] - s['n_pairs']} N-way) in "
        f"{len(s['subsets'])} subsets; {s['n_conversations']} conversations scored. Accuracies in %; "
        f"95% CIs from {settings['n_boot']} bootstrap resamples of items within subsets (seed {settings['seed']}).",
        "",
        "Pairs: right when chosen > rejected (ties count wrong). N-way items: best-of-N credit, "
        "(chosen answers on top) / (answers on top); 0 when a rejected answer scores above every chosen one.",
        "",
    ]
    lines += _overall(s)
    if s["sections"]:
        lines += [
            "## Sections",
            "",
            f"From `{settings['sections_file']}`; a section's score weighs its subsets by "
            "example count (or the weights in the file); the overall score is the mean of the sections.",
            "",
        ]
        rows = [
            [sec, ", ".join(v["weights"]), v["n"], _pct(v["score"]["value"]), _ci(v["score"])]
            for sec, v in s["sections"].items()
        ]
        lines += _table(["section", "subsets", "n", "score", "95% CI"], rows)
    rows = [
        [
            g,
            v["n"],
            _pct(v["accuracy"]["value"]),
            _ci(v["accuracy"]),
            _pct(v["tie_rate"]),
            _pct(v["near_tie_rate"]),
        ]
        for g, v in s["subsets"].items()
    ]
    lines += ["## Subsets", ""] + _table(["subset", "n", "accuracy", "95% CI", "ties", "near ties"], rows)
    if s["baseline"]:
        lines += _baseline(s["baseline"], settings["baseline_scores"])
    lines += _calibration(s["calibration"]) + _length(s["length_bias"])
    lines += robust_markdown(s)  # stress tests, ensemble, calibrated probabilities (docs/robustness.md)
    if s["judge"]:
        lines += _judge(s["judge"])
    lines += _truncation(s)
    if s["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in s["warnings"]] + [""]
    lines += ["## Plots", ""] + [f"![{title}]({name})" for name, title in PLOTS.items()] + [""]
    return "\n".join(lines)


def _overall(s: dict) -> list[str]:
    rows = [["accuracy", _pct(s["accuracy"]["value"]), _ci(s["accuracy"])]]
    if s["section_score"]:
        rows.append(
            ["section score (mean of sections)", _pct(s["section_score"]["value"]), _ci(s["section_score"])]
        )
    rows += [
        ["tie rate (margin = 0)", _pct(s["tie_rate"]), ""],
        [f"near-tie rate (abs(margin) < {s['near_tie_tol']:.3g})", _pct(s["near_tie_rate"]), ""],
    ]
    return ["## Overall", ""] + _table(["metric", "value", "95% CI"], rows)


def _baseline(b: dict, path: str | None) -> list[str]:
    lines = [
        "## Comparison with baseline",
        "",
        f"Baseline `{path}`: {b['n_matched']} items matched by source ({b['n_only_here']} only here, "
        f"{b['n_only_baseline']} only in the baseline). Difference = this - baseline, paired bootstrap CI; "
        f"this model better on {b['better']} items, worse on {b['worse']}.",
        "",
    ]
    rows = [
        [
            "all",
            b["n_matched"],
            _pct(b["this"]),
            _pct(b["baseline"]),
            _pct(b["diff"]["value"]),
            _ci(b["diff"]),
        ]
    ]
    rows += [
        [g, v["n"], _pct(v["this"]), _pct(v["baseline"]), _pct(v["diff"]["value"]), _ci(v["diff"])]
        for g, v in b["subsets"].items()
    ]
    return lines + _table(["subset", "n", "this", "baseline", "diff", "95% CI"], rows)


def _calibration(c: dict) -> list[str]:
    lines = [
        "## Calibration",
        "",
        f"Expected calibration error: **{c['ece']:.4f}**. Confidence = sigmoid(|margin|), the model's probability "
        "for the answer it ranks higher; right when that answer is a chosen one (margin > 0).",
        "",
    ]
    rows = [
        [
            f"[{r['bin_low']:.2f}, {r['bin_high']:.2f}{']' if r['bin_high'] >= 1.0 else ')'}",
            r["count"],
            _num(r["mean_confidence"]),
            _num(r["accuracy"]),
        ]
        for r in c["table"]
    ]
    return lines + _table(["bin", "count", "mean confidence", "accuracy"], rows)


def _length(lb: dict) -> list[str]:
    acc = lb["longer_wins_accuracy"]
    lines = [
        "## Length bias",
        "",
        f'Length unit: {lb["unit"]}. "Longer answer wins" baseline: {_pct(acc["value"])} {_ci(acc)} '
        "(scored like a model whose reward is the length; equal lengths count wrong on pairs).",
        f"Correlation of reward with length over all answers: Pearson {_num(lb['pearson'])}, "
        f"Spearman {_num(lb['spearman'])}.",
        "",
        "Accuracy by relative length difference d = (chosen - rejected) / longer (N-way items: mean length of each side):",
        "",
    ]
    rows = [
        [b["bucket"], b["count"], _pct(b["accuracy"]["value"]), _ci(b["accuracy"])] for b in lb["buckets"]
    ]
    return lines + _table(["bucket", "count", "accuracy", "95% CI"], rows)


def _judge(j: dict) -> list[str]:
    rows = []
    if j["order_consistent"]:
        rows.append(
            ["order consistent", f"{_pct(j['order_consistent']['rate'])}%", j["order_consistent"]["reported"]]
        )
    if j["parse_failed"]:
        pf = j["parse_failed"]
        rows.append(
            [
                "conversations with a parse failure",
                f"{pf['count']} ({_pct(pf['rate'])}% of outputs)",
                pf["reported"],
            ]
        )
    return ["## Generative judge", ""] + _table(["", "value", "conversations reporting"], rows)


def _truncation(s: dict) -> list[str]:
    t = s["truncation"]
    lines = [
        "## Truncation and dropped rows",
        "",
        f"{t['items_truncated']} of {s['n_items']} items had a conversation truncated to fit the model "
        f"({t['conversations_truncated']} of {t['conversations']} conversations).",
        "",
    ]
    dropped = s["dropped"]
    if dropped is None:
        return lines + ["No drop report from the loader.", ""]
    rows = [[reason, n] for reason, n in dropped["counts"].items()]
    return (
        lines
        + [f"Loader: {dropped['summary']}", ""]
        + (_table(["dropped because", "rows"], rows) if rows else [])
    )


# -------------------------------------------------------------------------------------------- plots


def write_plots(results: dict, folder: str | Path) -> None:
    """The four PNGs of `PLOTS`, drawn with matplotlib's Figure API (Agg; no pyplot global state)."""
    from matplotlib.figure import Figure

    folder = Path(folder)
    items, s = results["items"], results["summary"]

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots(gridspec_kw={"bottom": 0.13})
    chosen = [x for it in items for x in it["chosen_scores"]]
    rejected = [x for it in items for x in it["rejected_scores"]]
    bins = _bins(chosen + rejected)
    ax.hist(chosen, bins=bins, alpha=0.6, label=f"chosen ({len(chosen)})")
    ax.hist(rejected, bins=bins, alpha=0.6, label=f"rejected ({len(rejected)})")
    _finish(fig, ax, folder / "rewards.png", "reward", "answers", PLOTS["rewards.png"])

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots(gridspec_kw={"bottom": 0.13})
    margins = [it["margin"] for it in items]
    ax.hist(margins, bins=_bins(margins), color="tab:green")
    ax.axvline(0.0, color="black", linewidth=1)
    _finish(fig, ax, folder / "margins.png", "margin", "items", PLOTS["margins.png"], legend=False)

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    table = [r for r in s["calibration"]["table"] if r["count"]]
    ax.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="gray", label="perfect calibration")
    ax.plot([r["mean_confidence"] for r in table], [r["accuracy"] for r in table], marker="o", label="model")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.0)
    title = f"{PLOTS['reliability.png']} (ECE {s['calibration']['ece']:.3f})"
    _finish(fig, ax, folder / "reliability.png", "mean confidence", "accuracy", title)

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots(gridspec_kw={"bottom": 0.2})
    buckets = s["length_bias"]["buckets"]
    ax.bar(range(len(buckets)), [b["accuracy"]["value"] for b in buckets], color="tab:purple")
    ax.set_xticks(range(len(buckets)), [f"{b['bucket']}\n(n={b['count']})" for b in buckets], fontsize=7)
    ax.axhline(s["accuracy"]["value"], color="black", linewidth=1, label="overall accuracy")
    ax.set_ylim(0.0, 1.0)
    _finish(
        fig,
        ax,
        folder / "length_buckets.png",
        "d = (chosen - rejected length) / longer",
        "accuracy",
        PLOTS["length_buckets.png"],
    )


def _bins(values: Sequence[float]) -> int:
    return max(10, min(50, int(len(values) ** 0.5)))


def _finish(fig, ax, path: Path, xlabel: str, ylabel: str, title: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)  # fixed margins: tight_layout would double the drawing time
