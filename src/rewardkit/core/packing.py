"""Shared-prefix pair packing: a pair is one segment `[prompt | chosen | rejected]`, not two padded rows.

The chosen and rejected conversations of a pair share their prompt token for token, so the prompt is
run once: the rejected answer's tokens attend to the prompt and to themselves but not to the chosen
answer, and their position ids restart where the prompt ends. Every token then sees exactly the keys
and positions it sees in its own unpacked sequence, so rewards and gradients equal the two-row
forward (`stacked_pair_rewards`) up to float rounding. Several pairs share a row padding-free, each
in its own block of a block-diagonal mask, positions restarting per pair.

    row:      <s> How are you ? | Fine . </s> | Bad . </s> | <s> Hi | ...
    side:      P   P   P   P  P |  C   C   C  |  R   R  R  | P   P  | ...
    position:  0   1   2   3  4 |  5   6   7  |  5   6  7  | 0   1  | ...

The mask is a dense 4D tensor handed to the backbone, which transformers uses as is (masking_utils
skips its own mask creation for 4D input) with the "sdpa" and "eager" attention implementations.
With "sdpa", `packed_pair_rewards` switches the model to `pair_block_attention` (registered with
transformers as "rewardkit_packed"): the same sdpa call, but once per pair block on that block's
queries, keys and mask, so the cross-pair blocks that the mask zeroes are never computed. With four
HH pairs in one ~700-token row that skips ~70% of the attention products; the result is the dense
call's up to float rounding, and without pair blocks in the call the function is plain sdpa.
flash_attention_2 cannot take this mask (its varlen API expresses only block-diagonal causal
attention), so it is not supported.
"""

from __future__ import annotations

import torch

from rewardkit.core.rewards import head_outputs, is_decoder, unwrap

PAIR_BLOCK_ATTENTION = "rewardkit_packed"

PROMPT, CHOSEN, REJECTED, PAD = 0, 1, 2, -1

# Families whose decoder layers take a user-given 4D mask through `masking_utils` unchanged, checked by
# the exactness tests in tests/unit/test_packing.py. Others (Gemma's soft-capping and mixed sliding
# layers, models with their own mask code) stay on the two-row layout until tested.
PACKABLE_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# flash_attention_* takes no arbitrary mask and flex_attention wants a BlockMask, not a tensor.
PACKABLE_ATTENTION = ("sdpa", "eager", PAIR_BLOCK_ATTENTION)


