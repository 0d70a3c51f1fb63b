"""`rewardkit serve`: routes, auth, limits, dynamic batching, metrics; a fake model and a tiny Llama."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import PointwiseMixin, Score
from rewardkit.serve.app import create_app
from rewardkit.serve.batcher import Batcher, LimitExceeded

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}


def conv(answer: str, prompt: str = "q") -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


class FakeRM(PointwiseMixin):
    """Score = length of the last message + 0.25 per turn; 'tokens' = characters + 2 per message.

    Records the size of every model call. `delay` stands in for a forward pass; content 'BOOM'
    raises ValueError (bad input), 'CRASH' RuntimeError (a broken model), 'NAN' returns NaN.
    """

    kind, name, max_length = "fake", "fake-rm", 10_000

    def __init__(self, delay: float = 0.0, normalized: bool = False, sub_scores: bool = False):
        self.delay, self.normalized, self.sub_scores = delay, normalized, sub_scores
        self.batch_sizes: list[int] = []
        self.threads: set[str] = set()

    def count_tokens(self, convs):
        return [sum(len(m["content"]) + 2 for m in c) for c in convs]

    def _score(self, text: str, turns: int, tokens: int) -> Score:
        if "BOOM" in text:
            raise ValueError("BOOM is not allowed")
        if "CRASH" in text:
            raise RuntimeError("CUDA out of memory (pretend)")
        value = float("nan") if "NAN" in text else len(text) + 0.25 * turns
        return Score(
            score=value,
            num_tokens=tokens,
            truncated=False,
            normalized=(value - 1) / 2 if self.normalized else None,
            sub_scores={"help": value / 2, "safe": -1.0} if self.sub_scores else {},
        )

    def score_detailed(self, convs):
        self.batch_sizes.append(len(convs))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return [self._score(c[-1]["content"], len(c), n) for c, n in zip(convs, self.count_tokens(convs))]

    def score_texts(self, texts):
        self.batch_sizes.append(len(texts))
        time.sleep(self.delay)
        return [self._score(t, 0, len(t)) for t in texts]


@pytest.fixture
def fake():
    return FakeRM()


@pytest.fixture
def client(fake):
    with TestClient(create_app(fake, api_key=KEY), headers=AUTH) as c:
        yield c


# ---- routes ---------------------------------------------------------------------------------


def test_score_returns_columns_in_order(client):
    convs = [conv("abcd"), conv("a"), [{"role": "user", "content": "xy"}]]
    r = client.post("/score", json={"conversations": convs})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "scores": [4.5, 1.5, 2.25],
        "num_tokens": [9, 6, 4],
        "truncated": [False, False, False],
        "normalized": None,
    }


def test_score_includes_normalized_and_sub_scores_when_the_model_has_them():
    with TestClient(create_app(FakeRM(normalized=True, sub_scores=True))) as c:
        body = c.post("/score", json={"conversations": [conv("abc")]}).json()
    assert body["scores"] == [3.5]
    assert body["normalized"] == [1.25]
    assert body["sub_scores"] == [{"help": 1.75, "safe": -1.0}]


def test_compare_ranks_best_first(client):
    r = client.post("/compare", json={"prompt": "hi", "responses": ["ab", "abcd", "a", "abcd"]})
    assert r.status_code == 200, r.text
    assert r.json()["scores"] == [2.5, 4.5, 1.5, 4.5]
    assert r.json()["ranking"] == [1, 3, 0, 2]  # ties keep input order
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    r = client.post("/compare", json={"prompt": messages, "responses": ["ab"]})
    assert r.json()["scores"] == [2.75] and r.json()["num_tokens"] == [3 + 4 + 4]


CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}, "id": "c1"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


class RecordingRM(FakeRM):
    """FakeRM that keeps every conversation it was asked to score (the normal form scorers read)."""

    def __init__(self):
        super().__init__()
        self.seen: list[list[dict]] = []

    def score_detailed(self, convs):
        self.seen += [list(c) for c in convs]
        return super().score_detailed(convs)


def test_tool_turns_and_tools_reach_the_model_as_the_score_command_reads_them():
    from rewardkit.data.rows import parse_score_row

    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather"}, {"type": "text", "text": "in Paris?"}],
        },
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "content": "sunny, 21C", "tool_call_id": "c1"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    rm = RecordingRM()
    with TestClient(create_app(rm)) as c:
        r = c.post("/score", json={"conversations": [messages], "tools": TOOLS})
        assert r.status_code == 200, r.text
        r = c.post("/pooling", json={"messages": messages})
        assert r.status_code == 200, r.text
    served, pooled = rm.seen
    # `rewardkit score` on the same row gives the model the same conversation, so the same tokens
    row = parse_score_row("in.jsonl", 1, json.dumps({"messages": messages, "tools": TOOLS}).encode())
    assert served == row.messages
    assert served[0] == {"role": "user", "content": "Weather\nin Paris?", "tools": TOOLS}
    assert served[1] == {"role": "assistant", "content": "", "tool_calls": [CALL]}
    assert served[2] == {"role": "tool", "content": "sunny, 21C", "tool_call_id": "c1"}
    assert pooled == [{k: v for k, v in m.items() if k != "tools"} for m in served]


def test_compare_takes_tool_call_answers_and_tools():
    rm = RecordingRM()
    body = {"prompt": "Weather in Paris?", "tools": TOOLS}
    body["responses"] = [{"role": "assistant", "content": None, "tool_calls": [CALL]}, "It is sunny."]
    with TestClient(create_app(rm)) as c:
        r = c.post("/compare", json=body)
        assert r.status_code == 200, r.text
        bad = c.post("/compare", json={**body, "responses": [{"role": "user", "content": "x"}]})
    head = [{"role": "user", "content": "Weather in Paris?", "tools": TOOLS}]
    assert rm.seen == [
        head + [{"role": "assistant", "content": "", "tool_calls": [CALL]}],
        head + [{"role": "assistant", "content": "It is sunny."}],
    ]
    assert bad.status_code == 422 and "responses[0] must be an assistant message" in bad.json()["detail"]


def test_get_reward_matches_openrlhf_shape(client, fake):
    body = {"query": ["<s>q a</s>", "xy"], "prompts": ["q", "x"], "labels": None, "extra": 1}
    r = client.post("/get_reward", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"rewards": [10.0, 2.0], "scores": [10.0, 2.0]}
    assert client.post("/get_reward", json={"query": "abc"}).json()["rewards"] == [3.0]


def test_normalize_reward_serves_openrlhf_normalised_rewards():
    rm = FakeRM(normalized=True)
    rm.normalization = (1.0, 2.0)  # what ClassifierRM reads from reward_mean / reward_std
    with TestClient(create_app(rm, normalize_reward=True)) as c:
        assert c.post("/get_reward", json={"query": ["abc", "a"]}).json() == {
            "rewards": [1.0, 0.0],
            "scores": [1.0, 0.0],
        }
        body = c.post("/score", json={"conversations": [conv("abc")]}).json()
    assert (body["scores"], body["normalized"]) == ([3.5], [1.25])  # /score keeps both columns
    with pytest.raises(RewardkitError, match="serve --normalize_reward: this model has no reward statistics"):
        create_app(FakeRM(), normalize_reward=True)


def test_pooling_chat_and_completion_forms(client):
    r = client.post("/pooling", json={"model": "whatever", "messages": conv("abc")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "fake-rm" and body["id"].startswith("pool-")
    assert isinstance(body["created"], int)
    assert body["data"] == [{"index": 0, "object": "pooling", "data": [3.5]}]
    usage = {"prompt_tokens": 8, "total_tokens": 8, "completion_tokens": 0, "prompt_tokens_details": None}
    assert body["usage"] == usage
    r = client.post("/pooling", json={"input": ["ab", "abcde"]})
    assert [d["data"] for d in r.json()["data"]] == [[2.0], [5.0]]
    assert client.post("/pooling", json={"input": "abc"}).json()["data"][0]["index"] == 0


def test_pooling_data_holds_sub_scores_after_the_score():
    with TestClient(create_app(FakeRM(sub_scores=True))) as c:
        assert c.post("/pooling", json={"input": "ab"}).json()["data"][0]["data"] == [2.0, 1.0, -1.0]


def test_pooling_needs_exactly_one_form(client):
    for body in ({"model": "m"}, {"messages": conv("a"), "input": "a"}):
        r = client.post("/pooling", json=body)
        assert r.status_code == 422 and "exactly one of 'messages'" in r.json()["detail"]


def test_text_routes_need_score_texts():
    class NoTexts(FakeRM):
        score_texts = None

    with TestClient(create_app(NoTexts())) as c:
        r = c.post("/get_reward", json={"query": ["a"]})
    assert r.status_code == 400 and "/score" in r.json()["detail"]


def test_openapi_and_health(client):
    spec = client.get("/openapi.json").json()
    assert {"/score", "/compare", "/get_reward", "/pooling", "/health", "/metrics"} <= set(spec["paths"])
    assert client.get("/health", headers={"Authorization": ""}).json()["status"] == "ok"


# ---- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}])
def test_every_route_but_health_needs_the_key(fake, headers):
    with TestClient(create_app(fake, api_key=KEY)) as c:
        assert c.get("/health", headers=headers).status_code == 200
        for method, path in [("post", "/score"), ("post", "/pooling"), ("get", "/metrics"), ("get", "/docs")]:
            r = c.request(method, path, headers=headers, json={"conversations": []})
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer" and "Authorization: Bearer" in r.json()["detail"]
        assert c.post("/score", headers=AUTH, json={"conversations": []}).status_code == 200
    assert fake.batch_sizes == []  # nothing reached the model


def test_no_key_configured_means_open(fake):
    with TestClient(create_app(fake)) as c:
        assert c.post("/score", json={"conversations": [conv("a")]}).status_code == 200


# ---- limits and bad input ----------------------------------------------------------------------


def test_body_over_cap_is_413_naming_the_limit(fake):
    with TestClient(create_app(fake, max_body_bytes=300)) as c:
        big = {"conversations": [conv("x" * 400)]}
        r = c.post("/score", json=big)
        assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"] and "300" in r.json()["detail"]
        chunks = iter([b'{"conversations": [[{"role": "user", "content": "', b"x" * 400, b'"}]]}'])
        # An iterator body goes out chunked, without a Content-Length to check up front.
        r = c.post("/score", content=chunks, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]
        assert c.post("/score", json={"conversations": [conv("x")]}).status_code == 200
    assert fake.batch_sizes == [1]


def test_too_many_items_is_413_naming_max_items(fake):
    with TestClient(create_app(fake, max_items=3)) as c:
        for path, body in [
            ("/score", {"conversations": [conv("a")] * 4}),
            ("/compare", {"prompt": "p", "responses": ["a"] * 4}),
            ("/get_reward", {"query": ["a"] * 4}),
            ("/pooling", {"input": ["a"] * 4}),
        ]:
            r = c.post(path, json=body)
            assert r.status_code == 413, path
            assert "has 4" in r.json()["detail"] and "at most 3 (max_items)" in r.json()["detail"]
    assert fake.batch_sizes == []


def test_item_over_token_cap_is_413_naming_it(fake):
    with TestClient(create_app(fake, max_tokens_per_item=20)) as c:
        r = c.post("/score", json={"conversations": [conv("a"), conv("x" * 30)]})
        assert r.status_code == 413
        assert "item 1 is 35 tokens" in r.json()["detail"] and "max_tokens_per_item" in r.json()["detail"]
        assert c.post("/score", json={"conversations": [conv("x" * 15)]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"conversations": [[{"role": "user", "content": "a"}]', "JSON decode error"),
        (b'{"conversations": [[{"role": "robot", "content": "a"}]]}', "conversations[0][0].role"),
        (b'{"conversations": [[{"role": "user"}]]}', "conversations[0][0]: Value error, content is required"),
        (b'{"conversations": [[{"role": "assistant", "content": null}]]}', "content is required"),
        (
            b'{"conversations": [[{"role": "user", "content": "", "tool_calls": [{"function": {}}]}]]}',
            "tool_calls are for assistant messages",
        ),
        (b'{"conversations": [[]]}', "conversations[0]"),
        (b'{"conversations": "abc"}', "conversations"),
        (b'{"conversations": [[{"role": "user", "content": "\\ud800"}]]}', "lone surrogate"),
        (b"[]", "body"),
        (b"", "body"),
    ],
)
def test_bad_shapes_are_422_with_a_readable_message(client, body, where):
    r = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("invalid request: ") and where in r.json()["detail"]


def test_model_input_errors_are_422_and_failures_500(client):
    r = client.post("/score", json={"conversations": [conv("BOOM")]})
    assert r.status_code == 422 and "BOOM is not allowed" in r.json()["detail"]
    r = client.post("/score", json={"conversations": [conv("CRASH")]})
    assert r.status_code == 500 and "CUDA out of memory" in r.json()["detail"]
    r = client.post("/score", json={"conversations": [conv("NAN")]})
    assert r.status_code == 500 and "non-finite" in r.json()["detail"]
    assert client.post("/score", json={"conversations": [conv("ok")]}).status_code == 200  # still serving


def test_create_app_names_a_bad_setting(fake):
    from rewardkit.errors import RewardkitError

    with pytest.raises(RewardkitError, match="max_items"):
        create_app(fake, max_items=0)
    with pytest.raises(RewardkitError, match="score_detailed"):
        create_app(object())


# ---- metrics ------------------------------------------------------------------------------


def test_metrics_count_requests_latency_batches_and_queue(client):
    client.post("/score", json={"conversations": [conv("a"), conv("b")]})
    client.post("/score", json={"conversations": "bad"})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'rewardkit_requests_total{route="/score",status="200"} 1.0' in text
    assert 'rewardkit_requests_total{route="/score",status="422"} 1.0' in text
    assert 'rewardkit_requests_total{route="other",status="404"} 1.0' in text
    assert 'rewardkit_request_latency_seconds_count{route="/score"} 2.0' in text
    assert "rewardkit_batch_size_count 1.0" in text and "rewardkit_batch_size_sum 2.0" in text
    assert "rewardkit_queue_depth 0.0" in text


def test_apps_keep_separate_registries(fake):
    a, b = create_app(fake), create_app(fake)
    assert a.state.served.metrics.registry is not b.state.served.metrics.registry


# ---- dynamic batching ---------------------------------------------------------------------


def _requests(n: int) -> list[list[list[dict]]]:
    """n requests of 1-3 conversations with distinct answers."""
    return [[conv("x" * (i * 3 + j + 1)) for j in range(1 + i % 3)] for i in range(n)]


async def _gather_http(app, requests):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        rs = await asyncio.gather(*(c.post("/score", json={"conversations": r}) for r in requests))
    return [r.json()["scores"] for r in rs]


def test_concurrent_callers_get_exactly_their_own_scores():
    requests = _requests(24)
    alone = FakeRM()
    expected = [[s.score for s in alone.score_detailed(r)] for r in requests]
    model = FakeRM(delay=0.02)
    app = create_app(model, max_wait_ms=20)
    try:
        got = asyncio.run(_gather_http(app, requests))
    finally:
        app.state.served.batcher.close()
    assert got == expected
    assert max(model.batch_sizes) > 1 and sum(model.batch_sizes) == sum(map(len, requests))
    assert model.threads == {"rewardkit-batcher"}  # the model only ran on the worker thread


def test_batching_off_scores_each_request_alone():
    requests = _requests(12)
    model = FakeRM(delay=0.005)
    app = create_app(model, batching=False)
    try:
        got = asyncio.run(_gather_http(app, requests))
    finally:
        app.state.served.batcher.close()
    assert got == [[s.score for s in FakeRM().score_detailed(r)] for r in requests]
    assert sorted(model.batch_sizes) == sorted(map(len, requests))


async def _batcher_run(batcher: Batcher, jobs):
    try:
        calls = [batcher.score("conversations", j) for j in jobs]
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        batcher.close()


def test_batches_respect_token_and_item_budgets():
    model = FakeRM(delay=0.01)
    jobs = [[conv("x" * 10)] * 3 for _ in range(8)]  # 16 tokens per item
    batcher = Batcher(model, max_batch_tokens=50, max_batch_items=64, max_wait_ms=50)
    out = asyncio.run(_batcher_run(batcher, jobs))
    assert all(isinstance(o, list) and len(o) == 3 for o in out)
    assert max(model.batch_sizes) == 3 and sum(model.batch_sizes) == 24  # 3 * 16 <= 50 < 4 * 16

    model = FakeRM(delay=0.01)
    asyncio.run(_batcher_run(Batcher(model, max_batch_tokens=10**6, max_batch_items=5, max_wait_ms=50), jobs))
    assert max(model.batch_sizes) == 5 and sum(model.batch_sizes) == 24


def test_an_item_over_the_token_budget_runs_alone():
    model = FakeRM()
    out = asyncio.run(_batcher_run(Batcher(model, max_batch_tokens=5), [[conv("x" * 50)]]))
    assert out[0][0].score == 50.5 and model.batch_sizes == [1]


def test_one_callers_bad_input_does_not_fail_the_others():
    model = FakeRM(delay=0.01)
    jobs = [[conv("fine")], [conv("BOOM")], [conv("also fine"), conv("ok")]]
    out = asyncio.run(_batcher_run(Batcher(model, max_wait_ms=50), jobs))
    assert [s.score for s in out[0]] == [4.5]
    assert isinstance(out[1], ValueError)
    assert [s.score for s in out[2]] == [9.5, 2.5]


def test_token_cap_refuses_only_that_caller():
    batcher = Batcher(FakeRM(), max_tokens_per_item=10)
    out = asyncio.run(_batcher_run(batcher, [[conv("x" * 20)], [conv("a")]]))
    assert isinstance(out[0], LimitExceeded) and out[0].limit == "max_tokens_per_item"
    assert out[1][0].score == 1.5


def test_a_cancelled_caller_does_not_break_the_worker():
    model = FakeRM(delay=0.05)

    async def main():
        b = Batcher(model, max_wait_ms=0)
        try:
            slow = asyncio.create_task(b.score("conversations", [conv("a")]))
            await asyncio.sleep(0.01)
            doomed = asyncio.create_task(b.score("conversations", [conv("b")]))
            await asyncio.sleep(0)
            doomed.cancel()
            later = await b.score("conversations", [conv("ccc")])
            return (await slow)[0].score, later[0].score, b.queue_depth()
        finally:
            b.close()

    assert asyncio.run(main()) == (1.5, 3.5, 0)


# ---- a real tiny model ---------------------------------------------------------------------


class TinyLlamaRM:
    """Minimal adapter around a tiny random Llama classifier: chat template, one forward per item."""

    kind, name, max_length = "seq_classifier", "tiny-llama", 2048

    def __init__(self):
        from conftest import make_char_tokenizer, make_tiny_llama

        self.tokenizer = make_char_tokenizer()
        self.model = make_tiny_llama(self.tokenizer)

    def _ids(self, conversation) -> list[int]:
        return self.tokenizer.apply_chat_template(conversation, tokenize=True)["input_ids"]

    def _forward(self, ids: list[int]) -> Score:
        import torch

        with torch.no_grad():
            logit = self.model(input_ids=torch.tensor([ids])).logits[0, 0]
        return Score(score=float(logit), num_tokens=len(ids))

    def count_tokens(self, conversations):
        return [len(self._ids(c)) for c in conversations]

    def score_detailed(self, conversations):
        return [self._forward(self._ids(c)) for c in conversations]

    def score_texts(self, texts):
        return [self._forward(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def test_tiny_llama_served_scores_equal_direct_scores():
    rm = TinyLlamaRM()
    convs = [conv("a fine answer", "what?"), conv("no"), conv("yes, certainly", "sure?")]
    direct = rm.score_detailed(convs)
    app = create_app(rm, max_wait_ms=20)
    with TestClient(app) as c:
        body = c.post("/score", json={"conversations": convs}).json()
        assert body["scores"] == [s.score for s in direct]
        assert body["num_tokens"] == [s.num_tokens for s in direct]
        texts = [rm.tokenizer.apply_chat_template(x, tokenize=False) for x in convs]
        assert c.post("/get_reward", json={"query": texts}).json()["rewards"] == body["scores"]
    app = create_app(rm, max_wait_ms=20)
    try:
        got = asyncio.run(_gather_http(app, [[x] for x in convs] * 2))
    finally:
        app.state.served.batcher.close()
    assert got == [[s.score] for s in direct] * 2
