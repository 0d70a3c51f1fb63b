"""Process reward models (PRMs): a token-classification head read at a step separator after each step.

The head has two outputs (bad, good), as TRL's last `PRMTrainer`, Qwen2.5-Math-PRM and vLLM's "step"
pooler have it: a step's score is softmax(logits)[good] at its separator token, a probability that
the step is right, and checkpoints trained elsewhere in that layout score here as they are (a
one-output head is read through a sigmoid). Two logits trained with soft cross-entropy are the
binary cross-entropy of their difference, so nothing is lost against one output.

The separator is by default a dedicated added special token, `<|step|>`: no text tokenizes into it
(a newline would: steps that contain line breaks would get extra reading points), it is one token
for every tokenizer, and `input_ids == separator_id` finds the reading points in plain transformers
and vLLM (`step_tag_id`). Its embedding row is added with the vocabulary's mean (transformers'
`mean_resizing`); a LoRA run leaves it there, which is enough: the step's score comes from what the
separator attends to. The checkpoint's config.json records `step_separator`, `step_separator_id`
and `prm_aggregate`, which is how `load_reward_model` recognises a PRM.

Encoders (BERT-like) attend both ways, so a step's score would depend on the steps after it: a
mistake in step 3 would lower steps 1 and 2 too, and a partial solution (step-level search) would
score differently once more steps are appended. `make_causal` turns such an encoder's attention
causal (`is_decoder` in its config, saved in config.json so that transformers loads it causal
again), which `rewardkit train --objective prm` does by default (`--step_attention causal`).
"""

from __future__ import annotations

import torch

from rewardkit.config import DTYPE_NAMES
from rewardkit.core.loading import forget_gguf_quantizer, safe_weights, torch_dtype
from rewardkit.core.packing import PAD, PROMPT, packed_forward
from rewardkit.core.rewards import head_outputs, is_decoder, position_ids_from_mask, unwrap
from rewardkit.errors import RewardkitError, first_line

DEFAULT_STEP_SEPARATOR = "<|step|>"
AGGREGATES = ("min", "prod", "last", "mean")
SEPARATOR_KEY = "step_separator"  # the config.json key that marks a checkpoint as a PRM


def make_causal(model) -> None:
    """Make an encoder's self-attention causal (config `is_decoder`, every attention module `is_causal`),
    checked: the first token's output must not change with the last token, with or without a padding
    mask; raises if it does (a model whose config's is_decoder does nothing, e.g. DistilBERT).
    """
    base = unwrap(model)
    config = base.config
    config.is_decoder, config.use_cache = True, False
    for module in base.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = True
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 9]], device=next(base.parameters()).device)
    training = base.training
    base.eval()
    with torch.no_grad():  # with and without a padding mask (some models drop `is_causal` under a mask)
        first = [base(input_ids=ids, attention_mask=mask).logits[:, 0].float() for mask in (None, ids > 0)]
    base.train(training)
    if not all(torch.allclose(f[0], f[1], atol=1e-5) for f in first):
        raise RewardkitError(
            f"--step_attention causal: {config.model_type} has no causal attention mode "
            "(its config's is_decoder is not used); give --step_attention bidirectional"
        )


