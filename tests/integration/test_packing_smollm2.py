"""Shared-prefix packing on SmolLM2-135M with real HH pairs: rewards and gradients equal the two-row forward."""

from __future__ import annotations

import pytest
import torch

from rewardkit.core.packing import supports_packing
from rewardkit.train.collator import PairwiseCollator
from rewardkit.train.loss import bradley_terry_loss
from rewardkit.train.packing import PackedPairCollator, packed_pair_rewards
from rewardkit.train.trainer import stacked_pair_rewards

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_rows(smollm2_dir, hh_dev):
    """Tokenizer and five short HH dev pairs: prompts of different lengths, one long pair among short ones."""
    from transformers import AutoTokenizer

    from rewardkit.data.loading import DropReport, load_pairs
    from rewardkit.data.tokenize import install_chat_template
    from rewardkit.train.data import tokenize_pairs

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    install_chat_template(tokenizer, None)
    pairs, _ = load_pairs(hh_dev)
    rows = tokenize_pairs(tokenizer, pairs[:60], 512, DropReport(), "hh").to_list()
    rows.sort(key=lambda r: r["length"])
    picked = rows[:4] + rows[-1:]
    assert len({r["prompt_length"] for r in picked}) > 1
    return tokenizer, picked


def _rewards_and_grads(model, forward, batch):
    model.zero_grad()
    chosen, rejected = forward(model, batch)
    bradley_terry_loss(chosen, rejected).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return torch.cat([chosen, rejected]).detach(), grads


def _max_diffs(model, features, pad_token_id):
    want_r, want_g = _rewards_and_grads(model, stacked_pair_rewards, PairwiseCollator(pad_token_id)(features))
    got_r, got_g = _rewards_and_grads(model, packed_pair_rewards, PackedPairCollator(pad_token_id)(features))
    assert got_g.keys() == want_g.keys() and want_g
    grad_diff = max((got_g[n] - g).abs().max().item() for n, g in want_g.items())
    grad_scale = max(g.abs().max().item() for g in want_g.values())
    return (got_r - want_r).abs().max().item(), grad_diff, grad_scale


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_packed_equals_stacked_smollm2(smollm2_dir, smollm2_rows, use_lora):
    from rewardkit.core.loading import ensure_pad_token, load_sequence_classifier
    from rewardkit.train.lora import apply_lora

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    tokenizer, rows = smollm2_rows
    torch.manual_seed(0)
    model = load_sequence_classifier(str(smollm2_dir), dtype="float32")
    ensure_pad_token(tokenizer, model)
    if use_lora:
        model = apply_lora(model, target_modules="all", lora_rank=4, lora_alpha=8, lora_dropout=0.0)
        for name, param in model.named_parameters():
            if "lora_B" in name:  # B starts at zero, which would leave every A gradient at zero
                torch.nn.init.normal_(param, std=0.02)
    model.train()
    assert supports_packing(model)
    reward_diff, grad_diff, grad_scale = _max_diffs(model, rows, tokenizer.pad_token_id)
    print(
        f"\nSmolLM2 {'LoRA' if use_lora else 'full'}: max |Δreward| {reward_diff:.2e}, "
        f"max |Δgrad| {grad_diff:.2e} (largest gradient {grad_scale:.2e})"
    )
    assert reward_diff < 1e-5
    assert grad_diff < 1e-5
