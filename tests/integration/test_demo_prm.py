import json

import pytest

from rewardkit.cli import main


@pytest.mark.slow
def test_prm_demo_small_end_to_end(tmp_path, capsys):
    """The PRM demo on MiniLM, reduced (48 training solutions): every stage runs and reports."""
    out = tmp_path / "demo-prm"
    argv = ["demo", "--objective", "prm", "--output_dir", str(out), "--n_train", "48", "--n_eval", "16"]
    assert main(argv + ["--per_device_train_batch_size", "8", "--max_length", "192"]) == 0
    printed = capsys.readouterr().out
    assert "held-out first-error F1 (ProcessBench):" in printed and "apples, wrong solution:" in printed
    result = json.loads((out / "demo_result.json").read_text())
    assert 0.0 <= result["heldout_processbench_f1"] <= 1.0
    assert len(result["apples_good_steps"]) == len(result["apples_bad_steps"]) == 3
    assert result["heldout"]["n_solutions"] == 16 and (out / "eval" / "report.md").is_file()
    config = json.loads((out / "model" / "config.json").read_text())
    assert (
        config["architectures"] == ["BertForTokenClassification"] and config["step_separator"] == "<|step|>"
    )
