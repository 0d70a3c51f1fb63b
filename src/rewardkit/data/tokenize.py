"""Turn conversations into token ids once, with one chat template and the length policy.

Length policy: a pair longer than `max_length` keeps both answers whole and drops the oldest context
turns (user + assistant) first; if even the last user turn and the answers cannot fit, the pair is
dropped and counted as `too_long`. An answer is never cut.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rewardkit.data.schema import TOOLS_KEY, Message, PreferencePair
from rewardkit.data.templates import RAW_TEXT, get_conv_template
from rewardkit.errors import RewardkitError


def _special_ids(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a plain text (e.g. <s>, or [CLS] … [SEP])."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    return [], []


def _special_affixes(tokenizer) -> tuple[str, str]:
    """The special tokens the tokenizer puts around a plain text, as text (e.g. "<s>", or "[CLS]" … "[SEP]")."""
    head, tail = _special_ids(tokenizer)
    return "".join(tokenizer.convert_ids_to_tokens(head)), "".join(tokenizer.convert_ids_to_tokens(tail))


def clip_tokens(tokenizer, ids: list[int], max_length: int) -> list[int]:
    """`ids` cut to `max_length` tokens from the middle: the leading special tokens (BOS, or an encoder's
    [CLS], where it reads the reward) and the end (the answer's last token, where a decoder reads it) stay.

    Example (MiniLM's tokenizer: every text starts with [CLS], id 101, and ends with [SEP], 102):
        >>> from transformers import AutoTokenizer
        >>> from rewardkit.assets import minilm_dir
        >>> clip_tokens(AutoTokenizer.from_pretrained(minilm_dir()), [101, 10, 11, 12, 13, 102], 4)
        [101, 12, 13, 102]
    """
    if len(ids) <= max_length:
        return ids
    head, _ = _special_ids(tokenizer)
    keep = len(head) if ids[: len(head)] == head and len(head) < max_length else 0
    return ids[:keep] + ids[len(ids) - (max_length - keep) :]


def install_chat_template(tokenizer, template_name: str | None = None) -> str:
    """Put the chat template used for training/scoring on `tokenizer` and say which one it is.

    Args:
        tokenizer: a Hugging Face tokenizer; its `chat_template` is set in place.
        template_name: a registry name (vicuna, alpaca, chatml, qwen, llama3, plain), "raw_text"
            (TRL's stream for string rows: the texts joined as they are, EOS appended, no chat
            template), or None/"auto" to use the tokenizer's own chat template, falling back to
            "plain" when it has none.

    Returns:
        A short description for logs, e.g. "tokenizer's own chat template".
    """
    if template_name in (None, "", "auto"):
        if tokenizer.chat_template:
            return "tokenizer's own chat template"
        template_name = "plain"
    prefix, suffix = _special_affixes(tokenizer)
    if template_name == RAW_TEXT:
        tokenizer.chat_template = raw_text_template(prefix, suffix, tokenizer.eos_token or "")
        return (
            f"raw text, TRL's stream for string rows: {prefix!r} + prompt + answer + "
            f"EOS {tokenizer.eos_token!r}, no chat template"
        )
    conv = get_conv_template(template_name)
    tokenizer.chat_template = conv.to_jinja(prefix=prefix, suffix=suffix)
    return f"registry template '{template_name}' (special tokens {prefix!r}…{suffix!r})"


def raw_text_template(prefix: str, suffix: str, eos: str) -> str:
    """A Jinja chat template that joins the messages' texts as they are, as TRL tokenizes string rows.

    TRL's RewardTrainer tokenizes `prompt + chosen` with the tokenizer's own special tokens and
    appends EOS when it is not already last; this template writes exactly that text, so
    `apply_chat_template` (and so train, score, eval and serve) gives TRL's token ids.
    """
    q = json.dumps  # a JSON string literal is a valid Jinja string literal
    text = f"(messages | map(attribute='content') | join) + {q(suffix)}"
    return (
        f"{{{{ {q(prefix)} }}}}{{%- set text = {text} -%}}{{{{ text }}}}"
        f"{{%- if {q(eos)} and not text.endswith({q(eos)}) -%}}{{{{ {q(eos)} }}}}{{%- endif -%}}"
    )


def eos_last_template(template: str, eos: str) -> str:
    """`template` rendering the text OpenRLHF's RewardDataset trains on: the chat template's text with
    trailing newlines dropped and " " + EOS appended unless it already ends with EOS.

    OpenRLHF reads the reward at that last token (its dataset also forces the last token to EOS after
    truncation; `clip_tokens` keeps the end the same way), so its value-head checkpoints are scored at
    the token they were trained at.
    """
    q = json.dumps
    return (
        "{% set rendered %}" + template + "{% endset %}"
        "{%- set text = rendered.rstrip('\\n') -%}{{ text }}"
        f"{{%- if not text.endswith({q(eos)}) -%}}{{{{ ' ' + {q(eos)} }}}}{{%- endif -%}}"
    )


def encode(tokenizer, messages: list[Message], tools: list | None = None) -> list[int]:
    """Token ids of a whole conversation, exactly as `apply_chat_template(messages, tokenize=True)` gives.

    The row's tool list (`tools`, or carried on the first message, `schema.with_tools`) goes to the
    chat template's `tools` argument.
    """
    if not tokenizer.chat_template:
        raise RewardkitError("the tokenizer has no chat template: call install_chat_template first")
    messages, carried = split_tools(messages)
    tools = tools or carried
    text = (
        tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
        if tools
        else (tokenizer.apply_chat_template(messages, tokenize=False))
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def split_tools(messages: list[Message]) -> tuple[list[Message], list | None]:
    """(messages without the carried tool list, the tool list or None)."""
    if messages and TOOLS_KEY in messages[0]:
        head = {k: v for k, v in messages[0].items() if k != TOOLS_KEY}
        return [head, *messages[1:]], messages[0][TOOLS_KEY]
    return messages, None


_PROBE = "\u2063rewardkit-probe\u2063"  # text no real answer contains


def answer_suffix(tokenizer) -> str:
    """What the chat template writes after an assistant answer's text (ChatML: "<|im_end|>\\n",
    Llama-3: "<|eot_id|>", Gemma: "<end_of_turn>\\n", a registry template: its suffix, often "")."""
    probe = [{"role": "user", "content": "u"}, {"role": "assistant", "content": _PROBE}]
    text = tokenizer.apply_chat_template(probe, tokenize=False)
    at = text.rfind(_PROBE)
    return text[at + len(_PROBE) :] if at >= 0 else ""


def complete_turn(text: str, suffix: str, special_tokens: list[str], eos_token: str | None) -> str:
    """A formatted text as the chat template would have ended it, so the reward is read at the same token.

    OpenRLHF's remote-RM client (and any client that decodes generated ids) sends prompt + answer
    ending at the EOS token, e.g. "...4<|im_end|>", while the template writes "...4<|im_end|>\\n" and
    the reward model, trained on template output, reads the reward at the last token. The rule:

    * the text already ends with the whole `suffix`: unchanged;
    * it ends with a beginning of `suffix` that stops right after a special token (the end-of-turn
      token; the longest such beginning where there are several): the rest of the suffix is added
      (ChatML's "\\n", Gemma's "\\n");
    * the template writes nothing special after an answer and the text ends with an EOS the
      template never writes: that EOS is removed (the reward is read at the answer's last token, as
      for the same conversation sent as messages).

    Example:
        >>> complete_turn("<|im_start|>assistant\\n4<|im_end|>", "<|im_end|>\\n", ["<|im_end|>"], "<|im_end|>")
        '<|im_start|>assistant\\n4<|im_end|>\\n'
    """
    if not suffix or text.endswith(suffix):
        if eos_token and not suffix and text.endswith(eos_token):
            return text[: -len(eos_token)]
        return text
    heads = []  # every beginning of `suffix` that stops right after a special token
    for token in special_tokens:
        at = suffix.find(token)
        while at >= 0:
            heads.append(suffix[: at + len(token)])
            at = suffix.find(token, at + 1)
    for head in sorted(heads, key=len, reverse=True):  # the longest the text ends with
        if text.endswith(head):
            return text + suffix[len(head) :]
    return text


@dataclass
class EncodedPair:
    chosen_ids: list[int]
    rejected_ids: list[int]
    turns_trimmed: int  # context turns (user + assistant) dropped to fit max_length
    margin: float | None = None
    source: str = ""


def _trim_oldest(prompt: list[Message]) -> list[Message] | None:
    """The prompt without its oldest user turn (and the assistant turn after it), or None if none is left."""
    users = [i for i, m in enumerate(prompt) if m["role"] == "user"]
    if len(users) < 2:
        return None
    return prompt[users[1] :]


def encode_pair(tokenizer, pair: PreferencePair, max_length: int) -> EncodedPair | None:
    """Tokenize both sides of a pair, trimming old context to fit; None when it cannot fit."""
    prompt, trimmed = list(pair.prompt), 0
    while True:
        head = ([{"role": "system", "content": pair.system}] if pair.system else []) + prompt
        chosen = encode(tokenizer, head + [pair.chosen_answer()], tools=pair.tools)
        rejected = encode(tokenizer, head + [pair.rejected_answer()], tools=pair.tools)
        if max(len(chosen), len(rejected)) <= max_length:
            return EncodedPair(chosen, rejected, trimmed, pair.margin, pair.source)
        prompt = _trim_oldest(prompt)
        if prompt is None:
            return None
        trimmed += 1


def encode_for_scoring(tokenizer, messages: list[Message], max_length: int) -> tuple[list[int], bool]:
    """Token ids of one conversation to score, and whether context had to be trimmed.

    Old turns go first, as in training. If the last user turn and the answer alone are still too long,
    tokens are cut after the leading special tokens (`clip_tokens`: what the model reads the reward
    from stays, at either end) and the result is flagged.
    """
    messages, tools = split_tools(list(messages))
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    body, answer = messages[len(system) : -1], messages[-1:]
    truncated = False
    while True:
        ids = encode(tokenizer, system + body + answer, tools=tools)
        if len(ids) <= max_length:
            return ids, truncated
        shorter = _trim_oldest(body)
        if shorter is None:
            return clip_tokens(tokenizer, ids, max_length), True
        body, truncated = shorter, True


def common_prefix_len(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists (the shared prompt of a pair)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
