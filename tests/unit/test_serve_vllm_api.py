"""vLLM's pooling-server routes (/v1/models, /classify, /pooling): every field as vLLM's protocol has it."""

from __future__ import annotations

import base64
import math
import struct
import time

import pytest
from fastapi.testclient import TestClient
from test_serve import AUTH, KEY, FakeRM, conv

from rewardkit.scorers.base import Score
from rewardkit.serve.app import create_app

USAGE_KEYS = {"prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details"}
ERROR_KEYS = {"message", "type", "param", "code"}


class TokenFakeRM(FakeRM):
    """FakeRM that also scores token ids: score = sum of the ids; 'special tokens' add a leading 1."""

    def score_tokens(self, rows):
        self.batch_sizes.append(len(rows))
        return [Score(float(sum(r)), len(r), False, None, {}) for r in rows]

    def encode_text(self, text, add_special_tokens):
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]


class CheckpointRM(TokenFakeRM):
    """Looks like a checkpoint loaded from a path: it has a tokenizer and its name is that path."""

    name, tokenizer = "/models/rm-7b", object()
    id2label = {0: "reward"}


@pytest.fixture
def client():
    with TestClient(create_app(TokenFakeRM(), api_key=KEY), headers=AUTH) as c:
        yield c


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def check_error(r, status: int, kind: str, words: str, param=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == status and body["error"]["type"] == kind
    assert words in body["error"]["message"] and body["error"]["param"] == param
    assert body["detail"] == body["error"]["message"]


# ---- GET /v1/models -------------------------------------------------------------------------


def test_models_lists_the_served_model_as_vllm_does(client):
    before = int(time.time())
    body = client.get("/v1/models").json()
    assert set(body) == {"object", "data"} and body["object"] == "list" and len(body["data"]) == 1
    card = body["data"][0]
    assert set(card) == {
        "id",
        "object",
        "created",
        "owned_by",
        "root",
        "parent",
        "max_model_len",
        "permission",
    }
    assert card["id"] == "fake-rm" and card["object"] == "model" and card["root"] == "fake-rm"
    assert card["owned_by"] == "rewardkit" and card["parent"] is None and card["max_model_len"] == 10_000
    assert before - 60 <= card["created"] <= before + 1
    (perm,) = card["permission"]
    assert perm["object"] == "model_permission" and perm["id"].startswith("modelperm-")
    assert perm["allow_sampling"] is False and perm["organization"] == "*" and perm["group"] is None


def test_models_needs_the_key():
    with TestClient(create_app(TokenFakeRM(), api_key=KEY)) as c:
        check_error(c.get("/v1/models"), 401, "Unauthorized", "missing or wrong API key")


# ---- POST /pooling --------------------------------------------------------------------------


def test_pooling_completion_forms_text_and_token_ids(client):
    r = client.post("/pooling", json={"model": "any", "input": ["ab", "abcde"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "object", "created", "model", "data", "usage"}
    assert body["id"].startswith("pool-") and body["object"] == "list" and body["model"] == "fake-rm"
    assert body["data"] == [
        {"index": 0, "object": "pooling", "data": [2.0]},
        {"index": 1, "object": "pooling", "data": [5.0]},
    ]
    assert body["usage"] == {
        "prompt_tokens": 7,
        "total_tokens": 7,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
    }
    one = client.post("/pooling", json={"input": [5, 6, 7]}).json()
    assert (
        one["data"] == [{"index": 0, "object": "pooling", "data": [18.0]}]
        and one["usage"]["prompt_tokens"] == 3
    )
    many = client.post("/pooling", json={"input": [[1, 2], [10]]}).json()
    assert [d["data"] for d in many["data"]] == [[3.0], [10.0]]


def test_pooling_add_special_tokens_goes_through_the_tokenizer(client):
    plain = client.post("/pooling", json={"input": "ab", "add_special_tokens": False}).json()
    special = client.post("/pooling", json={"input": "ab", "add_special_tokens": True}).json()
    assert plain["data"][0]["data"] == [2.0]  # score_texts: the text as formatted
    assert special["data"][0]["data"] == [1.0 + ord("a") + ord("b")]
    assert special["usage"]["prompt_tokens"] == 3


def test_pooling_messages_with_content_parts_and_tool_turns(client):
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "q"}]},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": [{"type": "text", "text": "ab"}, {"type": "text", "text": "c"}]},
    ]
    body = client.post("/pooling", json={"messages": parts}).json()
    assert body["data"] == [{"index": 0, "object": "pooling", "data": [len("ab\nc") + 0.75]}]


