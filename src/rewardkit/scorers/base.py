"""What every kind of reward model offers: the seam between scorers and their users (CLI, eval, serve)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from rewardkit.data.schema import Message

Messages = list[Message]  # a conversation as a list of {"role", "content"} messages


@dataclass
class Score:
    """The score of one conversation's last assistant answer.

    Attributes:
        score: the reward (raw logit for classifiers, rating or expected win-rate for judges).
        num_tokens: tokens the model read for this conversation (after any trimming).
        truncated: True when older context turns had to be dropped to fit the length limit.
        normalized: (score - mean) / std when the checkpoint carries reward statistics.
        sub_scores: per-objective rewards (multi-objective heads), or judge details.
        step_scores: process reward models: P(step is good) per step of the answer (`score` is
            their aggregate); None for other kinds.
    """

    score: float
    num_tokens: int = 0
    truncated: bool = False
    normalized: float | None = None
    sub_scores: dict[str, float] = field(default_factory=dict)
    step_scores: list[float] | None = None


@dataclass
class Comparison:
    """Best-of-N result: scores in input order and the ranking, best first (indices into responses)."""

    scores: list[float]
    ranking: list[int]


class Group(NamedTuple):
    """Answers to one prompt, scored together: a pair is a group of two, best-of-N a group of N."""

    prompt: Messages
    answers: Sequence[str | dict]  # a text, or an assistant message (e.g. one that calls tools)

    def conversations(self) -> list[Messages]:
        """Each answer as a full conversation (the prompt, then the answer as the assistant turn)."""
        return [
            list(self.prompt) + [dict(a) if isinstance(a, dict) else {"role": "assistant", "content": a}]
            for a in self.answers
        ]


@runtime_checkable
class RewardModel(Protocol):
    """Any reward model rewardkit can drive. `kind` names which one (for reports and logs).

    `score_groups` is the one scoring call of the score command (pairs), eval (items) and serve's
    /compare: each kind answers a group in its own best way (a classifier reads the shared prompt
    once, a judge compares the answers with each other). `score_detailed` scores conversations one
    by one; `score`, `score_pairs` and `compare` follow from the two (`GroupMixin`).
    """

    kind: str

    def score_detailed(self, conversations: Sequence[Messages]) -> list[Score]: ...

    def score_groups(self, groups: Sequence[Group]) -> list[list[Score]]: ...

    def score(self, conversations: Sequence[Messages]) -> list[float]: ...

    def score_pairs(
        self, prompts: Sequence[Messages | str], chosen: Sequence[str], rejected: Sequence[str]
    ) -> tuple[list[float], list[float]]: ...

    def compare(self, prompt: Messages | str, responses: Sequence[str]) -> Comparison: ...


def as_messages(prompt: Messages | str) -> Messages:
    """A prompt given as plain text becomes one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def ranking(scores: Sequence[float]) -> list[int]:
    """Indices of `scores`, best first; ties keep input order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


class GroupMixin:
    """`score`, `score_pairs_detailed`, `score_pairs` and `compare`, from `score_detailed` and `score_groups`.

    `answers_alone` says whether an answer's score is the same whatever other answers share its group
    (True for models that score each conversation on its own); eval's stress tests then re-score
    only the answers a perturbation changes.
    """

    answers_alone: bool = False

    def score(self, conversations: Sequence[Messages]) -> list[float]:
        return [s.score for s in self.score_detailed(conversations)]

    def score_pairs_detailed(self, prompts, chosen, rejected) -> tuple[list[Score], list[Score]]:
        """Both answers of each pair, scored as a group of two."""
        if not len(prompts) == len(chosen) == len(rejected):
            raise ValueError("score_pairs: prompts, chosen and rejected must have the same length")
        scored = self.score_groups(
            [Group(as_messages(p), [c, r]) for p, c, r in zip(prompts, chosen, rejected)]
        )
        return [s[0] for s in scored], [s[1] for s in scored]

    def score_pairs(self, prompts, chosen, rejected) -> tuple[list[float], list[float]]:
        c, r = self.score_pairs_detailed(prompts, chosen, rejected)
        return [s.score for s in c], [s.score for s in r]

    def compare(self, prompt, responses) -> Comparison:
        """Best-of-N: the responses scored as one group, and their ranking (best first)."""
        if not responses:
            return Comparison(scores=[], ranking=[])
        (scored,) = self.score_groups([Group(as_messages(prompt), list(responses))])
        scores = [s.score for s in scored]
        return Comparison(scores=scores, ranking=ranking(scores))


def scores_answers_alone(model) -> bool:
    """True when `model` scores each answer on its own (`GroupMixin.answers_alone`); False if unknown."""
    return bool(getattr(model, "answers_alone", False))


def split_groups(flat: Sequence[Score], groups: Sequence[Group]) -> list[list[Score]]:
    """Scores of the groups' conversations, flattened in order, cut back into one list per group."""
    out, pos = [], 0
    for g in groups:
        out.append(list(flat[pos : pos + len(g.answers)]))
        pos += len(g.answers)
    return out


class PointwiseMixin(GroupMixin):
    """The protocol for a model that scores one conversation at a time: a group is its conversations.

    A class that mixes this in defines `score_detailed`; the rest follows from it.
    """

    answers_alone = True

    def score_groups(self, groups: Sequence[Group]) -> list[list[Score]]:
        return split_groups(self.score_detailed([c for g in groups for c in g.conversations()]), groups)
