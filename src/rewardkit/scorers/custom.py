"""Kind 2: custom classifiers: value-head checkpoints and remote-code models (Python functions: `function.py`).

Value heads (`load_value_head`) come in two layouts, both read without pickle:

* OpenRLHF (`get_llm_for_sequence_regression`, `_get_reward_model`): an `AutoModel` backbone saved as
  `model.*` keys plus a linear head `<value_head_prefix>.weight` of shape [1, hidden] in the same
  safetensors files; config.json names the prefix and, with `normalize_reward`, the `mean`/`std` of
  training rewards. The reward is the head applied to the hidden state of the last real token, with
  position ids counted over real tokens (OpenRLHF does the same: `attention_mask.cumsum(-1) - 1`);
  the text is OpenRLHF's RewardDataset's: the chat template's text without trailing newlines, with
  " " + EOS appended unless it ends with EOS (`data.tokenize.eos_last_template`), so the reward is
  read at the EOS token OpenRLHF trained it at.
  TRL's `AutoModelForCausalLMWithValueHead.save_pretrained` (head `v_head.summary.*` beside the causal
  LM's keys) is read the same way.
* LLaMA-Factory (stage rm): a causal-LM folder plus `value_head.safetensors` holding
  `v_head.summary.weight` [1, hidden] and `v_head.summary.bias` [1]. LLaMA-Factory's PairwiseTrainer
  reads the value at index `attention_mask.sum(-1) - 1` of right-padded rows, i.e. at the last real
  token (the end of the answer, after the template's closing tokens), on the final (normed) hidden
  state; rewardkit reads the same token whatever the padding side.

Remote code (`load_remote_code`) runs the folder's own `forward` (ArmoRM style: an output with `score`
(rows, 1) and per-objective `rewards` (rows, k)).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from pathlib import Path

import torch
from safetensors import safe_open

from rewardkit.core.loading import (
    default_device,
    ensure_pad_token,
    load_tokenizer,
    reward_normalization,
    safe_weights,
    torch_dtype,
)
from rewardkit.core.rewards import last_token_index, position_ids_from_mask
from rewardkit.data.tokenize import eos_last_template, install_chat_template
from rewardkit.errors import RewardkitError, first_line
from rewardkit.scorers.classifier import ClassifierRM

logger = logging.getLogger(__name__)

VALUE_HEAD_PREFIXES = ("score", "value_head", "v_head", "v_head.summary")  # OpenRLHF names, then TRL's
LLAMA_FACTORY_HEAD = "value_head.safetensors"
NOT_BACKBONE = (LLAMA_FACTORY_HEAD, "adapter_model.safetensors")


# --- value heads -------------------------------------------------------------------------------------


def _config_dict(folder: Path) -> dict:
    file = folder / "config.json"
    return json.loads(file.read_text()) if file.is_file() else {}


def _weight_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file holding it, from the shard index or the files' own headers."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        return {name: folder / file for name, file in weight_map.items()}
    files: dict[str, Path] = {}
    for file in sorted(folder.glob("*.safetensors")):
        if file.name not in NOT_BACKBONE:
            with safe_open(file, framework="pt") as f:
                files.update(dict.fromkeys(f.keys(), file))
    return files


def _tensor(file: Path, name: str) -> torch.Tensor:
    with safe_open(file, framework="pt") as f:
        return f.get_tensor(name)


def _is_head(file: Path, name: str) -> bool:
    """A [1, hidden] matrix: one reward per hidden state."""
    with safe_open(file, framework="pt") as f:
        shape = f.get_slice(name).get_shape()
    return len(shape) == 2 and shape[0] == 1


def find_value_head_prefix(folder: Path) -> str | None:
    """The name of a linear value head stored beside a causal LM's weights, or None.

    config.json's `value_head_prefix` (OpenRLHF) wins when its weight is present (or when no safetensors
    can be listed, so the loader can say what is wrong); otherwise the first of score, value_head,
    v_head, v_head.summary with a top-level `<prefix>.weight` of shape [1, hidden].
    """
    folder = Path(folder)
    return _find_prefix(folder, _weight_files(folder))


def _find_prefix(folder: Path, files: dict[str, Path]) -> str | None:
    configured = _config_dict(folder).get("value_head_prefix")
    if isinstance(configured, str) and configured and (f"{configured}.weight" in files or not files):
        return configured
    for prefix in VALUE_HEAD_PREFIXES:
        name = f"{prefix}.weight"
        if name in files and _is_head(files[name], name):
            return prefix
    return None


def _llama_factory_head(folder: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    with safe_open(folder / LLAMA_FACTORY_HEAD, framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    weight = next((t for n, t in tensors.items() if n.endswith("summary.weight")), None)
    if weight is None:
        raise RewardkitError(
            f"{folder / LLAMA_FACTORY_HEAD}: no v_head.summary.weight (found {sorted(tensors)})"
        )
    return weight, next((t for n, t in tensors.items() if n.endswith("summary.bias")), None)


def _read_head(folder: Path) -> tuple[torch.Tensor, torch.Tensor | None, str | None, str]:
    """(weight [1, hidden], bias [1] or None, prefix in the model weights or None, layout description)."""
    if (folder / LLAMA_FACTORY_HEAD).is_file():
        weight, bias = _llama_factory_head(folder)
        return weight, bias, None, "LLaMA-Factory value_head.safetensors"
    if (folder / "value_head.bin").is_file():
        # torch.load unpickles arbitrary objects; a checkpoint should not run code when it is scored.
        raise RewardkitError(
            f"{folder}: value_head.bin is a pickle file and is not loaded (it could run code); convert it once "
            "with: python -c \"import torch, safetensors.torch as st; st.save_file(torch.load('value_head.bin', "
            "weights_only=True), 'value_head.safetensors')\" and keep value_head.safetensors beside the model"
        )
    files = _weight_files(folder)
    prefix = _find_prefix(folder, files)
    if prefix is None:
        raise RewardkitError(
            f"{folder}: no value head found: looked for {LLAMA_FACTORY_HEAD} and for a [1, hidden] "
            f"'<prefix>.weight' with prefix {', '.join(VALUE_HEAD_PREFIXES)} in the safetensors weights "
            "(pickled *.bin weights are not read); pass another --kind if this is not a value-head model"
        )
    if f"{prefix}.weight" not in files:
        raise RewardkitError(
            f"{folder}: config.json names value_head_prefix '{prefix}' but no safetensors file "
            f"holds '{prefix}.weight' (pickled *.bin weights are not read)"
        )
    weight = _tensor(files[f"{prefix}.weight"], f"{prefix}.weight")
    bias = _tensor(files[f"{prefix}.bias"], f"{prefix}.bias") if f"{prefix}.bias" in files else None
    return weight, bias, prefix, f"'{prefix}' head in the model weights"


class ValueHeadModel(torch.nn.Module):
    """A transformer backbone and a linear value head read at the last real token of each row."""

    def __init__(self, backbone, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.backbone = backbone
        self.config = backbone.config
        # The head runs in float32 whatever the backbone's dtype: it is one dot product per row.
        self.head = torch.nn.Linear(weight.shape[1], 1, bias=bias is not None)
        with torch.no_grad():
            self.head.weight.copy_(weight.float())
            if bias is not None:
                self.head.bias.copy_(bias.float().reshape(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        last = hidden[rows, last_token_index(attention_mask).to(hidden.device)]
        return self.head(last.to(self.head.weight.device, torch.float32)).squeeze(-1)


def _backbone_class(path: str, trust_remote_code: bool, head_prefix: str | None):
    """AutoModel's class for this config, told that the head (and any LM head) in the file is expected.

    Without this, transformers prints a LOAD REPORT calling `score.weight` / `lm_head.weight` UNEXPECTED
    on every load, which reads like an error. Remote-code backbones keep AutoModel and its report.
    """
    from transformers import MODEL_MAPPING, AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    if type(config) not in MODEL_MAPPING:
        return AutoModel
    base = MODEL_MAPPING[type(config)]
    ignore = [r"^lm_head\."] + ([rf"^{re.escape(head_prefix)}\."] if head_prefix else [])
    # Same module as the base class: transformers reads that module to check attention support.
    return type(
        base.__name__, (base,), {"_keys_to_ignore_on_load_unexpected": ignore, "__module__": base.__module__}
    )


def _load_kwargs(
    kind: str,
    gguf_file: str | None,
    dtype: str,
    attn_implementation: str | None,
    device_map: str | None,
    trust_remote_code: bool,
    path: str,
    allow_pickle: bool,
) -> dict:
    """`from_pretrained` keyword arguments, checking the options this kind cannot honour."""
    if gguf_file:
        raise RewardkitError(f"--gguf_file: {kind} models are loaded from safetensors folders, not GGUF")
    kwargs = dict(
        dtype=torch_dtype(dtype),
        trust_remote_code=trust_remote_code,
        **safe_weights(path, allow_pickle=allow_pickle),
    )
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map:
        kwargs["device_map"] = device_map
    return kwargs


def _load_backbone(path: str, head_prefix: str | None, kwargs: dict):
    """The bare transformer (no LM head) of a causal-LM or OpenRLHF folder, refusing missing weights."""
    loader = _backbone_class(path, kwargs["trust_remote_code"], head_prefix)
    try:
        backbone, info = loader.from_pretrained(path, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as e:
        raise RewardkitError(f"--model {path}: cannot load the backbone ({first_line(e)})") from e
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise RewardkitError(
            f"--model {path}: the backbone's weights are missing from the checkpoint "
            f"({len(missing)} tensors, e.g. {missing[:3]}); it would score with random weights"
        )
    return backbone.eval()


def load_value_head(
    path: str,
    *,
    gguf_file: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    template_name: str | None = "auto",
    max_length: int | None = None,
    batch_tokens: int = 16384,
    allow_pickle: bool = False,
    **_ignored,
) -> ClassifierRM:
    """A value-head reward model (OpenRLHF, LLaMA-Factory or TRL layout) ready to score.

    Example:
        An OpenRLHF / LLaMA-Factory checkpoint is needed, hence the skips:

        >>> rm = load_value_head("outputs/openrlhf-rm")  # doctest: +SKIP
        >>> rm.score([[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]])  # doctest: +SKIP
        [0.73...]
    """
    folder = Path(path)
    kwargs = _load_kwargs(
        "value-head", gguf_file, dtype, attn_implementation, device_map, trust_remote_code, path, allow_pickle
    )
    weight, bias, prefix, layout = _read_head(folder)
    backbone = _load_backbone(path, prefix, kwargs)
    hidden = backbone.config.get_text_config().hidden_size
    if weight.dim() != 2 or tuple(weight.shape) != (1, hidden):
        raise RewardkitError(
            f"{path}: the value head ({layout}) has shape {list(weight.shape)}; "
            f"expected [1, {hidden}] for this backbone"
        )
    model = ValueHeadModel(backbone, weight, bias).eval()
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    ensure_pad_token(tokenizer, backbone)
    template = install_chat_template(tokenizer, template_name)
    if prefix is not None and not prefix.startswith("v_head") and tokenizer.eos_token:
        # OpenRLHF trained on "<chat text without trailing newlines> <EOS>" and read the reward at EOS.
        tokenizer.chat_template = eos_last_template(tokenizer.chat_template, tokenizer.eos_token)
        template += f", ending at EOS {tokenizer.eos_token!r} as OpenRLHF's RewardDataset does"
    logger.info("%s: value head: %s; chat template: %s", path, layout, template)
    device = default_device(device_map)
    if not device_map:
        model.to(device)
    else:
        model.head.to(device)
    config = _config_dict(folder)  # OpenRLHF normalises with mean/std only when normalize_reward is set
    stats = (config.get("mean"), config.get("std"))
    normal = config.get("normalize_reward") and all(isinstance(v, (int, float)) for v in stats)
    normalization = (float(stats[0]), float(stats[1])) if normal else None
    limit = getattr(backbone.config.get_text_config(), "max_position_embeddings", None) or 4096
    # Positions come from the mask and the last real token is found from it, so either side is exact.
    return ClassifierRM(
        model,
        tokenizer,
        kind="value_head",
        max_length=min(max_length or limit, limit),
        batch_tokens=batch_tokens,
        device=device,
        normalization=normalization,
        pad_side="left",
        name=str(path),
        model=model,
    )


# --- remote code -------------------------------------------------------------------------------------


def _field(output, name: str):
    if isinstance(output, dict):  # transformers ModelOutput is a dict too
        return output.get(name)
    return getattr(output, name, None)


def _score_columns(output, rows: int, path: str) -> torch.Tensor:
    """(rows, 1 + k): the overall score, then the k per-objective rewards (if the output has them)."""
    score = output if isinstance(output, torch.Tensor) else _field(output, "score")
    if score is None:
        logits = _field(output, "logits")
        if logits is not None and logits.reshape(rows, -1).shape[1] == 1:
            score = logits
    if score is None or score.reshape(rows, -1).shape[1] != 1:
        raise RewardkitError(
            f"{path}: the model's forward returned {type(output).__name__} without a one-column "
            "`score` (or `logits`); rewardkit reads output.score and, if present, output.rewards"
        )
    columns = [score.reshape(rows, 1).float()]
    rewards = None if isinstance(output, torch.Tensor) else _field(output, "rewards")
    if rewards is not None:
        columns.append(rewards.reshape(rows, -1).float())
    return torch.cat(columns, dim=1)


def objective_names(config, k: int) -> list[str]:
    """Names of k per-objective rewards: config's `objective_names`/`reward_names`, else reward_0..k-1."""
    for attr in ("objective_names", "reward_names"):
        names = getattr(config, attr, None)
        if isinstance(names, (list, tuple)) and len(names) == k and all(isinstance(n, str) for n in names):
            return list(names)
    return [f"reward_{i}" for i in range(k)]


