"""Loading a sequence-classification reward model, its tokenizer, and LoRA through PEFT."""

from __future__ import annotations

import logging

import torch

from rewardkit.errors import RewardkitError, first_line
from rewardkit.modeling import head_name, unwrap

logger = logging.getLogger(__name__)

DTYPES = {"auto": "auto", "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def load_tokenizer(path: str, *, gguf_file: str | None = None, trust_remote_code: bool = False,
                   use_fast: bool = True, cache_dir: str | None = None):
    """The tokenizer of a local model folder (or GGUF file in it)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code,
                                             use_fast=use_fast, cache_dir=cache_dir)
    except (OSError, ValueError) as e:
        raise RewardkitError(f"--model_name_or_path {path}: cannot load a tokenizer ({first_line(e)})") from e


def quantization_config(load_in_4bit: bool, load_in_8bit: bool, compute_dtype):
    """A BitsAndBytesConfig, or None; a clear error when bitsandbytes or a GPU is missing."""
    if not (load_in_4bit or load_in_8bit):
        return None
    flag = "--load_in_4bit" if load_in_4bit else "--load_in_8bit"
    if load_in_4bit and load_in_8bit:
        raise RewardkitError("--load_in_4bit and --load_in_8bit: choose one")
    if not torch.cuda.is_available():
        raise RewardkitError(f"{flag} needs a CUDA GPU; none is visible (drop the flag to train in full precision)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise RewardkitError(f"{flag} needs bitsandbytes: pip install bitsandbytes") from e
    from transformers import BitsAndBytesConfig

    if load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype if compute_dtype != "auto" else torch.bfloat16)


def load_sequence_classifier(path: str, *, gguf_file: str | None = None, dtype: str = "float32",
                             attn_implementation: str | None = None, device_map: str | None = None,
                             trust_remote_code: bool = False, load_in_4bit: bool = False,
                             load_in_8bit: bool = False, cache_dir: str | None = None):
    """`AutoModelForSequenceClassification` with one output (the reward), decoder or encoder."""
    from transformers import AutoModelForSequenceClassification

    if dtype not in DTYPES:
        raise RewardkitError(f"--torch_dtype {dtype}: accepted values are {', '.join(DTYPES)}")
    kwargs = dict(num_labels=1, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code, cache_dir=cache_dir,
                  quantization_config=quantization_config(load_in_4bit, load_in_8bit, DTYPES[dtype]))
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise RewardkitError(f"--model_name_or_path {path}: cannot load a sequence classifier ({first_line(e)})") from e
    if gguf_file:
        forget_gguf_quantizer(model)
    if model.config.num_labels != 1:
        raise RewardkitError(f"{path}: the checkpoint has num_labels={model.config.num_labels}; a reward model has 1")
    return model


def forget_gguf_quantizer(model) -> None:
    """A GGUF checkpoint is dequantised to plain tensors on load, yet transformers 5 keeps a GGUF
    "quantizer" on the model: the Trainer then refuses to train it, and `save_pretrained` would write a
    quantization_config that makes the exported checkpoint look GGUF-quantised. The weights are
    ordinary floats, so the marker is dropped. Can go when transformers stops marking dequantised GGUF.
    """
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def ensure_pad_token(tokenizer, model) -> None:
    """Give the tokenizer a pad token and write its id into `model.config` (the seed forgot the latter)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        if tokenizer.pad_token is None:
            raise RewardkitError("the tokenizer has no pad, unk or eos token to pad with")
        logger.info("pad token set to %r", tokenizer.pad_token)
    unwrap(model).config.pad_token_id = tokenizer.pad_token_id


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


def apply_lora(model, *, target_modules: str | None, lora_rank: int, lora_alpha: float, lora_dropout: float,
               modules_to_save: str | None = None, peft_path: str | None = None, quantized: bool = False):
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
        config = LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=targets, r=lora_rank, lora_alpha=lora_alpha,
                            lora_dropout=lora_dropout, modules_to_save=save)
        model = get_peft_model(model, config)
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # trainable weights in fp32 for stable updates (as the seed does)
    return model
