"""Writing the trained reward model: a plain sequence-classification checkpoint, the adapter, or both.

One process, DDP and ZeRO-1/2 keep every weight whole on every rank, so rank 0 saves its own copy.
Under DeepSpeed ZeRO-3 and FSDP each rank holds only a shard: `gather_full_state_dict` (called on
every rank) collects the full weights on rank 0, and `export_model(..., state_dict=...)` rebuilds the
model on CPU from them before merging LoRA and saving, so the trained score head is what gets written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rewardkit.core.rewards import head_name, unwrap
from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)


def export_model(
    model,
    tokenizer,
    output_dir: str | Path,
    *,
    mode: str = "merged",
    dtype: torch.dtype | None = None,
    reward_stats: dict[str, float] | None = None,
    quantized: bool = False,
    state_dict: dict[str, torch.Tensor] | None = None,
    num_labels: int | None = 1,
    head_rows: list[int] | None = None,
    extra_config: dict | None = None,
) -> list[Path]:
    """Save `model` so that `AutoModelForSequenceClassification.from_pretrained(output_dir)` loads it as is.

    Args:
        model: the trained model, a PeftModel or a plain sequence classifier.
        tokenizer: saved beside the weights, carrying the chat template used in training.
        mode: "merged" (LoRA folded into the weights), "adapter" (PEFT adapter with the head), or "both"
            (merged in output_dir, adapter in output_dir/adapter).
        dtype: cast the merged weights to this dtype (the base model's) before saving.
        reward_stats: {"reward_mean", "reward_std"} written into config.json for optional normalisation
            (also as OpenRLHF's `mean`/`std`).
        quantized: the base is 4/8-bit; it cannot be merged, so only the adapter is written.
        state_dict: the full weights from `gather_full_state_dict` when `model`'s own parameters are
            shards (ZeRO-3, FSDP); None when they are whole.

    Returns:
        The folders written.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if state_dict is not None and not quantized:
        model, state_dict = materialize(model, state_dict), None
    is_peft = hasattr(model, "peft_config")
    written: list[Path] = []
    if is_peft and (mode in ("adapter", "both") or quantized):
        adapter_dir = out / "adapter" if mode == "both" and not quantized else out
        _add_stats(unwrap(model).config, reward_stats)
        model.save_pretrained(adapter_dir, state_dict=state_dict)  # PEFT picks the adapter and head out of it
        tokenizer.save_pretrained(adapter_dir)
        written.append(adapter_dir)
        if quantized and mode != "adapter":
            logger.warning("4/8-bit base weights cannot be merged: wrote the adapter only to %s", adapter_dir)
    if mode in ("merged", "both") and not quantized:
        plain = model.merge_and_unload() if is_peft else unwrap(model)
        if dtype is not None and dtype != "auto":
            plain = plain.to(dtype)
        if head_rows is not None:
            from rewardkit.train.heads import keep_head_rows

            keep_head_rows(plain, head_rows)
        if num_labels is not None:  # one reward, or K ensemble members: as many as the head has rows
            plain.config.num_labels = getattr(getattr(plain, head_name(plain)), "out_features", num_labels)
        if plain.config.num_labels == 1 and num_labels is not None:
            # transformers' text-classification pipeline (and vLLM's classify) apply sigmoid to a one-label
            # head unless the problem type says regression: a reward must come out raw.
            plain.config.problem_type = "regression"
            plain.config.id2label, plain.config.label2id = {0: "reward"}, {"reward": 0}
        plain.config.pad_token_id = tokenizer.pad_token_id
        plain.config.use_cache = True
        _add_stats(plain.config, reward_stats)
        for key, value in (extra_config or {}).items():
            setattr(plain.config, key, value)
        plain.save_pretrained(out)
        tokenizer.save_pretrained(out)
        written.append(out)
    return written


def gather_full_state_dict(accelerator, wrapped_model) -> dict[str, torch.Tensor] | None:
    """The full weights of a sharded model (DeepSpeed ZeRO-3, FSDP) on the main process, else None.

    A collective: call it on every rank (each rank sends its shard), then pass the result to
    `export_model(..., state_dict=...)` on the main process. Other ranks get an empty result. Returns
    None without communicating when the weights are whole on every rank (one process, DDP, ZeRO-1/2).

    Args:
        accelerator: the Trainer's `accelerate.Accelerator` (`trainer.accelerator`), or None.
        wrapped_model: the model as the engine wrapped it (`trainer.model_wrapped`: the DeepSpeed engine,
            or the FSDP module).
    """
    from accelerate.utils import DistributedType

    if accelerator is None:
        return None
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        if accelerator.state.deepspeed_plugin.zero_stage != 3:
            return None
        try:
            return accelerator.get_state_dict(wrapped_model) or {}
        except (
            ValueError
        ) as e:  # accelerate's message when ZeRO-3 is told not to gather 16-bit weights on save
            raise RewardkitError(
                "--deepspeed: ZeRO-3 can only export the reward model when the config sets "
                '"stage3_gather_16bit_weights_on_model_save": true (configs/deepspeed_zero3.json does)'
            ) from e
    if accelerator.distributed_type == DistributedType.FSDP:
        return accelerator.get_state_dict(wrapped_model) or {}
    return None


def materialize(model, state_dict: dict[str, torch.Tensor]):
    """A CPU copy of `model` (PEFT wrapper included) holding the full weights in `state_dict`.

    The copy is built on the meta device and takes the gathered tensors as its parameters, so no
    second set of weights is allocated; `model` itself (whose parameters are shards) is not touched.
    It is for saving: non-persistent buffers (rotary tables) stay on the meta device.
    """
    from transformers.modeling_utils import set_zero3_state

    base = unwrap(model)
    # While the Trainer's ZeRO-3 config is alive, transformers builds every (sub)model inside
    # deepspeed.zero.Init, a collective that would partition the copy again and hang with only rank 0
    # here; set_zero3_state() is how transformers marks zero.Init as already entered, so it is skipped.
    with torch.device("meta"), set_zero3_state():
        copy = type(base)(base.config)
        if hasattr(model, "peft_config"):
            from peft import get_peft_model

            adapter = model.active_adapter
            copy = get_peft_model(copy, model.peft_config[adapter], adapter_name=adapter)
    _, unexpected = copy.load_state_dict(state_dict, strict=False, assign=True)
    empty = [name for name, p in copy.named_parameters() if p.is_meta]
    if empty or unexpected:
        raise RewardkitError(
            f"export: the gathered weights do not match {type(base).__name__}: missing {empty[:5] or 'none'}, "
            f"unexpected {unexpected[:5] or 'none'} (of {len(state_dict)} tensors gathered)"
        )
    return copy.eval()


def _add_stats(config, stats: dict[str, float] | None) -> None:
    """reward_mean/reward_std, and the same values as OpenRLHF's names (mean/std) for tools that read those."""
    for key, value in (stats or {}).items():
        setattr(config, key, float(value))
        if key in ("reward_mean", "reward_std"):
            setattr(config, key.removeprefix("reward_"), float(value))
