"""Kind `prm`: process reward models, a score per step (`core.steps`) and an aggregate per solution.

`score_steps(prompt, steps)` is the PRM's own call. The protocol (`score_detailed`, `score_groups`,
and so `score`, `score_pairs`, `compare`) scores a conversation's last answer split into steps
(`split_steps`: at blank lines when it has any, else at line breaks), with the solution's aggregate
(min by default) as its score, so best-of-N ranks solutions by it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardkit.core.batching import batch_fill, length_batches, pad_rows
from rewardkit.core.loading import default_device, ensure_pad_token, load_tokenizer
from rewardkit.core.steps import (
    AGGREGATES,
    SEPARATOR_KEY,
    good_probability,
    load_token_classifier,
    step_logits,
)
from rewardkit.core.steps import aggregate as aggregate_scores
from rewardkit.data.step_encoding import encode_steps
from rewardkit.data.tokenize import install_chat_template
from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import Messages, PointwiseMixin, Score, as_messages

logger = logging.getLogger(__name__)


@dataclass
class StepScores:
    """A solution's step scores (P(step is good), one per scored step) and their aggregate."""

    step_scores: list[float]
    score: float
    num_tokens: int = 0
    truncated: bool = False  # trailing steps did not fit max_length and were not scored


def split_steps(answer: str) -> list[str]:
    """An answer's steps: its paragraphs when it has blank lines, else its lines (empty ones dropped).

    Example:
        >>> split_steps("1. a\\n2. b\\n\\n")
        ['1. a', '2. b']
    """
    parts = answer.split("\n\n") if "\n\n" in answer.strip() else answer.split("\n")
    return [p.strip() for p in parts if p.strip()]


class ProcessRewardModel(PointwiseMixin):
    """Scores solutions step by step with a token-classification PRM.

    Args:
        model: an `AutoModelForTokenClassification` PRM (two labels, or one read through a sigmoid).
        tokenizer: with the chat template the model was trained with.
        separator_id: the step separator's token id (config.json `step_separator_id`).
        max_length: tokens per solution; steps beyond it are left unscored (flagged truncated).
        batch_tokens: padded tokens per forward.
        aggregate: default aggregate of step scores: min, prod, last or mean.

    Example:
        >>> # after `rewardkit demo --objective prm`:
        >>> rm = load_prm("outputs/demo-prm/model")  # doctest: +SKIP
        >>> rm.score_steps("2+3*4?", ["3*4 = 12.", "2 + 12 = 14."]).step_scores  # doctest: +SKIP
        [0.97, 0.95]
    """

    kind = "prm"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        separator_id: int,
        max_length: int,
        batch_tokens: int = 16384,
        max_batch_rows: int = 64,
        device: torch.device | str = "cpu",
        aggregate: str = "min",
        name: str = "",
    ):
        if aggregate not in AGGREGATES:
            raise RewardkitError(f"--aggregate {aggregate}: accepted values are {', '.join(AGGREGATES)}")
        self.model, self.tokenizer, self.separator_id = model, tokenizer, separator_id
        self.max_length, self.batch_tokens, self.max_batch_rows = max_length, batch_tokens, max_batch_rows
        self.device, self.aggregate, self.name = torch.device(device), aggregate, name

    def score_steps(
        self, prompt: Messages | str, steps: Sequence[str], aggregate: str | None = None
    ) -> StepScores:
        """Score one solution's steps."""
        return self.score_solutions([(prompt, steps)], aggregate)[0]

    def score_solutions(
        self, solutions: Sequence[tuple[Messages | str, Sequence[str]]], aggregate: str | None = None
    ) -> list[StepScores]:
        """Score many (prompt, steps) solutions, batched by length; results in input order."""
        how = aggregate or self.aggregate
        encoded = []
        for prompt, steps in solutions:
            if not steps:
                raise RewardkitError("a solution to score needs at least one step")
            enc = encode_steps(
                self.tokenizer, as_messages(prompt), list(steps), self.separator_id, self.max_length
            )
            if enc is None:
                raise RewardkitError(
                    f"a prompt of this solution leaves no room for its first step within max_length={self.max_length}"
                )
            encoded.append(enc)
        probs: list[list[float]] = [[] for _ in encoded]
        lengths = [len(e.input_ids) for e in encoded]
        for batch in length_batches(lengths, self.batch_tokens, self.max_batch_rows, batch_fill(self.device)):
            ids, mask = pad_rows([encoded[i].input_ids for i in batch], self.tokenizer.pad_token_id, "right")
            with torch.no_grad():
                logits = step_logits(self.model, ids.to(self.device), mask.to(self.device))
            for row, i in enumerate(batch):
                at = torch.tensor(encoded[i].step_positions, device=logits.device)
                probs[i] = good_probability(logits[row, at]).tolist()
        return [
            StepScores(p, aggregate_scores(p, how), len(e.input_ids), e.truncated)
            for p, e in zip(probs, encoded)
        ]

    def score_detailed(self, conversations: Sequence[Messages]) -> list[Score]:
        """Each conversation's last answer, split into steps, scored by its aggregate."""
        solutions = []
        for conv in conversations:
            if not conv or conv[-1]["role"] != "assistant":
                raise RewardkitError("a conversation to score must end with an assistant answer")
            solutions.append((list(conv[:-1]), split_steps(conv[-1]["content"]) or [conv[-1]["content"]]))
        return [
            Score(s.score, num_tokens=s.num_tokens, truncated=s.truncated, step_scores=s.step_scores)
            for s in self.score_solutions(solutions)
        ]


def load_prm(
    path: str,
    *,
    gguf_file: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    template_name: str | None = "auto",
    max_length: int | None = None,
    batch_tokens: int = 16384,
    aggregate: str | None = None,
    allow_pickle: bool = False,
) -> ProcessRewardModel:
    """A PRM checkpoint (`rewardkit train --objective prm` output, or any token classifier whose
    config.json names its `step_separator`) ready to score."""
    config_file = Path(path) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if SEPARATOR_KEY not in config:
        raise RewardkitError(
            f"--model {path}: config.json has no '{SEPARATOR_KEY}'; a PRM records the token after each step "
            "(add step_separator and step_separator_id to config.json for a PRM trained elsewhere)"
        )
    tokenizer = load_tokenizer(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    model = load_token_classifier(
        path,
        gguf_file=gguf_file,
        dtype=dtype,
        attn_implementation=attn_implementation,
        device_map=device_map,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
    ).eval()
    ensure_pad_token(tokenizer, model)
    logger.info("%s: chat template: %s", path, install_chat_template(tokenizer, template_name))
    separator_id = config.get("step_separator_id")
    if separator_id is None:
        separator_id = tokenizer.convert_tokens_to_ids(config[SEPARATOR_KEY])
    device = default_device(device_map)
    if not device_map:
        model.to(device)
    limit = getattr(model.config, "max_position_embeddings", None) or 4096
    return ProcessRewardModel(
        model,
        tokenizer,
        separator_id=int(separator_id),
        max_length=min(max_length or limit, limit),
        batch_tokens=batch_tokens,
        device=device,
        aggregate=aggregate or config.get("prm_aggregate") or "min",
        name=str(path),
    )
