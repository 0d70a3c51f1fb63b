"""Conformance with the field's files, clients and consumers (issue 11), each on tiny models: the
field's data in train, score and eval; OpenRLHF's remote-RM client text against the other routes;
exported checkpoints read by transformers' pipeline; the CLI conventions; MedicalGPT's run_rm.sh."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

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
