"""Kind "dpo": the implicit reward equals log-probabilities worked out by hand, and orders pairs as RewardBench does."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_char_tokenizer

from rewardkit.scorers.base import Group
from rewardkit.scorers.dpo import DPORewardModel, encode_answer, supports_packed_logprobs

PROMPT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How many apples?"},
    {"role": "assistant", "content": "Which basket?"},
    {"role": "user", "content": "The red one."},
]
ANSWERS = ["Three apples.", "Three pears, I think.", "Thr"]


def make_tiny_causal(tokenizer, seed: int = 0, family: str = "llama"):
    """A tiny random causal LM: Llama (packed path) or GPT-2 (a family the plain path runs)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if family == "gpt2":
        cfg = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=1024)
        return GPT2LMHeadModel(cfg).eval()
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(cfg).eval()


def hand_logprob(model, tokenizer, prompt, answer, mean=False) -> float:
    """log p(answer | prompt) written out: one plain forward of the full conversation, log_softmax, gather."""
    full_text = tokenizer.apply_chat_template(
        prompt + [{"role": "assistant", "content": answer}], tokenize=False
    )
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    assert ids[:n_prompt] == tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1)  # position t predicts token t + 1
    picked = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    answer_part = picked[n_prompt - 1 :]  # the tokens after the prompt's encoding
    return float(answer_part.mean() if mean else answer_part.sum())


@pytest.fixture(params=["llama", "gpt2"])
def models(request):
    tok = make_char_tokenizer()
    return tok, make_tiny_causal(tok, 0, request.param), make_tiny_causal(tok, 1, request.param)


def test_packed_path_is_the_one_taken_for_llama_only(models):
    _, policy, _ = models
    assert supports_packed_logprobs(policy) == (policy.config.model_type == "llama")


@pytest.mark.parametrize("batch_tokens", [16384, 40])  # one packed row, or a row per group
def test_rewards_equal_hand_computed_logprobs(models, batch_tokens):
    tok, policy, ref = models
    groups = [Group(PROMPT, ANSWERS), Group(PROMPT[1:2], ["Two.", "Nine, or so."]), Group(PROMPT[1:2], ["x"])]
    with_ref = DPORewardModel(policy, tok, reference=ref, beta=0.1, batch_tokens=batch_tokens)
    free_sum = DPORewardModel(policy, tok, batch_tokens=batch_tokens)
    free_mean = DPORewardModel(policy, tok, reference_free_mean=True, batch_tokens=batch_tokens)
    got = [rm.score_groups(groups) for rm in (with_ref, free_sum, free_mean)]
    for g, group in enumerate(groups):
        for a, answer in enumerate(group.answers):
            lp, lr = (
                hand_logprob(policy, tok, group.prompt, answer),
                hand_logprob(ref, tok, group.prompt, answer),
            )
            assert got[0][g][a].score == pytest.approx(0.1 * (lp - lr), abs=1e-5)
            assert got[0][g][a].sub_scores["logp_reference"] == pytest.approx(lr, abs=1e-5)
            assert got[1][g][a].score == pytest.approx(lp, abs=1e-5)
            mean = hand_logprob(policy, tok, group.prompt, answer, mean=True)
            assert got[2][g][a].score == pytest.approx(mean, abs=1e-5)
    detailed = with_ref.score_detailed(groups[0].conversations())  # one at a time, no sharing
    assert [s.score for s in detailed] == pytest.approx([s.score for s in got[0][0]], abs=1e-5)


