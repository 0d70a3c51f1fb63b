"""`rewardkit eval --stress`: re-score each pair with controlled style and length perturbations.

In the manner of RM-Bench (Liu et al. 2024): a reward model that prefers the chosen answer for its
content should keep preferring it when only the style changes. Three perturbations, each a pure,
seeded function of the text (tested exactly in tests/unit/test_stress.py):

* `filler`: the rejected answer padded with a polite opening and closing sentence (longer, nicer,
  no new content);
* `markdown`: the rejected answer's sentences turned into a markdown bullet list;
* `shorten`: the chosen answer cut to its first sentence, only where it has two or more.

A perturbation that does not apply to a pair (`shorten` on a one-sentence answer) leaves the pair
out of that perturbation, and its "plain" accuracy is taken over the same pairs. N-way items are
skipped. The drop is plain − perturbed on the same pairs, with a paired bootstrap interval.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Sequence

import numpy as np

from rewardkit.data.schema import NWayItem
from rewardkit.eval import metrics as M

OPENERS = (
    "Thank you so much for your question!",
    "What a great question, I'm happy to help.",
    "Thanks for asking, I really appreciate it.",
    "I'd be delighted to help you with this.",
)
CLOSERS = (
    "I hope this helps, and please let me know if you have any other questions!",
    "Feel free to reach out if there is anything else I can do for you.",
    "I hope this was useful. Have a wonderful day!",
    "Please don't hesitate to ask if you need anything more.",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")


def split_sentences(text: str) -> list[str]:
    """Sentences: cut after . ! or ? followed by white space, and at line breaks; empty pieces dropped.

    Example:
        >>> split_sentences("Yes. It is 4!\\nDone")
        ['Yes.', 'It is 4!', 'Done']
    """
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def pad_with_filler(text: str, rng: random.Random) -> str:
    """`text` between a polite opener and closer drawn from `rng` (one draw each, openers first).

    Example:
        >>> pad_with_filler("No.", random.Random(0))
        "I'd be delighted to help you with this. No. Please don't hesitate to ask if you need anything more."
    """
    opener, closer = rng.choice(OPENERS), rng.choice(CLOSERS)
    return f"{opener} {text.strip()} {closer}"


def to_markdown_list(text: str) -> str:
    """Each sentence of `text` as a markdown bullet, one per line.

    Example:
        >>> print(to_markdown_list("First do this. Then that."))
        - First do this.
        - Then that.
    """
    return "\n".join(f"- {s}" for s in split_sentences(text))


def first_sentences(text: str, n: int = 1) -> str | None:
    """The first `n` sentences of `text` when it has more than `n`, else None (nothing safe to cut).

    Example:
        >>> first_sentences("It is 4. Two plus two makes four."), first_sentences("It is 4.")
        ('It is 4.', None)
    """
    sentences = split_sentences(text)
    return " ".join(sentences[:n]) if len(sentences) > n else None


def perturb(item: NWayItem, name: str, rng: random.Random) -> NWayItem | None:
    """The pair with perturbation `name` applied (filler, markdown, shorten), or None where it does not apply."""
    chosen, rejected = item.chosen[0], item.rejected[0]
    if name == "filler":
        rejected = pad_with_filler(rejected, rng)
    elif name == "markdown":
        rejected = to_markdown_list(rejected)
        if not rejected or rejected == item.rejected[0]:
            return None
    elif name == "shorten":
        chosen = first_sentences(chosen)
        if chosen is None:
            return None
    else:
        raise ValueError(f"unknown perturbation {name!r}: accepted are {', '.join(PERTURBATIONS)}")
    return dataclasses.replace(item, chosen=[chosen], rejected=[rejected])


PERTURBATIONS = {
    "filler": "rejected answer padded with polite filler",
    "markdown": "rejected answer as a markdown list",
    "shorten": "chosen answer cut to its first sentence",
}


def perturbed_items(items: Sequence[NWayItem], name: str, seed: int) -> list[tuple[int, NWayItem]]:
    """(index, perturbed pair) for every pair the perturbation applies to; item i draws from Random(f"{seed}:{i}")."""
    out = []
    for i, item in enumerate(items):
        if len(item.chosen) == len(item.rejected) == 1:
            new = perturb(item, name, random.Random(f"{seed}:{i}"))
            if new is not None:
                out.append((i, new))
    return out


def changed_only_credits(
    score: Callable[[Sequence[NWayItem], Sequence[str]], list],
    items: Sequence[NWayItem],
    plain: Sequence[M.ItemScores],
    perturbed: Sequence[tuple[int, NWayItem]],
    subsets: Sequence[str],
) -> list[float]:
    """Each perturbed pair's credit, re-scoring only the answers its perturbation changed.

    For models that score every answer on its own (`scorers.base.scores_answers_alone`): the
    unchanged side keeps its plain score, so a perturbation of one side costs half the conversations.
    """
    probes, probe_subsets, sides = [], [], []
    for (i, new), subset in zip(perturbed, subsets, strict=True):
        c, r = new.chosen != items[i].chosen, new.rejected != items[i].rejected
        sides.append((c, r))
        if c or r:  # the changed answers, as one item's "chosen" list
            answers = (new.chosen if c else []) + (new.rejected if r else [])
            probes.append(dataclasses.replace(new, chosen=answers, rejected=[]))
            probe_subsets.append(subset)
    scored = iter(score(probes, probe_subsets) if probes else [])
    credits = []
    for (i, new), (c, r) in zip(perturbed, sides, strict=True):
        values = iter(next(scored).chosen if c or r else [])
        chosen = [next(values) for _ in new.chosen] if c else plain[i].chosen
        rejected = [next(values) for _ in new.rejected] if r else plain[i].rejected
        credits.append(M.item_credit(chosen, rejected))
    return credits


def stress_summary(
    score: Callable[[Sequence[NWayItem], Sequence[str]], list],
    items: Sequence[NWayItem],
    plain: Sequence[M.ItemScores],
    *,
    n_boot: int,
    seed: int,
    answers_alone: bool = False,
) -> dict:
    """Accuracy under each perturbation and its drop from the plain accuracy on the same pairs.

    Args:
        score: scores items (with their subset names) into `ItemScores` (eval's `score_items`).
        items: the eval items, in the order of `plain`.
        plain: the unperturbed scores of `items`.
        n_boot, seed: bootstrap resamples and seed (the perturbations use `seed` too).
        answers_alone: the model scores each answer on its own, so only changed answers are
            re-scored (`changed_only_credits`); else both answers of every perturbed pair.

    Returns:
        {"seed", "rescored", "perturbations": {name: {"description", "n", "accuracy",
        "plain_accuracy", "drop", ...}}} where "accuracy" is a `ci_stat` and "drop" the paired
        plain − perturbed `ci_stat`.
    """
    out = {}
    for name, description in PERTURBATIONS.items():
        chosen = perturbed_items(items, name, seed)
        if not chosen:
            out[name] = {"description": description, "n": 0}
            continue
        idx = [i for i, _ in chosen]
        subsets = [plain[i].subset for i in idx]
        if answers_alone:
            ours = np.array(changed_only_credits(score, items, plain, chosen, subsets))
        else:
            ours = np.array([r.credit for r in score([it for _, it in chosen], subsets)])
        base = np.array([plain[i].credit for i in idx])
        comparison = M.paired_comparison(base, ours, subsets, n_boot, seed)  # plain − perturbed
        out[name] = {
            "description": description,
            "n": len(idx),
            "accuracy": M.mean_stats(ours, subsets, n_boot, seed)[0],
            "plain_accuracy": float(base.mean()),
            "drop": comparison["diff"],
            "flipped_wrong": comparison["better"],  # right on the plain pair, wrong once perturbed
            "flipped_right": comparison["worse"],
        }
    rescored = "changed answers only" if answers_alone else "both answers"
    return {"seed": seed, "rescored": rescored, "perturbations": out}


def stress_markdown(stress: dict) -> list[str]:
    """report.md's stress section."""
    lines = [
        "## Stress tests",
        "",
        f"Each pair re-scored with one perturbation (seed {stress['seed']}); pairs a perturbation does not "
        "apply to are left out of its row. Drop = plain - perturbed accuracy on the same pairs "
        "(paired bootstrap 95% CI); a robust model has drops near 0."
        + (
            " Only the changed answer is re-scored (the model scores each answer on its own)."
            if stress.get("rescored") == "changed answers only"
            else ""
        ),
        "",
        "| perturbation | pairs | accuracy | 95% CI | plain (same pairs) | drop | 95% CI |",
        "|---|---|---|---|---|---|---|",
    ]
    base = stress.get("baseline") or {}
    if base:
        lines[-2] += " baseline accuracy | baseline drop | 95% CI |"
        lines[-1] += "---|---|---|"
    for name, p in stress["perturbations"].items():
        if not p["n"]:
            lines.append(
                f"| {name}: {p['description']} | 0 | – | | – | – | |" + (" – | – | |" if base else "")
            )
            continue
        acc, drop = p["accuracy"], p["drop"]
        row = (
            f"| {name}: {p['description']} | {p['n']} | {_pct(acc['value'])} | {_ci(acc)} | "
            f"{_pct(p['plain_accuracy'])} | {_pct(drop['value'])} | {_ci(drop)} |"
        )
        if base:
            b = base.get(name)
            row += (
                f" {_pct(b['accuracy']['value'])} | {_pct(b['drop']['value'])} | {_ci(b['drop'])} |"
                if b
                else " – | – | |"
            )
        lines.append(row)
    if base:
        lines += ["", "Baseline columns: the same perturbations in the --baseline_scores run (same seed)."]
    return [*lines, ""]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ci(stat: dict) -> str:
    return "–" if stat["ci_low"] is None else f"[{_pct(stat['ci_low'])}, {_pct(stat['ci_high'])}]"
