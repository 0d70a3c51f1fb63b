"""Train → export → reload: the exported checkpoint is a plain sequence classifier that scores the same."""

import json

import pytest
import torch
from conftest import make_char_tokenizer, make_tiny_llama, write_synthetic_pairs
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardkit.cli import main
from rewardkit.core.batching import pad_rows
from rewardkit.core.rewards import sequence_rewards
from rewardkit.data.tokenize import encode, encode_pair, install_chat_template
from rewardkit.scorers.load import load_reward_model
from rewardkit.train.data import read_splits
from rewardkit.train.export import export_model
from rewardkit.train.lora import apply_lora

CONVS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there, how can I help?"},
    ],
    [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ],
]


def seed_snippet_scores(folder):
    """The second seed's code, verbatim but for transformers 5 (apply_chat_template returns a dict)."""
    rm = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    tok = AutoTokenizer.from_pretrained(folder)
    out = []
    for conv in CONVS:
        enc = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out.append(rm(**enc).logits[0][0].item())
    return out


def _perturbed_lora(tokenizer):
    model = apply_lora(
        make_tiny_llama(tokenizer), target_modules="all", lora_rank=4, lora_alpha=8, lora_dropout=0.0
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # LoRA B starts at zero: make the adapter matter, and the head differ
                p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


@pytest.mark.parametrize("template", ["auto", "vicuna"])
def test_merged_export_roundtrip_equals_seed_snippet(tmp_path, template):
    tok = make_char_tokenizer()
    install_chat_template(tok, template)
    model = _perturbed_lora(tok)
    rows = [encode(tok, c) for c in CONVS]
    with torch.no_grad():
        before = sequence_rewards(model, *pad_rows(rows, tok.pad_token_id)).tolist()
    export_model(
        model, tok, tmp_path / "out", mode="merged", reward_stats={"reward_mean": 0.5, "reward_std": 2.0}
    )
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (
        len(config["id2label"]) == 1
        and config["pad_token_id"] == tok.pad_token_id
        and config["reward_mean"] == 0.5
    )
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert not list((tmp_path / "out").glob("*.bin"))
    snippet = seed_snippet_scores(tmp_path / "out")
    rm = load_reward_model(str(tmp_path / "out"))
    assert rm.kind == "seq_classifier"
    details = rm.score_detailed(CONVS)
    assert before == pytest.approx(snippet, abs=1e-5)
    assert [d.score for d in details] == pytest.approx(before, abs=1e-5)
    assert details[0].normalized == pytest.approx((details[0].score - 0.5) / 2.0)


def test_adapter_export_keeps_trained_head(tmp_path):
    from peft import PeftModel

    tok = make_char_tokenizer()
    model = _perturbed_lora(tok)
    rows = [encode(tok, c) for c in CONVS]
    with torch.no_grad():
        before = sequence_rewards(model, *pad_rows(rows, tok.pad_token_id))
    export_model(model, tok, tmp_path / "out", mode="both")
    base = make_tiny_llama(tok)  # same seed: same base weights, untrained head
    reloaded = PeftModel.from_pretrained(base, tmp_path / "out" / "adapter").eval()
    with torch.no_grad():
        after = sequence_rewards(reloaded, *pad_rows(rows, tok.pad_token_id))
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize("use_peft", ["true", "false"])
def test_cli_train_tiny_llama_end_to_end(tmp_path, tiny_llama_dir, use_peft):
    write_synthetic_pairs(tmp_path / "train.jsonl", 24, 0)
    out = tmp_path / "rm"
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(tiny_llama_dir),
            "--train_file_dir",
            str(tmp_path / "train.jsonl"),
            "--validation_split_percentage",
            "25",
            "--output_dir",
            str(out),
            "--max_steps",
            "3",
            "--per_device_train_batch_size",
            "2",
            "--per_device_eval_batch_size",
            "4",
            "--report_to",
            "none",
            "--use_peft",
            use_peft,
            "--max_length",
            "1024",
            "--logging_steps",
            "1",
            "--save_strategy",
            "no",
            "--use_cpu",
            "true",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "rewardkit_metrics.json").read_text())
    assert metrics["train"]["train_samples"] == 18 and metrics["eval"]["eval_samples"] == 6
    # Recompute the validation rewards from the exported checkpoint, one conversation at a time.
    _, validation, _ = read_splits(
        dataset_name=None,
        train_file_dir=str(tmp_path / "train.jsonl"),
        validation_file_dir=None,
        validation_split_percentage=25,
        max_train_samples=None,
        max_eval_samples=None,
        seed=42,  # TrainingArguments' default seed
    )
    exported = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    chosen, rejected = [], []
    with torch.no_grad():
        for pair in validation:
            enc = encode_pair(tok, pair, 1024)
            for ids, side in ((enc.chosen_ids, chosen), (enc.rejected_ids, rejected)):
                side.append(sequence_rewards(exported, torch.tensor([ids]), torch.ones(1, len(ids))).item())
    rewards = torch.tensor(chosen + rejected)
    config = json.loads((out / "config.json").read_text())
    assert config["reward_mean"] == pytest.approx(rewards.mean().item(), abs=1e-4)
    assert config["reward_std"] == pytest.approx(rewards.std().item(), abs=1e-4)
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    assert metrics["eval"]["eval_accuracy"] == pytest.approx(wins / 6)
    assert metrics["eval"]["eval_rewards_chosen"] == pytest.approx(sum(chosen) / 6, abs=1e-4)
    # Training moved both the head and the backbone away from the starting weights.
    start = AutoModelForSequenceClassification.from_pretrained(tiny_llama_dir).state_dict()
    end = exported.state_dict()
    assert not torch.equal(start["score.weight"], end["score.weight"])
    assert not torch.equal(
        start["model.layers.0.self_attn.q_proj.weight"], end["model.layers.0.self_attn.q_proj.weight"]
    )
    assert seed_snippet_scores(out) == pytest.approx(
        [sequence_rewards(exported, *pad_rows([encode(tok, c)], tok.pad_token_id)).item() for c in CONVS],
        abs=1e-5,
    )
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("accuracy" in entry for entry in log)  # the pair metrics are logged during training


