import math
from collections import defaultdict

import pytest
import torch

from rewardkit.train.loss import bradley_terry_loss, metrics_from_sums, pair_metric_sums, pairwise_metrics


def test_bt_loss_hand_derived():
    # diffs 2 and -1: -log σ(2) = log(1 + e^-2) = 0.126928; -log σ(-1) = log(1 + e) = 1.313262
    loss = bradley_terry_loss(torch.tensor([3.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx((0.126928 + 1.313262) / 2, abs=1e-6)


def test_bt_loss_margin_and_centering():
    chosen, rejected = torch.tensor([3.0, 0.0]), torch.tensor([1.0, 1.0])
    # margins 1 and 0: diffs 1 and -1 -> (log(1+e^-1) + log(1+e)) / 2 = (0.313262 + 1.313262) / 2
    with_margin = bradley_terry_loss(chosen, rejected, torch.tensor([1.0, 0.0]))
    assert with_margin.item() == pytest.approx((0.313262 + 1.313262) / 2, abs=1e-6)
    # centering: 0.1 * mean((3+1)^2, (0+1)^2) = 0.1 * 8.5 = 0.85
    centered = bradley_terry_loss(chosen, rejected, center_rewards_coefficient=0.1)
    assert centered.item() == pytest.approx((0.126928 + 1.313262) / 2 + 0.85, abs=1e-6)


def test_bt_loss_gradient_hand_derived():
    chosen = torch.tensor([0.0], requires_grad=True)
    rejected = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(chosen, rejected).backward()
    # d/dr_c [-log σ(r_c - r_r)] = -(1 - σ(0)) = -0.5
    assert chosen.grad.item() == pytest.approx(-0.5)
    assert rejected.grad.item() == pytest.approx(0.5)
    assert math.isclose(
        bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item(), math.log(2), rel_tol=1e-6
    )


def test_metrics_tie_counts_as_wrong():
    m = pairwise_metrics(torch.tensor([2.0, 1.0, 0.5, 0.0]), torch.tensor([1.0, 1.0, 1.0, -1.0]))
    assert m["accuracy"] == 0.5  # the tie (1.0 vs 1.0) is wrong
    assert m["margin"] == pytest.approx((1 + 0 - 0.5 + 1) / 4)
    assert m["rewards_chosen"] == pytest.approx(0.875)
    assert m["rewards_rejected"] == pytest.approx(0.5)


def test_metric_sums_of_shards_give_the_metrics_of_all_pairs():
    rank0 = pair_metric_sums(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0]))  # 1 win, margins 1, 0
    rank1 = pair_metric_sums(torch.tensor([0.5, 0.0, 3.0]), torch.tensor([1.0, -1.0, 0.0]))  # 2 wins
    assert rank0.tolist() == [2.0, 1.0, 1.0, 3.0, 2.0]
    m = metrics_from_sums(rank0 + rank1)
    assert m == pytest.approx(
        {
            "accuracy": 3 / 5,
            "margin": (1 + 0 - 0.5 + 1 + 3) / 5,
            "rewards_chosen": 6.5 / 5,
            "rewards_rejected": 2 / 5,
        }
    )
    assert metrics_from_sums(rank0) == pytest.approx(
        pairwise_metrics(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0]))
    )


class TwoRanks:
    """An accelerator stand-in of 2 processes: `gather` stacks this rank's tensor with rank 1's."""

    num_processes, device = 2, torch.device("cpu")

    def __init__(self, other):
        self.other = other

    def gather(self, tensor):
        return torch.cat([tensor, self.other[None]])


def test_trainer_logs_the_pair_metrics_of_every_process(monkeypatch):
    from types import SimpleNamespace

    from transformers import Trainer

    from rewardkit.train.trainer import RewardTrainer, gather_sums

    other = pair_metric_sums(torch.tensor([0.5, 0.0, 3.0]), torch.tensor([1.0, -1.0, 0.0]))  # rank 1's pairs
    assert torch.equal(gather_sums(SimpleNamespace(num_processes=1), other), other)
    fake = RewardTrainer.__new__(RewardTrainer)  # no model or Trainer set-up: only what the two methods use
    fake.accelerator, fake.center_rewards_coefficient, fake._train_sums = TwoRanks(other), 0.0, None
    fake.objective, fake._extra_stats = None, defaultdict(list)  # the plain Bradley-Terry objective
    fake.pair_forward = lambda model, inputs: (torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0]))
    logged = []
    monkeypatch.setattr(Trainer, "log", lambda self, logs, *a, **k: logged.append(dict(logs)))
    model = SimpleNamespace(training=True)
    for _ in range(2):  # two steps before a log line: the metrics are over all 10 pairs
        RewardTrainer.compute_loss(fake, model, {})
    RewardTrainer.log(fake, {"loss": 0.5})
    assert logged[0]["accuracy"] == pytest.approx(3 / 5) and logged[0]["margin"] == pytest.approx(4.5 / 5)
    assert logged[0]["rewards_chosen"] == pytest.approx(6.5 / 5) and fake._train_sums is None
    RewardTrainer.log(fake, {"eval_loss": 0.1})  # not a training line: nothing added
    assert "accuracy" not in logged[1]
