"""Writing the trained reward model: a plain sequence-classification checkpoint, the adapter, or both."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rewardkit.modeling import unwrap

logger = logging.getLogger(__name__)


def export_model(model, tokenizer, output_dir: str | Path, *, mode: str = "merged", dtype: torch.dtype | None = None,
                 reward_stats: dict[str, float] | None = None, quantized: bool = False) -> list[Path]:
    """Save `model` so that `AutoModelForSequenceClassification.from_pretrained(output_dir)` loads it as is.

    Args:
        model: the trained model, a PeftModel or a plain sequence classifier.
        tokenizer: saved beside the weights, carrying the chat template used in training.
        mode: "merged" (LoRA folded into the weights), "adapter" (PEFT adapter with the head), or "both"
            (merged in output_dir, adapter in output_dir/adapter).
        dtype: cast the merged weights to this dtype (the base model's) before saving.
        reward_stats: {"reward_mean", "reward_std"} written into config.json for optional normalisation.
        quantized: the base is 4/8-bit; it cannot be merged, so only the adapter is written.

    Returns:
        The folders written.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_peft = hasattr(model, "peft_config")
    written: list[Path] = []
    if is_peft and (mode in ("adapter", "both") or quantized):
        adapter_dir = out / "adapter" if mode == "both" and not quantized else out
        _add_stats(unwrap(model).config, reward_stats)
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        written.append(adapter_dir)
        if quantized and mode != "adapter":
            logger.warning("4/8-bit base weights cannot be merged: wrote the adapter only to %s", adapter_dir)
    if mode in ("merged", "both") and not quantized:
        plain = model.merge_and_unload() if is_peft else unwrap(model)
        if dtype is not None and dtype != "auto":
            plain = plain.to(dtype)
        plain.config.num_labels = 1
        plain.config.pad_token_id = tokenizer.pad_token_id
        plain.config.use_cache = True
        _add_stats(plain.config, reward_stats)
        plain.save_pretrained(out)
        tokenizer.save_pretrained(out)
        written.append(out)
    return written


def _add_stats(config, stats: dict[str, float] | None) -> None:
    for key, value in (stats or {}).items():
        setattr(config, key, float(value))
