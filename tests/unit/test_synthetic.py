"""The demo data generator: deterministic, balanced, and its arithmetic answers are really right.

`solve` and `is_correct` below re-derive every answer from the prompt text alone, independently of
the generator, and are checked against the seed article's apples pair first.
"""

from __future__ import annotations

import re
from collections import Counter
from statistics import mean

import pytest

from rewardkit.demo.synthetic import APPLES_BAD, APPLES_GOOD, APPLES_PROMPT, FAMILIES, make_preference_set

OPS = re.compile(r"buys (\d+) packs of (\d+)|(gives|loses|sells|eats) (\d+)|(?:buys|finds|gets) (\d+) more")
EQUATION = re.compile(r"(\d+) ([-+×÷]) (\d+) = (\d+(?:\.\d+)?)( with (\d+) left over)?")


@pytest.fixture(scope="module")
def train():
    return make_preference_set(2000, seed=0)


@pytest.fixture(scope="module")
def held_out():
    return make_preference_set(500, seed=1)


def solve(prompt: str) -> tuple[int, list[int], int | None]:
    """(start, signed amounts, people or None) read from a word problem."""
    start = int(re.search(r"has (\d+) ", prompt).group(1))
    amounts = []
    for op in OPS.finditer(prompt):
        if op.group(1):
            amounts.append(int(op.group(1)) * int(op.group(2)))
        elif op.group(3):
            amounts.append(-int(op.group(4)))
        else:
            amounts.append(int(op.group(5)))
    if m := re.search(r"(?:herself|himself) and (?:her|his) (\d+)|equally with (?:her|his) (\d+)", prompt):
        people = int(m.group(1) or m.group(2)) + 1
    elif m := re.search(r"(?:to|among) (?:her|his) (\d+)", prompt):
        people = int(m.group(1))
    else:
        people = None
    return start, amounts, people


def is_correct(prompt: str, response: str) -> bool:
    """Every equation true, each step starts from the last result, right people count and answer."""
    start, amounts, people = solve(prompt)
    value, used = start, []
    for a, op, b, result, remainder_part, remainder in EQUATION.findall(response):
        a, b = int(a), int(b)
        if op == "×":
            if a * b != float(result):
                return False
            continue
        if a != value or "." in result:  # a count of things is never fractional
            return False
        result = int(result)
        if op in "+-":
            if result != (a + b if op == "+" else a - b):
                return False
            used.append(b if op == "+" else -b)
            value = result
        elif remainder_part:
            if result * b + int(remainder) != a or not 0 < int(remainder) < b or b != people:
                return False
        elif a != result * b or b != people:
            return False
    if used != amounts:
        return False
    if people is None:
        return int(re.search(r"has (\d+) \w+ at the end", response).group(1)) == value
    stated_people = int(re.search(r"\((\d+) people in total\)", response).group(1))
    gets = re.search(r"Each person gets (\d+(?:\.\d+)?) ", response).group(1)
    q, r = divmod(value, people)
    left = re.search(r"(\d+) \w+ (?:is|are) left over", response)
    return stated_people == people and gets == str(q) and (int(left.group(1)) if left else 0) == r


def key(p):
    return (p.prompt[0]["content"], p.chosen, p.rejected)


def test_checker_agrees_with_the_seed_pair():
    assert solve(APPLES_PROMPT) == (12, [-4, 1], 3)
    assert is_correct(APPLES_PROMPT, APPLES_GOOD)
    assert not is_correct(APPLES_PROMPT, APPLES_BAD)


def test_same_seed_same_list_other_seed_other_items():
    a, b = make_preference_set(120, seed=3), make_preference_set(120, seed=3)
    assert a == b
    c = make_preference_set(120, seed=4)
    assert sum(key(x) == key(y) for x, y in zip(a, c, strict=True)) == 0
    assert make_preference_set(0) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        make_preference_set(-1)


def test_families_present_in_even_counts_and_shuffled():
    pairs = make_preference_set(103, seed=0)
    counts = Counter(p.subset for p in pairs)
    assert set(counts) == set(FAMILIES)
    assert sorted(counts.values()) == [25, 26, 26, 26]
    assert [p.subset for p in pairs[:8]] != list(FAMILIES) * 2  # not left in round-robin order
    assert len({p.source for p in pairs}) == 103
    assert all(re.fullmatch(rf"synthetic:{p.subset}:\d+", p.source) for p in pairs)


def test_no_empty_strings_and_chosen_differs(train):
    for p in train:
        assert [m["role"] for m in p.prompt] == ["user"]
        assert p.prompt[0]["content"].strip() and p.chosen.strip() and p.rejected.strip()
        assert p.chosen != p.rejected, p.source


def test_arithmetic_answers_have_matching_length(train):
    ratios = [len(p.chosen) / len(p.rejected) for p in train if p.subset == "arithmetic"]
    assert 0.95 < mean(ratios) < 1.05
    assert 0.7 < min(ratios) and max(ratios) < 1.4  # a remainder clause is the most one mistake adds


def test_arithmetic_chosen_correct_rejected_wrong(train):
    arithmetic = [p for p in train if p.subset == "arithmetic"]
    for p in arithmetic:
        assert is_correct(p.prompt[0]["content"], p.chosen), p.source
        assert not is_correct(p.prompt[0]["content"], p.rejected), p.source
    mistakes = Counter(p.extra["mistake"] for p in arithmetic)
    assert set(mistakes) == {"miscount", "arith", "final", "rounding"}
    assert mistakes["miscount"] == max(mistakes.values())  # the seed's mistake is the most common
    # the seed's exact failure: the splitter left out and a fractional share floored
    assert any(
        "(2 people in total)" in p.rejected
        and ".5 " in p.rejected
        and "herself and her 2" in p.prompt[0]["content"]
        for p in arithmetic
    )
    assert APPLES_PROMPT not in {p.prompt[0]["content"] for p in arithmetic}


def test_held_out_items_are_not_copies_of_training_items(train, held_out):
    seen = {key(p) for p in train}
    assert sum(key(p) in seen for p in held_out) / len(held_out) < 0.03
    prompts = {p.prompt[0]["content"] for p in train if p.subset == "arithmetic"}
    assert not any(p.prompt[0]["content"] in prompts for p in held_out if p.subset == "arithmetic")
