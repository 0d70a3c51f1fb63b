"""Prefix sharing: score several answers to one prompt while running the prompt through the model once.

A pair (or a best-of-N group) is N full conversations that share their leading tokens: the system
prompt, the context turns and the template's opening of the assistant turn. The plain path runs every
conversation from the first token. Here each group's shared prefix runs once with `use_cache=True`;
its KV cache is then copied to every answer of the group (`Cache.reorder_cache` with a row index, so
groups of any size mix in one batch), and all answers run as one right-padded batch that continues
from the cache. The attention mask is the prompt's mask followed by the answer's, position ids
continue from the prompt's length, and the reward is read at each answer's last real token through
the score head, as `rewardkit.core.rewards.sequence_rewards` does, so the scores equal the plain path's.

Two ways, both exact. Decoders that pair packing supports (`core.packing.supports_packing`:
Llama, Mistral, Qwen2/3 with sdpa or eager attention) pack each group as one segment
`[prefix | answer 1 | ... | answer N]`, several groups to a padding-free row, with the block mask and
per-block attention that training uses: every token is read once and nothing is padded. Other
decoders use the KV-cache path above, which needs no custom mask and works with any decoder whose
cache is a plain `DynamicCache`.

The shared prefix is found on token ids (`common_prefix_len` of the full encodings), never on text,
so each conversation is tokenized exactly as when scored alone.

`ClassifierRM(..., prefix_sharing=True)` (what `load_seq_classifier` builds for decoders) scores its
groups through `prefix_group_rewards`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardkit.core.batching import batch_fill, fill_in_order, length_batches, pad_rows
from rewardkit.core.packing import pack_segment, packed_forward, supports_packing
from rewardkit.core.rewards import (
    is_decoder,
    last_token_index,
    position_ids_from_mask,
    sequence_rewards,
    unwrap,
)
from rewardkit.data.tokenize import common_prefix_len


def shared_prefix_len(rows: Sequence[Sequence[int]]) -> int:
    """Tokens every row of a group starts with, leaving each row at least one token of its own.

    Example:
        >>> shared_prefix_len([[1, 2, 3, 4], [1, 2, 5]])
        2
        >>> shared_prefix_len([[1, 2], [1, 2, 3]])  # [1, 2] keeps its last token as its "answer"
        1
    """
    k = min(len(r) for r in rows) - 1
    for row in rows[1:]:
        k = min(k, common_prefix_len(list(rows[0]), list(row)))
    return max(k, 0)


class UnsupportedCache(Exception):
    """The model's cache is not a plain DynamicCache (sliding windows, hybrid or linear layers)."""


def _plain_cache(cache) -> bool:
    from transformers.cache_utils import DynamicCache, DynamicLayer

    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


@torch.no_grad()
def _batch_rewards(
    model,
    groups: list[list[list[int]]],
    prefix_lens: list[int],
    *,
    pad_id: int,
    device: torch.device,
    batch_tokens: int,
    max_rows: int,
) -> list[torch.Tensor]:
    """Rewards of every row of `groups`: the prefixes in one forward, then the answers in batches of
    similar length, each continuing from a copy of its own group's cache."""
    from transformers.cache_utils import DynamicCache

    base = unwrap(model)
    backbone = getattr(base, base.base_model_prefix)
    # Right padding leaves holes between a short prompt and its answer; the mask hides them and the
    # position ids skip them, and no query row is fully masked (which could put NaN into the cache).
    p_ids, p_mask = (
        t.to(device) for t in pad_rows([rows[0][:k] for rows, k in zip(groups, prefix_lens)], pad_id)
    )
    positions = position_ids_from_mask(p_mask)
    cache = backbone(
        input_ids=p_ids, attention_mask=p_mask, position_ids=positions, use_cache=True
    ).past_key_values
    if not _plain_cache(cache):
        raise UnsupportedCache(type(cache).__name__)
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    answers = [
        (g, r, row[k:]) for g, (rows, k) in enumerate(zip(groups, prefix_lens)) for r, row in enumerate(rows)
    ]
    out: list[list] = [[None] * len(rows) for rows in groups]
    for batch in length_batches([len(a) for _, _, a in answers], batch_tokens, max_rows, batch_fill(device)):
        owner = torch.tensor([answers[i][0] for i in batch], device=device)
        own_cache = DynamicCache(
            ddp_cache_data=[(k[owner], v[owner]) for k, v in kv]
        )  # one prefix copy per answer
        a_ids, a_mask = (t.to(device) for t in pad_rows([answers[i][2] for i in batch], pad_id))
        mask = torch.cat([p_mask[owner], a_mask], dim=1)
        positions = position_ids_from_mask(mask)[:, p_ids.shape[1] :]
        hidden = backbone(
            input_ids=a_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=own_cache,
            use_cache=True,
        ).last_hidden_state
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(a_mask)]
        values = base.score(last).float().squeeze(-1).cpu()
        for j, i in enumerate(batch):
            out[answers[i][0]][answers[i][1]] = values[j]
    return [torch.stack(values) for values in out]


