"""Scale-out: real multi-process runs on CPU, every shipped launcher/engine config, export of sharded weights.

The multi-process runs are checked against one process with the same global batch: plain SGD (its
update is linear in the gradient, unlike Adam's, which turns float noise in near-zero gradients into
full-size steps) and no dropout (each layout draws different random masks), so an honest run agrees
to float precision and a rank that trained alone on its half of the data shows at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from conftest import make_char_tokenizer, make_tiny_llama, require, write_synthetic_pairs

from rewardkit.cli import main
from rewardkit.core.batching import pad_rows
from rewardkit.core.rewards import sequence_rewards
from rewardkit.data.tokenize import encode
from rewardkit.errors import RewardkitError
from rewardkit.train.export import export_model, gather_full_state_dict
from rewardkit.train.lora import apply_lora

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
BIN = Path(sys.executable).parent
ACCELERATE_CONFIGS = [
    "accelerate_ddp_cpu.yaml",
    "accelerate_multi_gpu.yaml",
    "accelerate_multi_node.yaml",
    "accelerate_fsdp.yaml",
]
DEEPSPEED_CONFIGS = {"deepspeed_zero2.json": 2, "deepspeed_zero3.json": 3}

# 20 pairs -> 16 train + 4 validation; 4 steps of a global batch of 4 pairs = exactly one epoch.
TRAIN_FLAGS = [
    "--validation_split_percentage",
    "20",
    "--max_steps",
    "4",
    "--per_device_eval_batch_size",
    "4",
    "--use_peft",
    "true",
    "--lora_rank",
    "4",
    "--lora_dropout",
    "0",
    "--export",
    "both",
    "--optim",
    "sgd",
    "--learning_rate",
    "0.05",
    "--max_length",
    "1024",
    "--logging_steps",
    "1",
    "--save_strategy",
    "no",
    "--report_to",
    "none",
    "--seed",
    "0",
]

# accelerate pairs DeepSpeed only with an accelerator (on a CPU-only machine its backend detection
# finds none and reports one process), so this test-only driver makes it choose gloo, as DeepSpeed's
# own CPU accelerator does. It also skips DeepSpeed's shared-memory allreduce, a C++ op compiled on
# first use (minutes); gloo alone is enough for two tiny processes.
DEEPSPEED_CPU_DRIVER = """
import sys

import deepspeed.ops
from accelerate.state import PartialState
from accelerate.utils import DistributedType

deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
PartialState._prepare_backend = lambda self, cpu=False, sagemaker_dp=False, backend=None: (
    "gloo", DistributedType.MULTI_CPU)

from rewardkit.cli import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def scale_out_inputs(tmp_path_factory):
    """A tiny Llama folder, a 20-pair training file, and a one-process run with a global batch of 4."""
    root = tmp_path_factory.mktemp("scale-out")
    tokenizer = make_char_tokenizer()
    make_tiny_llama(tokenizer).save_pretrained(root / "tiny-llama")
    tokenizer.save_pretrained(root / "tiny-llama")
    write_synthetic_pairs(root / "train.jsonl", 20)
    flags = [
        "--model_name_or_path",
        str(root / "tiny-llama"),
        "--train_file_dir",
        str(root / "train.jsonl"),
        *TRAIN_FLAGS,
    ]
    assert (
        main(
            [
                "train",
                *flags,
                "--per_device_train_batch_size",
                "4",
                "--use_cpu",
                "true",
                "--output_dir",
                str(root / "one-process"),
            ]
        )
        == 0
    )
    return SimpleNamespace(root=root, flags=flags, reference=root / "one-process")


def _launch(command: list[str], cwd: Path, timeout: int = 300) -> None:
    import rewardkit

    here = str(Path(rewardkit.__file__).resolve().parents[1])  # the workers import the rewardkit under test
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
    )
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(command[:6])} ... failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )


