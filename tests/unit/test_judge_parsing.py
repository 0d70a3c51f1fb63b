"""Generative judges without a model: parsing, combining the two orders, prompts, logprob maths."""

import pytest
import torch

from rewardkit.scorers.judge_prompts import (
    combine_probs,
    combine_verdicts,
    continuation_token,
    expected_rating,
    pairwise_prompt,
    parse_rating,
    parse_verdict,
    pointwise_prompt,
    rating_probs,
    render_conversation,
    two_way_prob,
    verdict_outcome,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Answer A adds up correctly. [[A]]", "A"),
        ("[[B]]", "B"),
        ("Both are equally good. [[C]]", "C"),
        ("I cannot decide between [[A]] and [[B]]", None),  # two different verdicts
        ("[[A]]\nFinal verdict: [[A]]", None),  # strict: exactly one bracketed item
        ("[[a]]", None),
        ("[[ A ]]", None),
        ("[A]", None),  # what SmolLM2-135M writes
        ("[[A]", None),
        ("[[D]]", None),
        ("[[AB]]", None),
        ("A is better", None),
        ("", None),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Clear and correct. Rating: [[7]]", 7),
        ("Rating: [[1]]", 1),
        ("Rating: [[10]]", 10),
        ("Rating: [[0]]", None),
        ("Rating: [[11]]", None),
        ("Rating: [[3.5]]", None),
        ("[[7]] [[8]]", None),
        ("[[7]] [[7]]", None),
        ("Rating: [[07]]", None),
        ("Rating: [[-3]]", None),
        ("Rating: [[seven]]", None),
        ("Rating: [[ 7 ]]", None),
        ("Rating: 7", None),
        ("", None),
    ],
)
def test_parse_rating(text, expected):
    assert parse_rating(text) == expected


def test_verdict_outcome():
    assert verdict_outcome("A", x_is_a=True) == 1.0
    assert verdict_outcome("A", x_is_a=False) == 0.0
    assert verdict_outcome("B", x_is_a=False) == 1.0
    assert verdict_outcome("C", x_is_a=True) == 0.5
    assert verdict_outcome(None, x_is_a=False) == 0.5


# v_xy: verdict with x shown as A; v_yx: verdict with x shown as B.
# x's outcome per order: A/B win 1 or loss 0 depending on where x sits, tie or failure 0.5.
@pytest.mark.parametrize(
    "v_xy, v_yx, p_win, consistent, failures",
    [
        ("A", "B", 1.0, True, 0),  # x wins in both orders
        ("B", "A", 0.0, True, 0),  # y wins in both orders
        ("A", "A", 0.5, False, 0),  # always the first answer: position bias, counted as a tie
        ("B", "B", 0.5, False, 0),  # always the second answer
        ("C", "C", 0.5, True, 0),  # a tie twice is consistent
        ("A", "C", 0.75, False, 0),  # (1 + 0.5) / 2
        ("C", "A", 0.25, False, 0),  # (0.5 + 0) / 2: y shown as A wins the second order
        (None, "B", 0.75, False, 1),  # (0.5 + 1) / 2
        ("A", None, 0.75, False, 1),
        (None, None, 0.5, False, 2),
    ],
)
def test_combine_verdicts_table(v_xy, v_yx, p_win, consistent, failures):
    got = combine_verdicts(v_xy, v_yx)
    assert (got.p_win, got.order_consistent, got.parse_failures) == (p_win, consistent, failures)


def test_two_way_prob_ignores_other_tokens():
    # logits of A=2, B=0: P(A) = e^2 / (e^2 + e^0) = 1 / (1 + e^-2) = 0.880797
    logits = torch.tensor([[2.0, 0.0, 5.0]])  # token 2 is neither A nor B
    assert two_way_prob(logits[:, 0], logits[:, 1]).item() == pytest.approx(0.880797, abs=1e-6)
    assert two_way_prob(torch.tensor(0.3), torch.tensor(0.3)).item() == 0.5


