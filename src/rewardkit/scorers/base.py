"""What every kind of reward model offers: the seam between scorers and their users (CLI, eval, serve)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rewardkit.data.schema import Message

Conversation = list[Message]


@dataclass
class Score:
    """The score of one conversation's last assistant answer.

    Attributes:
        score: the reward (raw logit for classifiers, rating or expected win-rate for judges).
        num_tokens: tokens the model read for this conversation (after any trimming).
        truncated: True when older context turns had to be dropped to fit the length limit.
        normalized: (score - mean) / std when the checkpoint carries reward statistics.
        sub_scores: per-objective rewards (multi-objective heads), or judge details.
    """

    score: float
    num_tokens: int = 0
    truncated: bool = False
    normalized: float | None = None
    sub_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Comparison:
    """Best-of-N result: scores in input order and the ranking, best first (indices into responses)."""

    scores: list[float]
    ranking: list[int]


@runtime_checkable
class RewardModel(Protocol):
    """Any reward model rewardkit can drive. `kind` names which one (for reports and logs)."""

    kind: str

    def score_detailed(self, conversations: Sequence[Conversation]) -> list[Score]: ...

    def score(self, conversations: Sequence[Conversation]) -> list[float]: ...

    def score_pairs(
        self, prompts: Sequence[Conversation | str], chosen: Sequence[str], rejected: Sequence[str]
    ) -> tuple[list[float], list[float]]: ...

    def compare(self, prompt: Conversation | str, responses: Sequence[str]) -> Comparison: ...


def as_messages(prompt: Conversation | str) -> Conversation:
    """A prompt given as plain text becomes one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def ranking(scores: Sequence[float]) -> list[int]:
    """Indices of `scores`, best first; ties keep input order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


class PointwiseMixin:
    """`score`, `score_pairs` and `compare` for a model that scores one conversation at a time.

    A class that mixes this in defines `score_detailed`; the rest follows from it.
    """

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        return [s.score for s in self.score_detailed(conversations)]

    def score_pairs(self, prompts, chosen, rejected):
        if not len(prompts) == len(chosen) == len(rejected):
            raise ValueError("score_pairs: prompts, chosen and rejected must have the same length")
        convs = [as_messages(p) + [{"role": "assistant", "content": a}] for p, a in zip(prompts, chosen)]
        convs += [as_messages(p) + [{"role": "assistant", "content": a}] for p, a in zip(prompts, rejected)]
        scores = self.score(convs)
        return scores[: len(chosen)], scores[len(chosen) :]

    def compare(self, prompt, responses) -> Comparison:
        head = as_messages(prompt)
        scores = self.score([head + [{"role": "assistant", "content": r}] for r in responses])
        return Comparison(scores=scores, ranking=ranking(scores))