def _assert_same_training(run: Path, reference: Path) -> None:
    """Same files, same per-step losses and epochs, same exported weights and reward statistics."""
    from safetensors.torch import load_file

    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert len(list(run.glob("*.safetensors"))) == 1  # one checkpoint, written by one rank
    steps = [json.loads((d / "trainer_state.json").read_text())["log_history"] for d in (run, reference)]
    losses, ref_losses = ([(e["epoch"], e["loss"]) for e in log if "loss" in e] for log in steps)
    assert [e for e, _ in losses] == [0.25, 0.5, 0.75, 1.0]  # 4 steps of 4 pairs: 2 processes x 2 pairs
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in ref_losses], rel=1e-5)
    # The pair metrics of each step are over all 4 pairs of the global batch (both ranks' shards), as
    # in the one-process run, not rank 0's 2 pairs.
    for key in ("accuracy", "margin", "rewards_chosen", "rewards_rejected"):
        got, want = ([e[key] for e in log if "loss" in e] for log in steps)
        assert len(got) == 4 and got == pytest.approx(want, rel=1e-5, abs=1e-6), key
    start = load_file(reference.parent / "tiny-llama" / "model.safetensors")
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        got, want = load_file(run / name), load_file(reference / name)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].shape == want[key].shape and got[key].numel() > 0, key
            torch.testing.assert_close(got[key], want[key], atol=1e-6, rtol=0, msg=f"{name}: {key}")
    moved = (load_file(run / "model.safetensors")["score.weight"] - start["score.weight"]).abs().max()
    assert moved > 1e-4  # the head trained, so agreeing to 1e-6 means something
    config, ref_config = (json.loads((d / "config.json").read_text()) for d in (run, reference))
    for key in ("reward_mean", "reward_std"):
        assert config[key] == pytest.approx(ref_config[key], abs=1e-5)


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_like_one(scale_out_inputs, tmp_path):
    """`accelerate launch` with the CPU DDP config: both ranks step together, rank 0 alone writes."""
    out = tmp_path / "ddp"
    _launch(
        [
            str(BIN / "accelerate"),
            "launch",
            "--config_file",
            str(CONFIGS / "accelerate_ddp_cpu.yaml"),
            "-m",
            "rewardkit.cli",
            "train",
            *scale_out_inputs.flags,
            "--per_device_train_batch_size",
            "2",
            "--use_cpu",
            "true",
            "--output_dir",
            str(out),
        ],
        cwd=tmp_path,
    )
    _assert_same_training(out, scale_out_inputs.reference)


@pytest.mark.slow
def test_deepspeed_zero3_lora_export_keeps_trained_head(scale_out_inputs, tmp_path):
    """Two ZeRO-3 processes on CPU: the exported merged model and adapter equal one process's."""
    require("deepspeed")  # fails in CI rather than hiding the ZeRO-3 claim
    driver = tmp_path / "deepspeed_cpu_driver.py"
    driver.write_text(DEEPSPEED_CPU_DRIVER)
    out = tmp_path / "zero3"
    _launch(
        [
            str(BIN / "torchrun"),
            "--standalone",
            "--nproc_per_node",
            "2",
            str(driver),
            "train",
            *scale_out_inputs.flags,
            "--per_device_train_batch_size",
            "2",
            "--deepspeed",
            str(CONFIGS / "deepspeed_zero3.json"),
            "--output_dir",
            str(out),
        ],
        cwd=tmp_path,
    )
    _assert_same_training(out, scale_out_inputs.reference)


