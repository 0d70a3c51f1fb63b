"""`rewardkit inspect`: every check fails on a setup made wrong on purpose and passes on a correct one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import CHAT_TEMPLATE, make_char_tokenizer, make_tiny_llama

from rewardkit.cli import main
from rewardkit.core.rewards import sequence_rewards
from rewardkit.inspect import checks
from rewardkit.inspect.view import scoring_view
from rewardkit.scorers.base import Group
from rewardkit.scorers.classifier import ClassifierRM

PROMPT = [{"role": "user", "content": "How many apples are there?"}]
CONVS = [
    PROMPT + [{"role": "assistant", "content": a}] for a in ("Three.", "Three!!", "Four, or more.", "Two")
]
GROUPS = [Group(PROMPT, ["Three.", "Four, or more."])]


def rm_for(model, tok, forward=None, **kw):
    forward = forward or (lambda ids, mask: sequence_rewards(model, ids, mask))
    return ClassifierRM(
        forward, tok, kind="seq_classifier", max_length=512, model=model, pad_side="left", **kw
    )


def hf_forward(model):
    """transformers' own forward: position ids from arange, so left padding shifts them."""
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits[:, 0]


def make_tiny_gpt2(tok):
    """A decoder with absolute position embeddings (Llama's rotary ones hide a constant shift)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, num_labels=1, pad_token_id=tok.pad_token_id
    )
    return GPT2ForSequenceClassification(cfg).eval()


@pytest.fixture
def tok():
    return make_char_tokenizer()


@pytest.mark.parametrize("what", ["model", "data"])
def test_inspect_help(what):
    proc = subprocess.run(
        [sys.executable, "-m", "rewardkit.cli", "inspect", what, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    flags = ["--input", "--row", "--check", "--dtype", "--train_config"] if what == "model" else ["--eval"]
    assert all(f in proc.stdout for f in flags)


def test_inspect_usage(capsys):
    assert main(["inspect", "--help"]) == 0
    assert "inspect model" in capsys.readouterr().out.replace("  model", "inspect model")
    assert main(["inspect", "nope"]) == 2


def test_bos_check_catches_a_second_bos(tok):
    model = make_tiny_llama(tok)
    assert checks.check_bos(rm_for(model, tok), CONVS).status == "pass"
    double = make_char_tokenizer(chat_template="{{ bos_token }}" + CHAT_TEMPLATE)
    view = scoring_view(rm_for(model, double), CONVS[0])
    assert view["double_bos"] and view["bos_leading"] == 2 and view["text"].startswith("<s><s>")
    assert checks.check_bos(rm_for(model, double), CONVS).status == "FAIL"


def test_padding_and_batch_checks_catch_arange_positions(tok):
    model = make_tiny_gpt2(tok)
    good, bad = rm_for(model, tok), rm_for(model, tok, forward=hf_forward(model))
    assert checks.check_padding(good, CONVS, 1e-4).status == "pass"
    assert checks.check_batch(good, CONVS, 1e-4).status == "pass"
    failed = checks.check_padding(bad, CONVS, 1e-4)
    assert failed.status == "FAIL" and failed.max_diff > 1e-3
    assert (
        checks.check_batch(bad, CONVS, 1e-4).status == "FAIL"
    )  # "Three." and "Three!!" share a padded batch


def test_prefix_sharing_check(tok):
    model = make_tiny_llama(tok)
    assert checks.check_prefix_sharing(rm_for(model, tok, prefix_sharing=True), GROUPS, 1e-4).status == "pass"
    shifted = rm_for(
        model, tok, forward=lambda i, m: sequence_rewards(model, i, m) + 0.5, prefix_sharing=True
    )
    failed = checks.check_prefix_sharing(shifted, GROUPS, 1e-4)
    assert failed.status == "FAIL" and failed.max_diff == pytest.approx(0.5, abs=1e-4)
    assert checks.check_prefix_sharing(rm_for(model, tok), GROUPS, 1e-4).status == "skip"


def save(tmp_path, tok, name="rm"):
    folder = tmp_path / name
    model = make_tiny_llama(tok)
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_dtype_check(tmp_path, tok):
    from rewardkit.scorers.seq_classifier import load_seq_classifier

    folder = save(tmp_path, tok)
    rm = load_seq_classifier(str(folder))

    def reload(dtype):
        return load_seq_classifier(str(folder), dtype=dtype)

    assert checks.check_dtype(rm, CONVS, reload, "bfloat16", 0.1).status == "pass"
    assert checks.check_dtype(rm, CONVS, reload, "bfloat16", 0.0).status == "FAIL"
    assert checks.check_dtype(rm, CONVS, reload, None, 0.1).status == "skip"


def test_snippet_check_catches_pad_equal_to_eos(tmp_path, tok):
    from rewardkit.scorers.seq_classifier import load_seq_classifier

    good = save(tmp_path, tok, "good")
    assert checks.check_snippet(load_seq_classifier(str(good)), CONVS, str(good), 1e-4).status == "pass"
    eos_pad = make_char_tokenizer()
    eos_pad.pad_token = (
        eos_pad.eos_token
    )  # the article's snippet then pools one token early (HF reads the last non-pad)
    bad = save(tmp_path, eos_pad, "bad")
    failed = checks.check_snippet(load_seq_classifier(str(bad)), CONVS, str(bad), 1e-4)
    assert failed.status == "FAIL", failed


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_check_exit_codes_and_table(tmp_path, tok, capsys):
    rows = write_rows(
        tmp_path / "rows.jsonl", [{"prompt": "2+2?", "chosen": "4", "rejected": "five"}, CONVS[2]]
    )
    good = save(tmp_path, tok, "good")
    out = tmp_path / "checks.json"
    code = main(
        ["inspect", "model", "--model", str(good), "--input", str(rows), "--check", "--output_json", str(out)]
    )
    table = capsys.readouterr().out
    assert code == 0, table
    assert {c["name"]: c["status"] for c in json.loads(out.read_text())} == {
        "bos": "pass",
        "batch": "pass",
        "padding": "pass",
        "prefix_sharing": "pass",
        "dtype": "skip",
        "snippet": "pass",
    }
    bad = save(tmp_path, make_char_tokenizer(chat_template="{{ bos_token }}" + CHAT_TEMPLATE), "double-bos")
    assert main(["inspect", "model", "--model", str(bad), "--input", str(rows), "--check"]) == 1
    assert "| bos | FAIL |" in capsys.readouterr().out


def test_cli_check_on_a_dpo_model(tmp_path, tok, capsys):
    from test_dpo import make_tiny_causal

    folder = tmp_path / "policy"
    make_tiny_causal(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    rows = write_rows(tmp_path / "rows.jsonl", [{"prompt": "2+2?", "chosen": "4", "rejected": "five"}])
    assert (
        main(["inspect", "model", "--model", str(folder), "--kind", "dpo", "--input", str(rows), "--check"])
        == 0
    )
    table = capsys.readouterr().out
    assert (
        "| prefix_sharing | pass |" in table
        and "| padding | skip |" in table
        and "| snippet | skip |" in table
    )


def test_row_view_beside_training(tmp_path, tok, capsys):
    folder = save(tmp_path, tok)
    rows = write_rows(
        tmp_path / "rows.jsonl",
        [
            {
                "prompt": [
                    {"role": "user", "content": "Old question?"},
                    {"role": "assistant", "content": "Old answer."},
                    {"role": "user", "content": "2+2?"},
                ],
                "chosen": "4",
                "rejected": "five",
            }
        ],
    )
    same = tmp_path / "same.yaml"
    same.write_text(f"model_name_or_path: {folder}\ntrain_file_dir: {rows}\nmax_length: 512\n")
    assert (
        main(["inspect", "model", "--model", str(folder), "--input", str(rows), "--train_config", str(same)])
        == 0
    )
    text = capsys.readouterr().out
    assert (
        "<s><|user|>Old question?</s><|assistant|>Old answer.</s><|user|>2+2?</s><|assistant|>4</s>" in text
    )
    assert "reward read at: index" in text and "'</s>'" in text
    assert text.count("same tokens as scoring") == 2 and "DIFFERENT" not in text
    from rewardkit.data.formats import normalize_row
    from rewardkit.data.tokenize import encode_pair, install_chat_template

    chatml = make_char_tokenizer()
    install_chat_template(chatml, "chatml")
    pair = normalize_row(json.loads(rows.read_text()), source="rows.jsonl:1")
    limit = len(encode_pair(chatml, pair, 10_000).rejected_ids) - 1  # the old turn must go
    other = tmp_path / "other.yaml"  # training used another template and a tighter limit
    other.write_text(
        f"model_name_or_path: {folder}\ntrain_file_dir: {rows}\nmax_length: {limit}\ntemplate_name: chatml\n"
    )
    out = tmp_path / "view.json"
    main(
        [
            "inspect",
            "model",
            "--model",
            str(folder),
            "--input",
            str(rows),
            "--train_config",
            str(other),
            "--output_json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert "DIFFERENT from scoring" in text and "context turns trimmed: 1" in text
    data = json.loads(out.read_text())
    assert data["training"]["turns_trimmed"] == 1 and data["differences"]["chosen"].startswith(
        "differ at token 1"
    )
    assert main(["inspect", "model", "--model", str(folder), "--input", str(rows), "--row", "3"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: [unclosed\n")
    for config in (bad, tmp_path / "missing.yaml"):
        assert (
            main(
                [
                    "inspect",
                    "model",
                    "--model",
                    str(folder),
                    "--input",
                    str(rows),
                    "--train_config",
                    str(config),
                ]
            )
            == 2
        )
        assert f"--train_config {config}" in capsys.readouterr().err


def test_row_view_counts_trimmed_turns_and_truncation(tok):
    model = make_tiny_llama(tok)
    rm = rm_for(model, tok)
    long_conv = [{"role": "user", "content": "A" * 30}, {"role": "assistant", "content": "B" * 30}] + CONVS[0]
    rm.max_length = len(scoring_view(rm, CONVS[0])["ids"]) + 2
    view = scoring_view(rm, long_conv)
    assert [m["content"] for m in view["trimmed"]] == ["A" * 30, "B" * 30] and not view["truncated"]
    rm.max_length = 10
    assert scoring_view(rm, CONVS[0])["truncated"] and len(scoring_view(rm, CONVS[0])["ids"]) == 10


def test_inspect_data_counts_by_hand(tmp_path, capsys):
    train = write_rows(
        tmp_path / "train.jsonl",
        [
            {"prompt": "Q1?", "chosen": "A long good answer.", "rejected": "Bad."},
            {"prompt": "Q1?", "chosen": "A long good answer.", "rejected": "Bad."},  # exact duplicate
            {"prompt": "q1", "chosen": "a long good answer", "rejected": "bad"},  # near duplicate
            {"prompt": "Q1?", "chosen": "Bad.", "rejected": "A long good answer."},  # flipped
            {"prompt": "Q2?", "chosen": "Same.", "rejected": "Same."},  # identical
            {
                "prompt": "Q3?",
                "chosen": "One  two",
                "rejected": "One two",
                "subset": "math",
            },  # whitespace only
        ],
    )
    evals = write_rows(
        tmp_path / "eval.jsonl",
        [
            {"prompt": "Q3?", "chosen": "x", "rejected": "yy"},
            {"prompt": "New?", "chosen": "z", "rejected": "w"},
        ],
    )
    out = tmp_path / "report.json"
    assert main(["inspect", "data", str(train), "--eval", str(evals), "--output_json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["pairs"] == 6 and report["eval_pairs"] == 2 and report["formats"] == {"trl": 8}
    assert report["subsets"] == {"(none)": 7, "math": 1}
    d = report["duplicates"]
    assert (d["exact"], d["near"], d["flipped"]) == (1, 1, 1)
    assert report["same_answers"]["identical"] == 1 and report["same_answers"]["whitespace_only"] == 1
    assert report["leakage"]["shared_prompts"] == 1 and report["leakage"]["examples"] == [f"{evals}:1"]
    # chosen longer in rows 1, 2, 3 and the whitespace row; shorter in row 4 and eval row 1; ties: row 5, eval row 2
    lengths = report["lengths"]
    assert lengths["unit"] == "characters" and lengths["ties"] == 2
    assert lengths["longer_wins"] == pytest.approx(5 / 8) and lengths["shorter_wins"] == pytest.approx(3 / 8)
    assert "| exact duplicates | 1 |" in capsys.readouterr().out


def test_inspect_data_length_policy(tmp_path, tok):
    from rewardkit.data.tokenize import encode_pair
    from rewardkit.inspect.data import inspect_data, read_rows

    rows = [
        {
            "prompt": [
                {"role": "user", "content": "Old?"},
                {"role": "assistant", "content": "Yes."},
                {"role": "user", "content": "Now?"},
            ],
            "chosen": "Ok.",
            "rejected": "No.",
        },
        {"prompt": "Short?", "chosen": "Y", "rejected": "N"},
        {"prompt": "Long " * 20, "chosen": "Y", "rejected": "N"},
    ]
    path = write_rows(tmp_path / "d.jsonl", rows)
    pairs = [r.pair for r in read_rows([str(path)])[0]]
    full = [len(encode_pair(tok, p, 10_000).chosen_ids) for p in pairs]
    limit = full[0] - 5  # the first pair must lose its old turn; the long one cannot fit
    assert full[1] <= limit < full[2]
    policy = inspect_data([str(path)], tokenizer=tok, max_length=limit)["length_policy"]
    assert (policy["kept_whole"], policy["trimmed"], policy["dropped"], policy["turns_trimmed"]) == (
        1,
        1,
        1,
        1,
    )


@pytest.mark.slow
def test_inspect_data_on_hh_dev_with_minilm(hh_dev, minilm_dir, tmp_path):
    out = tmp_path / "hh.json"
    assert (
        main(
            [
                "inspect",
                "data",
                str(hh_dev),
                "--tokenizer",
                str(minilm_dir),
                "--max_length",
                "256",
                "--output_json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["pairs"] + sum(report["skipped_by_readers"].values()) == 1804
    policy = report["length_policy"]
    assert policy["kept_whole"] + policy["trimmed"] + policy["dropped"] == report["pairs"]
    assert 0 < report["lengths"]["longer_wins"] < 1


def test_row_view_of_a_dpo_model(tok):
    from test_dpo import make_tiny_causal

    from rewardkit.scorers.dpo import DPORewardModel

    rm = DPORewardModel(make_tiny_causal(tok), tok)
    view = scoring_view(rm, CONVS[2])
    prompt_text = tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    start = len(tok(prompt_text, add_special_tokens=False)["input_ids"])
    assert view["num_tokens"] == len(view["ids"]) and not view["double_bos"]
    assert f"tokens {start}..{view['num_tokens'] - 1}" in view["reward_read"]
    assert "'Four, or more.</s>'" in view["reward_read"]
