"""Kind 1: sequence classifiers (`AutoModelForSequenceClassification`, num_labels=1), e.g. Skywork-Reward."""

from __future__ import annotations

import logging

from rewardkit.core.loading import (
    default_device,
    ensure_pad_token,
    load_sequence_classifier,
    load_tokenizer,
    reward_normalization,
)
from rewardkit.core.rewards import is_decoder, sequence_rewards
from rewardkit.data.tokenize import install_chat_template
from rewardkit.scorers.classifier import ClassifierRM
from rewardkit.scorers.ensemble import checkpoint_ensemble, use_ensemble

logger = logging.getLogger(__name__)


def load_seq_classifier(
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
    ensemble_aggregate: str | None = None,
    ensemble_lambda: float | None = None,
    allow_pickle: bool = False,
) -> ClassifierRM:
    """A sequence-classifier reward model ready to score (with prefix sharing for decoders).

    Example:
        A trained checkpoint is needed (`rewardkit demo` writes outputs/demo/model), hence the skips:

        >>> rm = load_seq_classifier("outputs/demo/model")  # doctest: +SKIP
        >>> rm.score([[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]])  # doctest: +SKIP
        [1.93...]

    A head-ensemble checkpoint (`rewardkit train --ensemble_size K`) scores with its aggregate
    (`ensemble_aggregate`/`ensemble_lambda`, default the ones saved in training) and carries the
    members' mean, std, min and each member in `Score.sub_scores` (`rewardkit.scorers.ensemble`).
    """
    ensemble = checkpoint_ensemble(path, gguf_file, trust_remote_code)
    tokenizer = load_tokenizer(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    model = load_sequence_classifier(
        path,
        gguf_file=gguf_file,
        dtype=dtype,
        attn_implementation=attn_implementation,
        device_map=device_map,
        trust_remote_code=trust_remote_code,
        num_labels=ensemble["size"] if ensemble else 1,
        allow_pickle=allow_pickle,
    ).eval()
    ensure_pad_token(tokenizer, model)
    logger.info("%s: chat template: %s", path, install_chat_template(tokenizer, template_name))
    device = default_device(device_map)
    if not device_map:
        model.to(device)
    limit = getattr(model.config, "max_position_embeddings", None) or 4096
    decoder = is_decoder(model)
    rm = ClassifierRM(
        lambda ids, mask: sequence_rewards(model, ids, mask),
        tokenizer,
        kind="seq_classifier",
        max_length=min(max_length or limit, limit),
        batch_tokens=batch_tokens,
        device=device,
        normalization=reward_normalization(model.config),
        pad_side="left" if decoder else "right",
        name=str(path),
        model=model,
        prefix_sharing=decoder,  # decoders: pairs and best-of-N groups read their prompt once
    )
    if ensemble:
        use_ensemble(rm, ensemble, ensemble_aggregate, ensemble_lambda)
    rm.temperature = getattr(model.config, "reward_temperature", None)  # --calibrate's T, if fitted
    return rm
