"""Training's pair packing: `PackedPairCollator` builds `[prompt | chosen | rejected]` rows and
`packed_pair_rewards` is the RewardTrainer's forward over them (the layout and its exactness:
`rewardkit.core.packing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewardkit.core.packing import PAD, pack_segment, packed_forward
from rewardkit.data.tokenize import common_prefix_len


@dataclass
class PackedPairCollator:
    """Packs B tokenized pairs into rows of `[prompt | chosen | rejected]` segments, right-padded.

    Pairs are placed largest first into the first row with room (at most `max_row_tokens` tokens and
    `pairs_per_row` pairs per row; a pair longer than `max_row_tokens` gets a row of its own), so a
    batch needs few rows and little padding. `pairs_per_row=1` gives one pair per row.

    The batch holds `input_ids`, `position_ids`, `pair_ids` (the pair's index in the batch, -1 on
    padding), `sides` (PROMPT/CHOSEN/REJECTED, -1 on padding), and `chosen_index`/`rejected_index`:
    for pair i, the flat index (row * width + column) of the last token of its chosen/rejected
    conversation, where `packed_pair_rewards` reads the rewards.

    Example:
        >>> c = PackedPairCollator(pad_token_id=0)
        >>> b = c([{"input_ids_chosen": [1, 5, 6], "input_ids_rejected": [1, 5, 7, 8]}])
        >>> b["input_ids"].tolist(), b["position_ids"].tolist(), b["sides"].tolist()
        ([[1, 5, 6, 7, 8]], [[0, 1, 2, 2, 3]], [[0, 0, 1, 2, 2]])
        >>> b["chosen_index"].tolist(), b["rejected_index"].tolist()
        ([2], [4])
    """

    pad_token_id: int
    max_row_tokens: int = 4096
    pairs_per_row: int | None = None
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        packed = [_segment(f["input_ids_chosen"], f["input_ids_rejected"]) for f in features]
        rows = self._assign_rows([len(p[0]) for p in packed])
        width = max(sum(len(packed[i][0]) for i in row) for row in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        pair_ids = torch.full(shape, PAD, dtype=torch.long)
        sides = torch.full(shape, PAD, dtype=torch.long)
        chosen_index = torch.empty(len(features), dtype=torch.long)
        rejected_index = torch.empty(len(features), dtype=torch.long)
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                ids, pos, side, last_chosen, last_rejected = packed[i]
                span = slice(start, start + len(ids))
                input_ids[r, span] = torch.tensor(ids)
                position_ids[r, span] = torch.tensor(pos)
                sides[r, span] = torch.tensor(side)
                pair_ids[r, span] = i
                chosen_index[i] = r * width + start + last_chosen
                rejected_index[i] = r * width + start + last_rejected
                start += len(ids)
        batch = {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "pair_ids": pair_ids,
            "sides": sides,
            "chosen_index": chosen_index,
            "rejected_index": rejected_index,
            "return_loss": True,
        }
        if any(f.get("margin") is not None for f in features):
            batch["margin"] = torch.tensor([f.get("margin") or 0.0 for f in features], dtype=torch.float32)
        return batch

    def _assign_rows(self, lengths: list[int]) -> list[list[int]]:
        """First-fit decreasing: pair indices per row, each row in placement order."""
        limit = self.pairs_per_row or len(lengths)
        rows: list[list[int]] = []
        room: list[int] = []
        for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
            for r, row in enumerate(rows):
                if len(row) < limit and lengths[i] <= room[r]:
                    row.append(i)
                    room[r] -= lengths[i]
                    break
            else:
                rows.append([i])
                room.append(self.max_row_tokens - lengths[i])
        return rows


def _segment(chosen: list[int], rejected: list[int]):
    """(ids, positions, sides, last chosen index, last rejected index) of one pair's packed segment."""
    if not chosen or not rejected:
        raise ValueError("a pair with an empty chosen or rejected token list cannot be scored")
    ids, positions, sides, (last_chosen, last_rejected) = pack_segment(
        [chosen, rejected], common_prefix_len(chosen, rejected)
    )
    return ids, positions, sides, last_chosen, last_rejected


def packed_pair_rewards(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen rewards, rejected rewards), float32 of shape (pairs,), of a `PackedPairCollator` batch.

    The RewardTrainer's `forward=` hook: one pass over the packed rows with the block mask (through
    the outermost wrapper, see `modeling.head_outputs`), the score head's outputs read at
    `chosen_index` and `rejected_index`.
    """
    per_token = packed_forward(
        model, batch["input_ids"], batch["position_ids"], batch["pair_ids"], batch["sides"]
    )
    flat = per_token.reshape(-1, per_token.shape[-1])
    pairs = batch["chosen_index"].shape[0]
    last = flat[torch.cat([batch["chosen_index"], batch["rejected_index"]]).to(flat.device)]
    rewards = last.float().squeeze(-1)
    return rewards[:pairs], rewards[pairs:]
