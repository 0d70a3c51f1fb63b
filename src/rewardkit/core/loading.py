"""Loading a sequence-classification reward model and its tokenizer: dtype, GGUF, quantization, pad token, device."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from rewardkit.config import DTYPE_NAMES
from rewardkit.core.rewards import unwrap
from rewardkit.errors import RewardkitError, first_line

logger = logging.getLogger(__name__)


def torch_dtype(name: str, flag: str = "--torch_dtype"):
    """The torch dtype for a `DTYPE_NAMES` entry ("auto" stays "auto", for `from_pretrained`)."""
    if name not in DTYPE_NAMES:
        raise RewardkitError(f"{flag} {name}: accepted values are {', '.join(DTYPE_NAMES)}")
    return name if name == "auto" else getattr(torch, name)


PICKLE_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def safe_weights(
    path: str, *, gguf_file: str | None = None, allow_pickle: bool = False, flag: str = "--model"
) -> dict:
    """`from_pretrained` keyword arguments that keep pickle weights out unless `allow_pickle`.

    A local folder whose only weights are pickle files (`pytorch_model.bin` and the like) is refused
    with an error naming --allow_pickle: unpickling a file can run code, and the project loads only
    safetensors (or GGUF) unless a flag says otherwise. Otherwise returns `use_safetensors=True`, so
    transformers itself never falls back to a pickle file (nothing when allowed or for GGUF).

    Example:
        >>> safe_weights("/nonexistent/hub-id")
        {'use_safetensors': True}
    """
    if allow_pickle or gguf_file:
        return {}
    folder = Path(path)
    if folder.is_dir() and not any(folder.glob("model*.safetensors")):  # not value_head/adapter files
        pickles = sorted({p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern)})
        if pickles:
            raise RewardkitError(
                f"{flag} {path}: the weights are pickle files only ({', '.join(pickles[:3])}), which can "
                "run code when loaded; convert them to safetensors, or pass --allow_pickle to load them"
            )
    return {"use_safetensors": True}


def load_tokenizer(
    path: str,
    *,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    use_fast: bool = True,
    cache_dir: str | None = None,
    flag: str = "--model",
):
    """The tokenizer of a local model folder (or GGUF file in it); errors name `flag`."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(
            path,
            gguf_file=gguf_file,
            trust_remote_code=trust_remote_code,
            use_fast=use_fast,
            cache_dir=cache_dir,
        )
    except (OSError, ValueError) as e:
        raise RewardkitError(f"{flag} {path}: cannot load a tokenizer ({first_line(e)})") from e


def quantization_config(load_in_4bit: bool, load_in_8bit: bool, compute_dtype):
    """A BitsAndBytesConfig, or None; a clear error when bitsandbytes or a GPU is missing."""
    if not (load_in_4bit or load_in_8bit):
        return None
    flag = "--load_in_4bit" if load_in_4bit else "--load_in_8bit"
    if load_in_4bit and load_in_8bit:
        raise RewardkitError("--load_in_4bit and --load_in_8bit: choose one")
    if not torch.cuda.is_available():
        raise RewardkitError(
            f"{flag} needs a CUDA GPU; none is visible (drop the flag to train in full precision)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise RewardkitError(f"{flag} needs bitsandbytes: pip install bitsandbytes") from e
    from transformers import BitsAndBytesConfig

    if load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype if compute_dtype != "auto" else torch.bfloat16,
    )


def load_sequence_classifier(
    path: str,
    *,
    gguf_file: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    cache_dir: str | None = None,
    allow_pickle: bool = False,
    flag: str = "--model",
    num_labels: int = 1,
):
    """`AutoModelForSequenceClassification` with one output (the reward), decoder or encoder.

    `num_labels` > 1 only for a checkpoint that declares several reward outputs (a head ensemble).

    A GGUF checkpoint is dequantised (see `forget_gguf_quantizer`); errors name `flag`, the option
    the path came from (`--model` for score/eval/serve, `--model_name_or_path` for train). Pickle
    weights are refused unless `allow_pickle` (see `safe_weights`).
    """
    from transformers import AutoModelForSequenceClassification

    weights_dtype = torch_dtype(dtype)
    kwargs = dict(
        **safe_weights(path, gguf_file=gguf_file, allow_pickle=allow_pickle, flag=flag),
        num_labels=num_labels,
        dtype=weights_dtype,
        trust_remote_code=trust_remote_code,
        cache_dir=cache_dir,
        quantization_config=quantization_config(load_in_4bit, load_in_8bit, weights_dtype),
    )
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise RewardkitError(f"{flag} {path}: cannot load a sequence classifier ({first_line(e)})") from e
    if gguf_file:
        forget_gguf_quantizer(model)
    if model.config.num_labels != num_labels:
        raise RewardkitError(
            f"{path}: the checkpoint has num_labels={model.config.num_labels}; a reward model has {num_labels}"
        )
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


def default_device(device_map: str | None) -> torch.device:
    """Where inputs go: the device `--device_map` names (cpu, cuda, cuda:1), else the first GPU if any.

    A device map such as "auto" spreads the model itself; its inputs go to the first GPU.
    """
    if device_map and device_map != "auto":
        try:
            return torch.device(device_map)
        except RuntimeError as e:
            raise RewardkitError(
                f"--device_map {device_map}: not a device (cpu, cuda, cuda:N) nor auto"
            ) from e
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reward_normalization(config) -> tuple[float, float] | None:
    """(mean, std) saved by `rewardkit train` (reward_mean/reward_std) or OpenRLHF (mean/std)."""
    for mean_key, std_key in (("reward_mean", "reward_std"), ("mean", "std")):
        mean, std = getattr(config, mean_key, None), getattr(config, std_key, None)
        if isinstance(mean, (int, float)) and isinstance(std, (int, float)):
            return float(mean), float(std)
    return None


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.gguf"]


def resolve_hub_model(path: str, *, trust_remote_code: bool = False, flag: str = "--model") -> str:
    """A local folder for `path`: itself when it exists, else the Hub id `org/name` from the Hugging Face cache.

    Offline (HF_HUB_OFFLINE) only the cache is read; online a model missing from the cache is
    downloaded (safetensors, configs and tokenizer files only; the model's Python files only with
    trust_remote_code, pickle weights never).

    Raises:
        RewardkitError: one line, when `path` is neither a folder nor a cached (or downloadable) Hub id.
    """
    if Path(path).exists() or ":" in path or not _HUB_ID.fullmatch(path):
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(path, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    offline = next(
        (
            v
            for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
            if os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
        ),
        None,
    )
    if offline:
        raise RewardkitError(
            f"{flag} {path}: not a local folder, and this Hub model is not in the Hugging Face cache "
            f"({offline} is set); download it once online (`hf download {path}`) or give a local folder"
        )
    patterns = _HUB_FILES + (["*.py"] if trust_remote_code else [])
    try:
        return snapshot_download(path, allow_patterns=patterns)
    except Exception as e:  # network, auth, missing repo: all mean "cannot fetch"
        raise RewardkitError(
            f"{flag} {path}: not a local folder, and the Hub download failed: {first_line(e)}"
        ) from e