def pack_segment(rows: list[list[int]], prefix_len: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Rows sharing their first `prefix_len` tokens as one segment `[prefix | tail 1 | ... | tail N]`.

    Returns ids, position ids (each tail continues from the prefix, as in its own row), sides (PROMPT
    on the prefix, i on the i-th row's tail, counting from 1: CHOSEN, REJECTED for a pair) and, per
    row, the index of its last token (a row with no tail of its own ends on the last prefix token).

    Example:
        >>> pack_segment([[1, 5, 6], [1, 5, 7, 8]], 2)
        ([1, 5, 6, 7, 8], [0, 1, 2, 2, 3], [0, 0, 1, 2, 2], [2, 4])
    """
    ids, positions, sides, last = rows[0][:prefix_len], list(range(prefix_len)), [PROMPT] * prefix_len, []
    for side, row in enumerate(rows, start=CHOSEN):
        tail = row[prefix_len:]
        ids, positions = ids + tail, positions + list(range(prefix_len, len(row)))
        sides = sides + [side] * len(tail)
        last.append(len(ids) - 1 if tail else prefix_len - 1)
    return ids, positions, sides, last


def packed_attention_mask(
    pair_ids: torch.Tensor,
    sides: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """(rows, 1, width, width) bool mask, True where query token q may attend to key token k.

    q sees k when both belong to the same pair, k is not after q, and k is a prompt token or on q's
    side (so a rejected token never sees a chosen one). `sides` may number more answers than two
    (1, 2, 3, ... after the PROMPT): a best-of-N group packs the same way. Padding tokens see the
    padding before them, so no query row is empty (an empty row gives NaN in sdpa, which would reach
    the gradients through 0 * NaN). With `sliding_window`, q also needs position(q) - position(k) <
    window, as in the unpacked sequence.
    """
    width = pair_ids.shape[-1]
    index = torch.arange(width, device=pair_ids.device)
    mask = (pair_ids[:, :, None] == pair_ids[:, None, :]) & (index[:, None] >= index[None, :])
    mask &= (sides[:, None, :] == PROMPT) | (sides[:, :, None] == sides[:, None, :])
    if sliding_window is not None:
        mask &= (position_ids[:, :, None] - position_ids[:, None, :]) < sliding_window
    return mask[:, None]


def packed_forward(
    model,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    pair_ids: torch.Tensor,
    sides: torch.Tensor,
    causal_blocks: bool = False,
) -> torch.Tensor:
    """The score head's output at every token of packed rows, (rows, width, num_labels).

    An "sdpa" model is switched to `pair_block_attention` first (plain sdpa wherever no pair blocks
    are given, so other forwards are unchanged); "eager" gets the mask as additive float values.
    `causal_blocks=True` says every block's mask is plain causal (all its tokens on one side, as in
    PRM packing), so each block runs sdpa's causal kernel instead of an explicit mask.
    """
    base = unwrap(model)
    if base.config._attn_implementation == "sdpa":
        base.set_attn_implementation(PAIR_BLOCK_ATTENTION)
    mask = packed_attention_mask(pair_ids, sides, position_ids, _sliding_window(base.config))
    extra = {}
    if base.config._attn_implementation == "eager":  # eager adds the mask to the scores: 0 or the dtype's min
        dtype = base.get_input_embeddings().weight.dtype
        mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            ~mask, torch.finfo(dtype).min
        )
    elif base.config._attn_implementation == PAIR_BLOCK_ATTENTION:
        extra["pair_blocks"] = pair_blocks(pair_ids)
        if causal_blocks:
            extra["causal_blocks"] = True
    return head_outputs(
        model, base.score, input_ids=input_ids, attention_mask=mask, position_ids=position_ids, **extra
    )


def _sliding_window(config) -> int | None:
    """The window every layer uses (Mistral), or None for full attention on every layer."""
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return getattr(config, "sliding_window", None)


def supports_packing(model) -> bool:
    """True where `packed_pair_rewards` is exact for `model` (else use the two-row layout).

    That is: a decoder sequence classifier of a tested family (PACKABLE_MODEL_TYPES) running "sdpa"
    or "eager" attention, whose layers are all full attention or all the same sliding window (a model
    mixing both would need one mask per layer type).
    """
    if not is_decoder(model):
        return False
    config = unwrap(model).config
    if config.model_type not in PACKABLE_MODEL_TYPES or config._attn_implementation not in PACKABLE_ATTENTION:
        return False
    layer_types = set(getattr(config, "layer_types", None) or [])
    return len(layer_types) <= 1


def pair_blocks(pair_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row, the (start, end) spans of its pairs and of its padding tail, covering the row.

    Example:
        >>> pair_blocks(torch.tensor([[0, 0, 0, 1, 1, -1]]))
        [[(0, 3), (3, 5), (5, 6)]]
    """
    blocks = []
    for row in pair_ids.cpu():
        _, counts = torch.unique_consecutive(row, return_counts=True)
        ends = counts.cumsum(0).tolist()
        blocks.append(list(zip([0, *ends[:-1]], ends)))
    return blocks


def pair_block_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling=None,
    pair_blocks: list[list[tuple[int, int]]] | None = None,
    causal_blocks: bool = False,
    **kwargs,
):
    """transformers' sdpa attention, computed block by block when `pair_blocks` are given.

    query (rows, heads, width, dim), key/value (rows, kv_heads, width, dim), attention_mask the packed
    (rows, 1, width, width) bool mask, under which no token sees outside its block: so attending
    within each block alone gives the same output, without the products the mask would discard.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if pair_blocks is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    gqa = query.shape[1] != key.shape[1]
    rows = []
    for r, blocks in enumerate(pair_blocks):
        rows.append(
            torch.cat(
                [
                    torch.nn.functional.scaled_dot_product_attention(
                        query[r : r + 1, :, s:e],
                        key[r : r + 1, :, s:e],
                        value[r : r + 1, :, s:e],
                        attn_mask=None if causal_blocks else attention_mask[r : r + 1, :, s:e, s:e],
                        is_causal=causal_blocks,
                        dropout_p=dropout,
                        scale=scaling,
                        enable_gqa=gqa,
                    )
                    for s, e in blocks
                ],
                dim=2,
            )
        )
    return torch.cat(rows).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(PAIR_BLOCK_ATTENTION, pair_block_attention)
    AttentionMaskInterface.register(PAIR_BLOCK_ATTENTION, sdpa_mask)  # 2D masks (plain forwards) as for sdpa


_register()