def load_token_classifier(
    path: str,
    *,
    gguf_file: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    quantization_config=None,
    cache_dir: str | None = None,
    flag: str = "--model",
    allow_pickle: bool = False,
):
    """`AutoModelForTokenClassification` with two labels (bad, good), a new head if the checkpoint has none.

    The head's dropout is off (`classifier_dropout=0`), so a step score is the same in training
    forwards through any wrapper and in scoring.
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    if dtype not in DTYPE_NAMES:
        raise RewardkitError(f"--torch_dtype {dtype}: accepted values are {', '.join(DTYPE_NAMES)}")
    kwargs = dict(dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code, cache_dir=cache_dir)
    kwargs.update(safe_weights(path, gguf_file=gguf_file, allow_pickle=allow_pickle, flag=flag))
    for key, value in (
        ("gguf_file", gguf_file),
        ("attn_implementation", attn_implementation),
        ("device_map", device_map),
        ("quantization_config", quantization_config),
    ):
        if value:
            kwargs[key] = value
    try:
        config = AutoConfig.from_pretrained(
            path, gguf_file=gguf_file, trust_remote_code=trust_remote_code, cache_dir=cache_dir
        )
        fresh_head = not str((config.architectures or [""])[0]).endswith("ForTokenClassification")
        if fresh_head:  # a base model or another head: a new (bad, good) head, whatever the checkpoint had
            kwargs["ignore_mismatched_sizes"] = True
            config.num_labels = 2
            config.id2label, config.label2id = {0: "bad", 1: "good"}, {"bad": 0, "good": 1}
        config.classifier_dropout = 0.0
        model = AutoModelForTokenClassification.from_pretrained(path, config=config, **kwargs)
    except (OSError, ValueError) as e:
        raise RewardkitError(f"{flag} {path}: cannot load a token classifier ({first_line(e)})") from e
    if gguf_file:
        forget_gguf_quantizer(model)
    if model.config.num_labels not in (1, 2):
        raise RewardkitError(
            f"{path}: num_labels={model.config.num_labels}; a PRM head has 2 (bad, good) or 1"
        )
    return model


def add_step_separator(tokenizer, model, separator: str = DEFAULT_STEP_SEPARATOR) -> int:
    """The separator's token id, adding it as a special token (and an embedding row) when it is not one token.

    A separator that is already one token of the vocabulary (e.g. a reserved token) is used as it is.
    """
    if not separator:
        raise RewardkitError("--step_separator must not be empty")
    vocab = tokenizer.get_vocab()
    if separator in vocab:
        sep_id = vocab[separator]
    else:
        ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and tokenizer.decode(ids) == separator:
            sep_id = ids[0]
        else:
            tokenizer.add_special_tokens(
                {"extra_special_tokens": [separator]}, replace_extra_special_tokens=False
            )
            sep_id = tokenizer.convert_tokens_to_ids(separator)
    embeddings = unwrap(model).get_input_embeddings()
    if sep_id >= embeddings.weight.shape[0]:
        unwrap(model).resize_token_embeddings(len(tokenizer), mean_resizing=True)
    record_separator(unwrap(model).config, separator, sep_id)
    return sep_id


def record_separator(config, separator: str, separator_id: int, aggregate: str = "min") -> None:
    """Write the PRM keys into a model config (saved in config.json)."""
    config.step_separator = separator
    config.step_separator_id = int(separator_id)
    config.prm_aggregate = getattr(config, "prm_aggregate", None) or aggregate


def step_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The head's output at every token of padded rows, (rows, width, num_labels).

    Decoders run with positions from the mask (any padding side) through `head_outputs`; encoders
    run their own forward.
    """
    if not is_decoder(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    return head_outputs(
        model,
        unwrap(model).score,
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
    )


def packed_step_logits(
    model, input_ids: torch.Tensor, position_ids: torch.Tensor, block_ids: torch.Tensor
) -> torch.Tensor:
    """The head's output at every token of rows holding several solutions, one block each.

    `block_ids` numbers each token's solution (-1 on padding); a token attends causally within its
    block only and positions restart per block, so every solution sees what it sees alone
    (`core.packing`'s block mask, with every token on the PROMPT side).
    """
    sides = torch.where(block_ids >= 0, PROMPT, PAD)
    return packed_forward(model, input_ids, position_ids, block_ids, sides, causal_blocks=True)


def good_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(step is good) from the head's outputs at separator tokens, (..., num_labels) -> (...)."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        return torch.sigmoid(logits[..., 0])
    return torch.softmax(logits, dim=-1)[..., 1]


def step_margin(logits: torch.Tensor) -> torch.Tensor:
    """The logit of `good_probability`, (..., num_labels) -> (...): logit[good] - logit[bad] (the
    softmax of two logits is the sigmoid of their difference), or the one logit of a one-label head."""
    logits = logits.float()
    return logits[..., 0] if logits.shape[-1] == 1 else logits[..., 1] - logits[..., 0]


def aggregate(scores: list[float], how: str = "min") -> float:
    """One score per solution from its step scores: min, prod, last or mean.

    Example:
        >>> aggregate([0.9, 0.2, 0.8], "min"), round(aggregate([0.5, 0.5], "prod"), 2), aggregate([0.1, 0.7], "last")
        (0.2, 0.25, 0.7)
    """
    if how not in AGGREGATES:
        raise RewardkitError(f"--aggregate {how}: accepted values are {', '.join(AGGREGATES)}")
    if not scores:
        return float("nan")
    if how == "min":
        return float(min(scores))
    if how == "last":
        return float(scores[-1])
    if how == "mean":
        return float(sum(scores) / len(scores))
    out = 1.0
    for s in scores:
        out *= s
    return float(out)
