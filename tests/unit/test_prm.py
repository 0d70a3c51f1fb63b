"""PRM model, training, export and scoring on tiny random models built here (fast, offline)."""

import json

import pytest
import torch
from conftest import record_sdpa_calls

from rewardkit.core.steps import add_step_separator, good_probability
from rewardkit.data.loading import DropReport
from rewardkit.data.steps import StepExample
from rewardkit.train.prm import prm_step_logits, soft_step_loss
from rewardkit.train.prm_data import PackedStepCollator, StepCollator, tokenize_step_examples

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
