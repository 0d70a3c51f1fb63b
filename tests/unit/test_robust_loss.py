"""Length debiasing (ODIN), head ensembles and temperature calibration: the maths, against hand-worked numbers."""

import math

import pytest
import torch
from conftest import make_char_tokenizer, make_tiny_bert, make_tiny_llama

from rewardkit.core.ensemble import aggregate, column_names, ensemble_columns
from rewardkit.train.calibrate import calibration_nll, fit_temperature
from rewardkit.train.collator import PairwiseCollator
from rewardkit.train.debias import (
    CorrelationMemory,
    answer_lengths,
    batch_pearson,
    head_weight,
    length_debias_loss,
)
from rewardkit.train.ensemble import bootstrap_weights, ensemble_bt_loss
from rewardkit.train.heads import keep_head_rows, widen_head
from rewardkit.train.packing import PackedPairCollator


def test_batch_pearson_hand_worked():
    # dx = (-1, 0, 1), dy = (-4/3, -1/3, 5/3): Σ dx dy = 3, Σ dx² = 2, Σ dy² = 14/3 -> 3 / sqrt(28/3)
    rho = batch_pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
    assert rho.item() == pytest.approx(3 / math.sqrt(28 / 3), abs=1e-6)
    assert batch_pearson(torch.tensor([1.0, 2.0]), torch.tensor([5.0, 5.0])).item() == 0.0  # constant side


def test_length_debias_loss_hand_worked():
    chosen = torch.tensor([[1.0, 0.0], [2.0, 1.0]])  # columns: quality, length
    rejected = torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    chosen_len, rejected_len = torch.tensor([1.0, 3.0]), torch.tensor([3.0, 1.0])
    loss, parts = length_debias_loss(
        chosen,
        rejected,
        chosen_len,
        rejected_len,
        torch.tensor([1.0, 2.0]),
        torch.tensor([3.0, -1.0]),
        length_weight=1.0,
        decorrelation_weight=2.0,
        orthogonality_weight=0.5,
    )
    # totals: chosen 1, 3; rejected 0.5, 0 -> diffs 0.5, 3: BT = (log(1+e^-0.5) + log(1+e^-3)) / 2
    bt = (0.474077 + 0.048587) / 2
    # lengths (1, 3, 3, 1), d = (-1, 1, 1, -1), Σd² = 4
    # length head (0, 1, 0.5, 0): dl = (-.375, .625, .125, -.375), Σ dl d = 1.5, Σ dl² = 0.6875
    rho_l = 1.5 / math.sqrt(4 * 0.6875)
    # quality head (1, 2, 0, 0): dq = (.25, 1.25, -.75, -.75), Σ dq d = 1, Σ dq² = 2.75 -> 1/sqrt(11)
    rho_q = 1 / math.sqrt(11)
    # w_q . w_l = 1*3 + 2*(-1) = 1
    assert parts["bt"] == pytest.approx(bt, abs=1e-6)
    assert parts["length_pearson"] == pytest.approx(rho_l, abs=1e-6)
    assert parts["quality_pearson"] == pytest.approx(rho_q, abs=1e-6)
    assert parts["orthogonality"] == pytest.approx(1.0)
    assert loss.item() == pytest.approx(bt + (1 - rho_l) + 2 * rho_q + 0.5 * 1.0, abs=1e-6)


def test_length_head_may_carry_length_either_way():
    # The same batch with the length head's outputs negated: Pearson(l, length) changes sign, the
    # length term 1 - |rho_l| does not (a length head that rewards shorter answers is as good).
    chosen = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    rejected = torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    lengths = torch.tensor([1.0, 3.0]), torch.tensor([3.0, 1.0])
    w = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    flip = torch.tensor([1.0, -1.0])
    kw = dict(length_weight=1.0, decorrelation_weight=0.0, orthogonality_weight=0.0)
    _, plus = length_debias_loss(chosen, rejected, *lengths, *w, **kw)
    loss_minus, minus = length_debias_loss(chosen * flip, rejected * flip, *lengths, *w, **kw)
    rho_l = 1.5 / math.sqrt(4 * 0.6875)  # as in the hand-worked test above
    assert plus["length_pearson"] == pytest.approx(rho_l, abs=1e-6)
    assert minus["length_pearson"] == pytest.approx(-rho_l, abs=1e-6)
    # totals with the negated length head: chosen 1, 1; rejected -0.5, 0 -> diffs 1.5, 1
    bt = (math.log1p(math.exp(-1.5)) + math.log1p(math.exp(-1.0))) / 2
    assert loss_minus.item() == pytest.approx(bt + (1 - rho_l), abs=1e-6)


