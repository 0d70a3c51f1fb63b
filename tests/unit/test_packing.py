import pytest
import torch
from conftest import make_tiny_bert, make_tiny_llama, record_sdpa_calls

from rewardkit.core.batching import pad_rows
from rewardkit.core.packing import (
    CHOSEN,
    PAIR_BLOCK_ATTENTION,
    PROMPT,
    REJECTED,
    packed_attention_mask,
    pair_block_attention,
    pair_blocks,
    supports_packing,
)
from rewardkit.core.rewards import sequence_rewards
from rewardkit.train.collator import PairwiseCollator
from rewardkit.train.loss import bradley_terry_loss
from rewardkit.train.packing import PackedPairCollator, packed_pair_rewards
from rewardkit.train.trainer import stacked_pair_rewards

# Edge cases, each a pair (chosen ids, rejected ids); 1 is <s>, so the common prefix is at least 1 token.
PAIRS = [
    ([1, 5, 6, 7, 8, 9], [1, 5, 6, 10]),  # 3-token prompt, answers of 3 and 1 tokens
    ([1, 11, 12], [1, 11, 12, 13, 14, 15, 16, 17]),  # chosen is a prefix of rejected: no chosen tail
    ([1, 20], [1, 21]),  # 1-token answers
    (
        [1, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41],
        [1, 30, 31, 32, 33, 34, 35, 36, 37, 38, 42],
    ),  # long
    ([1, 50, 51, 52, 53], [1, 50, 51]),  # rejected is a prefix of chosen: no rejected tail
    ([60, 61], [62, 63, 64]),  # no common prefix at all (no BOS)
]


def _features(pairs, margins=None):
    return [
        {"input_ids_chosen": c, "input_ids_rejected": r, "margin": None if margins is None else margins[i]}
        for i, (c, r) in enumerate(pairs)
    ]


def test_collator_exact_tensors():
    features = _features([([1, 5, 6, 7], [1, 5, 8]), ([1, 9], [1, 10, 11])], margins=[0.5, None])
    batch = PackedPairCollator(pad_token_id=0, pairs_per_row=1)(features)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 7, 8], [1, 9, 10, 11, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2], [0, 1, 1, 2, 0]]
    assert batch["sides"].tolist() == [
        [PROMPT, PROMPT, CHOSEN, CHOSEN, REJECTED],
        [PROMPT, CHOSEN, REJECTED, REJECTED, -1],
    ]
    assert batch["pair_ids"].tolist() == [[0, 0, 0, 0, 0], [1, 1, 1, 1, -1]]
    assert batch["chosen_index"].tolist() == [3, 5 + 1]
    assert batch["rejected_index"].tolist() == [4, 5 + 3]
    assert batch["margin"].tolist() == [0.5, 0.0]
    assert batch["return_loss"] is True


def test_pairs_share_rows_largest_first():
    # segment lengths 5, 4, 3, 2 with room for 7: rows {0, 3} and {1, 2}; pair 0 placed first.
    features = _features([([1, 2, 3, 4], [1, 2, 3, 5]), ([1, 2, 3], [1, 2, 4]), ([1, 2], [1, 3]), ([1], [2])])
    batch = PackedPairCollator(pad_token_id=0, max_row_tokens=7)(features)
    assert batch["pair_ids"].tolist() == [[0, 0, 0, 0, 0, 3, 3], [1, 1, 1, 1, 2, 2, 2]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 3, 0, 0], [0, 1, 2, 2, 0, 1, 1]]
    assert batch["chosen_index"].tolist() == [3, 7 + 2, 7 + 5, 5]
    assert batch["rejected_index"].tolist() == [4, 7 + 3, 7 + 6, 6]
    assert "margin" not in batch


def test_long_pair_gets_its_own_row_and_width_rounds_up():
    features = _features([([1, 2, 3, 4, 5, 6], [1, 7]), ([1, 2], [1, 3])])
    batch = PackedPairCollator(pad_token_id=0, max_row_tokens=4, pad_to_multiple_of=4)(features)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7, 0], [1, 2, 3, 0, 0, 0, 0, 0]]


def test_empty_answer_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        PackedPairCollator(pad_token_id=0)(_features([([1, 2], [])]))


def test_mask_exact():
    # row: prompt, chosen, chosen, rejected, then a second pair (prompt, rejected), then padding
    pair_ids = torch.tensor([[0, 0, 0, 0, 1, 1, -1]])
    sides = torch.tensor([[PROMPT, CHOSEN, CHOSEN, REJECTED, PROMPT, REJECTED, -1]])
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [1, 0, 0, 1, 0, 0, 0],  # rejected: the prompt and itself, not the chosen answer
            [0, 0, 0, 0, 1, 0, 0],  # a new pair sees nothing of the one before
            [0, 0, 0, 0, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],  # padding sees itself, so no row of sdpa is empty
        ],
        dtype=torch.bool,
    )
    assert torch.equal(packed_attention_mask(pair_ids, sides)[0, 0], expected)


