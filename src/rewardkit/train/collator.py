"""Batching of tokenized pairs: chosen and rejected stacked into one batch for a single forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewardkit.core.batching import pad_rows


@dataclass
class PairwiseCollator:
    """Stacks B pairs into 2B rows: rows 0..B-1 are the chosen answers, rows B..2B-1 the rejected ones.

    One forward over 2B rows instead of the seed's two forwards over B rows each: the same result,
    half the kernel launches, and the Trainer sees one input dict.

    Example:
        >>> c = PairwiseCollator(pad_token_id=0)
        >>> b = c([{"input_ids_chosen": [5, 6], "input_ids_rejected": [7]}])
        >>> b["input_ids"].tolist(), b["attention_mask"].tolist()
        ([[5, 6], [7, 0]], [[1, 1], [1, 0]])
    """

    pad_token_id: int
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        rows = [f["input_ids_chosen"] for f in features] + [f["input_ids_rejected"] for f in features]
        ids, mask = pad_rows(rows, self.pad_token_id, self.padding_side, self.pad_to_multiple_of)
        batch = {"input_ids": ids, "attention_mask": mask, "return_loss": True}
        if any(f.get("margin") is not None for f in features):
            batch["margin"] = torch.tensor([f.get("margin") or 0.0 for f in features], dtype=torch.float32)
        return batch
