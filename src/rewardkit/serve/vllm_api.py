"""vLLM's pooling-server routes, answered as vLLM answers them: GET /v1/models, POST /classify, /pooling.

The request and response bodies follow vLLM's own protocol classes (`ModelCard`/`ModelList`,
`ClassificationCompletionRequest`/`ClassificationResponse`, `PoolingCompletionRequest`/`PoolingChatRequest`/
`PoolingResponse`, `ErrorResponse`), so a client written for `vllm serve --runner pooling` works unchanged.
Errors on these paths come in vLLM's envelope `{"error": {"message", "type", "param", "code"}}`.
See docs/serve.md ("vLLM's pooling API").
"""

from __future__ import annotations

import base64
import math
import os
import struct
import time
import uuid
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, model_validator

from rewardkit.scorers.base import Score
from rewardkit.serve.schemas import ChatMessage, PoolingData, PoolingResponse, PoolingUsage, Text

VLLM_PATHS = frozenset({"/v1/models", "/classify", "/pooling"})
# vLLM's ErrorInfo.type for a status (its create_error_response); other codes get the status phrase.
ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    422: "BadRequestError",
    500: "InternalServerError",
}


TokenIds = list[int]
Input = Text | list[Text] | TokenIds | list[TokenIds]


class PoolingRequest(BaseModel):
    """vLLM's pooling request: chat form (`messages`, one conversation) or completion form (`input`)."""

    model: str | None = None
    user: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    input: Input | None = Field(None, description="formatted text(s), or token ids (a list, or lists)")
    encoding_format: Literal["float", "base64"] = "float"
    use_activation: bool | None = Field(None, description="true: sigmoid of each value; default: raw values")
    add_special_tokens: bool | None = Field(
        None, description="text input: true adds the tokenizer's special tokens (BOS); default: none added"
    )

    @model_validator(mode="after")
    def _one_form(self):
        if (self.messages is None) == (self.input is None):
            raise ValueError("give exactly one of 'messages' (a conversation) or 'input' (text or texts)")
        return self


class ClassificationRequest(PoolingRequest):
    """vLLM's classification request: completion form (`input`) or chat form (`messages`)."""

    use_activation: bool | None = Field(None, description="default: vLLM's rule for the head's problem_type")


class ModelPermission(BaseModel):
    id: str = Field(default_factory=lambda: f"modelperm-{uuid.uuid4().hex}")
    object: str = "model_permission"
    created: int = Field(default_factory=lambda: int(time.time()))
    allow_create_engine: bool = False
    allow_sampling: bool = False  # a reward model generates nothing
    allow_logprobs: bool = False
    allow_search_indices: bool = False
    allow_view: bool = True
    allow_fine_tuning: bool = False
    organization: str = "*"
    group: str | None = None
    is_blocking: bool = False


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "rewardkit"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None
    permission: list[ModelPermission]


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class ClassificationData(BaseModel):
    index: int
    label: str | None
    probs: list[float]
    num_classes: int


class ClassificationResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ClassificationData]
    usage: PoolingUsage


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


def error_body(status: int, message: str, param: str | None = None) -> dict:
    """vLLM's ErrorResponse for `status`; `detail` repeats the message for rewardkit's earlier clients."""
    kind = ERROR_TYPES.get(status) or HTTPStatus(status).phrase.replace(" ", "")
    info = ErrorInfo(message=message, type=kind, param=param, code=status)
    return {"error": info.model_dump(), "detail": message}


vllm = APIRouter()
_errors = {c: {"model": ErrorResponse} for c in (400, 401, 404, 413, 422, 500)}


@vllm.get("/v1/models", response_model=ModelList, responses=_errors)
async def models(request: Request):
    """The served model, in OpenAI's / vLLM's model list shape."""
    served = request.app.state.served
    root = served.name
    limit = getattr(served.model, "max_length", None)
    card = ModelCard(
        id=served.name,
        created=int(request.app.state.started),
        root=str(root),
        max_model_len=int(limit) if limit else None,
        permission=[ModelPermission()],
    )
    return ModelList(data=[card])


@vllm.post("/pooling", response_model=PoolingResponse, responses=_errors)
async def pooling(req: PoolingRequest, request: Request):
    """vLLM's pooling for reward models: the reward head's output for each input."""
    served = request.app.state.served
    _check_model(served, req.model)
    results = await _score_input(served, req.messages, req.input, req.add_special_tokens)
    data = []
    for i, s in enumerate(results):
        values = _head_output(s)
        if req.use_activation:
            values = [[_sigmoid(v) for v in row] for row in values] if _nested(values) else _sigmoids(values)
        data.append(PoolingData(index=i, data=_encode(values) if req.encoding_format == "base64" else values))
    return PoolingResponse(
        id=f"pool-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=served.name,
        data=data,
        usage=_usage(results),
    )