def test_correlation_memory_joins_earlier_batches_without_their_gradient():
    memory = CorrelationMemory(4)
    kw = dict(length_weight=0.0, decorrelation_weight=1.0, orthogonality_weight=0.0, memory=memory)
    w = torch.ones(2), torch.zeros(2)
    first = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    _, parts = length_debias_loss(*first, torch.tensor([1.0]), torch.tensor([2.0]), *w, **kw)
    assert parts["quality_pearson"] == pytest.approx(1.0)  # (1, 2) against lengths (1, 2)
    chosen = torch.tensor([[3.0, 0.0]], requires_grad=True)
    rejected = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss, parts = length_debias_loss(chosen, rejected, torch.tensor([3.0]), torch.tensor([4.0]), *w, **kw)
    # quality (3, 0 | 1, 2) against lengths (3, 4 | 1, 2): mean 1.5 and 2.5,
    # dq = (1.5, -1.5, -0.5, 0.5), dn = (0.5, 1.5, -1.5, -0.5): Σ dq dn = -1, Σ dq² = 5, Σ dn² = 5
    assert parts["quality_pearson"] == pytest.approx(-0.2, abs=1e-6)
    assert [t.tolist() for t in memory.past] == [[3.0, 0.0, 1.0, 2.0], [0.0] * 4, [3.0, 4.0, 1.0, 2.0]]
    (grad_c,) = torch.autograd.grad(
        loss, [chosen]
    )  # flows into this batch; the remembered values are constants
    assert grad_c[0, 0] != 0
    assert not memory.past[0].requires_grad


def test_length_debias_gradient_pushes_quality_away_from_length():
    # Quality reward equal to length (rho_q = 1): with only the decorrelation term left, gradient
    # descent lowers the longest answer's quality reward (its gradient is positive).
    q = torch.tensor([[1.0, 0.0], [3.0, 0.0]], requires_grad=True)
    r = torch.tensor([[2.0, 0.0], [4.0, 0.0]], requires_grad=True)
    loss, _ = length_debias_loss(
        q,
        r,
        torch.tensor([1.0, 3.0]),
        torch.tensor([2.0, 4.0]),
        torch.ones(2),
        torch.zeros(2),
        length_weight=0.0,
        decorrelation_weight=1.0,
        orthogonality_weight=0.0,
    )
    (grad_r,) = torch.autograd.grad(loss, [r])
    assert grad_r[1, 0] > 0  # the longest answer: pair 2's rejected one, 4 tokens


def test_answer_lengths_same_in_both_layouts():
    features = [
        {"input_ids_chosen": [1, 5, 6], "input_ids_rejected": [1, 5, 8, 9]},
        {"input_ids_chosen": [1, 7, 3, 3, 3], "input_ids_rejected": [2, 7]},
    ]
    plain = PairwiseCollator(pad_token_id=0)(features)
    packed = PackedPairCollator(pad_token_id=0)(features)
    # pair 0: shared prefix [1, 5] -> chosen 1 token, rejected 2; pair 1: no shared prefix -> 5 and 2
    for lengths in (answer_lengths(plain), answer_lengths(packed)):
        assert [t.tolist() for t in lengths] == [[1.0, 5.0], [2.0, 2.0]]


def test_bootstrap_weights_are_resample_counts():
    w = bootstrap_weights(5, 3, torch.Generator().manual_seed(0))
    assert w.shape == (5, 3) and w.sum(0).tolist() == [5.0, 5.0, 5.0]
    assert torch.equal(w, bootstrap_weights(5, 3, torch.Generator().manual_seed(0)))  # seeded
    assert not torch.equal(w[:, 0], w[:, 1])  # members see different resamples


def test_ensemble_bt_loss_hand_worked():
    chosen = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    rejected = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    # member 0 diffs (1, -1): losses 0.313262, 1.313262; member 1 diffs (0, 2): 0.693147, 0.126928
    ones = ensemble_bt_loss(chosen, rejected, torch.ones(2, 2))
    assert ones.item() == pytest.approx(((0.313262 + 1.313262) / 2 + (0.693147 + 0.126928) / 2) / 2, abs=1e-6)
    # member 0 drew pair 0 twice, member 1 pair 1 twice
    picked = ensemble_bt_loss(chosen, rejected, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    assert picked.item() == pytest.approx((0.313262 + 0.126928) / 2, abs=1e-6)
    # a margin of 1 on pair 0 only: member 0 diffs (0, -1), member 1 (-1, 2)
    margin = ensemble_bt_loss(chosen, rejected, torch.ones(2, 2), torch.tensor([1.0, 0.0]))
    assert margin.item() == pytest.approx(
        ((0.693147 + 1.313262) / 2 + (1.313262 + 0.126928) / 2) / 2, abs=1e-6
    )


def test_ensemble_aggregates_hand_worked():
    members = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 0.0]])
    # row 0: mean 2, population std sqrt(2/3), min 1
    std = math.sqrt(2 / 3)
    assert aggregate(members, "mean").tolist() == [2.0, 0.0]
    assert aggregate(members, "min").tolist() == [1.0, 0.0]
    assert aggregate(members, "mean_minus_std", 2.0)[0].item() == pytest.approx(2 - 2 * std)
    cols = ensemble_columns(members, "min")
    assert cols[0].tolist() == pytest.approx([1.0, 2.0, std, 1.0, 1.0, 3.0, 2.0])
    assert column_names(3) == [
        "ensemble_score",
        "ensemble_mean",
        "ensemble_std",
        "ensemble_min",
        "member_0",
        "member_1",
        "member_2",
    ]
    with pytest.raises(ValueError, match="accepted values"):
        aggregate(members, "max")