def test_pooling_use_activation_and_base64(client):
    raw = client.post("/pooling", json={"input": ["ab"], "use_activation": False}).json()["data"][0]["data"]
    act = client.post("/pooling", json={"input": ["ab"], "use_activation": True}).json()["data"][0]["data"]
    assert raw == [2.0] and act == [pytest.approx(sigmoid(2.0))]
    body = client.post("/pooling", json={"input": "abc", "encoding_format": "base64"}).json()
    encoded = body["data"][0]["data"]
    assert isinstance(encoded, str) and struct.unpack("<1f", base64.b64decode(encoded)) == (3.0,)
    both = client.post("/pooling", json={"input": "ab", "encoding_format": "base64", "use_activation": True})
    (value,) = struct.unpack("<1f", base64.b64decode(both.json()["data"][0]["data"]))
    assert value == pytest.approx(sigmoid(2.0), rel=1e-6)


def test_pooling_sub_scores_follow_the_score_in_base64_too():
    with TestClient(create_app(TokenFakeRM(sub_scores=True))) as c:
        body = c.post("/pooling", json={"input": "ab", "encoding_format": "base64"}).json()
    assert struct.unpack("<3f", base64.b64decode(body["data"][0]["data"])) == (2.0, 1.0, -1.0)


# ---- POST /classify -------------------------------------------------------------------------