def rewardbench_logratios(policy, ref, tokenizer, prompt, chosen, rejected):
    """RewardBench's DPO formula (rewardbench/dpo.py, `concatenated_forward` + `get_batch_logps`):
    chosen and rejected right-padded in one batch, labels -100 on the prompt and padding, logits shifted
    by one, summed log-probs of the labels; the log-ratio is policy minus reference."""
    rows, prompt_lens = [], []
    for answer in (chosen, rejected):
        text = tokenizer.apply_chat_template(
            prompt + [{"role": "assistant", "content": answer}], tokenize=False
        )
        ptext = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        prompt_lens.append(len(tokenizer(ptext, add_special_tokens=False)["input_ids"]))
    width = max(map(len, rows))
    ids = torch.full((2, width), tokenizer.pad_token_id)
    mask = torch.zeros((2, width), dtype=torch.long)
    labels = torch.full((2, width), -100)
    for i, (row, n) in enumerate(zip(rows, prompt_lens)):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
        labels[i, n : len(row)] = torch.tensor(row[n:])

    def batch_logps(model):
        with torch.no_grad():
            logits = model(ids, attention_mask=mask).logits[:, :-1].float()
        shifted = labels[:, 1:].clone()
        keep = shifted != -100
        shifted[~keep] = 0
        per_token = torch.gather(logits.log_softmax(-1), 2, shifted.unsqueeze(2)).squeeze(2)
        return (per_token * keep).sum(-1)

    return batch_logps(policy) - batch_logps(ref)


def test_pair_order_agrees_with_rewardbench(models):
    tok, policy, ref = models
    rm = DPORewardModel(policy, tok, reference=ref, beta=0.5)
    prompts, chosen, rejected = [PROMPT, PROMPT[1:2]], ["Three apples.", "Two."], ["Thr", "Nine, or so."]
    c, r = rm.score_pairs(prompts, chosen, rejected)
    for i in range(2):
        bench = rewardbench_logratios(policy, ref, tok, prompts[i], chosen[i], rejected[i])
        assert (c[i] > r[i]) == bool(bench[0] > bench[1])
        assert [c[i], r[i]] == pytest.approx((0.5 * bench).tolist(), abs=1e-4)


def test_length_policy_trims_context_and_keeps_the_answer():
    tok = make_char_tokenizer()
    conv = PROMPT + [{"role": "assistant", "content": "Three apples."}]
    ids, start, truncated = encode_answer(tok, conv, 10_000)
    assert not truncated and "".join(tok.convert_ids_to_tokens(ids[start:])) == "Three apples.</s>"
    short_ids, short_start, short_trunc = encode_answer(tok, conv, len(ids) - 5)
    assert short_trunc and len(short_ids) < len(ids) - 5  # the oldest user turn went
    assert short_ids[short_start:] == ids[start:] and short_ids[0] == tok.bos_token_id
    clipped, cstart, ctrunc = encode_answer(tok, conv, 12)  # even the last turn cannot fit: clipped
    assert ctrunc and len(clipped) == 12 and clipped[0] == tok.bos_token_id and cstart >= 1
    assert clipped[-5:] == ids[-5:]


def save_pair_of_models(tmp_path, family="llama"):
    tok = make_char_tokenizer()
    folders = []
    for seed, name in ((0, "policy"), (1, "reference")):
        make_tiny_causal(tok, seed, family).save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
        folders.append(tmp_path / name)
    return folders


def test_load_reward_model_and_never_detected(tmp_path):
    from rewardkit.scorers.load import detect_kind, load_reward_model

    policy, reference = save_pair_of_models(tmp_path)
    assert detect_kind(str(policy))[0] == "generative"  # a causal LM is never guessed to be a DPO policy
    rm = load_reward_model(str(policy), kind="dpo", reference=str(reference), beta=0.1, device_map="cpu")
    tok = make_char_tokenizer()
    (scores,) = rm.score_groups([Group(PROMPT, ANSWERS[:2])])
    expected = [
        0.1 * (hand_logprob(rm.policy, tok, PROMPT, a) - hand_logprob(rm.reference, tok, PROMPT, a))
        for a in ANSWERS[:2]
    ]
    assert [s.score for s in scores] == pytest.approx(expected, abs=1e-5)


