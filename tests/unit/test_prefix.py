"""Prefix sharing gives the plain path's scores: per row, per pair, per best-of-N group, in any batch mix."""

import pytest
import torch
from conftest import make_tiny_bert, make_tiny_llama

from rewardkit.core import prefix
from rewardkit.core.batching import length_batches
from rewardkit.core.prefix import prefix_group_rewards, shared_prefix_len
from rewardkit.core.rewards import sequence_rewards
from rewardkit.scorers.classifier import ClassifierRM
from rewardkit.scorers.load import load_reward_model

PROMPTS = [
    "What is 2+2?",
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke about cats, please."},
    ],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
]
CHOSEN = ["4", "Why did the cat sit on the computer? To keep an eye on the mouse.", "Paris."]
REJECTED = ["5, or maybe 22, hard to say", "No.", "Paris is the capital and largest city of France."]


def test_shared_prefix_len_by_hand():
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # identical rows still keep one token each
    assert shared_prefix_len([[1, 2], [1, 2, 3]]) == 1  # a row that is a prefix of another
    assert (
        shared_prefix_len([[1, 2, 3, 9], [1, 2, 3, 8], [1, 2, 7]]) == 2
    )  # three answers: the shortest agreement
    assert shared_prefix_len([[5, 6], [7, 8]]) == 0
    assert shared_prefix_len([[1, 2, 3]]) == 2  # a group of one


def test_length_batches_by_hand():
    # longest first: 10, 9, 8 fill one batch (8 >= 0.8 x 10, and 3 rows x 10 <= 30 tokens); 4 would be too short
    assert length_batches([10, 4, 9, 8, 4], max_tokens=30, max_rows=8) == [[0, 2, 3], [1, 4]]
    assert length_batches([10, 4, 9, 8, 4], max_tokens=29, max_rows=8) == [[0, 2], [3], [1, 4]]  # budget
    assert length_batches([10, 10, 10], max_tokens=100, max_rows=2) == [[0, 1], [2]]  # rows
    assert length_batches([10, 7, 6], max_tokens=100, max_rows=8, min_fill=0.5) == [[0, 1, 2]]
    assert length_batches([50], max_tokens=10, max_rows=1) == [[0]]  # too big alone: still runs


def _plain(model, rows):
    with torch.no_grad():
        return torch.stack(
            [
                sequence_rewards(model, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long))[0]
                for r in rows
            ]
        )


GROUPS = [
    [[1, 5, 6, 7, 8, 9], [1, 5, 6, 7, 20, 21, 22, 23]],  # a pair, prefix 4
    [[1, 30, 31], [1, 30, 32], [1, 30, 33, 34, 35, 36]],  # best-of-3, prefix 2
    [[1, 40, 41, 42, 43, 44, 45, 46, 47, 48]],  # a group of one
    [[5, 6], [7, 8, 9]],  # nothing shared: scored plainly
    [[1, 50, 51], [1, 50, 51, 52]],  # one row is a prefix of the other
]


@pytest.fixture(params=["packed", "kv_cache"])
def path(request, monkeypatch):
    """Both exact paths: packed segments (Llama-style decoders) and the KV cache (any other decoder)."""
    if request.param == "kv_cache":
        monkeypatch.setattr(prefix, "supports_packing", lambda model: False)
    return request.param


@pytest.mark.parametrize("batch_tokens, max_rows", [(16384, 64), (8, 2), (1, 1)])
def test_group_rewards_equal_one_at_a_time(char_tokenizer, batch_tokens, max_rows, path):
    model = make_tiny_llama(char_tokenizer)
    got = prefix_group_rewards(
        model, GROUPS, pad_id=char_tokenizer.pad_token_id, batch_tokens=batch_tokens, max_rows=max_rows
    )
    for rows, values in zip(GROUPS, got):
        torch.testing.assert_close(values, _plain(model, rows), atol=1e-5, rtol=0)


def test_group_rewards_multi_label_head(char_tokenizer, path):
    model = make_tiny_llama(char_tokenizer, num_labels=2)
    got = prefix_group_rewards(model, GROUPS[:2], pad_id=0)
    assert got[1].shape == (3, 2)
    for rows, values in zip(GROUPS, got):
        torch.testing.assert_close(values, _plain(model, rows), atol=1e-5, rtol=0)


def _loaded(tiny_llama_dir, **settings):
    """The tiny Llama as `load_reward_model` gives it, by default without prefix sharing (the plain reference)."""
    rm = load_reward_model(str(tiny_llama_dir), kind="seq_classifier")
    assert rm.prefix_sharing  # on by default for decoders
    rm.prefix_sharing = settings.pop("prefix_sharing", False)
    for name, value in settings.items():
        setattr(rm, name, value)
    return rm