@vllm.post("/classify", response_model=ClassificationResponse, responses=_errors)
async def classify(req: ClassificationRequest, request: Request):
    """vLLM's classification: `probs` is sigmoid(reward) for a one-logit head (softmax over several)."""
    served = request.app.state.served
    _check_model(served, req.model)
    results = await _score_input(served, req.messages, req.input, req.add_special_tokens)
    problem_type, labels = _head_config(served.model)
    data = []
    for i, s in enumerate(results):
        if s.step_scores is not None:
            raise HTTPException(400, "/classify needs a sequence reward model; use /pooling for a process RM")
        logits = _head_output(s)
        probs = logits if req.use_activation is False else _activation(logits, problem_type)
        best = max(range(len(probs)), key=probs.__getitem__)
        label = labels.get(best, labels.get(str(best), f"LABEL_{best}"))
        data.append(ClassificationData(index=i, label=label, probs=probs, num_classes=len(probs)))
    return ClassificationResponse(
        id=f"classify-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=served.name,
        data=data,
        usage=_usage(results),
    )


def _check_model(served: Any, name: str | None) -> None:
    """vLLM answers 404 for a `model` it does not serve. Accepted: the served name (the checkpoint's path,
    as /v1/models lists it) or its last part; a model object without a tokenizer (a Python scorer handed
    to create_app) accepts any name, as rewardkit's earlier /pooling did."""
    if name is None or getattr(served.model, "tokenizer", None) is None:
        return
    if name in {served.name, os.path.basename(served.name.rstrip("/"))}:
        return
    raise HTTPException(404, f"The model `{name}` does not exist. This server serves `{served.name}`.")


async def _score_input(served: Any, messages: list | None, inputs: Any, special: bool | None) -> list[Score]:
    from rewardkit.serve.app import _check_items, _columns, _scored

    model = served.model
    if messages is not None:
        if special:
            raise HTTPException(
                400, "add_special_tokens=true is not supported with messages (the template adds them)"
            )
        results = await _scored(served, "conversations", [[m.plain() for m in messages]])
    else:
        rows = [inputs] if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)) else inputs
        _check_items(served, len(rows), "inputs")
        if not rows:
            raise HTTPException(400, "input is empty: give a text, texts, or token ids")
        if isinstance(rows[0], list) or special:
            if not callable(getattr(model, "score_tokens", None)):
                kind = getattr(model, "kind", "?")
                raise HTTPException(
                    400, f"this model (kind={kind}) cannot score token ids; send text or messages"
                )
        if isinstance(rows[0], list):
            if any(not r for r in rows):
                raise HTTPException(400, "input: a token id list is empty")
            results = await _scored(served, "tokens", rows)
        elif special:
            results = await _scored(served, "tokens", [model.encode_text(t, True) for t in rows])
        else:
            results = await _scored(served, "texts", rows)
    _columns(results)  # the finiteness check
    return results


def _head_output(s: Score) -> list[float] | list[list[float]]:
    """The reward head's output: the raw score, then the per-objective sub-scores in model order.

    Remote-code models list the score itself among their sub-scores (as "score"); it is given once.
    A process reward model gives vLLM's token-classification ("step") shape: [P(bad), P(good)] per step.
    """
    if s.step_scores is not None:
        return [[1.0 - float(p), float(p)] for p in s.step_scores]
    return [float(s.score), *(float(v) for k, v in (s.sub_scores or {}).items() if k != "score")]


def _usage(results: list[Score]) -> PoolingUsage:
    tokens = sum(int(s.num_tokens) for s in results)
    return PoolingUsage(prompt_tokens=tokens, total_tokens=tokens)


def _nested(values: list) -> bool:
    return bool(values) and isinstance(values[0], list)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _sigmoids(values: list[float]) -> list[float]:
    return [_sigmoid(v) for v in values]


def _head_config(model: Any) -> tuple[str | None, dict]:
    """The head's `problem_type` and `id2label`: the model's own attributes, else its transformers config."""
    config = getattr(getattr(model, "model", None), "config", None)
    problem = getattr(model, "problem_type", None) or getattr(config, "problem_type", None)
    labels = getattr(model, "id2label", None) or getattr(config, "id2label", None) or {}
    return problem, dict(labels)


def _activation(logits: list[float], problem_type: str | None) -> list[float]:
    """vLLM's classifier activation (`get_classification_act_fn`): none for a regression head, sigmoid
    per logit for multi-label, else sigmoid for one logit and softmax over several."""
    if problem_type == "regression":
        return list(logits)
    if len(logits) == 1 or problem_type == "multi_label_classification":
        return _sigmoids(logits)
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    return [e / sum(exps) for e in exps]


def _encode(values: list) -> str:
    """base64 of the values as little-endian float32, flattened row by row (vLLM's encoding_format)."""
    flat = [v for row in values for v in row] if _nested(values) else values
    return base64.b64encode(struct.pack(f"<{len(flat)}f", *flat)).decode("ascii")
