"""`rewardkit train --length_debias / --ensemble_size / --calibrate` end to end on a tiny Llama."""

import json
import math

import pytest
import torch
from conftest import make_char_tokenizer, make_tiny_bert, make_tiny_llama, write_synthetic_pairs
from transformers import AutoConfig, AutoModelForSequenceClassification

from rewardkit.cli import main
from rewardkit.scorers.load import load_reward_model

PROMPT = [{"role": "user", "content": "What is 2+2?"}]


def _train(tmp_path, model_dir, *extra):
    write_synthetic_pairs(tmp_path / "train.jsonl", 24, 0)
    out = tmp_path / "rm"
    args = [
        "train", "--model_name_or_path", str(model_dir), "--train_file_dir", str(tmp_path / "train.jsonl"),
        "--validation_split_percentage", "25", "--output_dir", str(out), "--max_steps", "3",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--report_to", "none",
        "--max_length", "1024", "--logging_steps", "1", "--save_strategy", "no", "--use_cpu", "true",
        *extra,
    ]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.mark.parametrize(
    ("use_peft", "packing", "encoder"),
    [("true", "auto", False), ("false", "off", False), ("false", "off", True)],
)
def test_length_debias_exports_plain_quality_head(tmp_path, tiny_llama_dir, use_peft, packing, encoder):
    model_dir = tiny_llama_dir
    if encoder:  # a BERT-style encoder: pooled first token, `classifier` head, the plain layout
        model_dir = tmp_path / "tiny-bert"
        tok = make_char_tokenizer()
        make_tiny_bert(tok).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    out = _train(tmp_path, model_dir, "--length_debias", "true", "--use_peft", use_peft, "--packing", packing)
    config = json.loads((out / "config.json").read_text())
    assert (
        len(config["id2label"]) == 1 and config["rewardkit_length_debias"]["exported"] == "quality head only"
    )
    model = AutoModelForSequenceClassification.from_pretrained(out)  # the seed's snippet loads it as is
    assert (model.classifier if encoder else model.score).weight.shape[0] == 1
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("quality_pearson" in e and "length_pearson" in e for e in log)
    # the length head folded into the exported one on the 6 validation pairs' 12 answers
    fold = config["rewardkit_length_debias"]["residualized"]
    assert fold["on"] == "validation" and fold["answers"] == 12
    assert abs(fold["pearson_after"]) < 1e-4 and fold["pearson_before"] != pytest.approx(0.0, abs=1e-3)
    rm = load_reward_model(str(out))
    assert len(rm.score([[*PROMPT, {"role": "assistant", "content": "4"}]])) == 1


@pytest.mark.parametrize(("use_peft", "packing"), [("true", "auto"), ("false", "off")])
def test_ensemble_trains_k_heads_and_scores_aggregates(tmp_path, tiny_llama_dir, use_peft, packing):
    out = _train(
        tmp_path, tiny_llama_dir, "--ensemble_size", "3", "--ensemble_aggregate", "mean_minus_std",
        "--ensemble_lambda", "0.5", "--use_peft", use_peft, "--packing", packing, "--calibrate", "true",
    )  # fmt: skip
    config = AutoConfig.from_pretrained(out)
    assert config.num_labels == 3 and config.rewardkit_ensemble["size"] == 3
    assert config.rewardkit_ensemble["aggregate"] == "mean_minus_std" and config.reward_temperature > 0
    model = AutoModelForSequenceClassification.from_pretrained(out)  # transformers alone
    assert model.score.weight.shape[0] == 3
    rm = load_reward_model(str(out))
    (score,) = rm.score_detailed([[*PROMPT, {"role": "assistant", "content": "4"}]])
    members = torch.tensor([score.sub_scores[f"member_{i}"] for i in range(3)])
    assert score.sub_scores["ensemble_mean"] == pytest.approx(members.mean().item(), abs=1e-5)
    std = members.std(unbiased=False).item()
    assert score.sub_scores["ensemble_std"] == pytest.approx(std, abs=1e-5) and std > 0
    assert score.score == pytest.approx(members.mean().item() - 0.5 * std, abs=1e-5)
    # the pair path (prefix sharing) gives the same numbers as scoring one by one
    c, _ = rm.score_pairs_detailed([PROMPT], ["4"], ["5"])
    assert c[0].score == pytest.approx(score.score, abs=1e-4)
    assert c[0].sub_scores["ensemble_min"] == pytest.approx(members.min().item(), abs=1e-4)
    rm_min = load_reward_model(str(out), ensemble_aggregate="min")
    assert rm_min.score([[*PROMPT, {"role": "assistant", "content": "4"}]])[0] == pytest.approx(
        members.min().item(), abs=1e-5
    )
    if use_peft == "true":  # the commands, once: eval --stress --calibrated, score --calibrated, serve
        _commands_on_ensemble(tmp_path, out, rm, config.reward_temperature)


