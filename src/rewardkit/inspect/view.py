"""What a reward model sees of one conversation: the exact text, its tokens, BOS tokens, where the reward is read.

`scoring_view` follows the same code as scoring (`data.tokenize.encode_for_scoring` for classifiers,
`scorers.dpo.encode_answer` for DPO policies), so what it prints is what `score`, `eval` and `serve`
feed the model.
"""

from __future__ import annotations

from rewardkit.data.schema import Message
from rewardkit.data.tokenize import _trim_oldest, encode, encode_for_scoring


def bos_count(tokenizer, ids: list[int]) -> tuple[int, int]:
    """(BOS tokens at the start, BOS tokens anywhere) of `ids`; (0, 0) for a tokenizer without BOS."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return 0, 0
    leading = 0
    while leading < len(ids) and ids[leading] == bos:
        leading += 1
    return leading, ids.count(bos)


def trimmed_turns(tokenizer, messages: list[Message], max_length: int) -> list[Message]:
    """The context messages the length policy drops (oldest user turn and the assistant turn after it first)."""
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    body, answer = messages[len(system) : -1], messages[-1:]
    while len(encode(tokenizer, system + body + answer)) > max_length:
        shorter = _trim_oldest(body)
        if shorter is None:
            break
        body = shorter
    kept = len(messages) - len(system) - 1 - len(body)
    return messages[len(system) : len(system) + kept]


def _token(tokenizer, token_id: int) -> str:
    return tokenizer.convert_ids_to_tokens([token_id])[0]


def reward_position(rm, ids: list[int]) -> str:
    """Where the reward of `rm` is read from `ids`, in words."""
    from rewardkit.core.rewards import is_decoder

    model = getattr(rm, "model", None)
    try:
        decoder = is_decoder(model) if model is not None else True
    except ValueError:  # a value head or remote code: read at the last real token
        decoder = True
    index = len(ids) - 1 if decoder else 0
    how = "last real token" if decoder else "first token (the encoder's pooled [CLS])"
    if rm.kind == "remote_code":
        how += " as rewardkit pads; the model's own code decides the pooling"
    return f"index {index} ({how}), token {_token(rm.tokenizer, ids[index])!r}"


def scoring_view(rm, messages: list[Message]) -> dict:
    """The view of one conversation as `rm` scores it.

    Returns a dict: text (the template applied to what is kept), num_tokens, bos_leading, bos_total,
    double_bos, reward_read, trimmed (the dropped context messages), truncated (tokens cut beyond
    the trimming), ids. For kinds that read no tokens (function, generative) only a note.
    """
    tokenizer = getattr(rm, "tokenizer", None)
    if rm.kind in ("function", "generative") or tokenizer is None:
        return {"note": f"kind {rm.kind}: the model is not fed this conversation's tokens directly"}
    max_length = rm.max_length
    trimmed = trimmed_turns(tokenizer, messages, max_length)
    system = messages[:1] if messages[0]["role"] == "system" else []
    kept = system + messages[len(system) + len(trimmed) :]
    if rm.kind == "dpo":
        from rewardkit.scorers.dpo import encode_answer

        ids, start, _ = encode_answer(tokenizer, messages, max_length)
        read = (
            f"log-probabilities of tokens {start}..{len(ids) - 1} (the assistant turn: "
            f"{''.join(tokenizer.convert_ids_to_tokens(ids[start:]))!r}), each predicted from the token before"
        )
    else:
        ids, _ = encode_for_scoring(tokenizer, messages, max_length)
        read = reward_position(rm, ids)
    leading, total = bos_count(tokenizer, ids)
    return {
        "text": tokenizer.apply_chat_template(kept, tokenize=False),
        "num_tokens": len(ids),
        "bos_leading": leading,
        "bos_total": total,
        "double_bos": leading > 1,
        "reward_read": read,
        "trimmed": trimmed,
        "truncated": len(encode(tokenizer, kept)) > max_length,
        "ids": ids,
    }


def format_view(title: str, view: dict) -> str:
    """A view as plain text for the terminal."""
    if "note" in view:
        return f"== {title}\n{view['note']}\n"
    flags = " DOUBLE BOS" if view["double_bos"] else ""
    trimmed = ", ".join(f"{m['role']}: {m['content'][:40]!r}" for m in view["trimmed"]) or "none"
    return (
        f"== {title}\n"
        f"text the model sees:\n{view['text']}\n"
        f"tokens: {view['num_tokens']}   BOS: {view['bos_leading']} at the start, {view['bos_total']} in all{flags}\n"
        f"reward read at: {view['reward_read']}\n"
        f"context turns trimmed: {len(view['trimmed'])} ({trimmed})\n"
        f"truncated beyond trimming: {'yes' if view['truncated'] else 'no'}\n"
    )
