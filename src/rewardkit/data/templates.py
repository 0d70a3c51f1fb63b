"""Conversation templates: the seed's registry (`Conversation`, `register_conv_template`, `get_conv_template`).

A registry template is also rendered as a Jinja chat template and installed on the tokenizer, so that
training, `rewardkit score` and a plain `tokenizer.apply_chat_template(conv, tokenize=True)` on the
exported checkpoint all produce the same tokens. That single path is also why there is never a double
BOS: the special tokens the tokenizer would add around a text are written into the template once, and
`apply_chat_template` adds nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rewardkit.data.schema import Message
from rewardkit.errors import RewardkitError


@dataclass
class Conversation:
    """A prompt format, as in MedicalGPT's template.py.

    Attributes:
        name: registry key.
        system_prompt: default system prompt, used when a conversation has none.
        roles: display names of (user, assistant); informational.
        prompt: the user-turn format, with `{query}` where the user text goes; the answer follows it.
        sep: put after the system prompt and between turns.
        system_format: how the system prompt is written, with `{system}`.
        stop_str: the string that ends an answer when generating.

    Example:
        >>> get_conv_template("vicuna").get_prompt([["Hi", "Hello!"]], system_prompt="Be nice.")
        'Be nice.</s>USER: Hi ASSISTANT:Hello!'
    """

    name: str
    system_prompt: str
    roles: tuple[str, str]
    prompt: str
    sep: str
    system_format: str = "{system}"
    stop_str: str | None = None

    def get_prompt(self, messages: list[list[str]], system_prompt: str | None = "") -> str:
        """The whole text of [[query, answer], ...] turns (the seed's API)."""
        return "".join(self.get_dialog(messages, system_prompt))

    def get_dialog(self, messages: list[list[str]], system_prompt: str | None = "") -> list[str]:
        """Alternating [user part, answer, user part, answer, ...] strings (the seed's API)."""
        system = system_prompt or self.system_prompt
        head = self.system_format.format(system=system) + self.sep if system else ""
        parts: list[str] = []
        for i, (query, answer) in enumerate(messages):
            parts.append((head if i == 0 else self.sep) + self.prompt.format(query=query))
            parts.append(answer)
        return parts

    def render(self, messages: list[Message]) -> str:
        """The text of a message list (system first if any, user/assistant alternating)."""
        system = None
        if messages and messages[0]["role"] == "system":
            system, messages = messages[0]["content"], messages[1:]
        turns: list[list[str]] = []
        for m in messages:
            if m["role"] == "user":
                turns.append([m["content"], ""])
            elif m["role"] == "assistant" and turns and turns[-1][1] == "":
                turns[-1][1] = m["content"]
            else:
                raise RewardkitError(
                    f"template '{self.name}': messages must alternate user/assistant, got {m['role']}"
                )
        return self.get_prompt(turns, system_prompt=system)

    def to_jinja(self, prefix: str = "", suffix: str = "") -> str:
        """This template as a Jinja chat template that renders exactly like `render`.

        Args:
            prefix: text put first (the tokenizer's own leading special tokens, e.g. "<s>" or "[CLS]").
            suffix: text put last (e.g. BERT's "[SEP]").
        """
        pre, post = self.prompt.split("{query}")
        sys_pre, sys_post = self.system_format.split("{system}")
        q = json.dumps  # a JSON string literal is a valid Jinja string literal
        return (
            f"{{%- set sys = {q(self.system_prompt)} -%}}"
            "{%- set msgs = messages -%}"
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set sys = messages[0]['content'] or sys -%}{%- set msgs = messages[1:] -%}{%- endif -%}"
            # a row's tools (chat template `tools` argument) are written into the system turn
            f"{{%- if tools -%}}{{%- set sys = (sys ~ {q(chr(10) * 2)} if sys else '') ~ {q(TOOLS_INTRO)}"
            " ~ (tools | tojson) -%}{%- endif -%}"
            f"{{{{ {q(prefix)} }}}}"
            f"{{%- if sys -%}}{{{{ {q(sys_pre)} + sys + {q(sys_post)} + {q(self.sep)} }}}}{{%- endif -%}}"
            "{%- for m in msgs -%}"
            "{%- if m['role'] in ('user', 'tool') -%}"
            f"{{%- if not loop.first -%}}{{{{ {q(self.sep)} }}}}{{%- endif -%}}"
            f"{{%- set text = ({q(TOOL_RESULT)} if m['role'] == 'tool' else '') ~ m['content'] -%}}"
            f"{{{{ {q(pre)} + text + {q(post)} }}}}"
            "{%- else -%}{{ m['content'] }}"
            "{%- if m.get('tool_calls') -%}{{ ('\\n' if m['content'] else '') ~ (m['tool_calls'] | tojson) }}"
            "{%- endif -%}{%- endif -%}"
            "{%- endfor -%}"
            f"{{{{ {q(suffix)} }}}}"
        )