def test_combine_probs_hand_worked():
    # x first: P(A) = 0.8 -> x 0.8; x second: P(A) = 0.3 -> P(B) = x 0.7; mean 0.75, both lean to x
    got = combine_probs(0.8, 0.3)
    assert got.p_win == pytest.approx(0.75) and got.order_consistent
    # P(A) = 0.8 in both orders: pure position bias -> x (0.8 + 0.2) / 2 = 0.5, inconsistent
    got = combine_probs(0.8, 0.8)
    assert got.p_win == pytest.approx(0.5) and not got.order_consistent
    # x above 0.5 in neither order: consistent for y
    assert combine_probs(0.4, 0.9).order_consistent


@pytest.mark.parametrize("p1, p2", [(0.8, 0.3), (0.123, 0.987), (0.5, 0.5)])
def test_combine_probs_is_antisymmetric(p1, p2):
    # P(x>y) uses (P_A(x first), P_A(y first)); P(y>x) the same two numbers the other way round
    assert combine_probs(p1, p2).p_win + combine_probs(p2, p1).p_win == pytest.approx(1.0, abs=1e-12)


def test_rating_probs_split_of_ten():
    # uniform over "1".."9", then "0" vs "]]" after "1" at 50/50: P(1) = P(10) = 1/18, others 1/9
    probs = rating_probs(torch.zeros(1, 9), torch.zeros(1, 2))
    assert probs[0, 0].item() == pytest.approx(1 / 18) and probs[0, 9].item() == pytest.approx(1 / 18)
    assert probs.sum().item() == pytest.approx(1.0)
    # E = 1/18 + (2 + ... + 9)/9 + 10/18 = 11/18 + 88/18 = 5.5
    assert expected_rating(probs).item() == pytest.approx(5.5)


def test_rating_probs_hand_worked():
    first = torch.log(torch.tensor([[0.5, 0, 0, 0, 0, 0, 0, 0, 0.5]]))  # "1" and "9" only
    split = torch.log(torch.tensor([[0.2, 0.8]]))  # after "1": "0" 0.2, "]]" 0.8
    probs = rating_probs(first, split)
    # P(1) = 0.4, P(9) = 0.5, P(10) = 0.1 -> E = 0.4 + 4.5 + 1.0 = 5.9
    assert expected_rating(probs).item() == pytest.approx(5.9)
    # without the split, 10 is not reachable: uniform over 1..9 -> 5.0
    assert expected_rating(rating_probs(torch.zeros(1, 9))).item() == pytest.approx(5.0)
    # "10" as one token: uniform over 1..10 -> 5.5
    assert expected_rating(rating_probs(torch.zeros(1, 10))).item() == pytest.approx(5.5)


class MergingTokenizer:
    """Characters, except that "[[A" is one token: "A" after "[[" is then not a token of its own."""

    def encode(self, text, add_special_tokens=False):
        ids, i = [], 0
        while i < len(text):
            if text.startswith("[[A", i):
                ids, i = ids + [1000], i + 3
            else:
                ids, i = ids + [ord(text[i])], i + 1
        return ids


def test_continuation_token(char_tokenizer):
    assert continuation_token(char_tokenizer, "Verdict: [[", "A") == char_tokenizer.convert_tokens_to_ids("A")
    assert continuation_token(char_tokenizer, "Rating: [[", "10") is None  # two tokens
    merging = MergingTokenizer()
    assert continuation_token(merging, "Verdict: [[", "B") == ord("B")
    assert continuation_token(merging, "Verdict: [[", "A") is None  # the context's tokens change


def test_pairwise_prompt_swaps_and_renders_turns():
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
    ]
    assert render_conversation(history) == "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: 2+2?"
    first, second = pairwise_prompt(history, "four", "five"), pairwise_prompt(history, "five", "four")
    assert "[Answer A]\nfour\n\n[Answer B]\nfive" in first
    assert "[Answer A]\nfive\n\n[Answer B]\nfour" in second
    assert "User: Hi\n\nAssistant: Hello!\n\nUser: 2+2?" in first
    assert "[[C]]" in first and "[[C]]" not in pairwise_prompt(history, "four", "five", verdict_only=True)
    rated = pointwise_prompt(history, "four")
    assert "[Answer]\nfour" in rated and "Rating: [[N]]" in rated