def load_remote_code(
    path: str,
    *,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    template_name: str | None = "auto",
    max_length: int | None = None,
    batch_tokens: int = 16384,
    allow_pickle: bool = False,
    **_ignored,
) -> ClassifierRM:
    """A model whose own code computes the reward (ArmoRM style), loaded only with `trust_remote_code=True`.

    Sub-scores: "score" (the reward, column 0), then the output's per-objective `rewards`, named from the
    config's `objective_names`/`reward_names` or reward_0..k-1.

    Example:
        A local copy of a remote-code model (8B here) is needed, hence the skips:

        >>> rm = load_remote_code("models/ArmoRM-Llama3-8B-v0.1", trust_remote_code=True)  # doctest: +SKIP
        >>> msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
        >>> rm.score_detailed([msgs])[0].sub_scores  # doctest: +SKIP
        {'score': 0.11..., 'reward_0': 0.72..., ...}
    """
    from transformers import AutoModelForSequenceClassification

    if not trust_remote_code:
        raise RewardkitError(
            f"--model {path}: this model runs its own Python code (config.json auto_map); "
            "read that code, then pass --trust_remote_code to run it"
        )
    kwargs = _load_kwargs(
        "remote-code", gguf_file, dtype, attn_implementation, device_map, True, path, allow_pickle
    )
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs).eval()
    except (OSError, ValueError, ImportError) as e:
        raise RewardkitError(f"--model {path}: cannot load the remote-code model ({first_line(e)})") from e
    tokenizer = load_tokenizer(path, trust_remote_code=True)
    ensure_pad_token(tokenizer, model)
    logger.info("%s: chat template: %s", path, install_chat_template(tokenizer, template_name))
    device = default_device(device_map)
    if not device_map:
        model.to(device)
    accepted = inspect.signature(model.forward).parameters

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        extra = {"use_cache": False} if "use_cache" in accepted else {}
        if "position_ids" in accepted:
            extra["position_ids"] = position_ids_from_mask(mask)
        values = _score_columns(model(input_ids=ids, attention_mask=mask, **extra), ids.shape[0], path)
        if len(rm.sub_score_names) != values.shape[1]:  # the number of objectives is known at the first call
            rm.sub_score_names = ["score", *objective_names(model.config, values.shape[1] - 1)]
        return values

    limit = getattr(model.config, "max_position_embeddings", None) or 4096
    # Right padding: remote code commonly finds the last token from the first pad (as ArmoRM does).
    rm = ClassifierRM(
        forward,
        tokenizer,
        kind="remote_code",
        max_length=min(max_length or limit, limit),
        batch_tokens=batch_tokens,
        device=device,
        normalization=reward_normalization(model.config),
        sub_score_names=["score"],
        reward_column=0,
        pad_side="right",
        name=str(path),
        model=model,
    )
    return rm
