"""score, eval, serve and demo with a process reward model (a tiny random PRM checkpoint built here)."""

import json

import pytest
from fastapi.testclient import TestClient
from test_prm import tiny_token_llama  # tests/unit is on sys.path (pytest rootdir-relative imports)

from rewardkit.cli import main
from rewardkit.core.steps import add_step_separator
from rewardkit.data.steps import StepExample
from rewardkit.demo.synthetic_steps import make_step_set, to_trl_row


@pytest.fixture
def prm_dir(tmp_path, char_tokenizer):
    model = tiny_token_llama(char_tokenizer)
    add_step_separator(char_tokenizer, model)
    out = tmp_path / "prm"
    model.save_pretrained(out)
    char_tokenizer.save_pretrained(out)
    return out


STEP_ROW = {"prompt": "2+3*4?", "completions": ["3*4=12", "2+12=14"], "labels": [True, True]}


def test_score_writes_step_scores_per_step_row(tmp_path, prm_dir):
    rows = tmp_path / "in.jsonl"
    ms = {"input": "What is 7-2? 7-2=4. ки\nSo 4. ки", "label": "What is 7-2? 7-2=4. -\nSo 4. -"}
    conv = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "1+1=2\nSo 2."}]
    rows.write_text("\n".join(json.dumps(r) for r in (STEP_ROW, ms, conv)) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", "--model", str(prm_dir), "--input", str(rows), "--output", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [len(r["step_scores"]) for r in lines] == [2, 2, 2]
    for r in lines:
        assert all(0 < p < 1 for p in r["step_scores"]) and r["score"] == pytest.approx(min(r["step_scores"]))
    assert lines[0]["completions"] == STEP_ROW["completions"]  # the input row is kept


def test_eval_writes_step_report(tmp_path, prm_dir):
    data = tmp_path / "steps.jsonl"
    data.write_text("".join(json.dumps(to_trl_row(e)) + "\n" for e in make_step_set(6, seed=3)))
    out = tmp_path / "eval"
    assert (
        main(
            ["eval", "--model", str(prm_dir), "--data", str(data), "--output_dir", str(out), "--n_boot", "20"]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    s = results["summary"]
    assert s["threshold_chosen_on"].startswith("validation split of 2 solutions")
    assert s["n_solutions"] == 10 and {"accuracy", "auroc", "bad_f1"} <= set(s["steps"])
    assert set(s["best_of_n"]) >= {"min", "prod", "last", "mean", "n_prompts"}
    assert "ProcessBench F1" in (out / "report.md").read_text() and (out / "step_scores.png").is_file()


def test_serve_step_scores_and_vllm_pooling_shape(prm_dir):
    from rewardkit.scorers.load import load_reward_model
    from rewardkit.serve.app import create_app

    rm = load_reward_model(str(prm_dir))
    conv = [{"role": "user", "content": "2+3*4?"}, {"role": "assistant", "content": "3*4=12\n2+12=14"}]
    expected = rm.score_steps(conv[:1], ["3*4=12", "2+12=14"]).step_scores
    with TestClient(create_app(rm)) as c:
        body = c.post("/score", json={"conversations": [conv]}).json()
        assert body["step_scores"][0] == pytest.approx(expected, abs=1e-6)
        assert body["scores"][0] == pytest.approx(min(expected), abs=1e-6)
        pooled = c.post("/pooling", json={"messages": conv}).json()
        data = pooled["data"][0]["data"]
        assert [len(d) for d in data] == [2, 2]
        assert [d[1] for d in data] == pytest.approx(expected, abs=1e-6)
        assert [d[0] + d[1] for d in data] == pytest.approx([1.0, 1.0])
        ranked = c.post(
            "/compare", json={"prompt": "2+3*4?", "responses": ["3*4=12\n2+12=14", "3*4=11"]}
        ).json()
        assert len(ranked["step_scores"]) == 2 and sorted(ranked["ranking"]) == [0, 1]


def test_help_mentions_prm_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--objective" in text and "--step_separator" in text and "--train_on_last_step_only" in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--objective" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--step_threshold" in capsys.readouterr().out


def test_position_only_baseline_auroc_by_hand():
    from rewardkit.eval.prm_run import summarize_steps

    # labels (1, 0) and (1, 1, 0): earliness (0, -1) and (0, -1, -2); good steps 0, 0, -1, bad -1, -2.
    # good above bad: 0 > -1, 0 > -2 (twice: 4), -1 = -1 (a tie: 1/2), -1 > -2 (1) -> 5.5 of 6 pairs
    scores = [[0.9, 0.2], [0.8, 0.7, 0.1]]
    labels = [[1.0, 0.0], [1.0, 1.0, 0.0]]
    examples = [StepExample([{"role": "user", "content": "q"}], ["a"] * len(y), y) for y in labels]
    s = summarize_steps(scores, labels, examples, threshold=0.5, n_boot=0, seed=0)
    assert s["steps"]["position_auroc"]["value"] == pytest.approx(5.5 / 6)
    assert s["steps"]["auroc"]["value"] == 1.0  # the scores themselves separate perfectly


def test_demo_learning_rate_default_depends_on_the_objective(monkeypatch, tmp_path):
    import rewardkit.demo.prm as prm_demo
    import rewardkit.train.run as train_run
    from rewardkit.demo.run import DemoArguments, run_demo

    class Stop(Exception):
        pass

    def fake_train(model_args, data_args, training_args, script_args):
        raise Stop(training_args.learning_rate)

    monkeypatch.setattr(train_run, "run_train", fake_train)
    with pytest.raises(Stop, match=r"^0\.0001$"):
        run_demo(DemoArguments(output_dir=str(tmp_path), n_train=4, n_eval=2))

    seen = []
    monkeypatch.setattr(prm_demo, "run_prm_demo", lambda args: seen.append(args) or {})
    run_demo(DemoArguments(objective="prm"))
    run_demo(DemoArguments(objective="prm", learning_rate=5e-5))
    assert [a.learning_rate for a in seen] == [2e-4, 5e-5]
    assert (seen[0].step_contrast_weight, seen[0].step_attention) == (10.0, "causal")
