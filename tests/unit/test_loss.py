import math

import pytest
import torch

from rewardkit.train.loss import bradley_terry_loss, pairwise_metrics


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
