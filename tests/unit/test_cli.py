import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import skip_or_fail

from rewardkit.cli import COMMANDS, config_to_argv, expand_config, main
from rewardkit.config import translate_legacy_args


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "score", "eval", "serve", "demo"):
        assert f"  {name} " in out
    assert set(COMMANDS) == {"train", "score", "eval", "serve", "demo"}


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
        "rewardkit: error: unknown command 'nonsense'; choose from train, score, eval, serve, demo"
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


def test_config_file_then_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"model_name_or_path": "m", "learning_rate": 0.001, "use_peft": False}, sort_keys=False
        )
    )
    assert config_to_argv(str(cfg)) == [
        "--model_name_or_path",
        "m",
        "--learning_rate",
        "0.001",
        "--use_peft",
        "False",
    ]
    assert expand_config(["--config", str(cfg), "--learning_rate", "0.1"])[-2:] == ["--learning_rate", "0.1"]
    assert expand_config([str(cfg)])[:2] == ["--model_name_or_path", "m"]


def test_bad_config_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "expected a mapping" in capsys.readouterr().err