MAX_ROW_TOKENS = 4096  # a packed row's mask is width x width booleans: 16 MB at this width


@torch.no_grad()
def _packed_rewards(
    model, groups: list[list[list[int]]], prefix_lens: list[int], *, device: torch.device, row_tokens: int
) -> list[torch.Tensor]:
    """Rewards of every row of `groups`, each group packed as one segment (`core.packing.pack_segment`)
    and several groups, in input order, in one padding-free row of at most `row_tokens` tokens per forward.

    The block mask and per-pair-block attention of training's pair packing (`core.packing`) make
    every answer see the prefix and itself only, at its unpacked positions, so the rewards equal the
    plain path's; no token is padded and no cache is copied.
    """
    out: list[torch.Tensor] = [torch.empty(0)] * len(groups)
    todo = [g for g, rows in enumerate(groups) if rows]
    segments = {g: pack_segment(groups[g], prefix_lens[g]) for g in todo}
    for chunk in fill_in_order([len(segments[g][0]) for g in todo], row_tokens):
        ids, positions, sides, owners, reads = [], [], [], [], []
        for g in (todo[i] for i in chunk):
            seg_ids, seg_pos, seg_sides, last = segments[g]
            reads.append((g, [len(ids) + j for j in last]))
            ids, positions, sides = ids + seg_ids, positions + seg_pos, sides + seg_sides
            owners += [g] * len(seg_ids)
        per_token = packed_forward(
            model, *(torch.tensor([t], device=device) for t in (ids, positions, owners, sides))
        )
        for g, index in reads:
            out[g] = per_token[0, index].float().squeeze(-1).cpu()
    return out


@torch.no_grad()
def prefix_group_rewards(
    model,
    groups: Sequence[Sequence[Sequence[int]]],
    *,
    pad_id: int,
    device: torch.device | str = "cpu",
    batch_tokens: int = 16384,
    max_rows: int = 64,
) -> list[torch.Tensor]:
    """Rewards of token-id rows given in groups that share a prefix (a pair, or N answers to one prompt).

    Args:
        model: a decoder sequence classifier (Llama-style, `score` head), possibly PEFT-wrapped.
        groups: per group, the full token ids of each conversation (as `encode` gives them).
        pad_id: the id used for padding (never read).
        device: where the inputs go (the model's device).
        batch_tokens: padded tokens per forward, as `ClassifierRM.batch_tokens`.
        max_rows: rows per forward at most (prefixes, or answers).

    Returns:
        Per group, float32 rewards of shape (rows,), or (rows, num_labels) for multi-label heads, equal
        to `sequence_rewards` of each row alone (up to float rounding).

    Raises:
        UnsupportedCache: the model's cache cannot be shared this way (use the plain path).
    """
    device = torch.device(device)
    groups = [[list(row) for row in rows] for rows in groups]
    prefix_lens = [shared_prefix_len(rows) if rows else 0 for rows in groups]
    if supports_packing(model):
        return _packed_rewards(
            model, groups, prefix_lens, device=device, row_tokens=min(batch_tokens, MAX_ROW_TOKENS)
        )
    out: list[torch.Tensor | None] = [None] * len(groups)
    for g, rows in enumerate(groups):
        if not rows:
            out[g] = torch.empty(0)
        elif prefix_lens[g] == 0:  # nothing shared to gain, and an empty prompt row would be fully masked
            ids, mask = pad_rows(rows, pad_id)
            out[g] = sequence_rewards(model, ids.to(device), mask.to(device)).float().cpu()
    shared = [g for g, rows in enumerate(groups) if rows and prefix_lens[g] > 0]
    for batch in length_batches([prefix_lens[g] for g in shared], batch_tokens, max_rows, batch_fill(device)):
        picked = [shared[i] for i in batch]
        values = _batch_rewards(
            model,
            [groups[g] for g in picked],
            [prefix_lens[g] for g in picked],
            pad_id=pad_id,
            device=device,
            batch_tokens=batch_tokens,
            max_rows=max_rows,
        )
        for g, v in zip(picked, values):
            out[g] = v
    return out


def supports_prefix_sharing(model) -> bool:
    """True for decoder sequence classifiers (a `score` head read at the last token)."""
    if model is None:
        return False
    try:
        return is_decoder(model)
    except ValueError:  # neither `score` nor `classifier`: a value-head or custom model
        return False
