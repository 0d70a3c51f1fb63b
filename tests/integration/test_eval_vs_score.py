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


def test_eval_reads_several_data_paths_and_folders_with_sections(tmp_path, tiny_llama_dir):
    """`--data` takes files and folders together; `--sections` groups the rows' subsets."""
    (tmp_path / "folder").mkdir()
    rows = [
        json.loads(line)
        for line in write_synthetic_pairs(tmp_path / "all.jsonl", 9, seed=5).read_text().splitlines()
    ]
    for name, part, subset in (
        ("a.jsonl", rows[:3], "easy"),
        ("folder/b.jsonl", rows[3:6], "hard"),
        ("folder/c.jsonl", rows[6:], "hard"),
    ):
        (tmp_path / name).write_text("".join(json.dumps({**r, "subset": subset}) + "\n" for r in part))
    (tmp_path / "sections.yaml").write_text("Easy: [easy]\nHard: [hard]\n")
    argv = [
        "eval",
        "--model",
        str(tiny_llama_dir),
        "--data",
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "folder"),
    ]
    assert (
        main(
            [
                *argv,
                "--sections",
                str(tmp_path / "sections.yaml"),
                "--output_dir",
                str(tmp_path / "ev"),
                "--n_boot",
                "0",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    s = results["summary"]
    assert s["n_items"] == 9 and [it["subset"] for it in results["items"]].count("hard") == 6
    hard = [it["correct"] for it in results["items"] if it["subset"] == "hard"]
    easy = [it["correct"] for it in results["items"] if it["subset"] == "easy"]
    assert s["sections"]["Hard"]["score"]["value"] == pytest.approx(sum(hard) / 6)
    assert s["sections"]["Easy"]["score"]["value"] == pytest.approx(sum(easy) / 3)
    assert s["section_score"]["value"] == pytest.approx((sum(hard) / 6 + sum(easy) / 3) / 2)
