"""Batching helpers shared by training, scoring and serving: padding rows, length-aware batches, in-order chunks."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_rows(rows: list[list[int]], pad_id: int, side: str = "right", multiple_of: int | None = None):
    """(ids, mask) tensors of `rows` padded to the longest (rounded up to `multiple_of`)."""
    width = max(len(r) for r in rows)
    if multiple_of:
        width = -(-width // multiple_of) * multiple_of
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def length_batches(
    lengths: Sequence[int], max_tokens: int, max_rows: int, min_fill: float = 0.8
) -> list[list[int]]:
    """Indices in batches of similar length, longest first.

    Each batch holds at most `max_rows` rows, rows × longest ≤ `max_tokens` (a row alone may exceed it),
    and no row shorter than `min_fill` × the batch's longest, so padding is at most 1 - `min_fill` of
    the batch. On a CPU every padded token costs as much as a real one, while bigger batches gain
    little: HH-RLHF pairs padded by a plain token budget read about twice their real tokens, and a
    reward server merging 64 requests ran at half the speed of unmerged ones. On a GPU a forward's
    fixed cost dominates, so `batch_fill(device)` turns the length rule off there.

    Example:
        >>> length_batches([10, 4, 9, 8, 4], max_tokens=40, max_rows=8)
        [[0, 2, 3], [1, 4]]
        >>> length_batches([10, 4, 9, 8, 4], max_tokens=40, max_rows=8, min_fill=0.0)
        [[0, 2, 3, 1], [4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch, longest = batches[-1], lengths[batches[-1][0]]
            fits = len(batch) < max_rows and longest * (len(batch) + 1) <= max_tokens
            if fits and lengths[i] >= min_fill * longest:
                batch.append(i)
                continue
        batches.append([i])
    return batches


def fill_in_order(sizes: Sequence[int], limit: int) -> list[list[int]]:
    """Consecutive indices in chunks whose sizes add up to at most `limit` (an item over it goes alone).

    Example:
        >>> fill_in_order([10, 8, 10, 5, 4], limit=20)
        [[0, 1], [2, 3, 4]]
    """
    chunks: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not chunks or total + size > limit:
            chunks.append([])
            total = 0
        chunks[-1].append(i)
        total += size
    return chunks


def batch_fill(device: torch.device | str) -> float:
    """`length_batches`' min_fill for a device: 0.8 on CPU (padding costs compute), 0 elsewhere."""
    return 0.8 if torch.device(device).type == "cpu" else 0.0