# How registry templates write tools (docs/formats.md): the tool list as JSON at the end of the
# system turn, an answer's tool calls as JSON after its text, a tool result as a user turn.
TOOLS_INTRO = "You can call these tools (JSON schemas):\n"
TOOL_RESULT = "Tool result: "

conv_templates: dict[str, Conversation] = {}


def register_conv_template(template: Conversation, override: bool = False) -> None:
    """Add a template to the registry (the seed's API)."""
    if template.name in conv_templates and not override:
        raise RewardkitError(f"template '{template.name}' is already registered")
    conv_templates[template.name] = template


AUTO_TEMPLATE = (
    "auto"  # the tokenizer's own chat template (plain when it has none); "" and None mean the same
)


RAW_TEXT = "raw_text"  # TRL's token stream for string rows: prompt + answer text + EOS, no chat template


def templates_help() -> str:
    """The accepted template names, for a flag's help text: the registry's names, raw_text, or auto."""
    return (
        f"{', '.join(conv_templates)}, {RAW_TEXT} (TRL's stream: texts as they are + EOS), "
        f"or {AUTO_TEMPLATE} (the tokenizer's own chat template)"
    )


def check_template_name(name: str | None) -> None:
    """Raise when `name` is neither a registered template, raw_text nor auto (an error naming --template_name)."""
    if name not in (None, "", AUTO_TEMPLATE, RAW_TEXT):
        get_conv_template(name)


def get_conv_template(name: str) -> Conversation:
    """A registered template by name (the seed's API)."""
    if name not in conv_templates:
        raise RewardkitError(f"--template_name {name}: unknown template; accepted: {templates_help()}")
    return conv_templates[name]


register_conv_template(
    Conversation(
        name="vicuna",
        system_prompt="A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        roles=("USER", "ASSISTANT"),
        prompt="USER: {query} ASSISTANT:",
        sep="</s>",
    )
)
register_conv_template(
    Conversation(
        name="alpaca",
        system_prompt="Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.",
        roles=("### Instruction", "### Response"),
        prompt="### Instruction:\n{query}\n\n### Response:\n",
        sep="\n\n",
    )
)
register_conv_template(
    Conversation(
        name="chatml",
        system_prompt="",
        roles=("user", "assistant"),
        prompt="<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n",
        sep="<|im_end|>\n",
        system_format="<|im_start|>system\n{system}",
        stop_str="<|im_end|>",
    )
)
register_conv_template(
    Conversation(
        name="qwen",
        system_prompt="You are a helpful assistant.",
        roles=("user", "assistant"),
        prompt="<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n",
        sep="<|im_end|>\n",
        system_format="<|im_start|>system\n{system}",
        stop_str="<|im_end|>",
    )
)
register_conv_template(
    Conversation(
        name="llama3",
        system_prompt="",
        roles=("user", "assistant"),
        prompt="<|start_header_id|>user<|end_header_id|>\n\n{query}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        sep="<|eot_id|>",
        system_format="<|start_header_id|>system<|end_header_id|>\n\n{system}",
        stop_str="<|eot_id|>",
    )
)
register_conv_template(
    Conversation(
        name="plain",
        system_prompt="",
        roles=("Human", "Assistant"),
        prompt="Human: {query}\nAssistant: ",
        sep="\n",
        system_format="{system}",
    )
)