def test_mask_sliding_window_counts_unpacked_positions():
    pair_ids = torch.zeros(1, 5, dtype=torch.long)
    sides = torch.tensor([[PROMPT, PROMPT, CHOSEN, REJECTED, REJECTED]])
    positions = torch.tensor([[0, 1, 2, 2, 3]])
    mask = packed_attention_mask(pair_ids, sides, positions, sliding_window=2)[0, 0]
    assert mask[4].tolist() == [False, False, False, True, True]  # position 3 sees positions 2 and 3 only
    assert mask[3].tolist() == [False, True, False, True, False]


def _rewards_and_grads(model, forward, batch):
    model.zero_grad()
    chosen, rejected = forward(model, batch)
    bradley_terry_loss(chosen, rejected, batch.get("margin")).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return torch.cat([chosen, rejected]).detach(), grads


def assert_packing_exact(model, features, pad_token_id=0, **collator_kwargs):
    """Packed rewards and BT-loss gradients equal the two-row forward within 1e-5 (fp32); returns the max diffs."""
    packed = PackedPairCollator(pad_token_id=pad_token_id, **collator_kwargs)(features)
    stacked = PairwiseCollator(pad_token_id=pad_token_id)(features)
    want_rewards, want_grads = _rewards_and_grads(model, stacked_pair_rewards, stacked)
    got_rewards, got_grads = _rewards_and_grads(model, packed_pair_rewards, packed)
    torch.testing.assert_close(got_rewards, want_rewards, atol=1e-5, rtol=0)
    assert got_grads.keys() == want_grads.keys()
    for name, want in want_grads.items():
        torch.testing.assert_close(
            got_grads[name], want, atol=1e-5, rtol=0, msg=lambda m, n=name: f"{n}: {m}"
        )
    assert any(g.abs().sum() > 0 for g in want_grads.values())
    return (
        (got_rewards - want_rewards).abs().max().item(),
        max((got_grads[n] - g).abs().max().item() for n, g in want_grads.items()),
    )


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("layout", [{"pairs_per_row": 1}, {"max_row_tokens": 24}, {"max_row_tokens": 4096}])
def test_packed_equals_stacked_tiny_llama(char_tokenizer, attn, layout):
    model = make_tiny_llama(char_tokenizer).train()
    model.set_attn_implementation(attn)
    assert supports_packing(model)
    assert_packing_exact(model, _features(PAIRS, margins=[0.0, 1.0, None, 0.5, None, 0.0]), **layout)


def test_gradient_checkpointing_is_exact(char_tokenizer):
    model = make_tiny_llama(char_tokenizer).train()
    model.gradient_checkpointing_enable({"use_reentrant": False})  # as run_train sets it
    assert_packing_exact(model, _features(PAIRS))


def _tiny(model_type, **extra):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=80,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=0,
        **extra,
    )
    model = AutoModelForSequenceClassification.from_config(config).train()
    torch.nn.init.normal_(model.score.weight, std=0.5)
    return model


@pytest.mark.parametrize(
    "model_type, extra",
    [
        ("mistral", {"sliding_window": 4}),  # shorter than most pairs: the window matters
        ("mistral", {"sliding_window": None}),
        ("qwen2", {}),
        ("qwen3", {"head_dim": 8}),
        ("qwen3", {"head_dim": 8, "use_sliding_window": True, "sliding_window": 3, "max_window_layers": 0}),
    ],
)
def test_packed_equals_stacked_other_families(model_type, extra):
    model = _tiny(model_type, **extra)
    assert supports_packing(model)
    assert_packing_exact(model, _features(PAIRS), max_row_tokens=30)


def test_window_that_no_layer_uses_is_ignored():
    model = _tiny("qwen2")
    model.config.sliding_window = 3  # as older transformers kept it beside use_sliding_window=False
    assert set(model.config.layer_types) == {"full_attention"}
    assert_packing_exact(model, _features(PAIRS), max_row_tokens=30)


def test_packed_equals_stacked_with_lora(char_tokenizer):
    from rewardkit.train.lora import apply_lora

    model = apply_lora(
        make_tiny_llama(char_tokenizer), target_modules="all", lora_rank=4, lora_alpha=8, lora_dropout=0.0
    ).train()
    for name, param in model.named_parameters():
        if "lora_B" in name:  # LoRA B starts at zero; give it values so that the A gradients are not all zero
            torch.nn.init.normal_(param, std=0.1)
    assert supports_packing(model)
    assert_packing_exact(model, _features(PAIRS))


