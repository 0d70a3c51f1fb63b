"""Does a PRM read the mistaken step, or only where it is? Scores of each mistake against its twin.

    python bench/prm_twins.py outputs/demo/model                 # 200 held-out problems (seed 1)
    python bench/prm_twins.py outputs/demo/model --problems 100 --seed 1 --name demo

Every synthetic wrong solution (`rewardkit.demo.synthetic_steps`) has a correct twin with the same
steps before the mistake. At the mistaken step k the two differ only in that step's text, so a
model that scores by position gives them the same score; one that reads the step scores the twin
higher. Per mistake kind: the share of problems where the twin's step k scores higher (ties count
half) and the mean scores of both. Writes bench/results/prm_twins_NAME.{json,md}.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import write_results

from rewardkit.demo.synthetic_steps import make_step_set
from rewardkit.scorers.prm import load_prm

RESULTS = Path(__file__).resolve().parent / "results"


def twin_gaps(model_dir: str, problems: int, seed: int) -> dict[str, list[tuple[float, float]]]:
    """{mistake kind: [(twin's step-k score, mistaken step-k score)]}."""
    rm = load_prm(model_dir)
    examples = make_step_set(problems, seed=seed)
    solutions = [(e.prompt_messages(), e.steps) for e in examples]
    scores = [s.step_scores for s in rm.score_solutions(solutions)]
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i in range(0, len(examples), 2):  # (correct, wrong) per problem
        k = examples[i + 1].first_error()
        out[examples[i + 1].subset].append((scores[i][k], scores[i + 1][k]))
    return dict(out)


def summarize(gaps: dict[str, list[tuple[float, float]]]) -> dict:
    table = {}
    for kind, pairs in sorted(gaps.items()):
        good, bad = np.array(pairs).T
        table[kind] = {
            "problems": len(pairs),
            "twin_higher": float(np.mean((good > bad) + 0.5 * (good == bad))),
            "mean_twin": float(good.mean()),
            "mean_mistake": float(bad.mean()),
        }
    return table


def markdown(model_dir: str, table: dict) -> str:
    lines = [f"PRM `{model_dir}`: the mistaken step against the same step of its correct twin", ""]
    lines += [
        "| mistake | problems | twin scores higher | mean score: twin / mistake |",
        "|---|---:|---:|---:|",
    ]
    for kind, r in table.items():
        lines.append(
            f"| {kind} | {r['problems']} | {100 * r['twin_higher']:.0f}% | {r['mean_twin']:.3f} / {r['mean_mistake']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a PRM checkpoint folder")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1, help="1: the demo's held-out seed")
    parser.add_argument("--name", default="demo", help="names bench/results/prm_twins_NAME.{json,md}")
    args = parser.parse_args()
    table = summarize(twin_gaps(args.model, args.problems, args.seed))
    record = {"model": args.model, "problems": args.problems, "seed": args.seed, "kinds": table}
    write_results(RESULTS / f"prm_twins_{args.name}", record, markdown(args.model, table))


if __name__ == "__main__":
    main()
