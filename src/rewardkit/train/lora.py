"""LoRA through PEFT, for training only: target modules, the always-trained reward head, adapter resume."""

from __future__ import annotations

import logging

import torch

from rewardkit.core.rewards import head_name, unwrap

logger = logging.getLogger(__name__)


def find_all_linear_names(model) -> list[str]:
    """Leaf names of every linear layer except the reward head (for `--target_modules all`)."""
    skip = head_name(model)
    linear_types: tuple[type, ...] = (torch.nn.Linear,)
    try:
        import bitsandbytes as bnb

        linear_types += (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    except ImportError:
        pass
    names = set()
    for full_name, module in unwrap(model).named_modules():
        if isinstance(module, linear_types) and skip not in full_name.split("."):
            names.add(full_name.split(".")[-1])
    return sorted(names)


def apply_lora(
    model,
    *,
    target_modules: str | None,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float,
    modules_to_save: str | None = None,
    peft_path: str | None = None,
    quantized: bool = False,
    task_type: str = "SEQ_CLS",
):
    """Wrap `model` with LoRA (or resume the adapter at `peft_path`); the reward head is always trained and saved."""
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if peft_path:
        model = PeftModel.from_pretrained(model, peft_path, is_trainable=True)
    else:
        targets = [t.strip() for t in target_modules.split(",")] if target_modules else None
        if targets is None or "all" in targets:
            targets = find_all_linear_names(model)
        save = [m.strip() for m in modules_to_save.split(",")] if modules_to_save else []
        head = head_name(model)
        if head not in save:  # without this the randomly initialised head would never learn nor be saved
            save.append(head)
        logger.info("LoRA target modules: %s; trained in full: %s", targets, save)
        config = LoraConfig(
            task_type=TaskType[task_type],  # TOKEN_CLS for process reward models
            target_modules=targets,
            r=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            modules_to_save=save,
        )
        model = get_peft_model(model, config)
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # trainable weights in fp32 for stable updates (as the seed does)
    return model


def lora_from_args(model, script_args, *, quantized: bool, task_type: str = "SEQ_CLS"):
    """`apply_lora` with the LoRA flags of `ScriptArguments` (pairwise and PRM training alike)."""
    model = apply_lora(
        model,
        target_modules=script_args.target_modules,
        lora_rank=script_args.lora_rank,
        lora_alpha=script_args.lora_alpha,
        lora_dropout=script_args.lora_dropout,
        modules_to_save=script_args.modules_to_save,
        peft_path=script_args.peft_path,
        quantized=quantized,
        task_type=task_type,
    )
    model.print_trainable_parameters()
    return model


def load_train_tokenizer(model_args):
    """The tokenizer `rewardkit train` uses: `--tokenizer_name_or_path`, else the model's (or its GGUF file's)."""
    from rewardkit.core.loading import load_tokenizer

    return load_tokenizer(
        model_args.tokenizer_name_or_path or model_args.model_name_or_path,
        gguf_file=None if model_args.tokenizer_name_or_path else model_args.gguf_file,
        trust_remote_code=model_args.trust_remote_code,
        use_fast=model_args.use_fast_tokenizer,
        cache_dir=model_args.cache_dir,
        flag="--model_name_or_path",
    )


def model_load_options(model_args) -> dict:
    """The loader keywords `rewardkit train` takes from `ModelArguments`, the same for the pairwise head
    (`load_sequence_classifier`) and the PRM's step head (`load_token_classifier`)."""
    return dict(
        gguf_file=model_args.gguf_file,
        dtype=model_args.torch_dtype,
        attn_implementation=model_args.attn_implementation,
        device_map=model_args.device_map,
        trust_remote_code=model_args.trust_remote_code,
        cache_dir=model_args.cache_dir,
        allow_pickle=model_args.allow_pickle,
        flag="--model_name_or_path",
    )
