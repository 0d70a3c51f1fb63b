"""Reading a reward out of a sequence classifier, the same way in training, scoring and serving.

Decoders (Llama-style `XForSequenceClassification` with a `score` head): the backbone is run with
position ids computed from the attention mask, and the head is applied to the hidden state of the
last real token. Hugging Face's own forward uses `arange` positions and finds the last token by
comparing ids with `pad_token_id`, so left padding shifts positions and a conversation that ends in
the pad token (pad = eos is common) is read one token early; doing it here makes rewards independent
of the padding side. Encoders (BERT-style, pooled first token) run their own forward, right-padded.
"""

from __future__ import annotations

import torch


def unwrap(model):
    """The plain transformers model under PEFT/DDP wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP / DeepSpeed
            model = model.module
        elif hasattr(model, "get_base_model"):  # peft.PeftModel
            model = model.get_base_model()
        else:
            return model


def head_name(model) -> str:
    """Name of the reward head module: "score" (decoders) or "classifier" (encoders)."""
    base = unwrap(model)
    for name in ("score", "classifier"):
        if hasattr(base, name):
            return name
    raise ValueError(f"{type(base).__name__} has neither a `score` nor a `classifier` head")


def is_decoder(model) -> bool:
    """True for causal-LM sequence classifiers, which read the reward at the last token."""
    return head_name(model) == "score"


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a 0/1 mask, for left or right padding alike."""
    length = attention_mask.shape[-1]
    return length - 1 - attention_mask.flip(-1).long().argmax(-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, … over the real tokens of each row, whatever the padding side."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def sequence_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One reward per row, as float32 of shape (rows,) or (rows, num_labels) when num_labels > 1.

    Args:
        model: a sequence classifier (possibly wrapped by PEFT or DDP).
        input_ids: (rows, length) token ids.
        attention_mask: (rows, length) 1 for real tokens, 0 for padding.
    """
    if not is_decoder(model):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits.float().squeeze(-1)
    base = unwrap(model)
    per_token = head_outputs(
        model,
        base.score,
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
    )
    rows = torch.arange(per_token.shape[0], device=per_token.device)
    return per_token[rows, last_token_index(attention_mask).to(per_token.device)].float().squeeze(-1)


def head_outputs(model, head: torch.nn.Module, **inputs) -> torch.Tensor:
    """The reward head's output at every position of a decoder sequence classifier.

    A wrapped model (DDP, FSDP, DeepSpeed, PEFT) is run through its outermost wrapper, with a hook
    catching the head's output: DDP syncs gradients only after a forward it ran itself, and FSDP
    gathers the root's sharded weights (embeddings, head) only in its own forward. The model's pooled
    logits are ignored. A bare model runs backbone and head directly, since its pooling needs
    `config.pad_token_id`, which a checkpoint being scored may lack.
    """
    base = unwrap(model)
    if model is base:
        backbone = getattr(base, base.base_model_prefix)
        return head(backbone(**inputs, use_cache=False).last_hidden_state)
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _module, _args, output: captured.append(output))
    try:
        model(**inputs, use_cache=False)
    finally:
        handle.remove()
    return captured[0]