def _trained_lora(tokenizer):
    model = apply_lora(
        make_tiny_llama(tokenizer), target_modules="all", lora_rank=4, lora_alpha=8, lora_dropout=0.0
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # LoRA B starts at zero and the head is random: make both matter
                p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


def test_device_map_with_several_processes_is_one_line_before_loading(tmp_path, capsys, monkeypatch):
    """Each process of a launcher puts its copy of the model on its own device: --device_map is refused
    with more than one (the world size the Trainer reads stands in for a launcher here)."""
    from transformers import TrainingArguments

    data = write_synthetic_pairs(tmp_path / "train.jsonl", 4)
    argv = ["train", "--model_name_or_path", str(tmp_path / "not-loaded"), "--train_file_dir", str(data)]
    argv += ["--output_dir", str(tmp_path / "rm"), "--report_to", "none", "--use_cpu", "true"]
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    assert main([*argv, "--device_map", "auto"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rewardkit train: error: --device_map: leave it unset with several processes; each process puts "
        "its copy of the model on its own device"
    )
    assert not (tmp_path / "rm").exists()
    # one process: the flag is taken (the run then fails on the missing model, later)
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 1))
    assert main([*argv, "--device_map", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--device_map" not in err and "not-loaded: cannot load a tokenizer" in err


def test_export_from_gathered_weights_restores_head_exactly(tmp_path):
    """A ZeRO-3/FSDP rank's own parameters are empty shards; export rebuilds the model from the gathered dict."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    tok = make_char_tokenizer()
    model = _trained_lora(tok)
    batch = pad_rows(
        [
            encode(tok, [{"role": "user", "content": t}, {"role": "assistant", "content": t[::-1]}])
            for t in ("Hi", "What is 2+2?", "a b c")
        ],
        tok.pad_token_id,
    )
    with torch.no_grad():
        before = sequence_rewards(model, *batch)
    full = {key: value.clone() for key, value in model.state_dict().items()}  # what the gather returns
    for p in model.parameters():
        p.data = torch.empty(0, dtype=p.dtype)  # what ZeRO-3 leaves on each rank outside a forward
    export_model(
        model, tok, tmp_path / "out", mode="both", state_dict=full, reward_stats={"reward_mean": 0.5}
    )

    head = full["base_model.model.score.modules_to_save.default.weight"]
    assert torch.equal(load_file(tmp_path / "out" / "model.safetensors")["score.weight"], head)
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    adapter = PeftModel.from_pretrained(make_tiny_llama(tok), tmp_path / "out" / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(sequence_rewards(merged, *batch), before, atol=1e-5, rtol=0)
        torch.testing.assert_close(sequence_rewards(adapter, *batch), before, atol=1e-5, rtol=0)
    assert merged.config.reward_mean == 0.5


def test_export_rejects_gathered_weights_of_another_model(tmp_path):
    tok = make_char_tokenizer()
    model = _trained_lora(tok)
    full = {key.replace("score", "value_head"): value for key, value in model.state_dict().items()}
    with pytest.raises(RewardkitError, match="do not match LlamaForSequenceClassification"):
        export_model(model, tok, tmp_path / "out", state_dict=full)


class FakeAccelerator:
    def __init__(self, kind: str, zero_stage: int | None = None, error: Exception | None = None):
        from accelerate.utils import DistributedType

        self.distributed_type = DistributedType(kind)
        self.state = SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=zero_stage))
        self.error, self.gathered = error, []

    def get_state_dict(self, model):
        self.gathered.append(model)
        if self.error:
            raise self.error
        return {"w": torch.ones(1)}


@pytest.mark.parametrize(
    "kind, zero_stage, gathers",
    [
        ("NO", None, False),
        ("MULTI_GPU", None, False),
        ("MULTI_CPU", None, False),  # whole weights on rank 0
        ("DEEPSPEED", 1, False),
        ("DEEPSPEED", 2, False),  # ZeRO-1/2 shard optimizer state and gradients only
        ("DEEPSPEED", 3, True),
        ("FSDP", None, True),
    ],
)
def test_gather_full_state_dict_only_for_sharded_weights(kind, zero_stage, gathers):
    accelerator = FakeAccelerator(kind, zero_stage)
    result = gather_full_state_dict(accelerator, "engine")
    assert (result is not None) == gathers
    assert accelerator.gathered == (["engine"] if gathers else [])
    assert gather_full_state_dict(None, "engine") is None


def test_gather_full_state_dict_says_which_deepspeed_setting_to_change():
    accelerator = FakeAccelerator("DEEPSPEED", 3, error=ValueError("Cannot get 16bit model weights"))
    with pytest.raises(RewardkitError, match='"stage3_gather_16bit_weights_on_model_save": true'):
        gather_full_state_dict(accelerator, "engine")


def _launch_args(name: str, monkeypatch):
    """What `accelerate launch --config_file NAME` resolves: its arguments and the workers' environment."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import launch as launch_utils

    load_config_from_file(str(CONFIGS / name))  # rejects unknown keys
    monkeypatch.setattr(launch_utils, "is_port_in_use", lambda port: False)  # other jobs may hold 29500
    args = launch_command_parser().parse_args(
        ["--config_file", str(CONFIGS / name), "-m", "rewardkit.cli", "train"]
    )
    args, _, _ = _validate_launch_command(args)
    return args, launch_utils.prepare_multi_gpu_env(args)


@pytest.mark.parametrize("name", ACCELERATE_CONFIGS)
def test_accelerate_config_resolves(name, monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin

    args, env = _launch_args(name, monkeypatch)
    if name == "accelerate_ddp_cpu.yaml":
        assert args.multi_gpu and args.use_cpu and args.nproc_per_node == "2" and args.main_process_port > 0
        assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    elif name == "accelerate_multi_gpu.yaml":
        assert args.multi_gpu and not args.use_cpu and args.num_machines == 1 and args.nproc_per_node == "8"
        assert env["ACCELERATE_MIXED_PRECISION"] == "bf16" and "ACCELERATE_USE_FSDP" not in env
    elif name == "accelerate_multi_node.yaml":
        assert args.multi_gpu and args.nnodes == "2" and args.nproc_per_node == "8" and args.node_rank == 0
        assert args.rdzv_endpoint == "10.0.0.1:29500"  # node 0's address, where every node meets
    else:
        assert args.use_fsdp and env["FSDP_VERSION"] == "2" and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
        with mock.patch.dict(
            os.environ, env, clear=True
        ):  # the plugin reads (and writes) the workers' environment
            plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
        assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
        assert plugin.transformer_cls_names_to_wrap is None  # taken from the model's _no_split_modules
        assert plugin.state_dict_type.name == "FULL_STATE_DICT" and plugin.cpu_ram_efficient_loading


@pytest.mark.parametrize("name", DEEPSPEED_CONFIGS)
def test_deepspeed_config_leaves_the_trainer_flags_in_charge(name):
    config = json.loads((CONFIGS / name).read_text())
    zero = config["zero_optimization"]
    assert zero["stage"] == DEEPSPEED_CONFIGS[name]
    for key in (
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert config[key] == "auto", key
    assert config["bf16"]["enabled"] == config["fp16"]["enabled"] == "auto"
    assert zero["reduce_bucket_size"] == "auto"
    assert "optimizer" not in config and "scheduler" not in config  # --optim, --lr_scheduler_type apply
    if zero["stage"] == 3:
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # export needs the full weights


@pytest.mark.parametrize("name", DEEPSPEED_CONFIGS)
def test_deepspeed_config_accepted_by_transformers_and_deepspeed(name, tmp_path):
    require("deepspeed")  # fails in CI rather than hiding the ZeRO-3 claim
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import LlamaConfig, TrainingArguments
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    try:
        args = TrainingArguments(
            str(tmp_path),
            deepspeed=str(CONFIGS / name),
            per_device_train_batch_size=2,
            gradient_accumulation_steps=4,
            max_grad_norm=0.5,
            report_to="none",
        )
        hf_config = args.hf_deepspeed_config
        assert is_deepspeed_zero3_enabled() == (DEEPSPEED_CONFIGS[name] == 3)
        hf_config.trainer_config_finalize(args, SimpleNamespace(config=LlamaConfig(hidden_size=64)), 10)
    finally:
        unset_hf_deepspeed_config()  # the config is process-global: later from_pretrained calls must not see it
    assert "auto" not in json.dumps(hf_config.config)
    ds = DeepSpeedConfig(hf_config.config)
    assert ds.zero_optimization_stage == DEEPSPEED_CONFIGS[name]
    assert (ds.train_batch_size, ds.gradient_accumulation_steps, ds.gradient_clipping) == (8, 4, 0.5)


@pytest.mark.slow
def test_score_two_cpu_processes_write_what_one_writes(scale_out_inputs, tmp_path):
    """`accelerate launch ... score`: two processes share each chunk; one output, in input order, bad rows
    kept; `--resume` after a crash, under two processes, completes the same file."""
    rows = [
        json.dumps(
            [
                {"role": "user", "content": f"Q{i}" * (i % 4 + 1)},
                {"role": "assistant", "content": "A" * (3 * i + 1)},
            ]
        )
        for i in range(7)
    ]
    rows[3] = (
        '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: go"}'
    )
    rows[5] = "{not json"
    (tmp_path / "in.jsonl").write_text("\n".join(rows) + "\n")
    flags = [
        "score",
        "--model",
        str(scale_out_inputs.root / "tiny-llama"),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--chunk_size",
        "3",
        "--skip_bad_lines",
        "true",
    ]  # chunks of 3 rows: shares of 2 and 1, or 1 and 1
    assert main([*flags, "--output", str(tmp_path / "one.jsonl")]) == 0
    two_processes = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(CONFIGS / "accelerate_ddp_cpu.yaml"),
    ]
    two_processes += ["-m", "rewardkit.cli", *flags, "--output", str(tmp_path / "two.jsonl")]
    _launch(two_processes, cwd=tmp_path)

    one, two = (
        [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        for name in ("one", "two")
    )
    assert len(two) == 6 and [set(r) for r in two] == [set(r) for r in one]
    for got, want in zip(two, one):
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, abs=1e-5) if "score" in key else value), key
    assert (tmp_path / "two.jsonl.bad.jsonl").read_text() == (tmp_path / "one.jsonl.bad.jsonl").read_text()

    # a crash after the first two rows, then --resume under the same two processes: the same file
    written = (tmp_path / "two.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "two.jsonl").write_text("".join(written[:2]))
    (tmp_path / "two.jsonl.bad.jsonl").write_text("")  # the bad row (input row 6) comes after the crash
    _launch([*two_processes, "--resume", "true"], cwd=tmp_path)
    resumed = [json.loads(line) for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert len(resumed) == len(one) and resumed[:2] == [json.loads(line) for line in written[:2]]
    for got, want in zip(resumed, one):  # the rows after the crash were batched differently: 1e-5
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, abs=1e-5) if "score" in key else value), key
    assert (tmp_path / "two.jsonl.bad.jsonl").read_text() == (tmp_path / "one.jsonl.bad.jsonl").read_text()