def test_fit_temperature_hand_worked():
    # margins (2, -1): dNLL/ds = 0 at 2σ(-2s) = σ(s); with x = e^s: x³ - x - 2 = 0, x = 1.52138
    x = 1.5213797068045676
    assert x**3 - x - 2 == pytest.approx(0, abs=1e-12)
    t = fit_temperature([2.0, -1.0])
    assert t == pytest.approx(1 / math.log(x), rel=1e-6)
    assert calibration_nll([2.0, -1.0], t) < calibration_nll([2.0, -1.0], 1.0)
    assert fit_temperature([1.0, 2.0]) == 1e-2  # all right: the NLL falls as T -> 0, stopped at the floor
    assert fit_temperature([]) == 1.0


@pytest.mark.parametrize("make", [make_tiny_llama, make_tiny_bert])
def test_widen_then_keep_head_rows(make):
    tok = make_char_tokenizer()
    model = make(tok)
    old = head_weight(model).detach().clone()
    widen_head(model, 3)
    w = head_weight(model)
    assert w.shape[0] == 3 and model.config.num_labels == 3
    torch.testing.assert_close(w[0].detach(), old[0])  # row 0 starts where a plain run starts
    keep_head_rows(model, [2])
    assert head_weight(model).shape[0] == 1 and model.config.num_labels == 1
    torch.testing.assert_close(head_weight(model)[0].detach(), w[2].detach())


@pytest.mark.parametrize("make", [make_tiny_llama, make_tiny_bert])
def test_residualized_head_scores_quality_minus_c_times_length(make):
    # The fold is done on the weights: a fresh forward of the folded head must give q - c * l, whose
    # covariance with the answer lengths over the pairs is 0.
    from types import SimpleNamespace

    from rewardkit.train.debias import residualize_quality_head
    from rewardkit.train.trainer import stacked_pair_rewards

    torch.manual_seed(0)
    model = make(make_char_tokenizer())
    widen_head(model, 2)
    if getattr(model, "classifier", None) is not None:  # give the BERT head a bias to fold as well
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor([0.3, -0.7]))
    model.eval()
    features = [
        {"input_ids_chosen": [1, 5, 6, 9, 9, 4], "input_ids_rejected": [1, 5, 8]},
        {"input_ids_chosen": [1, 7, 3], "input_ids_rejected": [1, 7, 2, 2, 2, 2, 5]},
        {"input_ids_chosen": [1, 4, 4, 4, 6], "input_ids_rejected": [1, 4, 9, 8]},
    ]
    batch = PairwiseCollator(pad_token_id=0)(features)
    with torch.no_grad():
        before_c, before_r = stacked_pair_rewards(model, batch)
    trainer = SimpleNamespace(
        model=model,
        get_eval_dataloader=lambda ds: [batch],
        _prepare_inputs=lambda x: x,
        pair_forward=stacked_pair_rewards,
    )
    entry = residualize_quality_head(trainer, None)
    q = torch.cat([before_c[:, 0], before_r[:, 0]])
    lr = torch.cat([before_c[:, 1], before_r[:, 1]])
    n = torch.cat(answer_lengths(batch))
    c = ((q - q.mean()) * (n - n.mean())).sum() / ((lr - lr.mean()) * (n - n.mean())).sum()
    assert entry["coefficient"] == pytest.approx(c.item(), rel=1e-5) and entry["answers"] == 6
    with torch.no_grad():
        after_c, after_r = stacked_pair_rewards(model, batch)
    folded = torch.cat([after_c[:, 0], after_r[:, 0]])
    torch.testing.assert_close(folded, q - c * lr, atol=1e-5, rtol=1e-5)
    assert batch_pearson(folded, n).abs().item() < 1e-4 and abs(entry["pearson_after"]) < 1e-4
