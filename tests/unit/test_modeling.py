import pytest
import torch
from conftest import make_tiny_bert, make_tiny_llama

from rewardkit.core.batching import pad_rows
from rewardkit.core.rewards import last_token_index, position_ids_from_mask, sequence_rewards

ROWS = [[1, 5, 6, 7, 8, 9, 10], [1, 11, 12], [1, 13, 14, 15, 16], [1, 17]]


def _one_by_one(model, rows):
    with torch.no_grad():
        return torch.stack([model(input_ids=torch.tensor([r])).logits[0, 0] for r in rows])


def test_index_helpers():
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [1, 3, 3]
    assert position_ids_from_mask(mask).tolist() == [[0, 1, 1, 1], [0, 0, 0, 1], [0, 1, 2, 3]]


@pytest.mark.parametrize("side", ["left", "right"])
def test_decoder_padding_side_invariance(char_tokenizer, side):
    model = make_tiny_llama(char_tokenizer)
    ids, mask = pad_rows(ROWS, char_tokenizer.pad_token_id, side)
    with torch.no_grad():
        batched = sequence_rewards(model, ids, mask)
    torch.testing.assert_close(batched, _one_by_one(model, ROWS), atol=1e-5, rtol=0)


def test_decoder_batch_size_invariance(char_tokenizer):
    model = make_tiny_llama(char_tokenizer)
    with torch.no_grad():
        full = sequence_rewards(model, *pad_rows(ROWS, 0))
        halves = torch.cat(
            [sequence_rewards(model, *pad_rows(ROWS[:2], 0)), sequence_rewards(model, *pad_rows(ROWS[2:], 0))]
        )
    torch.testing.assert_close(full, halves, atol=1e-5, rtol=0)


def test_reward_read_at_last_real_token_even_if_it_is_the_pad_id(char_tokenizer):
    """HF's own forward reads one token early when the text ends in the pad token; we do not."""
    model = make_tiny_llama(char_tokenizer)
    pad = char_tokenizer.pad_token_id
    row = [1, 5, 6, pad]
    with torch.no_grad():
        ours = sequence_rewards(model, torch.tensor([row]), torch.ones(1, 4, dtype=torch.long))
        per_position = model.score(model.model(input_ids=torch.tensor([row])).last_hidden_state)[0, :, 0]
        hf_full = model(input_ids=torch.tensor([row])).logits[0, 0]
        # the same row left-padded by two: the pad ids in front are masked, the final pad is real
        left = sequence_rewards(model, torch.tensor([[pad, pad, *row]]), torch.tensor([[0, 0, 1, 1, 1, 1]]))
    assert torch.isclose(hf_full, per_position[2])  # the HF quirk: read at the token before the final pad
    assert ours[0].item() == pytest.approx(per_position[3].item(), abs=1e-6)
    assert left[0].item() == pytest.approx(per_position[3].item(), abs=1e-5)
    assert abs(per_position[3] - per_position[2]) > 1e-3  # the two positions are told apart


def test_encoder_right_padding_batch_invariance(char_tokenizer):
    model = make_tiny_bert(char_tokenizer)
    with torch.no_grad():
        batched = sequence_rewards(model, *pad_rows(ROWS, char_tokenizer.pad_token_id, "right"))
        single = torch.stack(
            [
                sequence_rewards(model, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long))[0]
                for r in ROWS
            ]
        )
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_wrapped_model_runs_through_its_wrapper_and_reads_the_head(char_tokenizer):
    """Under PEFT the reward is the (LoRA-changed) head output at the last real token, taken from the
    wrapper's own forward: equal to the merged model's rewards, and different from the base weights'."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = make_tiny_llama(char_tokenizer)
    ids, mask = pad_rows(ROWS, char_tokenizer.pad_token_id, "left")
    with torch.no_grad():
        before = sequence_rewards(model, ids, mask)
    lora = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["score"])
    )
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(0.05 * torch.randn_like(p))  # make the adapter and the saved head change the rewards
        wrapped = sequence_rewards(lora, ids, mask)
        merged = sequence_rewards(lora.merge_and_unload(), ids, mask)
    torch.testing.assert_close(wrapped, merged, atol=1e-5, rtol=0)
    assert (wrapped - before).abs().max() > 1e-3


def test_unwrap_takes_off_ddp_style_wrappers_and_head_name_says_what_is_missing(char_tokenizer):
    from rewardkit.core.rewards import head_name, unwrap

    model = make_tiny_llama(char_tokenizer)

    class Wrapper(torch.nn.Module):  # as DDP / DeepSpeed engines hold the model
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert unwrap(Wrapper(Wrapper(model))) is model and head_name(Wrapper(model)) == "score"
    with pytest.raises(ValueError, match=r"^Linear has neither a `score` nor a `classifier` head$"):
        head_name(torch.nn.Linear(2, 2))


def test_bare_decoder_without_pad_token_id_scores_a_padded_batch(char_tokenizer):
    """The bare path runs backbone and head itself: transformers' pooling would refuse batches > 1."""
    model = make_tiny_llama(char_tokenizer)
    model.config.pad_token_id = None
    ids, mask = pad_rows(ROWS, char_tokenizer.pad_token_id, "right")
    with torch.no_grad():
        batched = sequence_rewards(model, ids, mask)
    torch.testing.assert_close(batched, _one_by_one(model, ROWS), atol=1e-5, rtol=0)


def test_absolute_positions_follow_the_mask_under_left_padding():
    """GPT-2 learns absolute positions: left-padded rows need positions counted from their first real token."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    model = GPT2ForSequenceClassification(
        GPT2Config(
            vocab_size=40, n_positions=64, n_embd=32, n_layer=2, n_head=4, num_labels=1, pad_token_id=0
        )
    ).eval()
    torch.nn.init.normal_(model.score.weight, std=0.5)
    torch.nn.init.normal_(model.transformer.wpe.weight, std=0.5)  # positions that matter
    ids, mask = pad_rows(ROWS, 0, "left")
    with torch.no_grad():
        batched = sequence_rewards(model, ids, mask)
    torch.testing.assert_close(batched, _one_by_one(model, ROWS), atol=1e-5, rtol=0)
