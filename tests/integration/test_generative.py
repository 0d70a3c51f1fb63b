"""Generative judges end to end: a tiny random causal LM (fast) and SmolLM2-135M-Instruct (slow)."""

import pytest
import torch

from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import RewardModel
from rewardkit.scorers.generative import GenerativeJudge, _StopAfterDecision, load_judge

QUESTION = (
    "Jane has 12 apples. She gives 4 apples to her friend Mark, then buys 1 more apple, and finally splits "
    "all her apples equally among herself and her 2 siblings. How many apples does each person get?"
)
GOOD = (
    "Jane starts with 12 apples. After giving 4 to Mark she has 12 - 4 = 8 apples. Buying 1 more gives her "
    "8 + 1 = 9 apples. She splits them among herself and her 2 siblings, which is 3 people: "
    "9 ÷ 3 = 3 apples each. Each person gets 3 apples."
)
BAD = (
    "Jane starts with 12 apples. After giving 4 to Mark she has 12 - 4 = 8 apples. Buying 1 more gives her "
    "8 + 1 = 9 apples. She splits the 9 apples equally among her 2 siblings (2 people in total). "
    "9 ÷ 2 = 4.5 apples each. Each person gets 4 apples."
)


def rated(answer):
    return [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}]


# ------------------------------------------------------------------ tiny random causal LM (fast)
@pytest.fixture
def tiny_causal_dir(tmp_path, char_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(char_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=char_tokenizer.pad_token_id,
        bos_token_id=char_tokenizer.bos_token_id,
        eos_token_id=char_tokenizer.eos_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "tiny")
    char_tokenizer.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_tiny_judge_swaps_orders_and_counts(tiny_causal_dir, monkeypatch):
    judge = GenerativeJudge(tiny_causal_dir, mode="pairwise", max_new_tokens=4, max_length=4096)
    assert isinstance(judge, RewardModel) and judge.kind == "generative"
    seen = []
    replies = iter([["[[A]]", "[[A]]"], ["[[A]]", "[[B]]"], ["garbage", "[[B]]"]])
    monkeypatch.setattr(judge, "_generate", lambda texts: seen.append(texts) or next(replies))
    scores = judge.judge_pairs([QUESTION], [GOOD], [BAD])
    first, second = seen[0]
    assert first.index(GOOD) < first.index(BAD) and second.index(BAD) < second.index(GOOD)
    assert scores[0].sub_scores == {"p_win": 0.5, "order_consistent": 0.0, "parse_failed": 0.0}
    assert judge.score_pairs([QUESTION], [GOOD], [BAD]) == ([1.0], [0.0])
    assert judge.score_pairs([QUESTION], [GOOD], [BAD]) == ([0.75], [0.25])
    assert judge.stats() == {
        "judgments": 6,
        "parse_failures": 1,
        "pairs": 3,
        "order_consistent": 1,
        "order_inconsistent": 1,
        "parse_failure_rate": 1 / 6,
        "order_consistency_rate": 1 / 3,
    }
    with pytest.raises(
        RewardkitError, match="needs --mode pointwise or --mode logprob \\(this judge has --mode pairwise\\)"
    ):
        judge.score_detailed([rated(GOOD)])


def test_tiny_judge_generates_and_truncates(tiny_causal_dir):
    judge = GenerativeJudge(tiny_causal_dir, mode="pairwise", max_new_tokens=3, max_length=900)
    history = [
        {"role": "user", "content": "tell me a story " * 20},
        {"role": "assistant", "content": "ok " * 50},
    ]
    scores = judge.judge_pairs([history + [{"role": "user", "content": QUESTION}]], [GOOD * 2], [BAD * 2])
    assert scores[0].truncated and scores[0].num_tokens <= 900 - 3
    assert len(judge.last_generations) == 2 and judge.stats()["judgments"] == 2


def next_token_probs(folder, user: str, prefill: str, pieces: list[str]) -> list[float]:
    """Softmax over `pieces` (one token each) of a causal LM's next-token logits after the judge prompt,
    computed here with plain transformers, one unpadded row."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder).eval()
    text = tok.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(text + prefill, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = lm(input_ids=ids).logits[0, -1].double()
    return torch.softmax(logits[tok.convert_tokens_to_ids(pieces)], -1).tolist()


@pytest.fixture
def peaked_causal_dir(tiny_causal_dir, tmp_path):
    """The tiny causal LM with a large random output layer, so that next-token probabilities differ
    clearly (the default init gives a near-uniform distribution, P(A) within 1e-5 of 0.5)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = AutoModelForCausalLM.from_pretrained(tiny_causal_dir)
    torch.manual_seed(1)
    torch.nn.init.normal_(lm.lm_head.weight, std=3.0)
    lm.save_pretrained(tmp_path / "peaked")
    AutoTokenizer.from_pretrained(tiny_causal_dir).save_pretrained(tmp_path / "peaked")
    return tmp_path / "peaked"


def test_tiny_logprob_equals_the_models_own_probabilities(peaked_causal_dir):
    from rewardkit.scorers import judge_prompts as jp

    tiny_causal_dir = peaked_causal_dir
    judge = GenerativeJudge(tiny_causal_dir, mode="logprob", batch_size=2)
    history = [{"role": "user", "content": QUESTION}]

    def p_a(x, y):
        user = jp.pairwise_prompt(history, x, y, True)
        return next_token_probs(tiny_causal_dir, user, jp.VERDICT_PREFILL, ["A", "B"])[0]

    p_xy = judge.score_pairs([QUESTION], [GOOD], [BAD])[0][0]
    first, second = p_a(GOOD, BAD), p_a(BAD, GOOD)
    assert abs(first - 0.5) > 0.01  # the model leans towards one letter: P(A) is read, not a default
    assert p_xy == pytest.approx((first + 1 - second) / 2, abs=1e-6)  # x shown first, and x shown second
    p_yx = judge.score_pairs([QUESTION], [BAD], [GOOD])[0][0]
    assert p_xy + p_yx == pytest.approx(1.0, abs=1e-6)
    # "10" and "]]" are two characters here, so ratings are 1..9: the mean under the softmax over "1".."9"
    ratings = judge.score([rated(GOOD), rated(BAD)])
    for answer, rating in zip((GOOD, BAD), ratings):
        probs = next_token_probs(
            tiny_causal_dir, jp.pointwise_prompt(history, answer, True), jp.RATING_PREFILL, list("123456789")
        )
        assert rating == pytest.approx(sum((k + 1) * p for k, p in enumerate(probs)), abs=1e-4)
    # best-of-N: each answer's score is its mean win probability against the others
    answers = [GOOD, BAD, "4"]
    ranked = judge.compare(QUESTION, answers)
    wins = [
        sum(judge.score_pairs([QUESTION], [a], [b])[0][0] for b in answers if b is not a) / 2 for a in answers
    ]
    assert ranked.scores == pytest.approx(wins, abs=1e-5)
    assert ranked.ranking == sorted(range(3), key=lambda i: -wins[i])


def test_tiny_pointwise_falls_back_and_edges(tiny_causal_dir):
    judge = load_judge(
        str(tiny_causal_dir), mode="pointwise", max_new_tokens=3, device_map="cpu", template_name="ignored"
    )
    scores = judge.score_detailed([rated(GOOD)])  # a random model writes no "[[N]]"
    assert scores[0].score == 5.5 and scores[0].sub_scores == {"rating": 5.5, "parse_failed": 1.0}
    assert judge.stats()["parse_failure_rate"] == 1.0 and judge.score_detailed([]) == []
    assert judge.compare(QUESTION, [GOOD]).ranking == [0]
    with pytest.raises(RewardkitError, match="must end with the assistant answer"):
        judge.score_detailed([[{"role": "user", "content": QUESTION}]])
    with pytest.raises(RewardkitError, match="judge_pairs needs --mode pairwise or --mode logprob"):
        judge.judge_pairs([QUESTION], [GOOD], [BAD])


def test_bad_arguments(tiny_causal_dir, tmp_path):
    with pytest.raises(
        RewardkitError, match="--mode ranking: accepted values are pairwise, pointwise, logprob"
    ):
        GenerativeJudge(tiny_causal_dir, mode="ranking")
    with pytest.raises(RewardkitError, match="--max_new_tokens 0: must be at least 1"):
        GenerativeJudge(tiny_causal_dir, max_new_tokens=0)
    with pytest.raises(RewardkitError, match="--max_length 8: must be at least 16"):
        GenerativeJudge(tiny_causal_dir, max_length=8)
    with pytest.raises(RewardkitError, match="--torch_dtype float8: accepted values"):
        GenerativeJudge(tiny_causal_dir, dtype="float8")
    with pytest.raises(RewardkitError, match=f"--model {tmp_path}: no config.json"):
        GenerativeJudge(tmp_path)
    with pytest.raises(RewardkitError, match="--gguf_file x.gguf: not found"):
        GenerativeJudge(tmp_path, gguf_file="x.gguf")
    with pytest.raises(
        RewardkitError, match=r"--max_length 300 is too small .*raise --max_length or lower --max_new_tokens"
    ):
        GenerativeJudge(tiny_causal_dir, max_new_tokens=250, max_length=300).judge_pairs(
            [QUESTION], [GOOD], [BAD]
        )


def test_judge_goes_to_the_default_device_unless_device_map_says(tiny_causal_dir, monkeypatch):
    """As the classifiers: the first GPU when there is one (the meta device stands in for it here)."""
    import rewardkit.core.loading

    monkeypatch.setattr(rewardkit.core.loading, "default_device", lambda device_map: torch.device("meta"))
    assert GenerativeJudge(tiny_causal_dir).model.device.type == "meta"
    assert GenerativeJudge(tiny_causal_dir, device="cpu").model.device.type == "cpu"


# ------------------------------------------------------------------ SmolLM2-135M-Instruct (slow)
@pytest.fixture(scope="module")
def one_thread():
    """Decode steps are tiny: on a shared 2-core machine OpenMP barriers between 2 threads cost far more
    than the work (measured 310 s with 2 threads, about 25 s with 1, for the pairwise test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smol_pairwise(smollm2_dir, one_thread):
    return GenerativeJudge(smollm2_dir, mode="pairwise", max_new_tokens=48, dtype="float32")


@pytest.fixture(scope="module")
def smol_logprob(smollm2_dir, one_thread):
    return GenerativeJudge(smollm2_dir, mode="logprob", dtype="float32")


@pytest.mark.slow
def test_smollm2_decision_tokens(smol_logprob):
    tok = smol_logprob.tokenizer
    # SmolLM2 splits "[[A]]" as "[[" "A" "]]" and "10" as "1" "0": ratings 10 go through the split step
    assert tok.convert_ids_to_tokens(tok.encode("[[A]]", add_special_tokens=False)) == ["[[", "A", "]]"]
    assert tok.convert_ids_to_tokens(smol_logprob._verdict_ids) == ["A", "B"]
    assert [tok.decode([i]) for i in smol_logprob._ten_split] == ["1", "0", "]]"]
    assert len(smol_logprob._rating_ids) == 9
    # generation stops a row once "]]" is out
    rows = [tok.encode(t, add_special_tokens=False) for t in ("Q: A is better [[A]]", "Q: A is better, [A")]
    assert _StopAfterDecision(tok, 2)(torch.tensor(rows), None).tolist() == [True, False]


@pytest.mark.slow
def test_smollm2_pairwise_both_orders_deterministic(smol_pairwise):
    smol_pairwise.reset_stats()
    first = smol_pairwise.judge_pairs([QUESTION], [GOOD], [BAD])
    outputs = list(smol_pairwise.last_generations)
    second = smol_pairwise.judge_pairs([QUESTION], [GOOD], [BAD])
    assert smol_pairwise.last_generations == outputs and len(outputs) == 2
    assert first == second
    sub = first[0].sub_scores
    # each order gave a verdict or was counted as a failure (a tie)
    assert sub["parse_failed"] in (0.0, 0.5, 1.0) and first[0].score in (0.0, 0.25, 0.5, 0.75, 1.0)
    stats = smol_pairwise.stats()
    assert stats["judgments"] == 4 and stats["parse_failures"] == 2 * round(2 * sub["parse_failed"])
    assert 0 <= stats["parse_failure_rate"] <= 1 and 0 <= stats["order_consistency_rate"] <= 1


@pytest.mark.slow
def test_smollm2_logprob_probabilities(smol_logprob):
    p_good, _ = smol_logprob.score_pairs([QUESTION], [GOOD], [BAD])
    p_bad, _ = smol_logprob.score_pairs([QUESTION], [BAD], [GOOD])
    assert 0 < p_good[0] < 1 and 0 < p_bad[0] < 1
    assert p_good[0] + p_bad[0] == pytest.approx(1.0, abs=1e-6)
    ratings = smol_logprob.score_detailed([rated(GOOD), rated(BAD)])
    assert all(1 <= s.score <= 10 and 0 < s.sub_scores["p_top"] <= 1 for s in ratings)
    stats = smol_logprob.stats()
    assert stats["parse_failures"] == 0 and 0 <= stats["order_consistency_rate"] <= 1


@pytest.mark.slow
def test_smollm2_pointwise_numbers(smollm2_dir, one_thread):
    judge = GenerativeJudge(smollm2_dir, mode="pointwise", max_new_tokens=24, dtype="float32")
    scores = judge.score_detailed([rated(GOOD), rated(BAD)])
    for s in scores:
        assert isinstance(s.score, float) and 1 <= s.score <= 10
        assert s.sub_scores["parse_failed"] in (0.0, 1.0)
        assert s.score == 5.5 or s.sub_scores["parse_failed"] == 0.0  # the fallback only on a failure
    assert 0 <= judge.stats()["parse_failure_rate"] <= 1


# ------------------------------------------------------------------ kind detection and the score command
def test_kind_auto_detection_of_causal_lms_and_gguf_files_and_its_errors(tiny_causal_dir, tmp_path):
    import json

    from rewardkit.scorers.load import detect_kind, load_reward_model

    why = "architecture LlamaForCausalLM with no reward head: used as a generative judge"
    assert detect_kind(str(tiny_causal_dir)) == ("generative", why)
    judge = load_reward_model(str(tiny_causal_dir), mode="logprob")
    assert isinstance(judge, GenerativeJudge) and judge.detected_because == why
    # A GGUF file is read as a sequence classifier whatever the folder holds (no weights are opened)
    gguf = tmp_path / "gguf"
    gguf.mkdir()
    (gguf / "m.gguf").write_bytes(b"GGUF")
    assert detect_kind(str(gguf), "m.gguf") == (
        "seq_classifier",
        "a GGUF file (loaded as a sequence classifier; use --kind generative for a judge)",
    )
    with pytest.raises(
        RewardkitError, match=f"--model {gguf}: no config.json; pass --kind and --gguf_file for GGUF models"
    ):
        detect_kind(str(gguf))
    with pytest.raises(RewardkitError, match=f"--model {tmp_path / 'missing'}: no such folder"):
        detect_kind(str(tmp_path / "missing"))
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"architectures": ["LlamaModel"]}))
    with pytest.raises(
        RewardkitError,
        match=r"cannot tell the kind from architecture 'LlamaModel'; pass --kind \(seq_classifier, value_head,",
    ):
        load_reward_model(str(bare))


@pytest.mark.parametrize("kind", ["generative", "auto"])
def test_score_command_judges_with_a_tiny_causal_lm(peaked_causal_dir, tmp_path, kind, capsys):
    """`rewardkit score --kind generative` (or a causal LM left to auto) end to end: the pair's columns
    are the judge's win probabilities, a conversation's score its expected rating."""
    import json

    from rewardkit.cli import main

    rows = [{"prompt": QUESTION, "chosen": GOOD, "rejected": BAD}, rated(BAD)]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["score", "--model", str(peaked_causal_dir), "--kind", kind, "--mode", "logprob"]
    assert main([*argv, "--input", str(inp), "--output", str(out)]) == 0
    assert "scored 2 rows" in capsys.readouterr().out
    pair, conv = (json.loads(line) for line in out.read_text().splitlines())
    judge = GenerativeJudge(peaked_causal_dir, mode="logprob")
    (verdict,) = judge.judge_pairs([QUESTION], [GOOD], [BAD])
    assert pair["sub_scores_chosen"] == pytest.approx(verdict.sub_scores, abs=1e-6)  # read by the judge
    assert pair["num_tokens_chosen"] == verdict.num_tokens and pair["truncated"] is False
    assert pair["score_chosen"] == pytest.approx(verdict.score, abs=1e-6)
    assert pair["score_chosen"] + pair["score_rejected"] == pytest.approx(1.0, abs=1e-6)
    (rating,) = judge.score([rated(BAD)])
    assert abs(rating - 5.5) > 0.1  # the peaked model's expected rating, not the middle a default would give
    assert conv["score"] == pytest.approx(rating, abs=1e-5)
