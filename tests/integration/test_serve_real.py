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
    app = create_app(rm, max_wait_ms=20, max_batch_items=16)
    with TestClient(app) as client:

        def call(i):
            return client.post("/score", json={"conversations": CONVS[i : i + 3]}).json()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(0, 24, 3)))
        metrics = client.get("/metrics").text
    got = [s for r in results for s in r["scores"]]
    assert got == pytest.approx(alone, abs=1e-5)
    assert "batch" in metrics


def test_get_reward_matches_score_of_formatted_text(tiny_llama_dir):
    rm = load_reward_model(str(tiny_llama_dir))
    texts = [rm.tokenizer.apply_chat_template(c, tokenize=False) for c in CONVS[:4]]
    with TestClient(create_app(rm)) as client:
        body = client.post("/get_reward", json={"query": texts, "prompts": ["ignored"]}).json()
    assert body["rewards"] == pytest.approx(rm.score(CONVS[:4]), abs=1e-5)
    assert body["scores"] == body["rewards"]