def test_supports_packing_only_where_exact(char_tokenizer):
    assert not supports_packing(make_tiny_bert(char_tokenizer))  # encoder: reads the first token
    llama = make_tiny_llama(char_tokenizer)
    llama.config._attn_implementation = "flash_attention_2"  # no arbitrary masks
    assert not supports_packing(llama)
    mixed = _tiny(
        "qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=1
    )  # full + sliding layers
    assert set(mixed.config.layer_types) == {"full_attention", "sliding_attention"}
    assert not supports_packing(mixed)


def test_trainer_steps_match_and_group_by_length(char_tokenizer, tmp_path):
    """Three optimizer steps through RewardTrainer give the same losses packed or not; `length` groups batches."""
    from datasets import Dataset
    from transformers import TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from rewardkit.train.trainer import RewardTrainer

    rows = [
        {"input_ids_chosen": c, "input_ids_rejected": r, "length": len(c) + len(r), "margin": None}
        for c, r in PAIRS
    ]
    losses = {}
    for name, collator, forward in [
        ("stacked", PairwiseCollator(pad_token_id=0), None),
        ("packed", PackedPairCollator(pad_token_id=0), packed_pair_rewards),
    ]:
        args = TrainingArguments(
            output_dir=str(tmp_path / name),
            per_device_train_batch_size=2,
            max_steps=3,
            learning_rate=1e-2,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            remove_unused_columns=False,
            train_sampling_strategy="group_by_length",
            seed=0,
            use_cpu=True,
        )
        trainer = RewardTrainer(
            model=make_tiny_llama(char_tokenizer).train(),
            args=args,
            train_dataset=Dataset.from_list(rows),
            data_collator=collator,
            forward=forward,
        )
        assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
        trainer.train()
        losses[name] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses["packed"]) == 3
    torch.testing.assert_close(
        torch.tensor(losses["packed"]), torch.tensor(losses["stacked"]), atol=1e-5, rtol=0
    )


def test_pair_blocks_cover_each_row():
    pair_ids = torch.tensor([[0, 0, 1, 1, 1, -1, -1], [2, 2, 2, 2, 2, 2, 2]])
    assert pair_blocks(pair_ids) == [[(0, 2), (2, 5), (5, 7)], [(0, 7)]]


def test_pair_block_attention_equals_dense_sdpa():
    """Block by block gives the one dense call's output, grouped-query heads included."""
    batch = PackedPairCollator(pad_token_id=0, max_row_tokens=14)(_features(PAIRS))
    mask = packed_attention_mask(batch["pair_ids"], batch["sides"])
    rows, width = batch["input_ids"].shape
    torch.manual_seed(0)
    query, key, value = (torch.randn(rows, heads, width, 8) for heads in (4, 2, 2))
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal, module.training = 2, True, False
    dense, _ = pair_block_attention(module, query, key, value, mask, scaling=0.3)
    blocks, _ = pair_block_attention(
        module, query, key, value, mask, scaling=0.3, pair_blocks=pair_blocks(batch["pair_ids"])
    )
    assert rows > 1 and max(len(b) for b in pair_blocks(batch["pair_ids"])) > 2  # several pairs in a row
    torch.testing.assert_close(blocks, dense, atol=1e-6, rtol=0)


def test_sdpa_packing_attends_block_by_block(char_tokenizer, monkeypatch):
    """The pair-block path is taken: each sdpa call sees one pair (or a padding tail), never a whole row."""
    model = make_tiny_llama(char_tokenizer).eval()
    model.set_attn_implementation("sdpa")
    batch = PackedPairCollator(pad_token_id=0, max_row_tokens=30)(_features(PAIRS))
    calls = record_sdpa_calls(monkeypatch)
    with torch.no_grad():
        packed_pair_rewards(model, batch)
    widths = sorted(e - s for row in pair_blocks(batch["pair_ids"]) for s, e in row)
    assert max(widths) < batch["input_ids"].shape[1]  # rows hold several blocks
    assert sorted(width for width, _, _ in calls) == sorted(widths * model.config.num_hidden_layers)
    assert all(masked and not causal for _, masked, causal in calls)  # pairs need the explicit mask


def test_sdpa_model_switches_to_pair_blocks_and_still_runs_plain(char_tokenizer):
    model = make_tiny_llama(char_tokenizer).eval()
    model.set_attn_implementation("sdpa")
    ids, mask = pad_rows([[1, 5, 6, 7], [1, 8]], 0)
    with torch.no_grad():
        before = sequence_rewards(model, ids, mask)
        packed_pair_rewards(model, PackedPairCollator(pad_token_id=0)(_features(PAIRS[:2])))
        assert model.config._attn_implementation == PAIR_BLOCK_ATTENTION
        torch.testing.assert_close(sequence_rewards(model, ids, mask), before, atol=1e-6, rtol=0)  # 2D masks
