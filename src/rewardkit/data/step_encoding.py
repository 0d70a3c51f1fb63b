"""Token ids of a step-by-step solution for a process reward model: `[prompt | step 1 SEP | step 2 SEP | ...]`.

The prompt is the chat template's rendering of the prompt messages with the generation prompt (the
assistant turn's header); each step is tokenized on its own and followed by the separator token,
whose position is where the PRM reads that step's score. The same layout is used in training,
scoring, evaluation and serving, and in the plain-transformers snippet of docs/prm.md:

    ids = tok(tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
              add_special_tokens=False).input_ids
    for step in steps:
        ids += tok(step, add_special_tokens=False).input_ids + [separator_id]

Length policy: steps are never cut. When the solution does not fit `max_length`, the steps that fit
are kept (with their labels) and the rest left out, flagged `truncated`; a prompt that leaves no room
for the first step cannot be encoded (None).
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardkit.data.schema import Message
from rewardkit.errors import RewardkitError


@dataclass
class EncodedSteps:
    input_ids: list[int]
    step_positions: list[int]  # index of each kept step's separator token
    truncated: bool  # some trailing steps did not fit

    @property
    def num_steps(self) -> int:
        return len(self.step_positions)


def encode_prompt(tokenizer, prompt: list[Message]) -> list[int]:
    """The prompt's ids, ending with the assistant header the steps follow."""
    if not tokenizer.chat_template:
        raise RewardkitError("the tokenizer has no chat template: call install_chat_template first")
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_steps(
    tokenizer, prompt: list[Message], steps: list[str], separator_id: int, max_length: int
) -> EncodedSteps | None:
    """`[prompt | step SEP | ...]` ids and the separator positions; None when not even one step fits.

    Example (a tokenizer with one id per character and separator id 0; prompt ids elided):
        >>> enc = encode_steps(tok, [{"role": "user", "content": "q"}], ["ab", "c"], 0, 64)  # doctest: +SKIP
        >>> enc.input_ids[-5:], enc.step_positions  # doctest: +SKIP
        ([97, 98, 0, 99, 0], [n + 2, n + 4])
    """
    ids = encode_prompt(tokenizer, prompt)
    positions: list[int] = []
    for step in steps:
        step_ids = tokenizer(step, add_special_tokens=False)["input_ids"] + [separator_id]
        if len(ids) + len(step_ids) > max_length:
            break
        ids = ids + step_ids
        positions.append(len(ids) - 1)
    if not positions:
        return None
    return EncodedSteps(ids, positions, truncated=len(positions) < len(steps))
