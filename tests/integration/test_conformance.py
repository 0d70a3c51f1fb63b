"""Conformance with the field's files, clients and consumers (issue 11), each on tiny models: the
field's data in train, score and eval; OpenRLHF's remote-RM client text against the other routes;
exported checkpoints read by transformers' pipeline; the CLI conventions; MedicalGPT's run_rm.sh."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from rewardkit.scorers.base import PointwiseMixin, Score
from rewardkit.scorers.load import load_reward_model

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT.parent / "shared" / "data" / "field-formats"
FIX = ROOT / "tests" / "fixtures" / "field"
sys.path.insert(0, str(ROOT / "tests"))
from conftest import make_char_tokenizer, make_tiny_llama  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": answer}]
    for answer in ("4", "It is 5.", "Four.")
]


@pytest.fixture(scope="module")
def smollm2_tokenizer_rm(tmp_path_factory, smollm2_dir):
    """A tiny random Llama classifier with SmolLM2's own tokenizer and ChatML chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    out = tmp_path_factory.mktemp("smol-tok-rm")
    make_tiny_llama(tok).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def openrlhf_query(tok, conv: list[dict]) -> str:
    """What OpenRLHF's remote-RM client sends as `query`: the prompt ids (chat template with the
    generation prompt) + the generated ids ending at EOS, decoded with special tokens."""
    prompt = tok.apply_chat_template(conv[:-1], tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids += tok(conv[-1]["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return tok.decode(ids, skip_special_tokens=False)


def routes_agree(folder: Path, template_name: str = "auto") -> dict[str, list[float]]:
    from fastapi.testclient import TestClient

    from rewardkit.serve.app import create_app

    rm = load_reward_model(str(folder), template_name=template_name)
    queries = [openrlhf_query(rm.tokenizer, c) for c in CONVERSATIONS]
    got = {"python": rm.score(CONVERSATIONS)}
    with TestClient(create_app(rm)) as client:
        body = {"query": queries, "prompts": [c[0]["content"] for c in CONVERSATIONS], "labels": ["4"] * 3}
        got["get_reward"] = client.post("/get_reward", json=body).json()["rewards"]
        got["score"] = client.post("/score", json={"conversations": CONVERSATIONS}).json()["scores"]
        got["pooling_messages"] = [
            client.post("/pooling", json={"messages": c}).json()["data"][0]["data"][0] for c in CONVERSATIONS
        ]
        got["pooling_input"] = [
            d["data"][0] for d in client.post("/pooling", json={"input": queries}).json()["data"]
        ]
    # the seed article's snippet on the same checkpoint
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        got["seed_snippet"] = [
            model(**rm.tokenizer.apply_chat_template(c, tokenize=True, return_tensors="pt", return_dict=True))
            .logits[0][0]
            .item()
            for c in CONVERSATIONS
        ]
    return got


def assert_same(got: dict[str, list[float]]) -> None:
    reference = got["python"]
    for route, values in got.items():
        assert values == pytest.approx(reference, abs=1e-4), route


def test_openrlhf_client_text_gets_the_same_reward_chatml(smollm2_tokenizer_rm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_rm)
    query = openrlhf_query(tok, CONVERSATIONS[0])
    assert query.endswith("4<|im_end|>")  # the client stops at EOS; the template writes "<|im_end|>\n"
    assert tok.apply_chat_template(CONVERSATIONS[0], tokenize=False).endswith("4<|im_end|>\n")
    assert_same(routes_agree(smollm2_tokenizer_rm))


def char_tokenizer_decoding_as_text():
    from tokenizers import decoders

    tok = make_char_tokenizer()
    tok.backend_tokenizer.decoder = decoders.Fuse()  # decode joins characters (WordLevel adds spaces)
    return tok


def test_openrlhf_client_text_template_ending_at_eos(tmp_path):
    """The char tokenizer's template ends a turn with EOS itself: nothing to complete."""
    tok = char_tokenizer_decoding_as_text()
    make_tiny_llama(tok).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert_same(routes_agree(tmp_path))


def test_openrlhf_client_text_template_without_turn_end(tmp_path):
    """A registry template writes nothing after the answer: the client's trailing EOS is not read."""
    tok = char_tokenizer_decoding_as_text()
    make_tiny_llama(tok).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    got = routes_agree(tmp_path, template_name="plain")
    got.pop("seed_snippet")  # the saved tokenizer carries its own template, not 'plain'
    assert_same(got)


@pytest.mark.parametrize(
    "text, suffix, expected",
    [
        ("a<|im_end|>", "<|im_end|>\n", "a<|im_end|>\n"),  # ChatML (SmolLM2, Qwen): the newline is added
        ("a<|im_end|>\n", "<|im_end|>\n", "a<|im_end|>\n"),  # already the template's ending
        ("a<|eot_id|>", "<|eot_id|>", "a<|eot_id|>"),  # Llama-3: the turn ends at the token itself
        ("a<end_of_turn>", "<end_of_turn>\n", "a<end_of_turn>\n"),  # Gemma
        ("a</s>", "", "a"),  # a template that writes nothing after the answer: the client's EOS goes
        ("a<", "<|im_end|>\n", "a<"),  # only a whole special token counts as the turn's end
    ],
)
def test_complete_turn_rule(text, suffix, expected):
    from rewardkit.data.tokenize import complete_turn

    special = ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "</s>"]
    assert complete_turn(text, suffix, special, "</s>") == expected


# ---- MedicalGPT's scripts/run_rm.sh, as it is, with only the model, data and output paths changed ----


def run_rm_sh(model: Path, data: Path, out: Path, report_to: str = "tensorboard") -> list[str]:
    return (
        f"train --model_name_or_path {model} --train_file_dir {data} --validation_file_dir {data} "
        "--per_device_train_batch_size 4 --per_device_eval_batch_size 4 --do_train --do_eval --use_peft True "
        "--seed 42 --max_train_samples 1000 --max_eval_samples 10 --num_train_epochs 1 --learning_rate 2e-5 "
        "--warmup_ratio 0.05 --weight_decay 0.001 --logging_strategy steps --logging_steps 10 --eval_steps 50 "
        "--eval_strategy steps --save_steps 500 --save_strategy steps --save_total_limit 3 "
        f"--max_source_length 1024 --max_target_length 256 --output_dir {out} --overwrite_output_dir "
        "--ddp_timeout 30000 --logging_first_step True --target_modules all --lora_rank 8 --lora_alpha 16 "
        f"--lora_dropout 0.05 --bf16 --torch_dtype bfloat16 --device_map auto --report_to {report_to} "
        "--ddp_find_unused_parameters False --remove_unused_columns False --gradient_checkpointing True"
    ).split()


def test_run_rm_sh_without_tensorboard_is_one_line_before_loading(tmp_path, capsys):
    from rewardkit.cli import main

    missing_model = tmp_path / "not-loaded"  # never read: the error comes first
    assert main(run_rm_sh(missing_model, FIX / "medicalgpt_reward.jsonl", tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "rewardkit train: error: --report_to tensorboard: tensorboard is not installed; "
        "pip install tensorboard (or pip install 'rewardkit[tensorboard]'), or pass --report_to none"
    )


def test_push_to_hub_offline_is_one_line_at_once(tmp_path, capsys, monkeypatch):
    from rewardkit.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["train", "--model_name_or_path", str(tmp_path / "not-loaded"), "--train_file_dir", str(FIX)]
    assert main(argv + ["--output_dir", str(tmp_path / "o"), "--report_to", "none", "--push_to_hub"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith("rewardkit train: error: --push_to_hub: HF_HUB_OFFLINE is set")
    )


@pytest.fixture(scope="module")
def run_rm_sh_model(tmp_path_factory):
    """run_rm.sh's flags (bf16 on a CPU, gradient checkpointing, LoRA on every linear layer) on a tiny Llama
    and MedicalGPT's current reward data; --report_to none is the only change (no tensorboard here)."""
    from rewardkit.cli import main

    root = tmp_path_factory.mktemp("run-rm-sh")
    tok = make_char_tokenizer()
    make_tiny_llama(tok).save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    if torch.cuda.is_available():
        pytest.skip("checks the no-GPU path of --bf16")
    assert (
        main(run_rm_sh(root / "base", FIX / "medicalgpt_reward.jsonl", root / "out", report_to="none")) == 0
    )
    return root / "out"


def test_run_rm_sh_runs_on_cpu_and_exports_a_raw_reward_checkpoint(run_rm_sh_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    config = json.loads((run_rm_sh_model / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "reward"}
    assert config["mean"] == config["reward_mean"] and config["std"] == config["reward_std"]
    model = AutoModelForSequenceClassification.from_pretrained(run_rm_sh_model).eval()
    tok = AutoTokenizer.from_pretrained(run_rm_sh_model)
    text = tok.apply_chat_template(CONVERSATIONS[1], tokenize=False)
    with torch.no_grad():
        raw = model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0][0].item()
    classify = pipeline("text-classification", model=model, tokenizer=tok)  # function_to_apply: the default
    (out,) = classify(text, add_special_tokens=False)
    assert out["label"] == "reward" and out["score"] == pytest.approx(raw, abs=1e-5)
    assert out["score"] != pytest.approx(1 / (1 + math.exp(-raw)), abs=1e-3)  # not sigmoid(reward)


def test_model_card(run_rm_sh_model):
    card = (run_rm_sh_model / "README.md").read_text()
    metrics = json.loads((run_rm_sh_model / "rewardkit_metrics.json").read_text())["eval"]
    head = card.split("---")[1]
    assert "library_name: transformers" in head and "- reward-model" in head and "pipeline_tag" in head
    assert "medicalgpt_reward.jsonl" in card and f"| accuracy | {metrics['eval_accuracy']:.4f} |" in card
    assert "apply_chat_template(conv, tokenize=True" in card


@pytest.mark.slow  # a fresh interpreter imports torch and transformers: about 15 s on a busy 2-core machine
def test_run_rm_sh_through_the_installed_entry_point(tmp_path):
    """The whole run_rm.sh command line, as a shell runs it: the `rewardkit` console script of this
    environment (pyproject's [project.scripts]) in a fresh process, on a tiny Llama."""
    import os
    import subprocess

    entry = Path(sys.executable).parent / "rewardkit"
    if not entry.is_file():
        from conftest import skip_or_fail

        skip_or_fail(f"{entry}: the `rewardkit` entry point is not installed (pip install -e .)")
    tok = make_char_tokenizer()
    make_tiny_llama(tok).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    data, out = FIX / "medicalgpt_reward.jsonl", tmp_path / "out"
    argv = run_rm_sh(tmp_path / "base", data, out, report_to="none")
    env = dict(os.environ, OMP_NUM_THREADS="1")  # a tiny model: more threads only wait on each other
    proc = subprocess.run([str(entry), *argv], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    metrics = json.loads((out / "rewardkit_metrics.json").read_text())
    assert metrics["train"]["train_samples"] == 2 and metrics["eval"]["eval_samples"] == 2  # both rows
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and config["dtype"] == "bfloat16"
    assert {"reward_mean", "reward_std"} <= set(config) and (out / "model.safetensors").is_file()
    assert not (out / "adapter_model.safetensors").exists()  # --use_peft True: exported merged
    rm = load_reward_model(str(out))
    assert rm.kind == "seq_classifier" and all(math.isfinite(s) for s in rm.score(CONVERSATIONS))


# ---- CLI conventions ----


def test_python_dash_m_version_and_env():
    import subprocess

    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    run = [sys.executable, "-m", "rewardkit"]
    from rewardkit import __version__

    version = subprocess.run(run + ["--version"], env=env, capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"rewardkit {__version__}"
    out = subprocess.run(run + ["env"], env=env, capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(None, 1) for line in out.splitlines() if " " in line)
    assert lines["torch"].strip() == torch.__version__ and lines["device"].startswith(("cpu", "cuda"))
    assert {"transformers", "packaged:minilm", "packaged:smollm2"} <= set(lines)
    assert "env" in subprocess.run(run + ["--help"], env=env, capture_output=True, text=True).stdout
    helped = subprocess.run(run + ["env", "--help"], env=env, capture_output=True, text=True, check=True)
    assert helped.stdout.startswith("usage: rewardkit env")


def test_hub_ids_come_from_the_local_cache_offline(tmp_path, monkeypatch, tiny_llama_dir):
    import shutil

    from huggingface_hub import constants

    from rewardkit.errors import RewardkitError

    snapshot = tmp_path / "hub" / "models--org--tiny-rm" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_llama_dir, snapshot)
    (tmp_path / "hub" / "models--org--tiny-rm" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny-rm" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_hub = load_reward_model("org/tiny-rm").score(CONVERSATIONS)
    assert from_hub == pytest.approx(load_reward_model(str(tiny_llama_dir)).score(CONVERSATIONS), abs=1e-6)
    with pytest.raises(RewardkitError) as err:
        load_reward_model("org/not-cached")
    assert str(err.value).startswith(
        "--model org/not-cached: not a local folder, and this Hub model is not in"
    )
    assert "\n" not in str(err.value)


# ---- RewardBench rows through eval ----


class AnswerIsScore(PointwiseMixin):
    """Each answer's text is its score ("2.5" scores 2.5): every expected figure is worked out by hand."""

    kind = "fake"

    def score_detailed(self, conversations):
        return [Score(float(c[-1]["content"]), 1, False) for c in conversations]


def rb2_row(item_id, subset, good, bad):
    return {"id": item_id, "subset": subset, "prompt": "q", "num_correct": len(good),
            "chosen": [str(s) for s in good], "rejected": [str(s) for s in bad]}  # fmt: skip


def test_rewardbench2_ids_kept_and_ties_scored_with_their_own_rule(tmp_path):
    from rewardkit.eval.run import run_eval_files

    rows = [
        rb2_row("ref:0", "Ties", [2.0], [1.0, 0.5]),
        rb2_row("tied:0", "Ties", [2.0, 1.8], [1.5]),
        rb2_row("ref:1", "Ties", [0.0], [1.0]),
        rb2_row("tied:1", "Ties", [3.0, 1.0], [0.0]),
        rb2_row("f-7", "Factuality", [1.0], [2.0, 0.0, 0.5]),
        rb2_row("f-8", "Factuality", [3.0], [2.0, 0.0, 0.5]),
    ]
    data = tmp_path / "rb2.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sections = ROOT / "configs" / "rewardbench_v2_sections.yaml"
    results = run_eval_files(
        AnswerIsScore(), [data], output_dir=tmp_path / "out", sections_file=sections, n_boot=0, progress=False
    )
    assert [i["id"] for i in results["items"]] == [r["id"] for r in rows]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [i["id"] for i in saved["items"]] == [r["id"] for r in rows]
    # by hand: ref accuracy 1/2, tied accuracy 2/2; "correct closer than wrong" 1/2, hard 1/2;
    # tie-break mean(tanh(0.3/0.2 - 1), tanh(-1/2 - 1)); plain best-of-N credit would give 0.75
    tie_break = (math.tanh(0.5) + math.tanh(-1.5)) / 2
    ties = 0.30 * 1.0 + 0.30 * 0.5 + 0.20 * 0.5 + 0.20 * 0.5 + 0.01 * tie_break
    summary = results["summary"]
    assert summary["subsets"]["Ties"]["accuracy"]["value"] == pytest.approx(ties, abs=1e-12)
    assert summary["subsets"]["Factuality"]["accuracy"]["value"] == 0.5
    # four categories are missing: RewardBench leaves them out; the overall is the mean of those present
    assert set(summary["sections"]) == {"Factuality", "Ties"}
    assert summary["section_score"]["value"] == pytest.approx((ties + 0.5) / 2, abs=1e-12)


def test_rewardbench_v1_fixed_count_weighting_on_a_subsample(tmp_path):
    from rewardkit.eval.run import run_eval_files

    # 2 rows of alpacaeval-easy (both right) and 4 of mt-bench-easy (1 right): RewardBench weights them
    # 100 : 28 whatever the rows present, not 2 : 4
    rows = [
        {"id": i, "subset": "alpacaeval-easy", "prompt": "q", "chosen": "1", "rejected": "0"}
        for i in range(2)
    ]
    rows += [
        {"id": 10 + i, "subset": "mt-bench-easy", "prompt": "q", "chosen": c, "rejected": "0.5"}
        for i, c in enumerate(["1", "0", "0", "0"])
    ]
    data = tmp_path / "rb1.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = run_eval_files(
        AnswerIsScore(),
        [data],
        output_dir=tmp_path / "out",
        sections_file=ROOT / "configs" / "rewardbench_v1_sections.yaml",
        n_boot=0,
        progress=False,
    )
    chat = results["summary"]["sections"]["Chat"]["score"]["value"]
    assert chat == pytest.approx((100 * 1.0 + 28 * 0.25) / 128, abs=1e-12)  # rows-present weighting: 0.5
    assert set(results["summary"]["sections"]) == {"Chat"} and results["items"][0]["id"] == 0


# ---- the field's data: the same rows, the same tokens in train, score and eval ----

FIELD_FILES = [
    FIX / "medicalgpt_reward.jsonl",
    FIX / "trl_implicit_text.jsonl",
    FIX / "trl_explicit_text.jsonl",
    FIX / "alpaca_ranking.jsonl",
    FIX / "content_parts.jsonl",
    FIELD / "llamafactory_v1_dpo_demo.jsonl",
]


@pytest.mark.parametrize("path", FIELD_FILES, ids=lambda p: p.name)
def test_field_files_read_alike_in_train_score_and_eval(path, tmp_path, tiny_llama_dir):
    from rewardkit.cli import main
    from rewardkit.data.loading import load_eval_items, load_pairs
    from rewardkit.data.tokenize import encode_pair, install_chat_template

    pairs, _ = load_pairs(path, limit=3)  # what train reads
    items, _ = load_eval_items(path, limit=3)  # what eval reads
    assert [(i.prompt_messages(), i.chosen, i.rejected) for i in items] == [
        (p.prompt_messages(), [p.chosen], [p.rejected]) for p in pairs
    ]
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][: len(pairs)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["score", "--model", str(tiny_llama_dir), "--input", str(tmp_path / "in.jsonl")]
    assert main(argv + ["--output", str(tmp_path / "out.jsonl")]) == 0
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    rm = load_reward_model(str(tiny_llama_dir))
    expected = rm.score([p.chosen_messages() for p in pairs] + [p.rejected_messages() for p in pairs])
    got = [r["score_chosen"] for r in scored] + [r["score_rejected"] for r in scored]
    assert got == pytest.approx(expected, abs=1e-5)
    # and the tokens are the ones training reads
    tok = rm.tokenizer
    install_chat_template(tok, "auto")
    for pair, row in zip(pairs, scored):
        enc = encode_pair(tok, pair, 4096)
        assert (len(enc.chosen_ids), len(enc.rejected_ids)) == (
            row["num_tokens_chosen"],
            row["num_tokens_rejected"],
        )


# ---- tool calling: the same tokens in train, score, eval and serve ----

TOOLS_TEMPLATE = (
    "{{ bos_token }}{% if tools %}<|system|>{{ tools | tojson }}</s>{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
    "{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}</s>{% endfor %}"
)


@pytest.mark.parametrize("name", ["trl_tools.jsonl", "sharegpt_tools.jsonl"])
def test_tool_rows_give_the_same_tokens_everywhere(name, tmp_path):
    from fastapi.testclient import TestClient

    from rewardkit.cli import main
    from rewardkit.data.loading import load_pairs
    from rewardkit.data.tokenize import encode_pair
    from rewardkit.eval.run import run_eval_files
    from rewardkit.serve.app import create_app

    tok = char_tokenizer_decoding_as_text()
    tok.chat_template = TOOLS_TEMPLATE
    folder = tmp_path / "rm"
    make_tiny_llama(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    pairs, _ = load_pairs(FIX / name)
    # what the chat template itself gives with the tools argument
    direct = []
    for p in pairs:
        for answer in (p.chosen_answer(), p.rejected_answer()):
            messages = ([{"role": "system", "content": p.system}] if p.system else []) + p.prompt + [answer]
            text = tok.apply_chat_template(messages, tools=p.tools, tokenize=False)
            direct.append(tok(text, add_special_tokens=False)["input_ids"])
    assert all(tok.decode(ids[:4]) != "" for ids in direct) and pairs[0].tools
    trained = [
        ids for p in pairs for ids in (lambda e: (e.chosen_ids, e.rejected_ids))(encode_pair(tok, p, 4096))
    ]
    assert trained == direct  # train
    rm = load_reward_model(str(folder))
    reference = [s.score for s in rm.score_encoded(direct, [False] * len(direct))]
    out = tmp_path / "scored.jsonl"
    assert main(["score", "--model", str(folder), "--input", str(FIX / name), "--output", str(out)]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x for r in scored for x in (r["score_chosen"], r["score_rejected"])] == pytest.approx(
        reference, abs=1e-5
    )
    assert [x for r in scored for x in (r["num_tokens_chosen"], r["num_tokens_rejected"])] == [
        len(d) for d in direct
    ]
    results = run_eval_files(rm, [FIX / name], output_dir=tmp_path / "eval", n_boot=0, progress=False)
    got = [x for i in results["items"] for x in (*i["chosen_scores"], *i["rejected_scores"])]
    assert got == pytest.approx(reference, abs=1e-5)  # eval
    with TestClient(create_app(rm)) as client:  # serve: the client's rendered text
        texts = [tok.decode(ids) for ids in direct]
        rewards = client.post("/get_reward", json={"query": texts}).json()["rewards"]
        # serve's message routes: the row's messages and its tools, as a client would send them
        convs, groups = [], []
        for p in pairs:
            head = ([{"role": "system", "content": p.system}] if p.system else []) + p.prompt
            convs += [head + [p.chosen_answer()], head + [p.rejected_answer()]]
            body = {"prompt": head, "responses": [p.chosen_answer(), p.rejected_answer()], "tools": p.tools}
            groups += client.post("/compare", json=body).json()["scores"]
        served = client.post("/score", json={"conversations": convs[:2], "tools": pairs[0].tools}).json()
        pooled = [client.post("/pooling", json={"messages": c}).json()["data"][0]["data"][0] for c in convs]
    assert rewards == pytest.approx(reference, abs=1e-4)
    assert groups == pytest.approx(reference, abs=1e-4)  # /compare with tools and tool-call answers
    assert served["scores"] == pytest.approx(reference[:2], abs=1e-4)  # /score with tools
    assert served["num_tokens"] == [len(d) for d in direct[:2]]
    # /pooling (vLLM's chat form has no tools field): the tool turns and calls, as the Python API reads them
    assert pooled == pytest.approx([s.score for s in rm.score_detailed(convs)], abs=1e-4)
