"""`rewardkit eval` accuracy equals counting chosen > rejected by hand in `rewardkit score` output."""

import json
from pathlib import Path

from rewardkit.cli import main

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "trl.jsonl"


def test_eval_accuracy_equals_hand_count_from_score_output(tmp_path, tiny_llama_dir):
    scored = tmp_path / "scored.jsonl"
    assert main(["score", "--model", str(tiny_llama_dir), "--input", str(DATA), "--output", str(scored)]) == 0
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    wins = sum(r["score_chosen"] > r["score_rejected"] for r in rows)
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_llama_dir),
                "--data",
                str(DATA),
                "--output_dir",
                str(tmp_path / "ev"),
                "--n_boot",
                "0",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["summary"]["n_items"] == len(rows)
    assert results["summary"]["accuracy"]["value"] == wins / len(rows)
