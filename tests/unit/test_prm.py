"""PRM model, training, export and scoring on tiny random models built here (fast, offline)."""

import json
import math

import pytest
import torch
from conftest import make_tiny_bert, record_sdpa_calls

from rewardkit.core.steps import add_step_separator, good_probability, make_causal, step_margin
from rewardkit.data.loading import DropReport
from rewardkit.data.steps import StepExample
from rewardkit.errors import RewardkitError
from rewardkit.train.prm import prm_step_logits, soft_step_loss, step_contrast_loss
from rewardkit.train.prm_data import (
    PackedStepCollator,
    PromptGroupSampler,
    StepCollator,
    contrast_partners,
    tokenize_step_examples,
)

EXAMPLES = [
    StepExample([{"role": "user", "content": "2+3*4?"}], ["3*4=12", "2+12=14", "So 14."], [1.0, 1.0, 1.0]),
    StepExample([{"role": "user", "content": "7-2?"}], ["7-2=4", "So 4."], [0.0, 0.0]),
    StepExample([{"role": "user", "content": "Half of 9?"}], ["9/2=4.5"], [0.7]),
    StepExample([{"role": "user", "content": "1+1?"}], ["1+1=2", "So 3.", "Done"], [1.0, 0.0, None]),
]


def tiny_token_llama(tokenizer, attn="sdpa"):
    from transformers import LlamaConfig, LlamaForTokenClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer) + 1,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=2,
        pad_token_id=tokenizer.pad_token_id,
        classifier_dropout=0.0,
    )
    cfg._attn_implementation = attn
    return LlamaForTokenClassification(cfg)


def features(tokenizer, model):
    sep = add_step_separator(tokenizer, model)
    ds, cut = tokenize_step_examples(tokenizer, EXAMPLES, sep, 512, DropReport())
    assert cut == 0 and len(ds) == len(EXAMPLES)
    return [ds[i] for i in range(len(ds))], sep


