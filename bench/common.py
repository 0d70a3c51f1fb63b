"""What the benchmark scripts share: the tiny random Llama of their --quick runs, and writing results."""

from __future__ import annotations

import json
from pathlib import Path


def tiny_llama_config(vocab_size: int, num_labels: int, pad_token_id: int | None, **extra):
    """A 2-layer, 64-wide Llama config (grouped-query attention) for runs that take seconds."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=num_labels,
        pad_token_id=pad_token_id,
        **extra,
    )


def write_results(stem: Path, table: dict, text: str) -> None:
    """`stem`.json (every figure) and `stem`.md (the table the README quotes); the table is printed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(table, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(text)
