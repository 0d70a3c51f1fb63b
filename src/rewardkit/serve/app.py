"""`rewardkit serve`: a FastAPI app around one reward model, with dynamic batching and limits.

Routes: POST /score, /compare, /get_reward (OpenRLHF's remote RM shape); vLLM's GET /v1/models,
POST /classify, /pooling (serve/vllm_api.py); GET /health (no auth), /metrics (Prometheus). OpenAPI docs at /docs and /openapi.json.

Example:
    >>> from fastapi.testclient import TestClient
    >>> class Length:  # any object with score_detailed(conversations) -> list[Score]
    ...     kind, name = "demo", "length"
    ...     def score_detailed(self, convs):
    ...         return [Score(float(len(c[-1]["content"]))) for c in convs]
    >>> client = TestClient(create_app(Length()))
    >>> client.post("/score", json={"conversations": [[{"role": "user", "content": "abc"}]]}).json()["scores"]
    [3.0]
"""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardkit.data.schema import with_tools
from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import Group, Score, as_messages, ranking
from rewardkit.serve.batcher import Batcher, Kind, LimitExceeded
from rewardkit.serve.guard import Guard
from rewardkit.serve.metrics import ServeMetrics
from rewardkit.serve.schemas import (
    CompareRequest,
    CompareResponse,
    GetRewardRequest,
    GetRewardResponse,
    ScoreRequest,
    ScoreResponse,
    _errors,
    conversation,
)
from rewardkit.serve.vllm_api import VLLM_PATHS, error_body, vllm

log = logging.getLogger("rewardkit.serve")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class _Served:
    """What the routes need, kept on `app.state.served`."""

    model: Any
    name: str
    batcher: Batcher
    metrics: ServeMetrics
    max_items: int
    normalize_reward: bool = False


def _served(request: Request) -> _Served:
    return request.app.state.served


def _check_items(served: _Served, n: int, what: str) -> None:
    if n > served.max_items:
        cap = served.max_items
        raise HTTPException(413, f"request has {n} {what}; the server accepts at most {cap} (max_items)")


async def _scored(served: _Served, kind: Kind, payloads: list) -> list[Score]:
    if kind == "texts" and not callable(getattr(served.model, "score_texts", None)):
        raise HTTPException(
            400,
            f"this model (kind={getattr(served.model, 'kind', '?')}) cannot score formatted text; "
            "send messages to /score or /pooling instead",
        )
    return await _run(served.batcher, kind, payloads)


scoring = APIRouter()


@scoring.post("/score", response_model=ScoreResponse, response_model_exclude_unset=True)
async def score(req: ScoreRequest, request: Request):
    """Scores each conversation's last answer."""
    served = _served(request)
    _check_items(served, len(req.conversations), "conversations")
    convs = [conversation(conv, req.tools) for conv in req.conversations]
    return ScoreResponse(**_columns(await _scored(served, "conversations", convs)))


@scoring.post("/compare", response_model=CompareResponse, response_model_exclude_unset=True)
async def compare(req: CompareRequest, request: Request):
    """Scores candidate answers to one prompt and ranks them, best first."""
    served = _served(request)
    _check_items(served, len(req.responses), "responses")
    head = with_tools(
        as_messages(req.prompt if isinstance(req.prompt, str) else [m.plain() for m in req.prompt]), req.tools
    )
    answers = [r if isinstance(r, str) else r.plain() for r in req.responses]
    (scored,) = await _scored(served, "groups", [Group(head, answers)])  # one scoring protocol
    cols = _columns(scored)
    return CompareResponse(**cols, ranking=ranking(cols["scores"]))


@scoring.post("/get_reward", response_model=GetRewardResponse)
async def get_reward(req: GetRewardRequest, request: Request):
    """OpenRLHF remote reward model: formatted texts in, `rewards` (= `scores`) out (normalised with
    `--normalize_reward`)."""
    served = _served(request)
    texts = [req.query] if isinstance(req.query, str) else req.query
    _check_items(served, len(texts), "queries")
    cols = _columns(await _scored(served, "texts", texts))
    rewards = cols["normalized"] if served.normalize_reward else cols["scores"]
    return GetRewardResponse(rewards=rewards, scores=rewards)


ops = APIRouter()


