"""Kind 1: sequence classifiers (`AutoModelForSequenceClassification`, num_labels=1), e.g. Skywork-Reward."""

from __future__ import annotations

import logging

import torch

from rewardkit.data.tokenize import install_chat_template
from rewardkit.modeling import is_decoder, sequence_rewards
from rewardkit.scorers.classifier import ClassifierRM
from rewardkit.train.model import ensure_pad_token, load_sequence_classifier, load_tokenizer

logger = logging.getLogger(__name__)


def default_device(device_map: str | None) -> torch.device:
    if device_map:
        return torch.device("cuda" if torch.cuda.is_available() and device_map != "cpu" else "cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reward_normalization(config) -> tuple[float, float] | None:
    """(mean, std) saved by `rewardkit train` (reward_mean/reward_std) or OpenRLHF (mean/std)."""
    for mean_key, std_key in (("reward_mean", "reward_std"), ("mean", "std")):
        mean, std = getattr(config, mean_key, None), getattr(config, std_key, None)
        if isinstance(mean, (int, float)) and isinstance(std, (int, float)):
            return float(mean), float(std)
    return None


def load_seq_classifier(path: str, *, gguf_file: str | None = None, dtype: str = "float32",
                        attn_implementation: str | None = None, device_map: str | None = None,
                        trust_remote_code: bool = False, template_name: str | None = "auto",
                        max_length: int | None = None, batch_tokens: int = 16384) -> ClassifierRM:
    """A sequence-classifier reward model ready to score (with prefix sharing for decoders).

    Example:
        >>> rm = load_seq_classifier("outputs/demo/model")
        >>> rm.score([[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]])
        [1.93...]
    """
    tokenizer = load_tokenizer(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    model = load_sequence_classifier(path, gguf_file=gguf_file, dtype=dtype, attn_implementation=attn_implementation,
                                     device_map=device_map, trust_remote_code=trust_remote_code).eval()
    ensure_pad_token(tokenizer, model)
    logger.info("%s: chat template: %s", path, install_chat_template(tokenizer, template_name))
    device = default_device(device_map)
    if not device_map:
        model.to(device)
    limit = getattr(model.config, "max_position_embeddings", None) or 4096
    decoder = is_decoder(model)
    rm = ClassifierRM(
        lambda ids, mask: sequence_rewards(model, ids, mask), tokenizer, kind="seq_classifier",
        max_length=min(max_length or limit, limit), batch_tokens=batch_tokens, device=device,
        normalization=reward_normalization(model.config), pad_side="left" if decoder else "right", name=str(path),
    ).with_model(model)
    from rewardkit.scorers.prefix import enable_prefix_sharing

    return enable_prefix_sharing(rm)  # decoders: pairs and best-of-N groups read their prompt once