def _commands_on_ensemble(tmp_path, out, rm, temperature):
    from fastapi.testclient import TestClient

    from rewardkit.serve.app import create_app

    data = write_synthetic_pairs(tmp_path / "eval.jsonl", 12, 5)
    ev = tmp_path / "eval"
    assert main(["eval", "--model", str(out), "--data", str(data), "--output_dir", str(ev), "--n_boot", "50",
                 "--stress", "true", "--calibrated", "true"]) == 0  # fmt: skip
    summary = json.loads((ev / "results.json").read_text())["summary"]
    assert summary["ensemble"]["members"] == 3 and set(summary["ensemble"]["accuracy"]) >= {"mean", "min"}
    assert summary["calibrated"]["temperature"] == pytest.approx(temperature)
    assert summary["stress"]["perturbations"]["filler"]["n"] == 12
    assert summary["stress"]["rescored"] == "changed answers only"
    from unittest import mock

    from rewardkit.scorers.classifier import ClassifierRM

    with mock.patch.object(ClassifierRM, "answers_alone", False):  # both answers re-scored: same figures
        assert main(["eval", "--model", str(out), "--data", str(data), "--output_dir", str(tmp_path / "both"),
                     "--n_boot", "50", "--stress", "true"]) == 0  # fmt: skip
    both = json.loads((tmp_path / "both" / "results.json").read_text())["summary"]["stress"]
    assert both["rescored"] == "both answers"
    for name, p in both["perturbations"].items():
        assert summary["stress"]["perturbations"][name]["accuracy"] == p["accuracy"], name
    report = (ev / "report.md").read_text()
    assert "## Stress tests" in report and "## Ensemble" in report and "## Calibrated probabilities" in report
    scored = tmp_path / "scored.jsonl"
    assert main(["score", "--model", str(out), "--input", str(data), "--output", str(scored),
                 "--calibrated", "true", "--ensemble_aggregate", "min"]) == 0  # fmt: skip
    row = json.loads(scored.read_text().splitlines()[0])
    margin = row["score_chosen"] - row["score_rejected"]
    assert row["p_chosen"] == pytest.approx(1 / (1 + math.exp(-margin / temperature)), abs=1e-6)
    assert row["score_chosen"] == pytest.approx(row["sub_scores_chosen"]["ensemble_min"], abs=1e-6)
    with TestClient(create_app(rm)) as client:
        body = client.post("/compare", json={"prompt": "What is 2+2?", "responses": ["4", "5"]}).json()
    assert {"ensemble_mean", "ensemble_std", "member_2"} <= set(body["sub_scores"][0])


def test_robust_flags_checked_before_work(tmp_path, tiny_llama_dir, capsys):
    with pytest.raises(AssertionError):
        _train(tmp_path, tiny_llama_dir, "--length_debias", "true", "--ensemble_size", "2")
    assert "--length_debias and --ensemble_size > 1: choose one" in capsys.readouterr().err
    with pytest.raises(AssertionError):
        _train(tmp_path, tiny_llama_dir, "--calibrate", "true", "--validation_split_percentage", "0")
    assert "--calibrate needs validation pairs" in capsys.readouterr().err


def test_export_keeps_the_quality_row_exactly(tmp_path):
    from rewardkit.core.batching import pad_rows
    from rewardkit.core.rewards import sequence_rewards
    from rewardkit.data.tokenize import encode
    from rewardkit.train.export import export_model
    from rewardkit.train.heads import widen_head
    from rewardkit.train.lora import apply_lora

    tok = make_char_tokenizer()
    model = make_tiny_llama(tok)
    widen_head(model, 2)
    model = apply_lora(model, target_modules="all", lora_rank=4, lora_alpha=8, lora_dropout=0.0)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # make the adapter and both head rows matter
                p.add_(torch.randn_like(p) * 0.2)
    model.eval()
    convs = [[*PROMPT, {"role": "assistant", "content": a}] for a in ("4", "It is four, of course.")]
    ids, mask = pad_rows([encode(tok, c) for c in convs], tok.pad_token_id)
    with torch.no_grad():
        both = sequence_rewards(model, ids, mask)
    assert both.shape == (2, 2)
    export_model(model, tok, tmp_path / "out", head_rows=[0])
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        exported = [plain(**tok.apply_chat_template(c, tokenize=True, return_tensors="pt", return_dict=True)).logits[0][0].item() for c in convs]  # fmt: skip
    assert exported == pytest.approx(both[:, 0].tolist(), abs=1e-5)
