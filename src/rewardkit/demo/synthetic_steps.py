"""Seeded step-labelled solutions for `rewardkit demo --objective prm` and the PRM tests.

Each arithmetic word problem (`synthetic_arithmetic.py`) gives two solutions rendered from the same
draws: the correct one (every step good) and the one with a single realistic mistake (the steps
before the mistake good, the mistake and every step after it bad, since a wrong number is carried
forward). Both are kept, so a set has solutions with and without an error (first-error metrics need
both classes) and every wrong solution has its correct twin differing only from the mistake on.
"""

from __future__ import annotations

import random

from rewardkit.data.steps import StepExample
from rewardkit.demo.synthetic_arithmetic import APPLES_BAD, APPLES_GOOD, APPLES_PROMPT, arithmetic_step_pair

# The seed article's apples example as steps (one per numbered line); the wrong one errs in step 3.
APPLES_GOOD_STEPS = APPLES_GOOD.split("\n")
APPLES_BAD_STEPS = APPLES_BAD.split("\n")
APPLES_STEPS_PROMPT = APPLES_PROMPT


def make_step_set(n_problems: int, seed: int = 0) -> list[StepExample]:
    """2 * `n_problems` solutions (correct, then wrong, per problem), labelled per step, in a seeded order.

    Example:
        >>> examples = make_step_set(2, seed=0)
        >>> [e.first_error() >= 0 for e in examples].count(True)
        2
    """
    rng = random.Random(f"rewardkit-steps-{seed}")
    examples = []
    for i in range(n_problems):
        prompt, good, bad, first_bad, extra = arithmetic_step_pair(rng)
        bad_labels = [1.0] * first_bad + [0.0] * (len(bad) - first_bad)
        messages = [{"role": "user", "content": prompt}]
        source = f"synthetic-steps-{seed}:{i}"
        examples.append(StepExample(messages, good, [1.0] * len(good), subset="correct", source=source))
        examples.append(
            StepExample(messages, bad, bad_labels, subset=extra["mistake"], source=source, extra=extra)
        )
    return examples


def to_trl_row(example: StepExample) -> dict:
    """The example as a TRL stepwise row (`prompt`, `completions`, `labels`), for files."""
    return {
        "prompt": example.prompt[0]["content"] if len(example.prompt) == 1 else example.prompt,
        "completions": example.steps,
        "labels": [bool(v >= 0.5) for v in example.labels],
        "subset": example.subset,
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m rewardkit.demo.synthetic_steps --problems 400 --seed 0 --output steps.jsonl`: a TRL stepwise file."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m rewardkit.demo.synthetic_steps")
    parser.add_argument("--problems", type=int, default=400, help="problems (two solutions each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for example in make_step_set(args.problems, seed=args.seed):
            f.write(json.dumps(to_trl_row(example)) + "\n")
    print(f"wrote {2 * args.problems} solutions to {out}")


if __name__ == "__main__":
    main()
