"""Kinds 1 and 2 (classifiers): a forward that maps token ids to rewards, driven by one batching loop.

`ClassifierRM` owns tokenizing (the chat template from training), the length policy, batching by a
token budget (longest first, so padding is small), restoring input order, and normalisation. What
differs between a Skywork-style sequence classifier, a value-head checkpoint and a remote-code model
is only the `forward` function given to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from rewardkit.core.batching import batch_fill, length_batches, pad_rows
from rewardkit.core.prefix import UnsupportedCache, prefix_group_rewards, supports_prefix_sharing
from rewardkit.data.tokenize import answer_suffix, clip_tokens, complete_turn, encode, encode_for_scoring
from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import Group, Messages, PointwiseMixin, Score

logger = logging.getLogger(__name__)

# forward(input_ids, attention_mask) -> (rows,) rewards, or (rows, k) with k named sub-scores
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ClassifierRM(PointwiseMixin):
    """A reward model that reads token ids and returns one reward (plus optional sub-scores) per row.

    Args:
        forward: maps (input_ids, attention_mask) to rewards; see `Forward`.
        tokenizer: carries the chat template the model was trained with.
        kind: "seq_classifier", "value_head", "remote_code".
        max_length: tokens per conversation; older context turns are trimmed beyond it.
        batch_tokens: padded tokens per forward (rows × longest row); on CPU rows of similar length
            only (see `length_batches`).
        max_batch_rows: rows per forward at most.
        device: where input tensors go.
        normalization: (mean, std) of rewards from training, for `Score.normalized`.
        sub_score_names: names of the columns when forward returns (rows, k); the first is the reward
            unless `reward_column` says otherwise.
        pad_side: "right" (required for encoders) or "left".
        model: the torch module behind `forward`, kept for prefix sharing and introspection.
        prefix_sharing: score each group's shared prompt once (`core.prefix`); needs `model` to be a
            decoder sequence classifier, else it is refused.

    Example:
        >>> from transformers import AutoTokenizer
        >>> from rewardkit.assets import minilm_dir
        >>> tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
        >>> rm = ClassifierRM(lambda ids, mask: mask.sum(-1).float(), tokenizer, kind="demo", max_length=512)
        >>> rm.score_token_ids([[5, 6, 7], [5]])  # this toy forward counts tokens
        [3.0, 1.0]
    """

    # Set by the loader for a head ensemble (`scorers.ensemble.use_ensemble`): maps (rows, K) member
    # outputs to the columns [aggregate, mean, std, min, members...] named by `sub_score_names`.
    columns: Callable[[torch.Tensor], torch.Tensor] | None = None
    ensemble: dict | None = None
    temperature: float | None = None  # `rewardkit train --calibrate`'s T, for calibrated probabilities

    def __init__(
        self,
        forward: Forward,
        tokenizer,
        *,
        kind: str,
        max_length: int,
        batch_tokens: int = 16384,
        max_batch_rows: int = 64,
        device: torch.device | str = "cpu",
        normalization: tuple[float, float] | None = None,
        sub_score_names: Sequence[str] = (),
        reward_column: int = 0,
        pad_side: str = "right",
        name: str = "",
        model=None,
        prefix_sharing: bool = False,
    ):
        self.forward, self.tokenizer, self.kind, self.name = forward, tokenizer, kind, name
        self.max_length, self.batch_tokens, self.max_batch_rows = max_length, batch_tokens, max_batch_rows
        self.device, self.normalization, self.pad_side = torch.device(device), normalization, pad_side
        self.sub_score_names, self.reward_column = list(sub_score_names), reward_column
        self.model = model
        if prefix_sharing and not supports_prefix_sharing(model):
            raise ValueError(
                "prefix_sharing needs `model` to be a decoder sequence classifier (a `score` head)"
            )
        self.prefix_sharing = prefix_sharing

    def count_tokens(self, conversations: Sequence[Messages]) -> list[int]:
        """Tokens each conversation takes before any trimming (cheap: no model call)."""
        return [len(encode(self.tokenizer, conv)) for conv in conversations]

    def count_text_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each formatted text takes before any trimming (as `score_texts` reads it)."""
        return [
            len(self.tokenizer(self.complete_text(t), add_special_tokens=False)["input_ids"]) for t in texts
        ]

    def complete_text(self, text: str) -> str:
        """`text` ended as the chat template ends an answer (`data.tokenize.complete_turn`), so a client's
        decoded "prompt + answer + EOS" gets the reward the same conversation gets as messages."""
        if getattr(self, "_turn_end", None) is None:  # (suffix, special tokens), worked out once
            tok = self.tokenizer
            special = list(tok.all_special_tokens) + [
                t.content for t in tok.added_tokens_decoder.values() if t.special
            ]
            self._turn_end = (answer_suffix(tok) if tok.chat_template else "", special)
        suffix, special = self._turn_end
        return complete_turn(text, suffix, special, self.tokenizer.eos_token)

    def score_detailed(self, conversations: Sequence[Messages]) -> list[Score]:
        encoded = [encode_for_scoring(self.tokenizer, list(conv), self.max_length) for conv in conversations]
        return self.score_encoded([ids for ids, _ in encoded], [t for _, t in encoded])

    def score_groups(self, groups: Sequence[Group]) -> list[list[Score]]:
        """Scores of each group's answers; with prefix sharing the group's shared prompt runs once.

        Falls back to scoring every conversation in full when the model's cache cannot be shared.
        """
        if not self.prefix_sharing:
            return PointwiseMixin.score_groups(self, groups)
        encoded = [
            [encode_for_scoring(self.tokenizer, conv, self.max_length) for conv in g.conversations()]
            for g in groups
        ]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        try:
            values = prefix_group_rewards(
                self.model,
                [[ids for ids, _ in group] for group in encoded],
                pad_id=pad_id,
                device=self.device,
                batch_tokens=self.batch_tokens,
                max_rows=self.max_batch_rows,
            )
        except UnsupportedCache as e:
            logger.info("prefix sharing is not available for this model's cache (%s): scoring in full", e)
            return PointwiseMixin.score_groups(self, groups)
        return [
            [self.to_score(v, len(ids), t) for v, (ids, t) in zip(vals, group)]
            for vals, group in zip(values, encoded)
        ]

    def score_texts(self, texts: Sequence[str]) -> list[Score]:
        """Score already formatted texts (no template applied, no special tokens added); a text that
        stops at the end-of-turn token gets the rest of the template's turn ending (`complete_text`)."""
        rows, truncated = [], []
        for text in texts:
            ids = self.tokenizer(self.complete_text(text), add_special_tokens=False)["input_ids"]
            rows.append(clip_tokens(self.tokenizer, ids, self.max_length))
            truncated.append(len(ids) > self.max_length)
        return self.score_encoded(rows, truncated)

    def score_tokens(self, rows: Sequence[Sequence[int]]) -> list[Score]:
        """Score token id rows as given (no template, nothing added); rows over max_length are clipped."""
        vocab = len(self.tokenizer)
        embeddings = getattr(self.model, "get_input_embeddings", lambda: None)()
        if embeddings is not None:
            vocab = max(vocab, int(embeddings.weight.shape[0]))
        for i, row in enumerate(rows):
            bad = [t for t in row if not 0 <= int(t) < vocab]
            if bad:
                raise RewardkitError(
                    f"input[{i}]: token id {bad[0]} is outside the vocabulary (0..{vocab - 1})"
                )
        clipped = [clip_tokens(self.tokenizer, list(r), self.max_length) for r in rows]
        return self.score_encoded(clipped, [len(r) > self.max_length for r in rows])

    def encode_text(self, text: str, add_special_tokens: bool) -> list[int]:
        """`text`'s token ids as `score_texts` reads them, with the tokenizer's special tokens if asked."""
        return self.tokenizer(self.complete_text(text), add_special_tokens=add_special_tokens)["input_ids"]

    def score_token_ids(self, rows: Sequence[Sequence[int]]) -> list[float]:
        return [s.score for s in self.score_encoded(rows, [False] * len(rows))]

    @torch.no_grad()
    def raw_outputs(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Forward outputs in input order, as float32 of shape (rows,) or (rows, k)."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out: list[torch.Tensor | None] = [None] * len(rows)
        lengths, fill = [len(r) for r in rows], batch_fill(self.device)
        for batch in length_batches(lengths, self.batch_tokens, self.max_batch_rows, fill):
            ids, mask = pad_rows([list(rows[i]) for i in batch], pad_id, self.pad_side)
            values = self.forward(ids.to(self.device), mask.to(self.device)).float().cpu()
            for j, i in enumerate(batch):
                out[i] = values[j]
        return torch.stack(out) if out else torch.empty(0)

    def score_encoded(self, rows: Sequence[Sequence[int]], truncated: Sequence[bool]) -> list[Score]:
        values = self.raw_outputs(rows)
        return [self.to_score(values[i], len(row), bool(truncated[i])) for i, row in enumerate(rows)]

    def to_score(self, value: torch.Tensor, num_tokens: int, truncated: bool) -> Score:
        """One forward output row as a `Score`: the reward column, named sub-scores, normalised value."""
        if self.columns is not None:
            value = self.columns(value.reshape(1, -1))[0]
        reward = float(value[self.reward_column]) if value.dim() else float(value)
        subs = {name: float(value[k]) for k, name in enumerate(self.sub_score_names)} if value.dim() else {}
        normalized = None
        if self.normalization is not None:
            mean, std = self.normalization
            normalized = (reward - mean) / (std if std > 0 else 1.0)
        return Score(reward, num_tokens, truncated, normalized, subs)
