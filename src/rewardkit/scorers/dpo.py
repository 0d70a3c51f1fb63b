"""Kind 4: the implicit reward of a DPO policy, r(answer) = β · (log π(answer | prompt) − log π_ref(answer | prompt)).

The answer's tokens are the assistant turn as the chat template renders it: every token of the full
conversation after the prompt's own encoding (`apply_chat_template(prompt, add_generation_prompt=True)`),
end-of-turn tokens included. log π(answer | prompt) is the sum of the log-probabilities the causal LM
gives those tokens. Without a reference model the reward is the policy's summed log-probability alone,
or with `reference_free_mean` its mean per answer token (RewardBench's reference-free "avg" variant).

A group's prompt runs once: for the decoder families that pair packing supports
(`core.packing.PACKABLE_MODEL_TYPES`, sdpa or eager attention) each group is packed as one segment
`[prompt | answer 1 | ... | answer N]` with the block mask of `core.packing` (an answer sees the
prompt and itself, at its unpacked positions), several groups to a padding-free row. The first token
of every answer is predicted from the prompt's last position, the others from the answer's own
previous token, so the log-probabilities equal those of each conversation run alone. Other causal
LMs run every conversation in full (right-padded rows of similar length): exact, without the sharing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from rewardkit.core.batching import batch_fill, fill_in_order, length_batches, pad_rows
from rewardkit.core.packing import (
    PACKABLE_ATTENTION,
    PACKABLE_MODEL_TYPES,
    _sliding_window,
    pack_segment,
    packed_attention_mask,
)
from rewardkit.core.prefix import MAX_ROW_TOKENS, shared_prefix_len
from rewardkit.core.rewards import position_ids_from_mask
from rewardkit.data.tokenize import _special_ids, common_prefix_len, encode
from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import Group, GroupMixin, Messages, Score

logger = logging.getLogger(__name__)

Encoded = tuple[list[int], int, bool]  # (token ids, index of the answer's first token, truncated)
LOGIT_CHUNK = 512  # positions per lm_head call: 512 x a 49k vocabulary in fp32 is 100 MB


def encode_answer(tokenizer, messages: Messages, max_length: int) -> Encoded:
    """Token ids of a conversation, where its last (assistant) turn starts, and whether anything was cut.

    Old context turns go first, as in `data.tokenize.encode_for_scoring`; if the last user turn and the
    answer still do not fit, tokens are cut after the leading special tokens (the prompt's start goes
    first) and the result is flagged.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise RewardkitError("a DPO reward needs a conversation that ends with an assistant turn")
    system = messages[:1] if messages[0]["role"] == "system" else []
    body, answer, truncated = list(messages[len(system) : -1]), messages[-1:], False
    while True:
        ids = encode(tokenizer, system + body + answer)
        prompt_text = tokenizer.apply_chat_template(system + body, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        start = max(1, common_prefix_len(prompt_ids, ids))  # the first token has nothing to predict it
        if len(ids) <= max_length:
            return ids, start, truncated
        users = [i for i, m in enumerate(body) if m["role"] == "user"]
        if len(users) < 2:
            break
        body, truncated = body[users[1] :], True
    head, _ = _special_ids(tokenizer)
    keep = len(head) if ids[: len(head)] == head and len(head) < max_length else 0
    removed = len(ids) - max_length
    start = start - removed if start >= keep + removed else keep
    return ids[:keep] + ids[keep + removed :], max(1, start), True


def supports_packed_logprobs(model) -> bool:
    """True where packing a group as one segment gives exact log-probabilities (tested families)."""
    config = model.config
    layer_types = set(getattr(config, "layer_types", None) or [])
    return (
        config.model_type in PACKABLE_MODEL_TYPES
        and config._attn_implementation in PACKABLE_ATTENTION
        and len(layer_types) <= 1
    )


def _token_logprobs(model, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position of `hidden` (n, dim), through the model's LM head, in float32."""
    head = model.get_output_embeddings()
    cap = getattr(model.config, "final_logit_softcapping", None)
    out = []
    for s in range(0, hidden.shape[0], LOGIT_CHUNK):
        logits = head(hidden[s : s + LOGIT_CHUNK]).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        out.append(logits.log_softmax(-1).gather(-1, targets[s : s + LOGIT_CHUNK, None]).squeeze(-1))
    return torch.cat(out) if out else torch.empty(0)


def _backbone(model):
    return getattr(model, model.base_model_prefix)


@torch.no_grad()
def packed_answer_logprobs(
    model, groups: list[list[Encoded]], *, device: torch.device, row_tokens: int
) -> list[list[torch.Tensor]]:
    """Per group and answer, the log-probability of each answer token, with each group packed once."""
    out: list[list[torch.Tensor]] = [[] for _ in groups]
    todo = [g for g, rows in enumerate(groups) if rows]
    prefix = {g: shared_prefix_len([ids for ids, _, _ in groups[g]]) for g in todo}
    segments = {g: pack_segment([ids for ids, _, _ in groups[g]], prefix[g]) for g in todo}
    sliding = _sliding_window(model.config)
    for chunk in fill_in_order([len(segments[g][0]) for g in todo], row_tokens):
        ids, positions, sides, owners, reads = [], [], [], [], []
        for g in (todo[i] for i in chunk):
            seg_ids, seg_pos, seg_sides, _ = segments[g]
            offset, k, tail_start = len(ids), prefix[g], prefix[g]
            for row_ids, start, _ in groups[g]:
                # packed index of original position p of this row: the prefix, then the row's own block
                where = [offset + (p if p < k else tail_start + p - k) for p in range(len(row_ids))]
                reads.append((g, where[start - 1 : len(row_ids) - 1], row_ids[start:]))
                tail_start += len(row_ids) - k
            ids, positions, sides = ids + seg_ids, positions + seg_pos, sides + seg_sides
            owners += [g] * len(seg_ids)
        t = {n: torch.tensor([v], device=device) for n, v in (("i", ids), ("p", positions), ("o", owners))}
        mask = packed_attention_mask(t["o"], torch.tensor([sides], device=device), t["p"], sliding)
        if model.config._attn_implementation == "eager":  # eager adds the mask to the scores
            dtype = model.get_input_embeddings().weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(
                ~mask, torch.finfo(dtype).min
            )
        hidden = _backbone(model)(
            input_ids=t["i"], attention_mask=mask, position_ids=t["p"], use_cache=False
        ).last_hidden_state[0]
        index = torch.tensor([i for _, where, _ in reads for i in where], device=device, dtype=torch.long)
        targets = torch.tensor([x for _, _, tg in reads for x in tg], device=device, dtype=torch.long)
        logps = _token_logprobs(model, hidden[index], targets).cpu()
        pos = 0
        for g, where, _ in reads:
            out[g].append(logps[pos : pos + len(where)])
            pos += len(where)
    return out


@torch.no_grad()
def plain_answer_logprobs(
    model, groups: list[list[Encoded]], *, pad_id: int, device: torch.device, batch_tokens: int
) -> list[list[torch.Tensor]]:
    """The same as `packed_answer_logprobs`, each conversation run in full (any causal LM)."""
    flat = [(g, row) for g, rows in enumerate(groups) for row in rows]
    values: list[torch.Tensor | None] = [None] * len(flat)
    for batch in length_batches([len(r[0]) for _, r in flat], batch_tokens, 64, batch_fill(device)):
        ids, mask = (t.to(device) for t in pad_rows([flat[i][1][0] for i in batch], pad_id))
        hidden = _backbone(model)(
            input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), use_cache=False
        ).last_hidden_state
        for j, i in enumerate(batch):
            row_ids, start, _ = flat[i][1]
            targets = torch.tensor(row_ids[start:], device=device)
            values[i] = _token_logprobs(model, hidden[j, start - 1 : len(row_ids) - 1], targets).cpu()
    out: list[list[torch.Tensor]] = [[] for _ in groups]
    for (g, _), v in zip(flat, values):
        out[g].append(v)
    return out


class DPORewardModel(GroupMixin):
    """A DPO policy (and optionally its reference) as a reward model (kind "dpo").

    Args:
        policy: a causal LM (`AutoModelForCausalLM`), in eval mode, on `device`.
        tokenizer: the policy's tokenizer, carrying its chat template.
        reference: the reference causal LM (same tokenizer), or None for the reference-free reward.
        beta: the DPO β that multiplies the log-ratio (with a reference).
        reference_free_mean: without a reference, the mean log-probability per answer token, not the sum.
        max_length: tokens per conversation; older context turns are trimmed beyond it.
        batch_tokens: tokens per forward.

    Example:
        >>> rm = load_reward_model("dpo-policy", kind="dpo", reference="sft-model", beta=0.1)  # doctest: +SKIP
        >>> rm.compare("2+2?", ["4", "5"]).ranking  # doctest: +SKIP
        [0, 1]
    """

    answers_alone = True  # each answer's implicit reward depends on its own conversation only

    kind = "dpo"

    def __init__(
        self,
        policy,
        tokenizer,
        *,
        reference=None,
        beta: float = 0.1,
        reference_free_mean: bool = False,
        max_length: int = 4096,
        batch_tokens: int = 16384,
        device: torch.device | str = "cpu",
        name: str = "",
    ):
        self.policy, self.reference, self.tokenizer = policy, reference, tokenizer
        self.beta, self.reference_free_mean = beta, reference_free_mean
        self.max_length, self.batch_tokens, self.name = max_length, batch_tokens, name
        self.device = torch.device(device)
        self.normalization = None

    def count_tokens(self, conversations: Sequence[Messages]) -> list[int]:
        """Tokens each conversation takes before any trimming (no model call)."""
        return [len(encode(self.tokenizer, list(conv))) for conv in conversations]

    def answer_logprobs(self, model, groups: list[list[Encoded]]) -> list[list[torch.Tensor]]:
        """Per-token log-probabilities of each answer under `model` (packed where that is exact)."""
        if supports_packed_logprobs(model):
            rows = min(self.batch_tokens, MAX_ROW_TOKENS)
            return packed_answer_logprobs(model, groups, device=self.device, row_tokens=rows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return plain_answer_logprobs(
            model, groups, pad_id=pad_id, device=self.device, batch_tokens=self.batch_tokens
        )

    def score_encoded(self, groups: list[list[Encoded]]) -> list[list[Score]]:
        """Scores of already encoded groups (see `encode_answer`)."""
        policy = self.answer_logprobs(self.policy, groups)
        reference = self.answer_logprobs(self.reference, groups) if self.reference is not None else None
        out = []
        for g, rows in enumerate(groups):
            scores = []
            for a, (ids, start, truncated) in enumerate(rows):
                logp = float(policy[g][a].double().sum())
                n = len(ids) - start
                subs = {"logp_policy": logp, "answer_tokens": float(n)}
                if reference is not None:
                    ref = float(reference[g][a].double().sum())
                    subs["logp_reference"] = ref
                    reward = self.beta * (logp - ref)
                else:
                    reward = logp / max(n, 1) if self.reference_free_mean else logp
                scores.append(Score(reward, len(ids), truncated, None, subs))
            out.append(scores)
        return out

    def score_detailed(self, conversations: Sequence[Messages]) -> list[Score]:
        encoded = [[encode_answer(self.tokenizer, list(c), self.max_length)] for c in conversations]
        return [s[0] for s in self.score_encoded(encoded)]

    def score_groups(self, groups: Sequence[Group]) -> list[list[Score]]:
        """Scores of each group's answers, each group's shared prompt run once (where packing is exact)."""
        return self.score_encoded(
            [[encode_answer(self.tokenizer, c, self.max_length) for c in g.conversations()] for g in groups]
        )


def load_causal_lm(
    path: str,
    *,
    gguf_file: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    flag: str = "--model",
    allow_pickle: bool = False,
):
    """`AutoModelForCausalLM` from a local folder (or a GGUF file in it, dequantised), in eval mode."""
    from transformers import AutoModelForCausalLM

    from rewardkit.core.loading import forget_gguf_quantizer, safe_weights, torch_dtype
    from rewardkit.errors import first_line

    kwargs = dict(dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code)
    kwargs.update(safe_weights(path, gguf_file=gguf_file, allow_pickle=allow_pickle, flag=flag))
    for key, value in (("gguf_file", gguf_file), ("attn_implementation", attn_implementation)):
        if value:
            kwargs[key] = value
    if device_map:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise RewardkitError(f"{flag} {path}: cannot load a causal LM ({first_line(e)})") from e
    if gguf_file:
        forget_gguf_quantizer(model)
    return model.eval()


def load_dpo(
    path: str,
    *,
    reference: str | None = None,
    reference_gguf_file: str | None = None,
    beta: float = 0.1,
    reference_free_mean: bool = False,
    gguf_file: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    template_name: str | None = "auto",
    max_length: int | None = None,
    batch_tokens: int = 16384,
    allow_pickle: bool = False,
) -> DPORewardModel:
    """A DPO policy (a causal LM folder) and its optional reference as a reward model.

    Example:
        >>> rm = load_dpo("outputs/dpo-policy", reference="outputs/sft", beta=0.1)  # doctest: +SKIP
    """
    from rewardkit.core.loading import default_device, load_tokenizer
    from rewardkit.data.tokenize import install_chat_template

    if beta <= 0:
        raise RewardkitError(f"--beta {beta}: must be > 0")
    tokenizer = load_tokenizer(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    logger.info("%s: chat template: %s", path, install_chat_template(tokenizer, template_name))
    common = dict(
        dtype=dtype, attn_implementation=attn_implementation, device_map=device_map, allow_pickle=allow_pickle
    )
    policy = load_causal_lm(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code, **common)
    ref_model = None
    if reference:
        ref_tok = load_tokenizer(
            reference, gguf_file=reference_gguf_file, trust_remote_code=trust_remote_code, flag="--reference"
        )
        probe = "Hello, world! 12 ÷ 4 = 3\n"
        if (
            ref_tok.get_vocab() != tokenizer.get_vocab()
            or ref_tok(probe)["input_ids"] != tokenizer(probe)["input_ids"]
        ):
            raise RewardkitError(
                f"--reference {reference}: its tokenizer differs from the policy's ({path}); "
                "a DPO reward needs the same vocabulary for both"
            )
        ref_model = load_causal_lm(
            reference,
            gguf_file=reference_gguf_file,
            trust_remote_code=trust_remote_code,
            flag="--reference",
            **common,
        )
    device = default_device(device_map)
    if not device_map:
        policy.to(device)
        if ref_model is not None:
            ref_model.to(device)
    limit = getattr(policy.config, "max_position_embeddings", None) or 4096
    logger.info(
        "DPO reward: %s",
        f"beta * (log pi - log pi_ref), beta={beta}"
        if ref_model is not None
        else ("mean" if reference_free_mean else "sum") + " of log pi (reference-free)",
    )
    return DPORewardModel(
        policy,
        tokenizer,
        reference=ref_model,
        beta=beta,
        reference_free_mean=reference_free_mean,
        max_length=min(max_length or limit, limit),
        batch_tokens=batch_tokens,
        device=device,
        name=str(path),
    )