def test_cli_train_sample_limits_validation_file_drop_report_and_adapter_export(tmp_path, tiny_llama_dir):
    pairs = [
        json.loads(line)
        for line in write_synthetic_pairs(tmp_path / "p.jsonl", 15, 1).read_text().splitlines()
    ]
    too_long = {"prompt": "q", "chosen": "x" * 1100, "rejected": "y"}
    same = {"prompt": "q", "chosen": "same", "rejected": "same"}
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [too_long, same, *pairs[:10]])
    )
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs[10:]))
    out = tmp_path / "rm"
    argv = [
        "train",
        "--model_name_or_path",
        str(tiny_llama_dir),
        "--train_file_dir",
        str(tmp_path / "train.jsonl"),
    ]
    argv += [
        "--validation_file_dir",
        str(tmp_path / "dev.jsonl"),
        "--max_train_samples",
        "6",
        "--max_eval_samples",
        "3",
    ]
    argv += ["--max_length", "1024", "--output_dir", str(out), "--max_steps", "1", "--report_to", "none"]
    argv += [
        "--use_peft",
        "true",
        "--export",
        "adapter",
        "--packing",
        "off",
        "--save_strategy",
        "no",
        "--use_cpu",
        "true",
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "rewardkit_metrics.json").read_text())
    # 12 rows: the identical pair dropped on reading, the first 6 of the rest kept, the too-long one then dropped
    assert (metrics["train"]["train_samples"], metrics["eval"]["eval_samples"]) == (5, 3), metrics["data"]
    assert metrics["data"]["dropped"] == {"identical": 1, "too_long": 1}
    assert metrics["data"]["examples"]["too_long"] == [f"{tmp_path / 'train.jsonl'}:1"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file() or (
        out / "adapter_model.safetensors"
    ).is_file()
    assert not (out / "model.safetensors").exists()


def _train_argv(model_dir, data, out, *extra):
    return [
        "train",
        "--model_name_or_path",
        str(model_dir),
        "--train_file_dir",
        str(data),
        "--validation_split_percentage",
        "0",
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        "2",
        "--max_length",
        "1024",
        "--report_to",
        "none",
        "--use_peft",
        "true",
        "--lora_dropout",
        "0",
        "--use_cpu",
        "true",
        "--seed",
        "7",
        *extra,
    ]


def _weights(folder) -> dict:
    return AutoModelForSequenceClassification.from_pretrained(folder).state_dict()


def test_resume_from_checkpoint_and_peft_path_continue_the_same_run(tmp_path, tiny_llama_dir):
    data = write_synthetic_pairs(tmp_path / "train.jsonl", 16, 3)
    whole, resumed, continued = tmp_path / "whole", tmp_path / "resumed", tmp_path / "continued"
    steps = ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2", "--learning_rate", "1e-3"]
    assert main(_train_argv(tiny_llama_dir, data, whole, *steps, "--export", "both")) == 0
    assert (whole / "checkpoint-2").is_dir()
    # --resume_from_checkpoint: steps 3-4 from the step-2 checkpoint give the uninterrupted run's weights
    resume = ["--resume_from_checkpoint", str(whole / "checkpoint-2")]
    assert main(_train_argv(tiny_llama_dir, data, resumed, *steps, *resume)) == 0
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    start, a, b = _weights(tiny_llama_dir), _weights(whole), _weights(resumed)
    assert not torch.equal(start["score.weight"], a["score.weight"])
    for name in (
        "score.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ):
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=0)
    # ... and they come from the checkpoint: the same resume from a checkpoint whose head was shifted ends elsewhere
    import shutil

    from safetensors.torch import load_file, save_file

    shifted = tmp_path / "shifted-checkpoint"
    shutil.copytree(whole / "checkpoint-2", shifted)
    adapter = load_file(shifted / "adapter_model.safetensors")
    adapter["base_model.model.score.weight"] += 1.0
    save_file(adapter, shifted / "adapter_model.safetensors")
    moved = tmp_path / "moved"
    assert (
        main(_train_argv(tiny_llama_dir, data, moved, *steps, "--resume_from_checkpoint", str(shifted))) == 0
    )
    assert (_weights(moved)["score.weight"] - a["score.weight"]).abs().min() > 0.5
    # --peft_path: the saved adapter (and head) is loaded, not a fresh one; lr 0 keeps it as it is
    frozen = ["--max_steps", "1", "--learning_rate", "0", "--save_strategy", "no"]
    assert (
        main(_train_argv(tiny_llama_dir, data, continued, *frozen, "--peft_path", str(whole / "adapter")))
        == 0
    )
    c = _weights(continued)
    for name in ("score.weight", "model.layers.0.self_attn.q_proj.weight"):
        torch.testing.assert_close(c[name], a[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("flags", "dtype"),
    [(["--torch_dtype", "bfloat16", "--bf16", "true"], torch.bfloat16), ([], torch.float32)],
)
def test_torch_dtype_reaches_the_loaded_model(tmp_path, tiny_llama_dir, monkeypatch, flags, dtype):
    """The model the Trainer gets was loaded in --torch_dtype (LoRA and the head are kept in float32
    for the updates, under --bf16 autocast), and the merged export is written in it."""
    import rewardkit.train.run

    seen = {}

    class Recording(rewardkit.train.run.RewardTrainer):
        def __init__(self, model, **kw):
            params = dict(model.named_parameters())
            seen["frozen"] = {p.dtype for p in params.values() if not p.requires_grad}
            seen["trained"] = {p.dtype for p in params.values() if p.requires_grad}
            super().__init__(model=model, **kw)

    monkeypatch.setattr(rewardkit.train.run, "RewardTrainer", Recording)
    data = write_synthetic_pairs(tmp_path / "train.jsonl", 8, 2)
    out = tmp_path / "rm"
    assert (
        main(_train_argv(tiny_llama_dir, data, out, "--max_steps", "1", "--save_strategy", "no", *flags)) == 0
    )
    assert seen == {"frozen": {dtype}, "trained": {torch.float32}}
    from safetensors import safe_open

    with safe_open(out / "model.safetensors", framework="pt") as f:
        assert {f.get_tensor(name).dtype for name in f.keys()} == {dtype}


@pytest.mark.parametrize("objective", ["pairwise", "prm"])
def test_half_precision_lora_without_mixed_precision_is_one_line_before_loading(tmp_path, capsys, objective):
    """LoRA and the head train in float32: over bfloat16 base weights without --bf16 the first step
    would fail inside torch (float32 head, bfloat16 hidden states); refused before anything loads."""
    data = write_synthetic_pairs(tmp_path / "train.jsonl", 4)
    argv = _train_argv(tmp_path / "not-loaded", data, tmp_path / "rm", "--torch_dtype", "bfloat16")
    assert main([*argv, "--objective", objective]) == 2
    assert capsys.readouterr().err.strip() == (
        "rewardkit train: error: --torch_dtype bfloat16 with --use_peft true: pass --bf16 true too (LoRA and "
        "the head train in float32 under mixed precision), or --torch_dtype float32"
    )


@pytest.mark.slow
def test_train_from_the_packaged_gguf_through_both_spellings(tmp_path):
    """`--model_name_or_path packaged:smollm2` and the folder + `--gguf_file` it stands for load the same
    GGUF weights (dequantised); one LoRA step on 4 pairs exports a Llama sequence classifier."""
    from rewardkit.assets import smollm2_gguf

    folder, gguf = smollm2_gguf()
    data = write_synthetic_pairs(tmp_path / "train.jsonl", 4)
    runs = {
        "packaged": ["--model_name_or_path", "packaged:smollm2"],
        "gguf_file": ["--model_name_or_path", str(folder), "--gguf_file", gguf],
    }
    heads = {}
    for name, model_flags in runs.items():
        argv = _train_argv("unused", data, tmp_path / name, "--max_steps", "1", "--max_length", "128")
        argv[argv.index("--model_name_or_path") : argv.index("--model_name_or_path") + 2] = model_flags
        assert main(argv) == 0
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path / name)
        assert type(model).__name__ == "LlamaForSequenceClassification" and model.config.num_labels == 1
        heads[name] = model.score.weight.detach()
    torch.testing.assert_close(heads["packaged"], heads["gguf_file"])  # same weights, same seed, same step
