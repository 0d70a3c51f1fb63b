import torch

from rewardkit.core.batching import pad_rows
from rewardkit.train.collator import PairwiseCollator


def test_pairwise_collator_exact_tensors():
    features = [
        {"input_ids_chosen": [1, 2, 3], "input_ids_rejected": [4, 5], "margin": 0.5},
        {"input_ids_chosen": [1, 2], "input_ids_rejected": [4, 5, 6], "margin": None},
    ]
    batch = PairwiseCollator(pad_token_id=0)(features)
    assert torch.equal(batch["input_ids"], torch.tensor([[1, 2, 3], [1, 2, 0], [4, 5, 0], [4, 5, 6]]))
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 1, 1]]))
    assert torch.equal(batch["margin"], torch.tensor([0.5, 0.0]))
    assert batch["return_loss"] is True


def test_left_padding_and_multiple_of():
    ids, mask = pad_rows([[7], [8, 9, 10]], pad_id=2, side="left", multiple_of=4)
    assert torch.equal(ids, torch.tensor([[2, 2, 2, 7], [2, 8, 9, 10]]))
    assert torch.equal(mask, torch.tensor([[0, 0, 0, 1], [0, 1, 1, 1]]))


def test_no_margin_key_without_margins():
    batch = PairwiseCollator(pad_token_id=0)([{"input_ids_chosen": [1], "input_ids_rejected": [2]}])
    assert "margin" not in batch
