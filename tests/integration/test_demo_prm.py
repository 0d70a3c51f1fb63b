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
    result = json.loads((out / "demo_result.json").read_text())
    held = result["heldout"]
    saved = json.loads((out / "eval" / "results.json").read_text())["summary"]
    assert held == saved  # what is printed and saved is the eval's own summary
    # threshold chosen on 20% of the 16 held-out solutions (3), metrics on the other 13
    assert (
        held["n_solutions"] == 13
        and held["threshold_chosen_on"] == "validation split of 3 solutions (seed 0)"
    )
    f1 = held["first_error"]["processbench_f1"]["value"]
    assert result["heldout_processbench_f1"] == f1
    assert f"held-out first-error F1 (ProcessBench): {f1:.3f} on 13 synthetic solutions" in printed
    assert f"step threshold {held['threshold']:.3f}, chosen on a validation split of 3" in printed
    good, bad = result["apples_good_steps"], result["apples_bad_steps"]
    assert len(good) == len(bad) == 3
    line = (
        "apples, wrong solution:   step scores "
        + ", ".join(f"{s:.3f}" for s in bad)
        + f"; min {min(bad):.3f}"
    )
    assert line in printed
    lowest = min(range(3), key=bad.__getitem__)
    assert result["apples_ok"] == (lowest == 2 and min(bad) < min(good))
    config = json.loads((out / "model" / "config.json").read_text())
    assert (
        config["architectures"] == ["BertForTokenClassification"] and config["step_separator"] == "<|step|>"
    )
    # the encoder was made causal (--step_attention causal): a step's score does not see later steps
    from rewardkit.demo.synthetic_steps import APPLES_BAD_STEPS, APPLES_STEPS_PROMPT
    from rewardkit.scorers.prm import load_prm

    assert config["is_decoder"] is True
    rm = load_prm(str(out / "model"))
    full = rm.score_steps(APPLES_STEPS_PROMPT, APPLES_BAD_STEPS).step_scores
    assert full == pytest.approx(bad, abs=1e-6)
    assert rm.score_steps(APPLES_STEPS_PROMPT, APPLES_BAD_STEPS[:2]).step_scores == pytest.approx(
        full[:2], abs=1e-6
    )
