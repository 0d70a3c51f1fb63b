import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import skip_or_fail

from rewardkit.cli import COMMANDS, load_config, main, parse_dataclasses, split_config
from rewardkit.config import translate_legacy_args
from rewardkit.errors import RewardkitError


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "score", "eval", "serve", "demo", "inspect"):
        assert f"  {name} " in out
    assert set(COMMANDS) == {"train", "score", "eval", "serve", "demo", "inspect", "env"}


@pytest.mark.parametrize(
    "command, flags",
    [
        (
            "train",
            [
                "--model_name_or_path",
                "--train_file_dir",
                "--use_peft",
                "--template_name",
                "--learning_rate",
                "--center_rewards_coefficient",
                "--gguf_file",
                "--export",
                "--packing",
                "--allow_pickle",
            ],
        ),
        (
            "score",
            ["--model", "--input", "--output", "--resume", "--skip_bad_lines", "--kind", "--allow_pickle"],
        ),
        ("eval", ["--model", "--data", "--sections", "--baseline_scores", "--n_boot", "--allow_pickle"]),
        (
            "serve",
            [
                "--model",
                "--host",
                "--port",
                "--api_key",
                "--max_batch_tokens",
                "--max_wait_ms",
                "--backend",
                "--allow_pickle",
            ],
        ),
        ("demo", ["--output_dir", "--n_train", "--use_peft"]),
    ],
)
def test_subcommand_help(command, flags):
    """Through the installed console script, as a user runs it."""
    proc = subprocess.run(
        [entry_point(), command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for flag in flags:
        assert flag in proc.stdout


def entry_point() -> str:
    """The `rewardkit` console script of this environment (pyproject's [project.scripts])."""
    found = Path(sys.executable).parent / "rewardkit"
    if not found.is_file():
        found = shutil.which("rewardkit")
        if found is None:
            skip_or_fail("the `rewardkit` entry point is not installed (pip install -e .)")
    return str(found)


def test_entry_point_runs_the_cli():
    top = subprocess.run([entry_point(), "--help"], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and all(f"  {name} " in top.stdout for name in COMMANDS)
    bad = subprocess.run([entry_point(), "nonsense"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"rewardkit: error: unknown command 'nonsense'; choose from {', '.join(COMMANDS)}"
    ]


def test_unknown_command(capsys):
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_missing_model_is_one_line_error(capsys):
    assert main(["train", "--train_file_dir", "x.jsonl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rewardkit train: error: --model_name_or_path is required (a local model folder)"


def test_unknown_flag_is_reported(capsys, tmp_path):
    assert main(["eval", "--model", str(tmp_path), "--data", "x", "--bogus", "1"]) == 2
    assert "--bogus" in capsys.readouterr().err


def test_bad_data_path_is_one_line_error(capsys, tiny_llama_dir, tmp_path):
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(tiny_llama_dir),
            "--train_file_dir",
            str(tmp_path / "none.jsonl"),
            "--output_dir",
            str(tmp_path / "o"),
            "--report_to",
            "none",
        ]
    )
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "rewardkit" in line]
    assert len(err) == 1 and "none.jsonl: no such file" in err[0]


def test_legacy_medicalgpt_flags_are_translated():
    argv = [
        "--overwrite_output_dir",
        "--evaluation_strategy",
        "steps",
        "--group_by_length",
        "True",
        "--do_train",
        "--fp16",
        "false",
        "--overwrite_output_dir",
        "true",
        "--logging_steps",
        "5",
    ]
    assert translate_legacy_args(argv) == [
        "--eval_strategy",
        "steps",
        "--train_sampling_strategy",
        "group_by_length",
        "--do_train",
        "--fp16",
        "false",
        "--logging_steps",
        "5",
    ]


def train_types():
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments

    return (ModelArguments, DataArguments, TrainingArguments, ScriptArguments)


def test_config_file_values_are_typed_defaults_and_flags_win(tmp_path):
    cfg = tmp_path / "c.yaml"
    config = {
        "model_name_or_path": "m",
        "train_file_dir": "d",
        "learning_rate": 0.001,
        "use_peft": False,
        "max_length": None,  # stays None (the old argv route turned it into the string "None")
        "lr_scheduler_kwargs": {"min_lr": 0.0001},  # stays a dict (not its Python repr)
        "evaluation_strategy": "steps",  # a MedicalGPT spelling, translated
        "target-modules": "q_proj,v_proj",  # dash spelling of a key
        "weight_decay": "3e-4",  # YAML reads 3e-4 as a string: converted as the flag's value would be
    }
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    assert load_config(str(cfg))["eval_strategy"] == "steps"
    assert split_config(["--a", "1", "--config", "x.yaml", "--b"]) == ("x.yaml", ["--a", "1", "--b"])
    assert split_config(["x.yml", "--b"]) == ("x.yml", ["--b"])
    for argv in (
        ["--config", str(cfg), "--learning_rate", "0.1"],
        ["--learning_rate", "0.1", "--config", str(cfg)],  # the command line wins wherever the file stands
        [str(cfg), "--learning-rate", "0.1"],
    ):
        model, data, training, script = parse_dataclasses(train_types(), argv, "t", {"output_dir": "o"})
        assert training.learning_rate == 0.1
        assert data.max_length is None and data.full_max_length == 1024 + 256
        assert training.lr_scheduler_kwargs == {"min_lr": 0.0001}
        assert script.use_peft is False and script.target_modules == "q_proj,v_proj"
        assert training.eval_strategy == "steps" and model.model_name_or_path == "m"
        assert training.weight_decay == 3e-4


@pytest.mark.parametrize(
    "content, message",
    [
        ({"model_name_or_path": "m", "nonsense": 1}, "unknown option\\(s\\) nonsense"),
        ({"model_name_or_path": "m", "learning_rate": {"a": 1}}, "learning_rate must be a number"),
        (
            {"model_name_or_path": "m", "export": "zip"},
            "export zip: accepted values are merged, adapter, both",
        ),
        ({"model_name_or_path": ["a", "b"]}, "model_name_or_path takes one value"),
    ],
)
def test_config_file_bad_values_name_the_option(tmp_path, content, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"train_file_dir": "d", **content}))
    with pytest.raises(RewardkitError, match=f"--config {cfg}: {message}"):
        parse_dataclasses(train_types(), ["--config", str(cfg)], "t", {"output_dir": "o"})


def test_config_list_option_takes_one_value_or_a_list(tmp_path):
    from rewardkit.config import EvalArguments, RewardModelArguments

    cfg = tmp_path / "c.yaml"
    for data, expected in (("a.jsonl", ["a.jsonl"]), (["a.jsonl", "b.jsonl"], ["a.jsonl", "b.jsonl"])):
        cfg.write_text(yaml.safe_dump({"model": "m", "data": data, "sections": None, "n_boot": 10}))
        model, args = parse_dataclasses((RewardModelArguments, EvalArguments), [str(cfg)], "t")
        assert (args.data, args.sections, args.n_boot, model.model) == (expected, None, 10, "m")


@pytest.mark.parametrize("flag", ["--output_dir", "--output-dir", "--output-dir="])
def test_output_dir_both_spellings_every_command(monkeypatch, tmp_path, flag):
    import rewardkit.demo.run
    import rewardkit.eval.run
    import rewardkit.train.run
    from rewardkit.config import RewardModelArguments

    seen = {}
    monkeypatch.setattr(rewardkit.train.run, "run_train", lambda m, d, t, s: seen.update(train=t.output_dir))
    monkeypatch.setattr(rewardkit.demo.run, "run_demo", lambda a: seen.update(demo=a.output_dir))
    monkeypatch.setattr(RewardModelArguments, "load", lambda self, device_map=None: None)

    def fake_eval(model, data, output_dir, **kw):
        seen["eval"] = output_dir
        return {"summary": {"accuracy": {"value": 1.0, "ci_low": None}, "n_items": 1}}

    monkeypatch.setattr(rewardkit.eval.run, "run_eval_files", fake_eval)
    out = str(tmp_path / "here")
    where = [flag + out] if flag.endswith("=") else [flag, out]
    assert main(["train", "--model_name_or_path", "m", "--train_file_dir", "d", *where]) == 0
    assert main(["demo", *where]) == 0
    assert main(["eval", "--model", "m", "--data", "x.jsonl", *where]) == 0
    assert seen == {"train": out, "demo": out, "eval": out}
    assert main(["train", "--model_name_or_path", "m", "--train_file_dir", "d"]) == 0
    assert seen["train"] == "outputs/reward-model"  # the default only when neither spelling is given


def test_bad_config_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "expected a mapping" in capsys.readouterr().err