def test_cli_score_and_eval_with_kind_dpo(tmp_path):
    from rewardkit.cli import main
    from rewardkit.scorers.dpo import load_dpo

    policy, reference = save_pair_of_models(tmp_path)
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "How many apples?", "chosen": "Three apples.", "rejected": "Thr"},
        {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "A colour is a thing, like blue."},
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    flags = ["--model", str(policy), "--kind", "dpo", "--reference", str(reference), "--beta", "0.2"]
    assert main(["score", *flags, "--input", str(pairs), "--output", str(out), "--device_map", "cpu"]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    rm = load_dpo(str(policy), reference=str(reference), beta=0.2, device_map="cpu")
    c, r = rm.score_pairs(
        [x["prompt"] for x in rows], [x["chosen"] for x in rows], [x["rejected"] for x in rows]
    )
    assert [s["score_chosen"] for s in scored] == pytest.approx(c, abs=1e-6)
    assert [s["score_rejected"] for s in scored] == pytest.approx(r, abs=1e-6)
    assert (
        main(["eval", *flags, "--data", str(pairs), "--output_dir", str(tmp_path / "ev"), "--n_boot", "0"])
        == 0
    )
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    wins = sum(a > b for a, b in zip(c, r)) / len(rows)
    assert results["summary"]["accuracy"]["value"] == pytest.approx(wins)


def test_dpo_flags_are_checked():
    from rewardkit.config import RewardModelArguments
    from rewardkit.errors import RewardkitError

    with pytest.raises(RewardkitError, match="--kind dpo"):
        RewardModelArguments(model="m", reference="r")
    with pytest.raises(RewardkitError, match="--beta"):
        RewardModelArguments(model="m", kind="dpo", beta=0)
    with pytest.raises(RewardkitError, match="drop --reference"):
        RewardModelArguments(model="m", kind="dpo", reference="r", dpo_reference_free_mean=True)


def test_serve_compare_with_a_dpo_model():
    from fastapi.testclient import TestClient

    from rewardkit.serve.app import create_app

    tok = make_char_tokenizer()
    policy, ref = make_tiny_causal(tok, 0), make_tiny_causal(tok, 1)
    rm = DPORewardModel(policy, tok, reference=ref, beta=0.1)
    with TestClient(create_app(rm)) as client:
        r = client.post("/compare", json={"prompt": PROMPT, "responses": ANSWERS})
    assert r.status_code == 200, r.text
    expected = [
        0.1 * (hand_logprob(policy, tok, PROMPT, a) - hand_logprob(ref, tok, PROMPT, a)) for a in ANSWERS
    ]
    assert r.json()["scores"] == pytest.approx(expected, abs=1e-5)
    assert r.json()["ranking"] == sorted(range(3), key=lambda i: -expected[i])


@pytest.mark.slow
def test_smollm2_packed_equals_plain_and_hand(smollm2_dir, hh_dev):
    """On real weights: the packed pair path, the plain path and a hand-written forward agree."""
    from rewardkit.data.loading import load_pairs
    from rewardkit.scorers.dpo import load_dpo, plain_answer_logprobs

    rm = load_dpo(str(smollm2_dir), device_map="cpu", max_length=512)
    assert supports_packed_logprobs(rm.policy)
    pairs = [p for p in load_pairs(str(hh_dev), limit=40)[0] if len(p.prompt) == 1][:3]
    groups = [Group(p.prompt_messages(), [p.chosen, p.rejected]) for p in pairs]
    packed = rm.score_groups(groups)
    encoded = [[encode_answer(rm.tokenizer, c, rm.max_length) for c in g.conversations()] for g in groups]
    plain = plain_answer_logprobs(
        rm.policy, encoded, pad_id=rm.tokenizer.pad_token_id or 0, device="cpu", batch_tokens=4096
    )
    for g in range(len(groups)):
        for a in range(2):
            assert packed[g][a].score == pytest.approx(float(plain[g][a].sum()), abs=1e-3)
    first = hand_logprob(rm.policy, rm.tokenizer, groups[0].prompt, groups[0].answers[0])
    # a sum of ~100 float32 log-probs from two attention kernels (4D block mask vs causal): relative 1e-5
    assert packed[0][0].score == pytest.approx(first, rel=1e-5)
