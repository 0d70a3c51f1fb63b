"""`rewardkit score` gives the seed's one-at-a-time scores (fp32, within 1e-4) whatever the batching.

Two checkpoints: SmolLM2-135M-Instruct as a sequence classifier with a seeded random head, and a tiny
Llama trained for a few steps by `rewardkit.train.run.run_train`. Inputs: HH-RLHF dev conversations,
scored as single conversations (batch sizes 1, 3, 16; left and right padding) and as pairs (prefix
sharing, same batch sizes).
"""

import json

import pytest
import torch
from conftest import make_char_tokenizer, make_tiny_llama, write_synthetic_pairs
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardkit.config import ScoreArguments
from rewardkit.data.formats import SkipRow, normalize_row
from rewardkit.scorers.load import load_reward_model
from rewardkit.scoring import run_score

pytestmark = pytest.mark.slow
N_PAIRS = 10  # 20 conversations
MAX_CHARS = 1000  # short conversations keep this test quick; the tiny Llama reads characters (2048 positions)


def seed_scores(folder, conversations):
    """The seed's code, verbatim but for transformers 5 (apply_chat_template returns a dict)."""
    rm = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    scores = []
    for conv in conversations:
        enc = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            scores.append(rm(**enc).logits[0][0].item())
    return scores


@pytest.fixture(scope="module")
def hh_rows(hh_dev):
    rows = []
    with open(hh_dev) as f:
        for lineno, line in enumerate(f, 1):
            row = json.loads(line)
            if max(len(row["chosen"]), len(row["rejected"])) > MAX_CHARS:
                continue
            try:
                pair = normalize_row(row, source=f"dev.jsonl:{lineno}")
            except SkipRow as err:  # the first short dev rows are all well-formed pairs
                pytest.fail(f"dev.jsonl:{lineno}: HH row refused by normalize_row ({err})")
            rows.append((row, pair))
            if len(rows) == N_PAIRS:
                return rows
    # Fail, not skip: a regression in HH parsing must not turn every parity case into a skip.
    pytest.fail(f"only {len(rows)} of {N_PAIRS} short HH dev pairs found")


@pytest.fixture(scope="module")
def smollm2_checkpoint(smollm2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2-rm")
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(smollm2_dir, num_labels=1).save_pretrained(out)
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
    from rewardkit.train.run import run_train

    root = tmp_path_factory.mktemp("trained")
    tok = make_char_tokenizer()
    make_tiny_llama(tok).save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    write_synthetic_pairs(root / "train.jsonl", 24)
    run_train(
        ModelArguments(model_name_or_path=str(root / "base")),
        DataArguments(
            train_file_dir=str(root / "train.jsonl"), validation_split_percentage=25, max_length=1024
        ),
        TrainingArguments(
            output_dir=str(root / "rm"),
            max_steps=3,
            per_device_train_batch_size=2,
            per_device_eval_batch_size=4,
            learning_rate=1e-2,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            use_cpu=True,
            seed=0,
        ),
        ScriptArguments(use_peft=False),
    )
    assert json.loads((root / "rm" / "config.json").read_text())["architectures"][0].endswith(
        "ForSequenceClassification"
    )
    return root / "rm"


@pytest.fixture(scope="module", params=["smollm2", "trained"])
def case(request, hh_rows):
    """(checkpoint, HH rows, seed scores of chosen conversations then rejected ones)."""
    folder = request.getfixturevalue(f"{request.param}_checkpoint")
    convs = [p.chosen_messages() for _, p in hh_rows] + [p.rejected_messages() for _, p in hh_rows]
    return folder, hh_rows, seed_scores(folder, convs)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path, folder, rows, rm):
    inp = _write(tmp_path / "in.jsonl", rows)
    summary = run_score(rm, ScoreArguments(input=str(inp), output=str(tmp_path / "out.jsonl"), chunk_size=7))
    assert summary["rows"] == len(rows) and summary["skipped"] == 0
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("pad_side", ["left", "right"])
@pytest.mark.parametrize("batch_rows", [1, 3, 16])
def test_conversations_equal_seed(tmp_path, case, batch_rows, pad_side):
    folder, hh, seed = case
    rm = load_reward_model(str(folder))
    rm.max_batch_rows, rm.pad_side = batch_rows, pad_side
    out = _run(
        tmp_path, folder, [p.chosen_messages() for _, p in hh] + [p.rejected_messages() for _, p in hh], rm
    )
    diff = max(abs(a - b) for a, b in zip([r["score"] for r in out], seed))
    print(f"max |score - seed| = {diff:.2e}")  # shown with pytest -rP
    assert diff <= 1e-4
    assert not any(r["truncated"] for r in out)


@pytest.mark.parametrize("batch_rows", [1, 3, 16])
def test_pairs_with_prefix_sharing_equal_seed(tmp_path, case, batch_rows):
    folder, hh, seed = case
    rm = load_reward_model(str(folder))
    assert rm.prefix_sharing
    rm.max_batch_rows = batch_rows
    out = _run(tmp_path, folder, [row for row, _ in hh], rm)
    got = [r["score_chosen"] for r in out] + [r["score_rejected"] for r in out]
    diff = max(abs(a - b) for a, b in zip(got, seed))
    print(f"max |score - seed| = {diff:.2e}")  # shown with pytest -rP
    assert diff <= 1e-4
