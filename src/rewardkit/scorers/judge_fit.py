"""Fitting a judge prompt into the model's context: drop older turns, then clip the texts evenly.

The judge (`scorers/generative.py`) renders the prompt with the tokenizer's chat template; this module
decides what of the conversation and the answers goes into it when everything would not fit.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewardkit.errors import RewardkitError
from rewardkit.scorers import judge_prompts as jp
from rewardkit.scorers.base import Messages

CLIP_MARK = " [...]"


def shared_cap(lengths: Sequence[int], excess: int) -> int:
    """The largest cap such that clipping every length to it removes at least `excess` (0 if none does).

    Example:
        >>> shared_cap([100, 40, 10], 70)  # clip to 35: 65 + 5 = 70
        35
    """
    lo, hi = 0, max(lengths, default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(max(0, n - mid) for n in lengths) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return lo


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of `text` without special tokens (the chat template writes those)."""
    return len(tokenizer.encode(text, add_special_tokens=False))


def clip_text(tokenizer, text: str, n_tokens: int) -> str:
    """The first `n_tokens` tokens of `text`, cut in the original string (decode may re-space it)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return text[: enc["offset_mapping"][n_tokens - 1][1]] + CLIP_MARK


def render_prompt(
    tokenizer, history: Messages, answers: list[str], *, pointwise: bool, verdict_only: bool
) -> str:
    """The chat-rendered judge prompt; with `verdict_only` (logprob mode) prefilled up to the decision."""
    if pointwise:
        user, prefill = jp.pointwise_prompt(history, *answers, verdict_only=verdict_only), jp.RATING_PREFILL
    else:
        user, prefill = jp.pairwise_prompt(history, *answers, verdict_only=verdict_only), jp.VERDICT_PREFILL
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    return text + prefill if verdict_only else text


def fit_prompt(
    tokenizer,
    history: Messages,
    answers: list[str],
    *,
    pointwise: bool,
    verdict_only: bool,
    max_length: int,
    reserve: int,
) -> tuple[str, int, bool]:
    """(rendered judge prompt, its token count, truncated?) within `max_length - reserve` tokens.

    Older turns go first; if the last turn and the answers alone are still too long, each of them is
    clipped to a shared token budget (head kept, " [...]" appended). `reserve` is the room left for
    what the judge writes (`--max_new_tokens`, or 1 token read in logprob mode).

    Example (a whitespace "tokenizer" that renders the user turn as it is):
        >>> class Words:
        ...     def encode(self, text, add_special_tokens=False):
        ...         return text.split()
        ...     def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        ...         return messages[0]["content"]
        >>> text, n, truncated = fit_prompt(Words(), [{"role": "user", "content": "Hi"}], ["Hello"], pointwise=True,
        ...                                 verdict_only=False, max_length=400, reserve=16)
        >>> n <= 400 - 16, truncated
        (True, False)
    """
    budget = max_length - reserve
    history, answers, truncated, before = list(history), list(answers), False, None
    options = dict(pointwise=pointwise, verdict_only=verdict_only)
    while True:
        text = render_prompt(tokenizer, history, answers, **options)
        n = count_tokens(tokenizer, text)
        if n <= budget:
            return text, n, truncated
        if before is not None and n >= before:
            raise RewardkitError(f"--max_length {max_length}: cannot clip the judge prompt to fit")
        before, truncated = n, True
        older = [i for i, m in enumerate(history[:-1]) if m["role"] != "system"]
        if older:
            history.pop(older[0])
            continue
        fields = [m["content"] for m in history[-1:]] + answers
        lengths = [count_tokens(tokenizer, f) for f in fields]
        cap = shared_cap(lengths, n - budget + 8 * len(fields))  # 8: room for " [...]"
        if cap < 16:
            raise RewardkitError(
                f"--max_length {max_length} is too small for the judge prompt (it needs {n - budget} more "
                "tokens); raise --max_length or lower --max_new_tokens"
            )
        fields = [clip_text(tokenizer, f, cap) if length > cap else f for f, length in zip(fields, lengths)]
        if history:
            history[-1] = {**history[-1], "content": fields.pop(0)}
        answers = fields
