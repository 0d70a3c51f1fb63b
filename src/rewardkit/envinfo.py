"""`rewardkit env`: what a bug report needs (versions, the device, where the packaged models are)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

PACKAGES = (
    "rewardkit",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "safetensors",
    "tokenizers",
    "huggingface_hub",
    "fastapi",
    "uvicorn",
    "deepspeed",
    "bitsandbytes",
    "vllm",
    "tensorboard",
)


def collect() -> dict[str, str]:
    """Name -> value, in the order printed."""
    import torch

    from rewardkit.assets import PACKAGED, resolve_packaged
    from rewardkit.errors import RewardkitError

    info = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = "not installed"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        info["device"] = f"cuda ({torch.cuda.device_count()}: {names}; CUDA {torch.version.cuda})"
    else:
        info["device"] = f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads; no GPU)"
    for name in PACKAGED:
        try:
            folder, gguf = resolve_packaged(name, None)
            info[name] = folder + (f" (gguf {gguf})" if gguf else "")
        except RewardkitError as e:
            info[name] = str(e)
    from huggingface_hub import constants

    info["hf cache"] = constants.HF_HUB_CACHE
    offline = [
        v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v)
    ]
    info["offline"] = ", ".join(f"{v}={os.environ[v]}" for v in offline) or "no"
    return info


def render(info: dict[str, str]) -> str:
    width = max(map(len, info))
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in info.items())
