"""Do separately trained reward models disagree where their mean is wrong? From their eval results.

    python bench/members_disagreement.py --name halves \
        outputs/hh-robust/runs/halfA/eval/results.json outputs/hh-robust/runs/halfB/eval/results.json

Each input is a `rewardkit eval` results.json of one member, all on the same pairs (checked by the
items' sources). The ensemble is the mean of the members' margins; a pair is wrong when that mean
is not above 0 (ties count as wrong, as in eval's ensemble report). For the signals eval reports
for a one-checkpoint ensemble (std of the member margins, the members' mutual information,
−abs(mean margin)) this gives the AUROC for the wrong pairs with a 95% interval (2,000 pair
resamples, seed 0), and each member's and the mean's accuracy. Writes
bench/results/members_NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import write_results

from rewardkit.eval import metrics as M
from rewardkit.eval.robust import auroc_ci, mutual_information

RESULTS = Path(__file__).resolve().parent / "results"


def member_margins(paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """(pairs, members) margins and the pairs' sources, after checking every file scored the same pairs."""
    items = [json.loads(Path(p).read_text())["items"] for p in paths]
    sources = [i["source"] for i in items[0]]
    for path, run in zip(paths, items):
        if [i["source"] for i in run] != sources:
            raise SystemExit(f"{path}: not the same pairs, in the same order, as {paths[0]}")
    return np.array([[i["margin"] for i in run] for run in items]).T, sources


def summarize(margins: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Accuracy of each member and of the mean, member Pearson, and the signals' AUROC for wrong pairs."""
    mean = margins.mean(axis=1)
    wrong = mean <= 0
    everything = ["all"] * len(mean)

    def accuracy(m: np.ndarray) -> dict:
        return M.mean_stats(((m > 0) + 0.5 * (m == 0)).astype(float), everything, n_boot, seed)[0]

    signals = {
        "std of member margins": margins.std(axis=1),
        "mutual information": mutual_information(margins),
        "-abs(mean margin) (confidence)": -np.abs(mean),
    }
    return {
        "pairs": len(mean),
        "wrong": int(wrong.sum()),
        "members": [accuracy(margins[:, k]) for k in range(margins.shape[1])],
        "mean": accuracy(mean),
        "member_pearson": float(np.corrcoef(margins.T)[0, 1]) if margins.shape[1] == 2 else None,
        "auroc": {name: auroc_ci(v, wrong, n_boot, seed) for name, v in signals.items()},
    }


def markdown(name: str, paths: list[str], s: dict) -> str:
    pct = lambda c: f"{100 * c['value']:.1f} [{100 * c['ci_low']:.1f}, {100 * c['ci_high']:.1f}]"  # noqa: E731
    lines = [f"Members ({name}): " + ", ".join(paths), ""]
    lines += ["| score | accuracy [95% CI] |", "|---|---:|"]
    lines += [f"| member {k} | {pct(c)} |" for k, c in enumerate(s["members"])]
    lines += [f"| mean of the members | {pct(s['mean'])} |", ""]
    lines += [f"| signal for the {s['wrong']} of {s['pairs']} pairs the mean ranks wrong | AUROC [95% CI] |"]
    lines += ["|---|---:|"]
    for signal, c in s["auroc"].items():
        lines.append(f"| {signal} | {c['value']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] |")
    if s["member_pearson"] is not None:
        lines += ["", f"Pearson of the two members' margins: {s['member_pearson']:.3f}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", help="results.json of each member (two or more)")
    parser.add_argument("--name", required=True, help="names bench/results/members_NAME.{json,md}")
    args = parser.parse_args()
    if len(args.results) < 2:
        parser.error("give at least two members' results.json")
    margins, _ = member_margins(args.results)
    summary = summarize(margins)
    write_results(
        RESULTS / f"members_{args.name}",
        {"inputs": args.results, **summary},
        markdown(args.name, args.results, summary),
    )


if __name__ == "__main__":
    main()