def test_step_collator_exact_tensors(char_tokenizer):
    feats = [
        {"input_ids": [5, 6, 9], "step_positions": [2], "step_labels": [1.0], "example_id": 0},
        {"input_ids": [7, 9, 8, 9], "step_positions": [1, 3], "step_labels": [0.0, None], "example_id": 1},
    ]
    b = StepCollator(pad_token_id=0)(feats)
    assert b["input_ids"].tolist() == [[5, 6, 9, 0], [7, 9, 8, 9]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert b["label_index"].tolist() == [2, 5, 7] and b["step_index"].tolist() == [0, 0, 1]
    assert b["labels"][:2].tolist() == [1.0, 0.0] and torch.isnan(b["labels"][2])
    p = PackedStepCollator(pad_token_id=0, max_row_tokens=16)(feats)
    assert p["input_ids"].tolist() == [[7, 9, 8, 9, 5, 6, 9]]  # longest first
    assert p["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    assert p["block_ids"].tolist() == [[1, 1, 1, 1, 0, 0, 0]]
    assert p["label_index"].tolist() == [6, 1, 3]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_padded_step_scores_and_gradients_match(char_tokenizer, attn):
    model = tiny_token_llama(char_tokenizer, attn)
    feats, _ = features(char_tokenizer, model)
    results = []
    for collator in (
        StepCollator(pad_token_id=char_tokenizer.pad_token_id),
        PackedStepCollator(pad_token_id=0, max_row_tokens=4096),
    ):
        model.zero_grad()
        batch = collator(feats)
        logits = prm_step_logits(model, batch)
        soft_step_loss(logits, batch["labels"]).backward()
        order = torch.argsort(batch["example_ids"] * 100 + batch["step_index"])  # same steps, same order
        results.append((logits[order].detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
        if isinstance(collator, PackedStepCollator):
            assert batch["input_ids"].shape[0] == 1  # all four solutions in one row
    (a, ga), (b, gb) = results
    assert a.shape == (9, 2)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], atol=1e-5, rtol=1e-4, msg=name)


def test_packed_steps_run_the_causal_kernel_per_solution(char_tokenizer, monkeypatch):
    """PRM blocks are plain causal: each solution's sdpa call takes is_causal, with no explicit mask."""
    model = tiny_token_llama(char_tokenizer).eval()
    feats, _ = features(char_tokenizer, model)
    batch = PackedStepCollator(pad_token_id=0, max_row_tokens=4096)(feats)
    calls = record_sdpa_calls(monkeypatch)
    with torch.no_grad():
        prm_step_logits(model, batch)
    assert len(calls) == len(EXAMPLES) * model.config.num_hidden_layers  # one row, no padding tail
    assert sorted({width for width, _, _ in calls}) == sorted({len(f["input_ids"]) for f in feats})
    assert all(causal and not masked for _, masked, causal in calls)


@pytest.mark.parametrize("use_peft", ["false", "true"])
def test_train_export_and_score_round_trip(tmp_path, char_tokenizer, use_peft):
    """train --objective prm → a plain checkpoint; transformers alone gives rewardkit's step scores."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from rewardkit.cli import main
    from rewardkit.demo.synthetic_steps import to_trl_row
    from rewardkit.scorers.load import detect_kind, load_reward_model

    base = tmp_path / "base"
    tiny_token_llama(char_tokenizer).save_pretrained(base)
    char_tokenizer.save_pretrained(base)
    data = tmp_path / "steps.jsonl"
    data.write_text(
        "".join(
            json.dumps(to_trl_row(e) | {"labels": [bool(v) for v in e.labels]}) + "\n"
            for e in EXAMPLES[:3] * 4
        )
    )
    out = tmp_path / "prm"
    rc = main(
        [
            "train",
            "--objective",
            "prm",
            "--model_name_or_path",
            str(base),
            "--train_file_dir",
            str(data),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--use_peft",
            use_peft,
            "--lora_rank",
            "4",
            "--learning_rate",
            "1e-2",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--validation_split_percentage",
            "25",
            "--use_cpu",
            "true",
        ]
    )
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert (
        config["architectures"] == ["LlamaForTokenClassification"] and config["step_separator"] == "<|step|>"
    )
    assert detect_kind(str(out))[0] == "prm" and (out / "README.md").is_file()
    metrics = json.loads((out / "rewardkit_metrics.json").read_text())
    assert {"eval_step_accuracy", "eval_bad_step_f1", "eval_first_error_accuracy"} <= set(metrics["eval"])

    rm = load_reward_model(str(out))
    ex = EXAMPLES[0]
    ours = rm.score_steps(ex.prompt, ex.steps)
    model = AutoModelForTokenClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    sep = model.config.step_separator_id
    ids = tok(
        tok.apply_chat_template(ex.prompt, tokenize=False, add_generation_prompt=True),
        add_special_tokens=False,
    ).input_ids
    for step in ex.steps:
        ids += tok(step, add_special_tokens=False).input_ids + [sep]
    ids = torch.tensor([ids])
    with torch.no_grad():
        plain = good_probability(model(input_ids=ids).logits[0])[ids[0] == sep].tolist()
    assert plain == pytest.approx(ours.step_scores, abs=1e-6)
    assert ours.score == pytest.approx(min(ours.step_scores))
    # the protocol: an answer split into lines is the same solution
    (scored,) = rm.score_detailed([ex.prompt + [{"role": "assistant", "content": "\n".join(ex.steps)}]])
    assert scored.step_scores == pytest.approx(ours.step_scores, abs=1e-6) and scored.score == pytest.approx(
        ours.score
    )
    ranking = rm.compare(ex.prompt, ["\n".join(ex.steps), "3*4=12"]).ranking
    assert sorted(ranking) == [0, 1]


P, Q = [{"role": "user", "content": "q"}], [{"role": "user", "content": "r"}]


def test_contrast_partners_hand_worked():
    examples = [
        StepExample(P, ["a", "b", "c"], [1.0, 1.0, 1.0]),  # 0: correct
        StepExample(P, ["a", "x", "y"], [1.0, 0.0, 0.0]),  # 1: bad from step 1, after "a"
        StepExample(P, ["z", "b"], [0.0, 0.0]),  # 2: bad from step 0 (empty prefix)
        StepExample(P, ["a", "b", "w"], [1.0, 1.0, 0.3]),  # 3: soft-bad step 2, after "a", "b"
        StepExample(P, ["q", "x"], [1.0, 0.0]),  # 4: bad from step 1, after "q" (nobody else's prefix)
        StepExample(Q, ["a", "b", "c"], [1.0, 1.0, 1.0]),  # 5: another prompt
        StepExample(P, ["a", "x"], [1.0, None]),  # 6: unlabelled step 1: neither side there
    ]
    groups, partners = contrast_partners(examples)
    assert groups == [0, 0, 0, 0, 0, 1, 0]
    # the good partners of a bad solution: same prompt, same steps before its first bad step, good there
    # 1: 0 and 3 ("a" then a good "b"; 5 is another prompt, 6's step 1 is unlabelled)
    # 2: every solution of P with a good step 0; 3: only 0 has "a", "b" and a good step 2
    assert partners == [[], [(0, 1), (3, 1)], [(0, 0), (1, 0), (3, 0), (4, 0), (6, 0)], [(0, 2)], [], [], []]


def test_step_contrast_loss_hand_worked():
    # two-label logits: margins (1, -1, 0.5); pairs (good 0, bad 1) and (good 2, bad 1)
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.5]], requires_grad=True)
    loss = step_contrast_loss(logits, torch.tensor([[0, 1], [2, 1]]))
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.5))) / 2
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    # d/d margin_good = -sigmoid(-(diff)) / 2; the bad step gets minus the sum; margin = l1 - l0
    g0, g2 = -1 / (1 + math.exp(2.0)) / 2, -1 / (1 + math.exp(1.5)) / 2
    assert logits.grad.flatten().tolist() == pytest.approx([-g0, g0, g0 + g2, -(g0 + g2), -g2, g2])
    # the margin is the logit of the step score the scorers read
    assert torch.allclose(torch.sigmoid(step_margin(logits)), good_probability(logits), atol=1e-6)
    one = torch.tensor([[1.0], [1.0]])  # one-label head: the logit is the margin; equal margins -> ln 2
    assert step_contrast_loss(one, torch.tensor([[0, 1]])).item() == pytest.approx(math.log(2))
    empty = step_contrast_loss(logits, torch.zeros((0, 2), dtype=torch.long))
    assert empty.item() == 0.0 and empty.requires_grad


def test_collators_give_the_contrast_pairs_present_in_the_batch():
    feats = [
        {
            "input_ids": [5, 9, 6, 9],
            "step_positions": [1, 3],
            "step_labels": [1.0, 1.0],
            "example_id": 4,
            "contrast_good": [],
            "contrast_step": [],
        },
        {
            "input_ids": [5, 9, 7, 9],
            "step_positions": [1, 3],
            "step_labels": [1.0, 0.0],
            "example_id": 7,
            "contrast_good": [4, 2],
            "contrast_step": [1, 1],
        },  # partner 2 is not in the batch
        {
            "input_ids": [5, 9],
            "step_positions": [1],
            "step_labels": [1.0],
            "example_id": 8,
            "contrast_good": [4],
            "contrast_step": [1],
        },  # its step 1 was cut off
    ]
    padded = StepCollator(pad_token_id=0)(feats)
    assert padded["contrast_index"].tolist() == [[1, 3]]  # flat steps: 4:0, 4:1, 7:0, 7:1, 8:0
    packed = PackedStepCollator(pad_token_id=0, max_row_tokens=16)(feats)
    order = [(e, s) for e, s in zip(packed["example_ids"].tolist(), packed["step_index"].tolist())]
    good, bad = packed["contrast_index"].tolist()[0]
    assert (order[good], order[bad]) == ((4, 1), (7, 1))
    assert packed["labels"][good] == 1.0 and packed["labels"][bad] == 0.0
    assert "contrast_index" not in StepCollator(pad_token_id=0)(
        [{k: feats[0][k] for k in list(feats[0])[:4]}]
    )


def test_prompt_group_sampler_keeps_prompts_together():
    groups = [0, 1, 0, 2, 1, 0]
    sampler = PromptGroupSampler(groups, seed=3)
    first, second = list(sampler), list(sampler)
    for order in (first, second):
        assert sorted(order) == list(range(6)) and len(sampler) == 6
        runs = [groups[i] for i in order]
        assert [g for j, g in enumerate(runs) if j == 0 or g != runs[j - 1]] == sorted(
            set(groups), key=runs.index
        )
    assert list(PromptGroupSampler(groups, seed=3)) == first  # seeded
    orders = {tuple(PromptGroupSampler(groups, seed=s)) for s in range(6)}
    assert len(orders) > 1  # the prompt order is shuffled


def test_train_with_step_contrast_logs_the_twin_pairs(tmp_path, char_tokenizer):
    """--step_contrast_weight: each wrong synthetic solution meets its correct twin in the batch."""
    from rewardkit.cli import main
    from rewardkit.demo.synthetic_steps import make_step_set, to_trl_row

    base = tmp_path / "base"
    tiny_token_llama(char_tokenizer).save_pretrained(base)
    char_tokenizer.save_pretrained(base)
    data = tmp_path / "steps.jsonl"
    data.write_text("".join(json.dumps(to_trl_row(e)) + "\n" for e in make_step_set(3, seed=0)))
    out = tmp_path / "prm"
    flags = ["--model_name_or_path", str(base), "--train_file_dir", str(data), "--output_dir", str(out)]
    flags += ["--max_steps", "1", "--per_device_train_batch_size", "6", "--logging_steps", "1"]
    flags += ["--max_length", "2048", "--report_to", "none", "--save_strategy", "no", "--use_cpu", "true"]
    flags += ["--validation_split_percentage", "0", "--step_contrast_weight", "1.0"]
    assert main(["train", "--objective", "prm", *flags]) == 0
    (log,) = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert log["step_contrast_pairs"] == 3 and 0 < log["step_contrast_loss"] < log["loss"]


def tiny_token_bert(tokenizer):
    """conftest's tiny BERT with a two-label token head instead of its sequence head."""
    from transformers import BertForTokenClassification

    config = make_tiny_bert(tokenizer).config
    config.num_labels = 2
    torch.manual_seed(0)
    return BertForTokenClassification(config).eval()


def test_make_causal_encoder_scores_a_step_from_its_prefix_only(tmp_path, char_tokenizer):
    from transformers import AutoModelForTokenClassification

    model = tiny_token_bert(char_tokenizer)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    later = ids.clone()
    later[0, -1] = 12  # only the last token differs
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits[0, 0], model(input_ids=later).logits[0, 0])
        make_causal(model)
        a, b = model(input_ids=ids).logits[0], model(input_ids=later).logits[0]
    assert torch.equal(a[:4], b[:4]) and not torch.allclose(a[4], b[4])
    model.save_pretrained(tmp_path / "m")  # config.json says is_decoder: transformers alone loads it causal
    again = AutoModelForTokenClassification.from_pretrained(tmp_path / "m").eval()
    assert again.config.is_decoder and not again.config.use_cache
    with torch.no_grad():
        padded = again(
            input_ids=torch.cat([ids, later]), attention_mask=torch.tensor([[1] * 5, [1] * 4 + [0]])
        )
    assert torch.allclose(padded.logits[0], a, atol=1e-6) and torch.allclose(
        padded.logits[1, :4], a[:4], atol=1e-6
    )


def test_make_causal_refuses_a_model_that_stays_bidirectional():
    from types import SimpleNamespace

    class MeanPooled(torch.nn.Module):  # every position sees the whole row, whatever the config says
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(model_type="meanpooled", is_decoder=False, use_cache=True)
            self.emb = torch.nn.Embedding(16, 2)

        def forward(self, input_ids, attention_mask=None):
            return SimpleNamespace(
                logits=self.emb(input_ids).mean(1, keepdim=True).expand(-1, input_ids.shape[1], -1)
            )

    with pytest.raises(
        RewardkitError, match="meanpooled has no causal attention mode.*--step_attention bidirectional"
    ):
        make_causal(MeanPooled())