def test_classify_one_logit_gives_sigmoid_probs(client):
    r = client.post("/classify", json={"model": "x", "input": ["ab", "a"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "object", "created", "model", "data", "usage"}
    assert body["id"].startswith("classify-") and body["object"] == "list" and body["model"] == "fake-rm"
    assert isinstance(body["created"], int) and set(body["usage"]) == USAGE_KEYS
    first, second = body["data"]
    assert set(first) == {"index", "label", "probs", "num_classes"}
    assert first["index"] == 0 and first["label"] == "LABEL_0" and first["num_classes"] == 1
    assert first["probs"] == [pytest.approx(sigmoid(2.0))] and second["probs"] == [
        pytest.approx(sigmoid(1.0))
    ]
    raw = client.post("/classify", json={"input": "ab", "use_activation": False}).json()
    assert raw["data"][0]["probs"] == [2.0]
    ids = client.post("/classify", json={"input": [[1, 1]]}).json()
    assert ids["data"][0]["probs"] == [pytest.approx(sigmoid(2.0))]
    chat = client.post("/classify", json={"messages": conv("abc")}).json()
    assert chat["data"][0]["probs"] == [pytest.approx(sigmoid(3.5))] and chat["usage"]["prompt_tokens"] == 8


def test_classify_several_columns_gives_softmax_and_the_models_label():
    with TestClient(create_app(CheckpointRM(sub_scores=True))) as c:
        body = c.post("/classify", json={"model": "rm-7b", "input": "ab"}).json()
    (item,) = body["data"]
    exps = [math.exp(v) for v in (2.0, 1.0, -1.0)]
    assert item["probs"] == pytest.approx([e / sum(exps) for e in exps]) and item["num_classes"] == 3
    assert item["label"] == "reward"


def test_classify_follows_the_heads_problem_type_as_vllm_does():
    class Regression(CheckpointRM):
        problem_type = "regression"

    class MultiLabel(CheckpointRM):
        problem_type = "multi_label_classification"

    with TestClient(create_app(Regression(sub_scores=True))) as c:
        assert c.post("/classify", json={"input": "ab"}).json()["data"][0]["probs"] == [2.0, 1.0, -1.0]
    with TestClient(create_app(MultiLabel(sub_scores=True))) as c:
        probs = c.post("/classify", json={"input": "ab"}).json()["data"][0]["probs"]
    assert probs == pytest.approx([sigmoid(2.0), sigmoid(1.0), sigmoid(-1.0)])


# ---- errors in vLLM's envelope --------------------------------------------------------------


def test_unknown_model_is_404_for_a_checkpoint():
    with TestClient(create_app(CheckpointRM())) as c:
        for path in ("/pooling", "/classify"):
            check_error(c.post(path, json={"model": "gpt-4", "input": "a"}), 404, "NotFoundError", "`gpt-4`")
        assert c.post("/pooling", json={"model": "/models/rm-7b", "input": "a"}).status_code == 200
        assert c.get("/v1/models").json()["data"][0]["id"] == "/models/rm-7b"


def test_validation_errors_are_422_in_the_envelope(client):
    check_error(
        client.post("/pooling", json={"input": "a", "encoding_format": "bf16"}),
        422,
        "BadRequestError",
        "encoding_format",
        param="encoding_format",
    )
    check_error(client.post("/classify", json={}), 422, "BadRequestError", "exactly one of 'messages'")
    r = client.post("/pooling", json={"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})
    assert r.status_code == 422 and "error" in r.json()


def test_bad_requests_are_400_in_the_envelope(client):
    check_error(client.post("/pooling", json={"input": []}), 400, "BadRequestError", "input is empty")
    check_error(client.post("/pooling", json={"input": [[1], []]}), 400, "BadRequestError", "empty")
    body = {"messages": conv("a"), "add_special_tokens": True}
    check_error(client.post("/pooling", json=body), 400, "BadRequestError", "add_special_tokens")
    with TestClient(create_app(FakeRM())) as c:  # no score_tokens
        check_error(
            c.post("/pooling", json={"input": [1, 2]}), 400, "BadRequestError", "cannot score token ids"
        )


def test_limits_are_413_in_the_envelope():
    with TestClient(create_app(TokenFakeRM(), max_items=2, max_body_bytes=200)) as c:
        check_error(c.post("/pooling", json={"input": ["a"] * 3}), 413, "RequestEntityTooLarge", "max_items")
        check_error(
            c.post("/classify", json={"input": "a" * 300}), 413, "RequestEntityTooLarge", "max_body_bytes"
        )


def test_model_errors_in_the_envelope_other_routes_keep_detail(client):
    check_error(
        client.post("/classify", json={"input": "BOOM"}), 422, "BadRequestError", "BOOM is not allowed"
    )
    check_error(client.post("/pooling", json={"input": "CRASH"}), 500, "InternalServerError", "CUDA")
    r = client.post("/score", json={"conversations": [conv("BOOM")]})
    assert r.status_code == 422 and set(r.json()) == {"detail"}
    r = client.post("/score", json={})
    assert r.status_code == 422 and "error" not in r.json() and "errors" in r.json()


def test_openapi_lists_the_vllm_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/classify", "/pooling"} <= set(paths)


# ---- a real tiny model ----------------------------------------------------------------------


def test_tiny_llama_token_ids_and_texts_agree(tiny_llama_dir):
    from rewardkit.scorers.load import load_reward_model

    rm = load_reward_model(str(tiny_llama_dir))
    text = rm.tokenizer.apply_chat_template(conv("a fine answer", "what?"), tokenize=False)
    ids = rm.encode_text(text, add_special_tokens=False)
    with TestClient(create_app(rm)) as c:
        by_text = c.post("/pooling", json={"input": text}).json()["data"][0]["data"]
        by_ids = c.post("/pooling", json={"input": ids}).json()["data"][0]["data"]
        by_chat = c.post("/pooling", json={"messages": conv("a fine answer", "what?")}).json()["data"][0][
            "data"
        ]
        prob = c.post("/classify", json={"input": [ids]}).json()["data"][0]["probs"]
        bad = c.post("/pooling", json={"input": [10**6]})
    assert by_ids == pytest.approx(by_text, abs=1e-5) and by_chat == pytest.approx(by_text, abs=1e-4)
    assert rm.model.config.problem_type in (None, "single_label_classification")
    assert rm.model.config.problem_type in (None, "single_label_classification")
    assert prob == [pytest.approx(sigmoid(by_text[0]), abs=1e-5)]
    check_error(bad, 422, "BadRequestError", "outside the vocabulary")
    rm.model.config.problem_type = "regression"  # as `rewardkit train` exports it: vLLM gives the raw reward
    with TestClient(create_app(rm)) as c:
        raw = c.post("/classify", json={"input": text}).json()["data"][0]
    assert raw["probs"] == pytest.approx(by_text, abs=1e-5) and raw["num_classes"] == 1


def test_a_body_that_is_not_json_is_400_in_the_envelope():
    """Found by the schemathesis run: Starlette's own 400 for an unparsable body kept FastAPI's shape."""
    with TestClient(create_app(FakeRM())) as client:
        r = client.post("/pooling", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.json()["error"]["code"] == r.status_code


def test_vllm_backend_pooler_options_follow_the_installed_poolerconfig():
    import dataclasses

    from rewardkit.errors import RewardkitError
    from rewardkit.serve.vllm_backend import pooler_options

    # vLLM's PoolerConfig field names today (vllm/config/pooler.py) and in 0.10; no defaults matter here
    current = dataclasses.make_dataclass(
        "PoolerConfig", ["task", "pooling_type", "seq_pooling_type", "tok_pooling_type", "use_activation"]
    )
    old = dataclasses.make_dataclass("PoolerConfig", ["pooling_type", "normalize", "activation", "softmax"])
    assert pooler_options(current) == {"use_activation": False, "pooling_type": "LAST"}
    assert pooler_options(old) == {"activation": False, "pooling_type": "LAST"}
    current(**{f.name: None for f in dataclasses.fields(current)} | pooler_options(current))  # accepted
    with pytest.raises(RewardkitError, match="neither use_activation nor activation"):
        pooler_options(dataclasses.make_dataclass("PoolerConfig", ["pooling_type"]))


def test_vllm_backend_without_vllm_is_one_line(monkeypatch):
    import sys

    from rewardkit.config import RewardModelArguments
    from rewardkit.errors import RewardkitError
    from rewardkit.serve.vllm_backend import load_vllm_reward_model

    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without vLLM: import fails
    with pytest.raises(RewardkitError, match="--backend vllm needs vLLM: pip install vllm"):
        load_vllm_reward_model(RewardModelArguments(model="outputs/rm"))
