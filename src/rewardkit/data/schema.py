"""The one normal form every preference format is read into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# {"role": "system"|"user"|"assistant"|"tool", "content": str}, plus "tool_calls" on an assistant
# message that calls tools; the first message of a conversation may carry the row's "tools" list,
# which `data.tokenize.encode` hands to the chat template's `tools` argument.
Message = dict[str, Any]
TOOLS_KEY = "tools"


def with_tools(messages: list[Message], tools: list | None) -> list[Message]:
    """`messages` with `tools` attached to the first message (a no-op without tools)."""
    if not tools or not messages:
        return messages
    return [{**messages[0], TOOLS_KEY: tools}, *messages[1:]]


def answer_message(content: str, tool_calls: list | None = None) -> Message:
    """The assistant turn of an answer: its text, and its tool calls when it calls tools."""
    return {"role": "assistant", "content": content, **({"tool_calls": tool_calls} if tool_calls else {})}


@dataclass
class PreferencePair:
    """One preference: a shared prompt and two answers, the first preferred.

    Attributes:
        prompt: the conversation before the answer, as messages (user/assistant turns, ending
            with a user turn); no system message here.
        chosen: the preferred assistant answer.
        rejected: the other assistant answer.
        system: the system prompt, or None.
        margin: how much `chosen` is preferred (added inside the Bradley-Terry loss), or None.
        subset: a label used by `rewardkit eval` to group results, or None.
        source: where the row came from, "file:line", for error messages and reports.

    Example:
        >>> p = PreferencePair([{"role": "user", "content": "2+2?"}], "4", "5")
        >>> p.chosen_messages()[-1]
        {'role': 'assistant', 'content': '4'}
    """

    prompt: list[Message]
    chosen: str
    rejected: str
    system: str | None = None
    margin: float | None = None
    subset: str | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)
    tools: list | None = None  # the row's tool schemas, for the chat template's `tools` argument
    chosen_tool_calls: list | None = None  # the chosen answer's tool calls (its text may then be empty)
    rejected_tool_calls: list | None = None

    def prompt_messages(self) -> list[Message]:
        """The prompt with the system message (if any) in front (and the row's tools on its first message)."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return with_tools(head + list(self.prompt), self.tools)

    def chosen_answer(self) -> Message:
        return answer_message(self.chosen, self.chosen_tool_calls)

    def rejected_answer(self) -> Message:
        return answer_message(self.rejected, self.rejected_tool_calls)

    def chosen_messages(self) -> list[Message]:
        return self.prompt_messages() + [self.chosen_answer()]

    def rejected_messages(self) -> list[Message]:
        return self.prompt_messages() + [self.rejected_answer()]


@dataclass
class NWayItem:
    """One prompt with one or more preferred answers and several rejected ones (RewardBench-2 layout).

    A plain pair is the case `len(chosen) == len(rejected) == 1`. An answer is a string, or an
    assistant message (`answer_message`) when it calls tools.
    """

    prompt: list[Message]
    chosen: list[str | Message]
    rejected: list[str | Message]
    system: str | None = None
    subset: str | None = None
    source: str = ""
    id: str | int | None = None  # the row's `id` (RewardBench), kept into eval's results.json
    tools: list | None = None

    def prompt_messages(self) -> list[Message]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return with_tools(head + list(self.prompt), self.tools)