@ops.get("/metrics", response_class=Response)
async def prometheus(request: Request):
    """Prometheus text: requests by route and status, latency, batch sizes, queue depth."""
    body, content_type = _served(request).metrics.render()
    return Response(body, media_type=content_type)


public = APIRouter()


@public.get("/health")
async def health(request: Request):
    """Liveness, without auth."""
    served = _served(request)
    return {"status": "ok", "model": served.name, "kind": getattr(served.model, "kind", None)}


def create_app(
    model: Any,
    *,
    api_key: str | None = None,
    max_body_bytes: int = 8 * 2**20,
    max_items: int = 256,
    max_tokens_per_item: int | None = 32768,
    max_batch_tokens: int = 16384,
    max_batch_items: int = 64,
    max_wait_ms: float = 5.0,
    batching: bool = True,
    normalize_reward: bool = False,
) -> FastAPI:
    """A FastAPI app serving `model`.

    Args:
        model: a reward model offering `score_detailed`; `score_texts` (for /get_reward and
            /pooling with `input`), `count_tokens`, `max_length`, `name`, `kind` are used when present.
        api_key: when set, every route but /health needs `Authorization: Bearer <api_key>`.
        max_body_bytes: larger request bodies get 413.
        max_items: most conversations / responses / texts in one request (413 above).
        max_tokens_per_item: longer items get 413 (None: no limit; needs the model's `count_tokens`).
        max_batch_tokens, max_batch_items, max_wait_ms: dynamic batching budget (see `Batcher`).
        batching: False scores each request alone (for comparison).
        normalize_reward: /get_reward answers the normalised reward (the model's `normalization`,
            (reward_mean, reward_std) from training), as OpenRLHF's `--normalize_reward`.
    """
    if normalize_reward and getattr(model, "normalization", None) is None:
        raise RewardkitError(
            "serve --normalize_reward: this model has no reward statistics (reward_mean/reward_std in its "
            "config.json, written by rewardkit train); serve raw rewards or add them to the config"
        )
    _check_settings(
        model,
        max_body_bytes=max_body_bytes,
        max_items=max_items,
        max_batch_tokens=max_batch_tokens,
        max_batch_items=max_batch_items,
        max_tokens_per_item=max_tokens_per_item,
        max_wait_ms=max_wait_ms,
    )
    batcher = Batcher(
        model,
        max_batch_tokens=max_batch_tokens,
        max_batch_items=max_batch_items,
        max_wait_ms=max_wait_ms,
        max_tokens_per_item=max_tokens_per_item,
        enabled=batching,
    )
    metrics = ServeMetrics(queue_depth=batcher.queue_depth)
    batcher.on_batch = metrics.observe_batch
    name = str(getattr(model, "name", None) or getattr(model, "kind", None) or type(model).__name__)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title="rewardkit", summary=f"Reward model server: {name}", lifespan=lifespan)
    app.state.served = _Served(model, name, batcher, metrics, max_items, normalize_reward)
    app.state.started = time.time()
    _add_error_handlers(app)
    # The bearer dependency documents the key in OpenAPI (/docs gets "Authorize"); Guard checks it.
    secured = [Depends(HTTPBearer(auto_error=False))] if api_key else []
    app.include_router(scoring, dependencies=secured, responses=_errors(400, 401, 413, 422, 500))
    app.include_router(vllm, dependencies=secured)
    app.include_router(ops, dependencies=secured, responses=_errors(401))
    app.include_router(public)
    # Metrics label requests by path only for known routes, so stray URLs cannot grow the label set.
    every = [*app.routes, *scoring.routes, *vllm.routes, *ops.routes, *public.routes]
    routes = frozenset(r.path for r in every if hasattr(r, "path"))
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=max_body_bytes, metrics=metrics, routes=routes)
    return app


def _check_settings(model: Any, *, max_tokens_per_item: int | None, max_wait_ms: float, **at_least_1: int):
    for name, value in at_least_1.items():
        if value < 1:
            raise RewardkitError(f"serve: {name} must be >= 1, got {value}")
    if max_tokens_per_item is not None and max_tokens_per_item < 1:
        raise RewardkitError(f"serve: max_tokens_per_item must be >= 1 or None, got {max_tokens_per_item}")
    if max_wait_ms < 0:
        raise RewardkitError(f"serve: max_wait_ms must be >= 0, got {max_wait_ms}")
    if not callable(getattr(model, "score_detailed", None)):
        raise RewardkitError(f"serve: {type(model).__name__} has no score_detailed(conversations) method")