def test_enable_prefix_sharing_pairs_and_compare_equal_plain(tiny_llama_dir, path):
    plain = _loaded(tiny_llama_dir)
    shared = _loaded(tiny_llama_dir, prefix_sharing=True, batch_tokens=64, max_batch_rows=3)
    assert shared.prefix_sharing and not plain.prefix_sharing
    want = plain.score_pairs(PROMPTS, CHOSEN, REJECTED)
    got = shared.score_pairs(PROMPTS, CHOSEN, REJECTED)
    assert got[0] == pytest.approx(want[0], abs=1e-4) and got[1] == pytest.approx(want[1], abs=1e-4)
    answers = CHOSEN + REJECTED
    best_plain, best_shared = plain.compare(PROMPTS[1], answers), shared.compare(PROMPTS[1], answers)
    assert best_shared.scores == pytest.approx(best_plain.scores, abs=1e-4)
    assert best_shared.ranking == best_plain.ranking
    assert shared.compare("x", []).scores == []


def test_detailed_pairs_keep_lengths_truncation_and_normalisation(tiny_llama_dir, path):
    plain = _loaded(tiny_llama_dir, max_length=40, normalization=(0.5, 2.0))
    shared = _loaded(tiny_llama_dir, prefix_sharing=True, max_length=40, normalization=(0.5, 2.0))
    chosen, rejected = shared.score_pairs_detailed(PROMPTS, CHOSEN, REJECTED)
    convs = [
        [
            *([{"role": "user", "content": p}] if isinstance(p, str) else p),
            {"role": "assistant", "content": a},
        ]
        for p, a in zip(PROMPTS * 2, CHOSEN + REJECTED)
    ]
    want = plain.score_detailed(convs)
    for got, exp in zip(chosen + rejected, want):
        assert got.score == pytest.approx(exp.score, abs=1e-4)
        assert (got.num_tokens, got.truncated) == (exp.num_tokens, exp.truncated)
        assert got.normalized == pytest.approx((got.score - 0.5) / 2.0)
    assert any(s.truncated for s in want)  # max_length 40 trims the three-turn prompt


def test_unsupported_cache_falls_back_to_plain(tiny_llama_dir, monkeypatch):
    monkeypatch.setattr(prefix, "supports_packing", lambda model: False)  # a decoder packing does not cover
    plain = _loaded(tiny_llama_dir)
    shared = _loaded(tiny_llama_dir, prefix_sharing=True)
    monkeypatch.setattr(prefix, "_plain_cache", lambda cache: False)
    got = shared.score_pairs(PROMPTS, CHOSEN, REJECTED)
    want = plain.score_pairs(PROMPTS, CHOSEN, REJECTED)
    assert got[0] == pytest.approx(want[0], abs=1e-5) and got[1] == pytest.approx(want[1], abs=1e-5)


def test_encoders_and_modelless_scorers_are_left_alone(char_tokenizer):
    bert = make_tiny_bert(char_tokenizer)
    rm = ClassifierRM(
        lambda ids, mask: sequence_rewards(bert, ids, mask),
        char_tokenizer,
        kind="seq_classifier",
        max_length=512,
        model=bert,
    )
    assert rm.prefix_sharing is False
    with pytest.raises(ValueError, match="decoder"):
        ClassifierRM(
            lambda ids, mask: sequence_rewards(bert, ids, mask),
            char_tokenizer,
            kind="seq_classifier",
            max_length=512,
            model=bert,
            prefix_sharing=True,
        )
    with pytest.raises(ValueError, match="decoder"):
        ClassifierRM(
            lambda ids, mask: mask.sum(-1).float(),
            char_tokenizer,
            kind="demo",
            max_length=512,
            prefix_sharing=True,
        )


def test_packed_rows_hold_several_groups_in_input_order(char_tokenizer, monkeypatch):
    """Groups fill a row up to the token limit, in order; a group longer than the limit runs alone."""
    widths = []
    real = prefix.packed_forward
    monkeypatch.setattr(
        prefix,
        "packed_forward",
        lambda model, ids, *rest: widths.append(ids.shape[1]) or real(model, ids, *rest),
    )
    model = make_tiny_llama(char_tokenizer)
    got = prefix_group_rewards(model, GROUPS, pad_id=0, batch_tokens=20)
    # segments (shared prefix, at most the shortest row less one token, then every row's own tail):
    # 10, 8 | 10, 5, 5 tokens
    assert widths == [18, 20]
    for rows, values in zip(GROUPS, got):
        torch.testing.assert_close(values, _plain(model, rows), atol=1e-5, rtol=0)
    widths.clear()
    prefix_group_rewards(model, GROUPS, pad_id=0, batch_tokens=9)
    assert widths == [10, 8, 10, 5, 5]  # over the limit alone; 8 + 10 and 5 + 5 do not fit together
