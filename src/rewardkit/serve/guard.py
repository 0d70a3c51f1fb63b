"""The server's ASGI middleware: request metrics, the API key, and the request body size cap.

It reads the body itself (counting bytes as they arrive) so an oversized request is refused with 413
before FastAPI parses it, then replays the body to the app.
"""

from __future__ import annotations

import hmac
import json
import time

from rewardkit.serve.metrics import ServeMetrics
from rewardkit.serve.vllm_api import VLLM_PATHS, error_body

PUBLIC_PATHS = frozenset({"/health"})


class Guard:
    """ASGI middleware: metrics for every request, then the API key, then the body size cap."""

    def __init__(self, app, *, api_key: str | None, max_body_bytes: int, metrics: ServeMetrics, routes):
        self.app, self.metrics, self.routes = app, metrics, routes
        self.key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500
        route = scope["path"] if scope["path"] in self.routes else "other"  # bounded label values

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, send_status)
        finally:
            self.metrics.observe_request(route, status, time.perf_counter() - start)

    async def _guarded(self, scope, receive, send):
        if self.key is not None and scope["path"] not in PUBLIC_PATHS and not self._authorized(scope):
            return await _send_json(
                send,
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                [(b"www-authenticate", b"Bearer")],
                vllm=scope["path"] in VLLM_PATHS,
            )
        cap, vllm_path = self.max_body_bytes, scope["path"] in VLLM_PATHS
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            return await _send_json(send, 413, _too_big(f"{declared} bytes", cap), vllm=vllm_path)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > cap:
                return await _send_json(send, 413, _too_big(f"over {cap} bytes", cap), vllm=vllm_path)
        await self.app(scope, _replay(bytes(body), receive), send)

    def _authorized(self, scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False


def _too_big(size: str, cap: int) -> str:
    return f"request body is {size}; the server accepts at most {cap} bytes (max_body_bytes)"


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send, status: int, detail: str, headers: list | None = None, vllm: bool = False) -> None:
    body = json.dumps(error_body(status, detail) if vllm else {"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})