async def _run(batcher: Batcher, kind: Kind, payloads: list) -> list[Score]:
    """The batcher's results, with its failures turned into HTTP errors a client can act on."""
    try:
        return await batcher.score(kind, payloads)
    except LimitExceeded as err:
        raise HTTPException(413, str(err)) from None
    except Exception as err:
        if _is_input_error(err):
            raise HTTPException(422, f"the model could not score this input: {err}") from None
        log.exception("model failure")
        raise HTTPException(500, f"the model failed: {type(err).__name__}: {err}") from None


def _is_input_error(err: Exception) -> bool:
    """Errors the model raises about its input (bad roles for the chat template, ...), not its own faults."""
    if isinstance(err, (RewardkitError, ValueError)):
        return True
    try:
        from jinja2.exceptions import TemplateError, TemplateSyntaxError
    except ImportError:  # pragma: no cover - jinja2 comes with transformers
        return False
    # A chat template's raise_exception(...) is about the conversation; a syntax error is the model's.
    return isinstance(err, TemplateError) and not isinstance(err, TemplateSyntaxError)


def _columns(results: list[Score]) -> dict[str, Any]:
    """Scores as the response's parallel lists; a non-finite score is a model failure (500)."""
    for i, s in enumerate(results):
        values = [s.score, *(s.sub_scores or {}).values(), *([] if s.normalized is None else [s.normalized])]
        if not all(math.isfinite(v) for v in values):
            raise HTTPException(500, f"the model returned a non-finite score for item {i}: {s.score}")
    normalized = [s.normalized for s in results]
    cols: dict[str, Any] = {
        "scores": [float(s.score) for s in results],
        "num_tokens": [int(s.num_tokens) for s in results],
        "truncated": [bool(s.truncated) for s in results],
        "normalized": None if all(n is None for n in normalized) else normalized,
    }
    if any(s.sub_scores for s in results):
        cols["sub_scores"] = [dict(s.sub_scores or {}) for s in results]
    if any(s.step_scores is not None for s in results):  # process reward models: P(good) per step
        cols["step_scores"] = [[float(p) for p in s.step_scores or []] for s in results]
    return cols


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [_error_entry(e) for e in exc.errors()]
        summary = "; ".join(f"{e['where']}: {e['msg']}" for e in errors[:5])
        if len(errors) > 5:
            summary += f"; and {len(errors) - 5} more"
        if request.url.path in VLLM_PATHS:
            param = errors[0]["where"] if errors and errors[0]["where"] != "body" else None
            body = error_body(422, f"invalid request: {summary}", param)
            return JSONResponse(body, status_code=422)
        return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, status_code=422)

    # Starlette's class, not FastAPI's subclass: a body that is not JSON is refused with Starlette's.
    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException):
        if request.url.path in VLLM_PATHS:
            return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code, exc.headers)
        return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        if request.url.path in VLLM_PATHS:
            return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}: {exc}"), 500)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


def _error_entry(e: dict) -> dict:
    """One pydantic error as {where, msg, type}: `where` reads like conversations[0][1].role."""
    loc = [p for p in e.get("loc", ()) if p != "body"]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"
    msg = str(e.get("msg", "invalid"))
    if e.get("type") == "json_invalid" and (e.get("ctx") or {}).get("error"):
        msg += f" ({e['ctx']['error']})"
    return {"where": where, "msg": msg, "type": str(e.get("type", ""))}


def serve(model: Any, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info", **limits: Any):
    """Runs the app with uvicorn until interrupted; `limits` are `create_app`'s keyword arguments.

    `api_key` defaults to the environment variable REWARDKIT_API_KEY.
    """
    import uvicorn

    if limits.get("api_key") is None:
        limits["api_key"] = os.environ.get("REWARDKIT_API_KEY") or None
    if host not in LOOPBACK and not limits["api_key"]:
        log.warning("serving on %s without an API key: anyone who can reach it can use the model", host)
    uvicorn.run(create_app(model, **limits), host=host, port=port, log_level=log_level)
