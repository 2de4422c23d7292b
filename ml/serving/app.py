"""HTTP around ``ScoringService`` (Starlette on uvicorn, orjson):

``POST /v1/score``          one transaction (object) or a batch (array) in the landing schema
``POST /v1/fraud-reports``  one report {transaction_id, reported_at, report_type} or a list
``GET /healthz`` alive · ``GET /readyz`` model + state loaded (+ the worker's pid) ·
``GET /metrics`` Prometheus

Every rejected body is a 4xx whose JSON names the field (``{"error", "field", "index"}``):
malformed JSON 400, too large 413, wrong media 415, invalid fields 422, missing/wrong token
401. An unexpected failure is a 500 counted in the metrics and logged, never a dead worker.
The ``/v1`` routes need ``Authorization: Bearer <token>`` when a token is configured.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml.serving.metrics import render
from ml.serving.requests import RequestError, parse_report, parse_transaction
from ml.serving.service import ScoringService
from ml.serving.state import REPORT_ACCEPTED

logger = logging.getLogger(__name__)
JSON = "application/json"


class BodyTooLarge(Exception):
    pass


def reply(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def error(status: int, field: str, message: str, index: int | None = None) -> Response:
    body: dict[str, Any] = {"error": message, "field": field}
    if index is not None:
        body["index"] = index
    return reply(body, status)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def now_micros() -> int:
    return time.time_ns() // 1000


def create_app(
    service: ScoringService,
    *,
    token: str | None = None,
    max_body_bytes: int = 1024 * 1024,
    alias_poll_seconds: float | None = None,
) -> Starlette:
    limits = service.limits
    metrics = service.metrics
    expected = f"Bearer {token}".encode() if token else None

    def guarded(
        name: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if expected is not None:
                    given = request.headers.get("authorization", "").encode()
                    if not hmac.compare_digest(given, expected):
                        response = error(401, "authorization", "missing or wrong bearer token")
                        metrics.error("unauthorized")
                        return response
                response = await handler(request)
            except BodyTooLarge:
                metrics.error("body_too_large")
                response = error(413, "body", f"larger than {max_body_bytes} bytes")
            except Exception:
                metrics.error("internal")
                logger.exception("%s failed", name)
                response = error(500, "body", "internal error (logged)")
            metrics.observe(name, response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    async def parse(request: Request) -> Any:
        content_type = request.headers.get("content-type", JSON).split(";")[0].strip()
        if content_type not in (JSON, ""):
            raise RequestError("content-type", f"expected {JSON}, got {content_type!r}")
        body = await read_body(request, max_body_bytes)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            try:  # NaN / Infinity literals: parsed, so the field check can name the field
                return json.loads(body)
            except (ValueError, RecursionError):
                raise RequestError("body", f"malformed JSON: {exc}") from None

    async def score(request: Request) -> Response:
        try:
            payload = await parse(request)
            if not service.ready:
                return error(503, "model", "no champion loaded")
            items = payload if isinstance(payload, list) else [payload]
            if isinstance(payload, list):
                if not payload:
                    raise RequestError("body", "empty batch")
                if len(payload) > limits.max_batch:
                    raise RequestError("body", f"batch larger than {limits.max_batch}")
            now, clock = now_micros(), int(getattr(service.state, "clock", 0))
            index = (lambda i: i) if isinstance(payload, list) else (lambda i: None)
            txns = [parse_transaction(v, limits, now, clock, index(i)) for i, v in enumerate(items)]
        except RequestError as exc:
            metrics.error("invalid_request")
            status = 415 if exc.field == "content-type" else 400 if exc.field == "body" else 422
            return error(status, exc.field, exc.message, exc.index)
        replies = await service.score(txns)
        return reply(replies if isinstance(payload, list) else replies[0])

    async def reports(request: Request) -> Response:
        try:
            payload = await parse(request)
            items = payload if isinstance(payload, list) else [payload]
            now = now_micros()
            parsed = []
            for i, value in enumerate(items):
                try:
                    parsed.append(parse_report(value, limits, now))
                except RequestError as exc:
                    where = i if isinstance(payload, list) else None
                    raise RequestError(exc.field, exc.message, where) from None
        except RequestError as exc:
            metrics.error("invalid_report")
            status = 415 if exc.field == "content-type" else 400 if exc.field == "body" else 422
            return error(status, exc.field, exc.message, exc.index)
        outcomes = [service.report(r) for r in parsed]
        body = [
            {"transaction_id": r.transaction_id, "status": o.status}
            for r, o in zip(parsed, outcomes, strict=True)
        ]
        unknown = [o for o in outcomes if o.status not in (REPORT_ACCEPTED, "duplicate_report")]
        if unknown and not isinstance(payload, list):
            return error(404, "transaction_id", "unknown transaction_id (not scored here yet)")
        return reply(body if isinstance(payload, list) else body[0])

    async def healthz(request: Request) -> Response:
        return reply({"status": "alive"})

    async def readyz(request: Request) -> Response:
        body = {
            "ready": service.ready,
            "models": service.models(),
            "state": service.state.stats(),
            "pid": os.getpid(),  # which worker answered (fraud-serve --workers N)
        }
        return reply(body, 200 if service.ready else 503)

    async def metrics_text(request: Request) -> Response:
        text = render(metrics, service.models(), service.ready)
        return Response(text, media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start(alias_poll_seconds)
        try:
            yield
        finally:
            await service.stop()

    routes = [
        Route("/v1/score", guarded("score", score), methods=["POST"]),
        Route("/v1/fraud-reports", guarded("fraud_reports", reports), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
