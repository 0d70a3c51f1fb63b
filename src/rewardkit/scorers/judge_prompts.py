"""What a generative judge is asked, and how its answer is read back.

The judge sees one user message (no system message, so any chat template accepts it) holding the
instructions, the conversation so far and the answer(s). It must put its decision in double
brackets: ``[[A]]`` / ``[[B]]`` / ``[[C]]`` (tie) for a pairwise verdict, ``[[N]]`` with N an integer
1..10 for a rating. Parsing is strict: exactly one bracketed item, spelled exactly, anywhere in the
output; anything else is a parse failure (the caller counts it and falls back to a tie or a neutral
rating). `combine_verdicts` turns the verdicts of the two orders of a pair into one outcome.

For the logprob mode the same prompts are used with "verdict only" wording, and the assistant turn
is prefilled with ``VERDICT_PREFILL`` / ``RATING_PREFILL`` so that the very next token is the
decision: `continuation_token` finds the token ids it is read from, and the functions at the end
turn those tokens' logits into P(A), P(x beats y) over both orders, and an expected rating.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardkit.data.schema import Message
from rewardkit.errors import RewardkitError

VERDICTS = ("A", "B", "C")  # C is a tie
VERDICT_PREFILL = "Verdict: [["
RATING_PREFILL = "Rating: [["
RATINGS = tuple(range(1, 11))

_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}
_BRACKETED = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
_RATING = re.compile(r"10|[1-9]")

PAIRWISE_TEMPLATE = """\
Please act as an impartial judge. Below is a conversation between a user and an AI assistant, \
followed by two possible answers, A and B, to the user's last message. Decide which answer is \
better: more helpful, accurate, honest and harmless. The order of the answers and their length \
must not influence you.

[Conversation]
{conversation}

[Answer A]
{answer_a}

[Answer B]
{answer_b}

{ending}"""

PAIRWISE_ENDING_EXPLAIN = (
    "Explain your reasoning in one or two sentences, then end with your verdict in exactly this form: "
    '"[[A]]" if answer A is better, "[[B]]" if answer B is better, or "[[C]]" for a tie.'
)
PAIRWISE_ENDING_VERDICT_ONLY = (
    'Reply with your verdict only, in exactly this form: "Verdict: [[A]]" if answer A is better or '
    '"Verdict: [[B]]" if answer B is better.'
)

POINTWISE_TEMPLATE = """\
Please act as an impartial judge. Below is a conversation between a user and an AI assistant, \
followed by the assistant's answer to the user's last message. Rate the answer on a scale from 1 \
(useless, wrong or harmful) to 10 (excellent: helpful, accurate, honest and harmless).

[Conversation]
{conversation}

[Answer]
{answer}

{ending}"""

POINTWISE_ENDING_EXPLAIN = (
    "Explain your rating in one or two sentences, then end with it in exactly this form: "
    '"Rating: [[N]]", where N is a whole number from 1 to 10.'
)
POINTWISE_ENDING_VERDICT_ONLY = (
    'Reply with your rating only, in exactly this form: "Rating: [[N]]", '
    "where N is a whole number from 1 to 10."
)


def render_conversation(messages: Sequence[Message]) -> str:
    """The conversation as readable text: one "Role: content" block per turn, blank lines between."""
    return "\n\n".join(f"{_ROLE_NAMES.get(m['role'], m['role'].title())}: {m['content']}" for m in messages)


def pairwise_prompt(
    history: Sequence[Message], answer_a: str, answer_b: str, verdict_only: bool = False
) -> str:
    """The user message asking which of two answers to `history` is better.

    Example:
        >>> "[Answer A]\\nfour" in pairwise_prompt([{"role": "user", "content": "2+2?"}], "four", "five")
        True
    """
    ending = PAIRWISE_ENDING_VERDICT_ONLY if verdict_only else PAIRWISE_ENDING_EXPLAIN
    return PAIRWISE_TEMPLATE.format(
        conversation=render_conversation(history), answer_a=answer_a, answer_b=answer_b, ending=ending
    )


def pointwise_prompt(history: Sequence[Message], answer: str, verdict_only: bool = False) -> str:
    """The user message asking for a 1-10 rating of `answer` to `history`."""
    ending = POINTWISE_ENDING_VERDICT_ONLY if verdict_only else POINTWISE_ENDING_EXPLAIN
    return POINTWISE_TEMPLATE.format(conversation=render_conversation(history), answer=answer, ending=ending)


def parse_verdict(text: str) -> str | None:
    """ "A", "B" or "C" (tie) when `text` holds exactly one bracketed item and it is one of those; else None.

    Example:
        >>> parse_verdict("B is clearer. [[B]]"), parse_verdict("[[A]] or [[B]]"), parse_verdict("[[a]]")
        ('B', None, None)
    """
    found = _BRACKETED.findall(text)
    if len(found) == 1 and found[0] in VERDICTS:
        return found[0]
    return None


def parse_rating(text: str) -> int | None:
    """The integer N when `text` holds exactly one bracketed item and it is exactly 1..10; else None.

    Example:
        >>> parse_rating("Rating: [[7]]"), parse_rating("[[7]] [[8]]"), parse_rating("[[3.5]]")
        (7, None, None)
    """
    found = _BRACKETED.findall(text)
    if len(found) == 1 and _RATING.fullmatch(found[0]):
        return int(found[0])
    return None


@dataclass
class PairJudgment:
    """One pair judged in both orders. p_win: how much x beats y, in [0, 1]."""

    p_win: float
    order_consistent: bool
    parse_failures: int = 0


def verdict_outcome(verdict: str | None, x_is_a: bool) -> float:
    """x's share of one verdict: 1 win, 0 loss, 0.5 for a tie ("C") or no verdict (None)."""
    if verdict in ("A", "B"):
        return float((verdict == "A") == x_is_a)
    return 0.5


