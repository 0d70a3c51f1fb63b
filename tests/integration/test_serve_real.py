"""The HTTP server around the real scorer (a saved tiny Llama checkpoint): batching changes nothing."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from rewardkit.scorers.load import load_reward_model
from rewardkit.serve.app import create_app

CONVS = [
    [{"role": "user", "content": "q" * (i % 7 + 1)}, {"role": "assistant", "content": "a" * (i * 3 % 11 + 1)}]
    for i in range(24)
]


def test_concurrent_requests_get_their_own_scores(tiny_llama_dir):
    rm = load_reward_model(str(tiny_llama_dir))
    alone = rm.score(CONVS)
    app = create_app(rm, max_wait_ms=200, max_batch_items=16)
    with TestClient(app) as client:

        def call(i):
            return client.post("/score", json={"conversations": CONVS[i : i + 3]}).json()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(0, 24, 3)))
        metrics = client.get("/metrics").text
    got = [s for r in results for s in r["scores"]]
    assert got == pytest.approx(alone, abs=1e-5)
    batches = batch_size_histogram(metrics)
    assert batches["sum"] == 24  # every conversation went through the model once
    assert batches["count"] < 8  # fewer model calls than the 8 requests: requests were merged
    assert batches["le=16"] == batches["count"]  # and no call went over max_batch_items


def batch_size_histogram(text: str) -> dict[str, float]:
    """{"count", "sum", "le=<bucket>"} of `rewardkit_batch_size` in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "rewardkit_batch_size"]
    out = {}
    for sample in family.samples:
        if sample.name.endswith("_bucket"):
            out[f"le={float(sample.labels['le']):g}"] = sample.value
        elif sample.name.endswith(("_count", "_sum")):
            out[sample.name.rsplit("_", 1)[1]] = sample.value
    return out


def test_get_reward_matches_score_of_formatted_text(tiny_llama_dir):
    rm = load_reward_model(str(tiny_llama_dir))
    texts = [rm.tokenizer.apply_chat_template(c, tokenize=False) for c in CONVS[:4]]
    with TestClient(create_app(rm)) as client:
        body = client.post("/get_reward", json={"query": texts, "prompts": ["ignored"]}).json()
    assert body["rewards"] == pytest.approx(rm.score(CONVS[:4]), abs=1e-5)
    assert body["scores"] == body["rewards"]


def test_compare_ranks_a_saved_checkpoints_own_scores(tiny_llama_dir):
    """/compare on a real checkpoint (the prompt shared across answers where the model allows it)
    gives each answer the score it gets alone, and ranks them best first."""
    rm = load_reward_model(str(tiny_llama_dir))
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    answers = ["4", "It is 5.", "Four, of course.", "22", "4"]
    alone = [rm.score([[*prompt, {"role": "assistant", "content": a}]])[0] for a in answers]
    with TestClient(create_app(rm)) as client:
        body = client.post("/compare", json={"prompt": prompt, "responses": answers}).json()
        text = client.post("/compare", json={"prompt": "What is 2+2?", "responses": answers[:2]}).json()
    assert body["scores"] == pytest.approx(alone, abs=1e-5)
    assert len(set(alone)) == 4  # distinct scores: the ranking below is the model's, not input order
    assert body["ranking"] == sorted(range(5), key=lambda i: (-body["scores"][i], i))
    assert body["num_tokens"] == rm.count_tokens(
        [[*prompt, {"role": "assistant", "content": a}] for a in answers]
    )
    plain = [
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": a}]
        for a in answers[:2]
    ]
    assert text["scores"] == pytest.approx(rm.score(plain), abs=1e-5)  # a string prompt is one user turn
