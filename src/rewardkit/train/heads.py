"""Growing the reward head to several outputs for training, and cutting it back for export.

`--length_debias` trains a two-output head (quality, length) and exports the quality row only;
`--ensemble_size K` trains and exports a K-output head (one row per member).
"""

from __future__ import annotations

import torch

from rewardkit.core.rewards import head_name, unwrap
from rewardkit.errors import RewardkitError


def widen_head(model, outputs: int) -> None:
    """Replace the one-output reward head by an `outputs`-output one, in place (before LoRA wraps it).

    Row 0 keeps the current head's weights, so the first output starts where a plain run starts;
    the other rows are drawn like transformers initialises a head (normal, std =
    `config.initializer_range`), from torch's seeded generator. Biases start at zero.
    """
    base = unwrap(model)
    name = head_name(model)
    old = getattr(base, name)
    if not isinstance(old, torch.nn.Linear):
        raise RewardkitError(
            f"{type(base).__name__}: its `{name}` head is a {type(old).__name__}, not one linear layer; "
            "--length_debias and --ensemble_size need a linear head (Llama-style `score`, BERT `classifier`)"
        )
    new = torch.nn.Linear(
        old.in_features,
        outputs,
        bias=old.bias is not None,
        dtype=old.weight.dtype,
        device=old.weight.device,
    )
    std = getattr(base.config, "initializer_range", 0.02)
    with torch.no_grad():
        new.weight.normal_(0.0, std)
        new.weight[0] = old.weight[0]
        if new.bias is not None:
            new.bias.zero_()
            new.bias[0] = old.bias[0]
    setattr(base, name, new)
    base.config.num_labels = outputs


def keep_head_rows(model, rows: list[int]) -> None:
    """Keep only the given output rows of a plain (merged) model's reward head, in place."""
    base = unwrap(model)
    name = head_name(model)
    old = getattr(base, name)
    new = torch.nn.Linear(
        old.in_features,
        len(rows),
        bias=old.bias is not None,
        dtype=old.weight.dtype,
        device=old.weight.device,
    )
    with torch.no_grad():
        new.weight.copy_(old.weight[rows])
        if new.bias is not None:
            new.bias.copy_(old.bias[rows])
    setattr(base, name, new)
    base.config.num_labels = len(rows)
