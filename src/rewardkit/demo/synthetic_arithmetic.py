"""The `arithmetic` family of `synthetic.py`: multi-step word problems in the style of the apples example.

The chosen answer is the correct numbered solution; the rejected one is the same solution with one
realistic mistake: miscounting the people in a split (the seed's own mistake: "herself and her 2
siblings" divided by 2), a wrong sum or difference carried forward, a wrong final answer, or a badly
rounded uneven split. Both answers are rendered from the same random draws, so they differ only where
the mistake is. `APPLES_PROMPT` (the seed article's example) is never generated.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

APPLES_PROMPT = (
    "Jane has 12 apples. She gives 4 apples to her friend Mark, then buys 1 more apple, and finally "
    "splits all her apples equally among herself and her 2 siblings. How many apples does each person get?"
)
APPLES_GOOD = (
    "1. Jane starts with 12 apples and gives 4 to Mark. 12 - 4 = 8. Jane now has 8 apples.\n"
    "2. Jane buys 1 more apple. 8 + 1 = 9. Jane now has 9 apples.\n"
    "3. Jane splits the 9 apples equally among herself and her 2 siblings (3 people in total). "
    "9 ÷ 3 = 3 apples each. Each person gets 3 apples."
)
APPLES_BAD = (
    "1. Jane starts with 12 apples and gives 4 to Mark. 12 - 4 = 8. Jane now has 8 apples.\n"
    "2. Jane buys 1 more apple. 8 + 1 = 9. Jane now has 9 apples.\n"
    "3. Jane splits the 9 apples equally among her 2 siblings (2 people in total). "
    "9 ÷ 2 = 4.5 apples each. Each person gets 4 apples."
)

_NAMES = [(n, "f") for n in "Jane Maria Aisha Lily Sofia Emma Priya Hannah Chloe Grace Mei Olivia".split()]
_NAMES += [(n, "m") for n in "Tom Liam Omar Lucas Ben Diego Sam Noah Ravi Ethan Leo Jack".split()]
_PRONOUNS = {"f": ("she", "her", "herself"), "m": ("he", "his", "himself")}
_FRIENDS = "Mark Anna Carlos Zoe Felix Nina Ahmed Ruby Kai Ella Hugo Iris".split()
_GIVERS = "aunt uncle grandmother grandfather teacher neighbor".split()
_FOODS = "apple orange cookie cupcake candy egg".split()
_THINGS = "marble sticker pencil card balloon crayon seashell stamp coin".split()
# (singular, plural, edible)
_OBJECTS = [(s, "candies" if s == "candy" else s + "s", s in _FOODS) for s in _FOODS + _THINGS]
_GROUPS_WITH_SELF = "siblings cousins friends classmates teammates brothers sisters".split()
_GROUPS_WITHOUT_SELF = "children students grandchildren nephews neighbors friends cousins".split()
_SPLIT_WITH_SELF = [  # then "{k} {g}"
    "splits all {her} {o} equally among {me} and {her}",
    "shares all {her} {o} equally between {me} and {her}",
    "divides all of {her} {o} equally among {me} and {her}",
    "shares them equally with {her}",
]
_SPLIT_WITHOUT_SELF = [
    "gives all {her} {o} away equally to {her}",
    "divides all {her} {o} equally among {her}",
]
_SPLIT_QUESTIONS = ["How many {o} does each person get?", "How many {o} does each person end up with?"]


def _noun(n: float, obj: tuple) -> str:
    return obj[0] if n == 1 else obj[1]


def _dec(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _make_ops(rng: random.Random, total: int, n_ops: int, obj: tuple) -> tuple[int, list[tuple]]:
    """Steps leading to `total`, built backwards so every intermediate count stays positive.

    Returns the start count and ops as ``(kind, amount, extra)``; "packs" adds ``amount * extra``.
    """
    ops, cur = [], total
    for _ in range(n_ops):
        add_kinds = ["buy", "receive", "find", "packs"]
        sub_kinds = ["give", "give", "lose", "sell"] + (["eat"] if obj[2] else [])
        if cur > 6 and rng.random() < 0.5:
            kind = rng.choice(add_kinds)
            if kind == "packs" and cur > 10:
                m = rng.randint(2, 4)
                s = rng.randint(2, min(6, (cur - 2) // m))
                ops.append((kind, m, s))
                cur -= m * s
                continue
            b = rng.randint(1, min(12, cur - 3))
            ops.append((rng.choice(add_kinds[:3]), b, None))
            cur -= b
        else:
            g = rng.randint(1, 12)
            ops.append((rng.choice(sub_kinds), g, rng.choice(_FRIENDS)))
            cur += g
    return cur, ops[::-1]


def _prompt_clause(op: tuple, her: str, obj: tuple) -> str:
    kind, a, x = op
    return {
        "give": f"gives {a} {_noun(a, obj)} to {her} friend {x}",
        "lose": f"loses {a} of them",
        "sell": f"sells {a} {_noun(a, obj)} to a neighbor",
        "eat": f"eats {a} of them",
        "buy": f"buys {a} more {_noun(a, obj)}",
        "receive": f"gets {a} more from {her} {_GIVERS[a % len(_GIVERS)]}",
        "find": f"finds {a} more {_noun(a, obj)}",
        "packs": f"buys {a} packs of {x} {_noun(x, obj)}",
    }[kind]


def _solution_clause(op: tuple, her: str, obj: tuple) -> str:
    kind, a, x = op
    return {
        "give": f"gives {a} to {x}",
        "lose": f"loses {a}",
        "sell": f"sells {a}",
        "eat": f"eats {a}",
        "buy": f"buys {a} more {_noun(a, obj)}",
        "receive": f"gets {a} more from {her} {_GIVERS[a % len(_GIVERS)]}",
        "find": f"finds {a} more",
        "packs": f"buys {a} packs of {x}",
    }[kind]


def _split_text(total: int, people: int, obj: tuple, mode: str, claim: int | None = None) -> tuple[str, str]:
    """The division sentences of a split and the final claim ("3 apples each"), rendered in `mode`.

    `claim` overrides the number stated as each person's share (a wrong final answer).
    """
    q, r = divmod(total, people)
    exact = total / people
    if mode in ("exact", "remainder"):
        c = q if claim is None else claim
        gets = f"Each person gets {c} {_noun(c, obj)}"
        if mode == "exact":
            return f"{total} ÷ {people} = {q} {obj[1]} each. {gets}.", f"{c} {_noun(c, obj)} each"
        left = f"{r} {_noun(r, obj)} {'is' if r == 1 else 'are'} left over"
        text = f"{total} ÷ {people} = {q} with {r} left over. {gets}, and {left}."
        return text, f"{c} {_noun(c, obj)} each, {r} left over"
    shown = {"floor": q, "ceil": math.ceil(exact), "keep": _dec(exact)}[mode]
    c = shown if claim is None else claim
    noun = obj[0] if c == 1 else obj[1]
    text = f"{total} ÷ {people} = {_dec(exact)} {obj[1]} each. Each person gets {c} {noun}."
    return text, f"{c} {noun} each"


class _Problem(NamedTuple):
    name: str
    she: str
    her: str
    herself: str
    obj: tuple[str, str, bool]
    split: bool  # False: "how many does she have now?"
    with_self: bool  # the splitter keeps a share
    k: int  # the number in "her {k} siblings"
    people: int
    remainder: int
    start: int
    ops: list[tuple]
    group: str


def _arithmetic_problem(rng: random.Random) -> _Problem:
    """Draw one word problem: who, what, the numbers, and how the split is phrased."""
    name, sex = rng.choice(_NAMES)
    she, her, herself = _PRONOUNS[sex]
    obj = rng.choice(_OBJECTS)
    split = rng.random() < 0.8
    with_self = rng.random() < 0.6
    k = rng.randint(2, 5) if with_self else rng.randint(2, 6)
    people = k + 1 if with_self else k
    remainder = rng.randint(1, people - 1) if split and rng.random() < 0.25 else 0
    total = people * rng.randint(2, 8) + remainder if split else rng.randint(5, 40)
    start, ops = _make_ops(rng, total, rng.choice([1, 2, 2, 2, 3]) if split else rng.choice([2, 3]), obj)
    group = rng.choice(_GROUPS_WITH_SELF if with_self else _GROUPS_WITHOUT_SELF)
    return _Problem(name, she, her, herself, obj, split, with_self, k, people, remainder, start, ops, group)


def _arithmetic_prompt(rng: random.Random, p: _Problem) -> str:
    her, herself, k, group, objs = p.her, p.herself, p.k, p.group, p.obj[1]
    clauses = [_prompt_clause(op, her, p.obj) for op in p.ops]
    if p.split:
        how = rng.choice(_SPLIT_WITH_SELF if p.with_self else _SPLIT_WITHOUT_SELF) + " {k} {g}"
        if not p.with_self and "divides" in how:
            how += ", keeping none for {me}"
        clauses.append(how.format(her=her, me=herself, o=objs, k=k, g=group))
        question = rng.choice(_SPLIT_QUESTIONS)
        if p.remainder and rng.random() < 0.5:
            question = "How many {o} does each person get, and how many are left over?"
    else:
        question = rng.choice(["How many {o} does {n} have now?", "How many {o} does {s} have at the end?"])
    question = question.format(o=objs, n=p.name, s=p.she)
    head = f"{p.name} has {p.start} {objs}. "
    she = p.she
    if rng.random() < 0.6:  # one long sentence, like the seed
        body = clauses[-1]
        if len(clauses) > 1:
            body = ", then ".join(clauses[:-1]) + ", and finally " + body
        return head + she.capitalize() + " " + body + ". " + question
    sents = [f"{she.capitalize()} {clauses[0]}."]
    for j, clause in enumerate(clauses[1:], start=1):
        link = "Finally, " if j == len(clauses) - 1 else ("Then " if j == 1 else "After that, ")
        sents.append(f"{link}{she} {clause}.")
    return head + " ".join(sents) + " " + question


def _solution(p: _Problem, mistake: str, rng: random.Random, layout: tuple) -> tuple[str, str]:
    """Render the step-by-step solution, correct (mistake "none") or with one mistake.

    Returns the text and the final claim. All random draws happen up front, in a fixed order, so
    that two calls from the same rng state differ only in the mistake.
    """
    steps, final, _ = _solution_steps(p, mistake, rng)
    numbering, intro, answer_line = layout
    text = "\n".join(numbering.format(i=i + 1) + s for i, s in enumerate(steps))
    text = ("Let's solve this step by step.\n" if intro else "") + text
    return text + (f"\nAnswer: {final}." if answer_line else ""), final


def _solution_steps(p: _Problem, mistake: str, rng: random.Random) -> tuple[list[str], str, int]:
    """The solution's steps (unnumbered), its final claim, and the index of the step with the
    mistake (-1 for "none"): the wrong sum of `arith`, else the last step (split or final count)."""
    draws = {
        "bad_step": rng.randrange(len(p.ops)),
        "delta": rng.choice([-3, -2, -1, 1, 1, 2, 3]),
        "keep_phrase": rng.random() < 0.25,
        "use_gives": rng.random() < 0.5,
        "miscount_mode": rng.choice(["floor"] * 4 + ["keep", "ceil", "remainder", "remainder"]),
        "arith_mode": rng.choice(["floor", "remainder"]),
        "round_mode": rng.choice(["ceil", "ceil", "keep", "floor"]),
        "claim_pick": rng.randrange(4),
        "end_delta": rng.choice([-2, -1, 1, 2, 4]),
    }
    steps, cur = _op_steps(p, draws["bad_step"] if mistake == "arith" else -1, draws["delta"])
    if p.split:
        step, final = _split_step(p, cur, mistake, draws)
        steps.append(step)
    else:
        c = cur + draws["end_delta"] if mistake == "final" else cur
        steps[-1] += f" So {p.name} has {c} {_noun(c, p.obj)} at the end."
        final = f"{c} {_noun(c, p.obj)}"
    first_bad = -1 if mistake == "none" else draws["bad_step"] if mistake == "arith" else len(steps) - 1
    return steps, final, first_bad


def _op_steps(p: _Problem, bad_step: int, delta: int) -> tuple[list[str], int]:
    """One sentence group per operation, and the count at the end.

    The result of step `bad_step` is off by `delta` and carried forward, as a model that made the
    slip would.
    """
    name, obj = p.name, p.obj
    steps, cur = [], p.start
    for i, op in enumerate(p.ops):
        kind, a, x = op
        adds = kind in ("buy", "receive", "find", "packs")
        amount = a * x if kind == "packs" else a
        res = cur + amount if adds else cur - amount
        if i == bad_step:
            res = res + delta if res + delta > 0 else res + abs(delta)
        eq = f"{cur} {'+' if adds else '-'} {amount} = {res}"
        if kind == "packs":
            eq = f"{a} × {x} = {amount}. {eq}"
        clause = _solution_clause(op, p.her, obj)
        lead = f"{name} starts with {cur} {_noun(cur, obj)} and {clause}" if i == 0 else f"{name} {clause}"
        steps.append(f"{lead}. {eq}. {name} now has {res} {_noun(res, obj)}.")
        cur = res
    return steps, cur


def _split_step(p: _Problem, total: int, mistake: str, draws: dict) -> tuple[str, str]:
    """The last step, sharing `total` out, and the final claim."""
    k, group, people, her = p.k, p.group, p.people, p.her
    if mistake == "miscount":  # the seed's mistake: leave out (or add) the one who splits
        people = k if p.with_self else k + 1
    says_self = p.with_self != (mistake == "miscount" and not draws["keep_phrase"])
    verb, who = "splits", f"among {p.herself} and {her} {k} {group}"
    if not says_self:
        verb, who = "splits", f"among {her} {k} {group}"
        if draws["use_gives"]:
            verb, who = "gives", f"to {her} {k} {group}"
    q, r = divmod(total, people)
    mode = "exact" if r == 0 else "remainder"
    if r and mistake == "miscount":
        mode = draws["miscount_mode"]
    elif r and mistake == "arith" and not p.remainder:
        mode = draws["arith_mode"]
    elif mistake == "rounding":
        mode = draws["round_mode"]
    claim = None
    if mistake == "final":
        claim = [q + 1, q + 2, q - 1 if q > 1 else q + 3, total][draws["claim_pick"]]
    div, final = _split_text(total, people, p.obj, mode, claim)
    return f"{p.name} {verb} the {total} {p.obj[1]} equally {who} ({people} people in total). {div}", final


def arithmetic_pair(rng: random.Random) -> tuple[str, str, str, dict]:
    """One word problem: (prompt, correct solution, solution with one mistake, details of the mistake)."""
    p, prompt, mistake, layout = _draw_problem(rng)
    state = rng.getstate()
    chosen, answer = _solution(p, "none", rng, layout)
    rng.setstate(state)  # same draws for both, so the two texts differ only where the mistake is
    rejected, _ = _solution(p, mistake, rng, layout)
    extra = {"mistake": mistake, "answer": answer, "people": p.people if p.split else None}
    return prompt, chosen, rejected, extra


def arithmetic_step_pair(rng: random.Random) -> tuple[str, list[str], list[str], int, dict]:
    """One word problem as steps: (prompt, correct steps, steps with one mistake, index of the
    mistake's step, details). The steps are numbered as in `arithmetic_pair`; an answer line, when
    the layout has one, is a last step of its own (wrong after a mistake)."""
    p, prompt, mistake, (numbering, _, answer_line) = _draw_problem(rng)
    state = rng.getstate()
    good, answer, _ = _solution_steps(p, "none", rng)
    rng.setstate(state)
    bad, wrong, first_bad = _solution_steps(p, mistake, rng)
    answer_step = (lambda final: [f"Answer: {final}."]) if answer_line else (lambda final: [])  # noqa: E731
    numbered = [[numbering.format(i=i + 1) + s for i, s in enumerate(steps)] for steps in (good, bad)]
    return (
        prompt,
        numbered[0] + answer_step(answer),
        numbered[1] + answer_step(wrong),
        first_bad,
        {"mistake": mistake},
    )


def _draw_problem(rng: random.Random) -> tuple[_Problem, str, str, tuple]:
    """The problem, its prompt, the kind of mistake and the layout, drawn in a fixed order."""
    while True:
        p = _arithmetic_problem(rng)
        prompt = _arithmetic_prompt(rng, p)
        if prompt != APPLES_PROMPT:  # the seed example stays held out of every generated set
            break
    if not p.split:
        mistake = rng.choice(["arith", "arith", "arith", "final", "final"])
    elif p.remainder:
        mistake = rng.choices(["rounding", "miscount", "arith", "final"], weights=[45, 35, 10, 10])[0]
    else:
        mistake = rng.choices(["miscount", "arith", "final"], weights=[55, 25, 20])[0]
    numbering = rng.choice(["{i}. ", "{i}. ", "{i}. ", "Step {i}: ", ""])
    layout = (numbering, rng.random() < 0.2, rng.random() < 0.3)  # numbering, intro line, answer line
    return p, prompt, mistake, layout
