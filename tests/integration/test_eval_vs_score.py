"""`rewardkit eval` scores and accuracy equal what `rewardkit score` writes for the same pairs."""

import json

import pytest
from conftest import write_synthetic_pairs

from rewardkit.cli import main


def test_eval_scores_and_accuracy_equal_the_score_output(tmp_path, tiny_llama_dir):
    data = write_synthetic_pairs(tmp_path / "pairs.jsonl", 24, seed=3)
    scored = tmp_path / "scored.jsonl"
    assert main(["score", "--model", str(tiny_llama_dir), "--input", str(data), "--output", str(scored)]) == 0
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    assert len(rows) == 24
    wins = sum(r["score_chosen"] > r["score_rejected"] for r in rows)
    argv = ["eval", "--model", str(tiny_llama_dir), "--data", str(data), "--output_dir", str(tmp_path / "ev")]
    assert main([*argv, "--n_boot", "0"]) == 0
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    items = results["items"]
    assert results["summary"]["n_items"] == len(items) == 24
    assert [it["chosen_scores"][0] for it in items] == pytest.approx(
        [r["score_chosen"] for r in rows], abs=1e-5
    )
    assert [it["rejected_scores"][0] for it in items] == pytest.approx(
        [r["score_rejected"] for r in rows], abs=1e-5
    )
    assert [it["correct"] for it in items] == [float(r["score_chosen"] > r["score_rejected"]) for r in rows]
    assert results["summary"]["accuracy"]["value"] == pytest.approx(wins / 24)
