"""`rewardkit serve --backend vllm`: sequence classifiers run by vLLM's pooling runner, same HTTP API.

Our tokenizer, chat template and length policy are kept (vLLM receives token ids), so scores match
the torch backend up to kernel numerics. The classify pooler reads the last token (`LAST`, where
rewardkit reads the reward) with its activation turned off: for a one-label reward head vLLM would
otherwise squash the logit. Needs vLLM and a GPU; written against vLLM's `LLM(runner="pooling")` +
`encode(pooling_task="classify")` API (0.10 and later). `PoolerConfig` spells the activation switch
`use_activation` in current vLLM and `activation` in 0.10; `pooler_options` picks the one it has.
"""

from __future__ import annotations

import dataclasses

import torch

from rewardkit.errors import RewardkitError
from rewardkit.scorers.classifier import ClassifierRM


def pooler_options(pooler_config_cls) -> dict:
    """Keyword arguments for vLLM's `PoolerConfig`: last-token pooling, no activation, in the field
    names this vLLM version has (a name it lacks would be refused by its config class)."""
    names = {f.name for f in dataclasses.fields(pooler_config_cls)}
    if "use_activation" in names:
        options = {"use_activation": False}
    elif "activation" in names:
        options = {"activation": False}
    else:
        raise RewardkitError(
            "--backend vllm: this vLLM's PoolerConfig has neither use_activation nor activation; "
            "rewards would go through the classifier's activation (use --backend torch)"
        )
    if "pooling_type" in names:
        options["pooling_type"] = "LAST"
    return options


def load_vllm_reward_model(model_args) -> ClassifierRM:
    """A `ClassifierRM` whose forward is a vLLM pooling call (same scoring API as the torch backend)."""
    try:
        from vllm import LLM
        from vllm.config import PoolerConfig
    except ImportError as e:
        raise RewardkitError(
            "--backend vllm needs vLLM: pip install vllm (on a machine with a CUDA GPU)"
        ) from e
    if not torch.cuda.is_available():
        raise RewardkitError("--backend vllm needs a CUDA GPU; use --backend torch on CPU")
    for flag, value in (("--gguf_file", model_args.gguf_file), ("--device_map", model_args.device_map)):
        if value:  # vLLM places and loads the model itself; silently ignoring these would score another setup
            raise RewardkitError(
                f"{flag} is not supported with --backend vllm (drop it, or use --backend torch)"
            )
    from rewardkit.core.loading import load_tokenizer, reward_normalization
    from rewardkit.data.tokenize import install_chat_template

    tokenizer = load_tokenizer(model_args.model, trust_remote_code=model_args.trust_remote_code)
    install_chat_template(tokenizer, model_args.template_name)
    llm = LLM(
        model=model_args.model,
        runner="pooling",
        convert="classify",
        dtype=model_args.torch_dtype,
        trust_remote_code=model_args.trust_remote_code,
        pooler_config=PoolerConfig(**pooler_options(PoolerConfig)),
    )
    limit = llm.llm_engine.model_config.max_model_len

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        prompts = [{"prompt_token_ids": row[m.bool()].tolist()} for row, m in zip(ids, mask)]
        outputs = llm.encode(prompts, pooling_task="classify", use_tqdm=False)
        return torch.stack([out.outputs.data.float().flatten()[0] for out in outputs])

    config = llm.llm_engine.model_config.hf_config
    return ClassifierRM(
        forward,
        tokenizer,
        kind="seq_classifier",
        max_length=min(model_args.max_length or limit, limit),
        batch_tokens=1 << 30,
        max_batch_rows=1024,
        normalization=reward_normalization(config),
        name=f"{model_args.model} (vllm)",
    )
