"""The one normal form every preference format is read into."""

from __future__ import annotations

from dataclasses import dataclass, field

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


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

    def prompt_messages(self) -> list[Message]:
        """The prompt with the system message (if any) in front."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(self.prompt)

    def chosen_messages(self) -> list[Message]:
        return self.prompt_messages() + [{"role": "assistant", "content": self.chosen}]

    def rejected_messages(self) -> list[Message]:
        return self.prompt_messages() + [{"role": "assistant", "content": self.rejected}]


@dataclass
class NWayItem:
    """One prompt with one or more preferred answers and several rejected ones (RewardBench-2 layout).

    A plain pair is the case `len(chosen) == len(rejected) == 1`.
    """

    prompt: list[Message]
    chosen: list[str]
    rejected: list[str]
    system: str | None = None
    subset: str | None = None
    source: str = ""
    id: str | int | None = None  # the row's `id` (RewardBench), kept into eval's results.json

    def prompt_messages(self) -> list[Message]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(self.prompt)
