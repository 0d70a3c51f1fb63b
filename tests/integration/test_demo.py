import json

import pytest

from rewardkit.cli import main
from rewardkit.demo.synthetic import FAMILIES


@pytest.mark.slow
def test_demo_small_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--output_dir",
                str(out),
                "--n_train",
                "48",
                "--n_eval",
                "16",
                "--max_length",
                "160",
                "--per_device_train_batch_size",
                "8",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "held-out accuracy:" in printed
        and "Score for response 1" in printed
        and "Score for response 2" in printed
    )
    result = json.loads((out / "demo_result.json").read_text())
    assert 0.0 <= result["heldout_accuracy"] <= 1.0 and len(result["apples_scores"]) == 2
    assert sorted(result["family_accuracy"]) == sorted(FAMILIES)  # 16 held-out pairs: 4 per family
    for family in FAMILIES:
        assert f"  {family} " in printed
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "results.json").is_file()
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "data" / "train.jsonl").read_text().count("\n") == 48