def combine_verdicts(v_xy: str | None, v_yx: str | None) -> PairJudgment:
    """Verdicts with x shown as A (`v_xy`) and as B (`v_yx`) -> x's mean outcome over both orders.

    The orders agree only when both verdicts parsed and give x the same outcome.
    """
    first, second = verdict_outcome(v_xy, True), verdict_outcome(v_yx, False)
    failures = (v_xy is None) + (v_yx is None)
    return PairJudgment((first + second) / 2, failures == 0 and first == second, failures)


def continuation_token(tokenizer, context: str, piece: str) -> int | None:
    """The single token `piece` adds after `context`, or None if it is not exactly one new token."""
    head = tokenizer.encode(context, add_special_tokens=False)
    full = tokenizer.encode(context + piece, add_special_tokens=False)
    if len(full) == len(head) + 1 and full[: len(head)] == head:
        return full[-1]
    return None


def decision_tokens(tokenizer, context: str, pieces: list[str]) -> list[int]:
    """The one token each of `pieces` adds after `context` (logprob mode reads their probabilities)."""
    ids = [continuation_token(tokenizer, context, p) for p in pieces]
    bad = [p for p, i in zip(pieces, ids) if i is None]
    if bad:
        raise RewardkitError(
            f"--mode logprob: this tokenizer does not read {bad} as one token after {context!r}; "
            "use --mode pairwise or --mode pointwise with this model"
        )
    return ids


def rating_tokens(tokenizer) -> tuple[list[int], tuple[int, int, int] | None]:
    """Token ids of "1".."9" (+ "10" if one token), and ("1", "0", "]]") ids if 10 = "1" + "0"."""
    ids = decision_tokens(tokenizer, RATING_PREFILL, [str(n) for n in range(1, 10)])
    ten = continuation_token(tokenizer, RATING_PREFILL, "10")
    if ten is not None:
        return ids + [ten], None
    after = RATING_PREFILL + "1"
    zero = continuation_token(tokenizer, after, "0")
    close = continuation_token(tokenizer, after, "]]")
    return ids, ((ids[0], zero, close) if zero is not None and close is not None else None)


# ---------------------------------------------------------------- reading token probabilities
def two_way_prob(logit_a: torch.Tensor, logit_b: torch.Tensor) -> torch.Tensor:
    """P(A) under the softmax restricted to the two logits."""
    return torch.sigmoid(logit_a.double() - logit_b.double())


def combine_probs(p_a_xy: float, p_a_yx: float) -> PairJudgment:
    """P(A) with x shown as A and with x shown as B -> P(x beats y) averaged over both orders.

    The orders agree when both lean the same way (x above 0.5 in both, or in neither).
    """
    p_x_first, p_x_second = p_a_xy, 1.0 - p_a_yx
    consistent = (p_x_first > 0.5) == (p_x_second > 0.5)
    return PairJudgment((p_x_first + p_x_second) / 2, consistent)


def rating_probs(first_logits: torch.Tensor, ten_split_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Probabilities of ratings 1..10 (columns) from next-token logits.

    Args:
        first_logits: [n, 9] logits of "1".."9", or [n, 10] when "10" is one token.
        ten_split_logits: [n, 2] logits of ("0", "]]") after "1": splits P("1") into 10 and 1.
    """
    probs = torch.softmax(first_logits.double(), dim=-1)
    if probs.shape[-1] == 10:
        return probs
    if ten_split_logits is None:
        return torch.cat([probs, torch.zeros_like(probs[:, :1])], dim=-1)
    p_ten = torch.softmax(ten_split_logits.double(), dim=-1)[:, :1]
    return torch.cat([probs[:, :1] * (1 - p_ten), probs[:, 1:], probs[:, :1] * p_ten], dim=-1)


def expected_rating(probs: torch.Tensor) -> torch.Tensor:
    """Mean rating under [n, 10] probabilities of ratings 1..10."""
    return probs @ torch.arange(1, 11, dtype=probs.dtype)
