"""The safe defaults, through the commands: no pickle weights without --allow_pickle, no remote code
without --trust_remote_code, the server bound to 127.0.0.1 unless --host says otherwise."""

import json
import logging

import pytest
import torch
from conftest import make_char_tokenizer, make_tiny_llama, write_synthetic_pairs

from rewardkit.cli import main
from rewardkit.core.loading import safe_weights
from rewardkit.errors import RewardkitError
from rewardkit.scorers.load import load_reward_model

CONV = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def save_pickled(model, tokenizer, folder):
    """A checkpoint folder whose weights are only a pickle `pytorch_model.bin`."""
    folder.mkdir(parents=True)
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


@pytest.fixture
def pickle_dir(tmp_path):
    tok = make_char_tokenizer()
    return save_pickled(make_tiny_llama(tok), tok, tmp_path / "pickled")


def refused(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--allow_pickle" in err and "pytorch_model.bin" in err
    return err


def test_safe_weights_refuses_a_pickle_only_folder(pickle_dir, tiny_llama_dir):
    with pytest.raises(RewardkitError, match=r"--model .*pickled: the weights are pickle files only"):
        safe_weights(str(pickle_dir))
    assert safe_weights(str(pickle_dir), allow_pickle=True) == {}
    assert safe_weights(str(tiny_llama_dir)) == {"use_safetensors": True}
    (pickle_dir / "model.safetensors").write_bytes(b"")  # safetensors present: transformers picks those
    assert safe_weights(str(pickle_dir)) == {"use_safetensors": True}


def test_score_refuses_pickle_weights_unless_allowed(tmp_path, pickle_dir, tiny_llama_dir, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(CONV) + "\n")
    argv = [
        "score",
        "--model",
        str(pickle_dir),
        "--input",
        str(data),
        "--output",
        str(tmp_path / "out.jsonl"),
    ]
    err = refused(capsys, argv)
    assert err.startswith("rewardkit score: error: --model ")
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").read_text() == ""
    assert main([*argv, "--allow_pickle", "true"]) == 0
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    # the same weights as the tiny_llama_dir checkpoint (same seed), so the same score
    assert row["score"] == pytest.approx(load_reward_model(str(tiny_llama_dir)).score([CONV])[0], abs=1e-5)


def test_eval_refuses_pickle_weights(tmp_path, pickle_dir, capsys):
    data = write_synthetic_pairs(tmp_path / "pairs.jsonl", 4)
    refused(
        capsys, ["eval", "--model", str(pickle_dir), "--data", str(data), "--output_dir", str(tmp_path / "e")]
    )
    assert not (tmp_path / "e" / "results.json").exists()


def test_serve_refuses_pickle_weights(pickle_dir, capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    refused(capsys, ["serve", "--model", str(pickle_dir)])


def test_train_refuses_pickle_weights(tmp_path, pickle_dir, capsys):
    data = write_synthetic_pairs(tmp_path / "pairs.jsonl", 8)
    argv = ["train", "--model_name_or_path", str(pickle_dir), "--train_file_dir", str(data)]
    err = refused(
        capsys, [*argv, "--output_dir", str(tmp_path / "rm"), "--use_cpu", "true", "--report_to", "none"]
    )
    assert "--model_name_or_path" in err
    assert not (tmp_path / "rm" / "model.safetensors").exists()


def test_generative_and_value_head_loaders_refuse_pickle_weights(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_char_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    cfg.update({"num_attention_heads": 4, "num_key_value_heads": 2})
    causal = save_pickled(LlamaForCausalLM(cfg), tok, tmp_path / "judge")
    with pytest.raises(RewardkitError, match="--allow_pickle"):
        load_reward_model(str(causal), kind="generative", mode="logprob")
    judge = load_reward_model(str(causal), kind="generative", mode="logprob", allow_pickle=True)
    assert 0 < judge.score_pairs(["2+2?"], ["4"], ["5"])[0][0] < 1
    # a LLaMA-Factory value-head folder whose backbone is a pickle file
    from safetensors.torch import save_file

    save_file({"v_head.summary.weight": torch.ones(1, 32)}, causal / "value_head.safetensors")
    with pytest.raises(RewardkitError, match="--allow_pickle"):
        load_reward_model(str(causal), kind="value_head")
    with pytest.raises(RewardkitError, match="--allow_pickle"):
        load_reward_model(str(causal), kind="remote_code", trust_remote_code=True)


# ------------------------------------------------------------------ remote code off by default
def test_score_does_not_run_model_code_without_trust_remote_code(tmp_path, tiny_llama_dir, capsys):
    sentinel = tmp_path / "code-ran"
    (tiny_llama_dir / "modeling_evil.py").write_text(
        f"open({str(sentinel)!r}, 'w').write('ran')\nfrom transformers import LlamaForSequenceClassification as RM\n"
    )
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.RM"}
    (tiny_llama_dir / "config.json").write_text(json.dumps(config))
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(CONV) + "\n")
    argv = [
        "score",
        "--model",
        str(tiny_llama_dir),
        "--input",
        str(data),
        "--output",
        str(tmp_path / "o.jsonl"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--trust_remote_code" in err and not sentinel.exists()
    assert (
        main(["eval", "--model", str(tiny_llama_dir), "--data", str(data), "--output_dir", str(tmp_path)])
        == 2
    )
    assert "--trust_remote_code" in capsys.readouterr().err and not sentinel.exists()


# ------------------------------------------------------------------ the serve command
@pytest.fixture
def started(monkeypatch):
    """Runs `rewardkit serve` with uvicorn.run replaced: records the app and bind address it gets."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.delenv("REWARDKIT_API_KEY", raising=False)
    return calls


def test_serve_binds_loopback_by_default_and_flags_reach_the_app(tiny_llama_dir, started):
    from fastapi.testclient import TestClient

    assert main(["serve", "--model", str(tiny_llama_dir), "--port", "8123", "--max_items", "2"]) == 0
    (call,) = started
    assert (call["host"], call["port"]) == ("127.0.0.1", 8123)
    with TestClient(call["app"]) as client:
        ok = client.post("/score", json={"conversations": [CONV, CONV]})
        too_many = client.post("/score", json={"conversations": [CONV] * 3})
        assert client.get("/docs").status_code == 200
    scores = ok.json()["scores"]
    assert scores == pytest.approx(load_reward_model(str(tiny_llama_dir)).score([CONV, CONV]), abs=1e-5)
    assert too_many.status_code in (413, 422)  # --max_items 2 reached the app


def test_serve_api_key_from_the_environment_and_public_host_warning(
    tiny_llama_dir, started, monkeypatch, caplog
):
    from fastapi.testclient import TestClient

    with caplog.at_level(logging.WARNING):
        assert main(["serve", "--model", str(tiny_llama_dir), "--host", "0.0.0.0"]) == 0
    assert "without an API key" in caplog.text and started[0]["host"] == "0.0.0.0"
    caplog.clear()
    monkeypatch.setenv("REWARDKIT_API_KEY", "s3cret")
    with caplog.at_level(logging.WARNING):
        assert main(["serve", "--model", str(tiny_llama_dir), "--host", "0.0.0.0"]) == 0
    assert "without an API key" not in caplog.text
    with TestClient(started[1]["app"]) as client:
        body = {"conversations": [CONV]}
        assert client.post("/score", json=body).status_code == 401
        good = client.post("/score", json=body, headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200 and len(good.json()["scores"]) == 1


def test_serve_model_and_limit_flags_reach_the_app(tiny_llama_dir, started):
    """--api_key, --max_length (a model flag), --normalize_reward and --max_tokens_per_item, each seen
    in what the served app answers."""
    from fastapi.testclient import TestClient

    config = json.loads((tiny_llama_dir / "config.json").read_text())
    config.update(reward_mean=0.5, reward_std=2.0)  # what `rewardkit train` writes after training
    (tiny_llama_dir / "config.json").write_text(json.dumps(config))
    argv = ["serve", "--model", str(tiny_llama_dir), "--api_key", "k3y", "--max_length", "40"]
    assert main([*argv, "--normalize_reward", "true", "--max_tokens_per_item", "120"]) == 0
    (call,) = started
    # an old first exchange of 60 characters, then the question and answer that are scored
    long = [
        {"role": "user", "content": "x" * 30},
        {"role": "assistant", "content": "y" * 30},
        *CONV,
    ]
    full = load_reward_model(str(tiny_llama_dir))
    clipped = load_reward_model(str(tiny_llama_dir), max_length=40)
    (expected,) = clipped.score_detailed([long])
    assert expected.truncated and expected.num_tokens <= 40
    assert expected.score != pytest.approx(full.score([long])[0], abs=1e-4)  # the trimming shows in the score
    with TestClient(call["app"]) as client:
        assert client.post("/score", json={"conversations": [long]}).status_code == 401
        auth = {"Authorization": "Bearer k3y"}
        body = client.post("/score", json={"conversations": [long, CONV]}, headers=auth).json()
        text = clipped.tokenizer.apply_chat_template(CONV, tokenize=False)
        rewards = client.post("/get_reward", json={"query": [text]}, headers=auth).json()["rewards"]
        over = client.post("/score", json={"conversations": [[*long, *long]]}, headers=auth)
    assert body["scores"][0] == pytest.approx(expected.score, abs=1e-5)
    assert (body["truncated"][0], body["num_tokens"][0]) == (True, expected.num_tokens)
    assert rewards == pytest.approx([(body["scores"][1] - 0.5) / 2.0], abs=1e-5)  # normalised, not raw
    assert over.status_code == 413 and "max_tokens_per_item" in over.json()["detail"]
