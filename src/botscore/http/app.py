"""HTTP: the app that joins the scoring routes (`endpoints.py`, answered by the connection or over
ASGI) and everything else (`operations.py`, FastAPI, documented by `openapi.py`); ids on every answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from botscore.call import Failed
from botscore.dataplane.handler import Handler
from botscore.errors import Overloaded
from botscore.http.answers import encode, rendered
from botscore.http.auth import ApiKeys
from botscore.http.endpoints import (
    INFER_PATH,
    ScoringRoute,
    scoring_routes,
)
from botscore.http.ids import request_id
from botscore.http.limits import Limits
from botscore.http.openapi import document
from botscore.http.operations import KNOWN_ROUTES, METRICS_PATH, VERSIONS, operations_app
from botscore.http.protocol import BotscoreProtocol, ConnectionOptions, bounded
from botscore.model.scorer import ModelSlot
from botscore.ops.metrics import Metrics

__all__ = ["BotscoreApp", "create_app"]

_SHED_METRICS = rendered(
    Failed(Overloaded("the service is over its capacity; retry after the Retry-After seconds"), recorded=False),
    "botscore",
)


class BotscoreApp:
    """The ASGI app: scoring routes to their endpoints, the rest to FastAPI; ids on every answer."""

    def __init__(
        self,
        routes: dict[str, ScoringRoute],
        docs: FastAPI,
        model: ModelSlot,
        metrics: Metrics,
        limits: Limits | None,
    ) -> None:
        self.routes = routes
        self.docs = docs
        self.model = model
        self.metrics = metrics
        self.limits = limits  # None: the app is served without connection bounds (tests in-process)
        # The connection class with these bounds once made (`protocol`): None, the app runs without them.
        self.connection_class: type[BotscoreProtocol] | None = None

    @property
    def bounded(self) -> bool:
        return self.connection_class is not None

    def protocol(self, watch: Callable[[set[Any]], None] = lambda connections: None) -> type[BotscoreProtocol]:
        """uvicorn's `http` option for this app: connections built with its bounds, its shedding,
        and its scoring routes answered by the connection."""
        if self.limits is None:
            raise ValueError("an app built without limits has no bounds to serve with")
        self.connection_class = bounded(
            ConnectionOptions(
                self.limits,
                routes={path.encode(): route for path, route in self.routes.items()},
                shed=self.shed,
                refused=self.refused,
                watch=watch,
            )
        )
        return self.connection_class

    def route(self, path: str) -> ScoringRoute | None:
        """The scoring route of a path: its own, or the infer route's versioned path of the version serving now."""
        found = self.routes.get(path)
        if found is None and path.startswith(VERSIONS) and path == f"{VERSIONS}{self.model.scorer.version}/infer":
            return self.routes[INFER_PATH]
        return found

    def shed(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """The answer to a request past the in-flight bound, or None: scoring requests and /metrics are
        shed (health checks must keep answering, or the load balancer takes an overloaded task for dead)."""
        if path == METRICS_PATH:
            self.metrics.note_request((METRICS_PATH, 503, 0.0, None))
            return encode(_SHED_METRICS, request_id(dict(headers).get(b"x-request-id")), b"", close=True)
        route = self.route(path)
        return None if route is None or method != "POST" else route.shed(method, headers)

    def refused(self, status: int) -> None:
        """Count a request the connection refused before it had a route (400, 431, 408 on an unfinished head)."""
        self.metrics.note_request(("incomplete", status, 0.0, None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.docs(scope, receive, send)
            return
        route = self.route(scope["path"])
        if route is not None:
            await route(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(dict(scope["headers"]).get(b"x-request-id"))
        version = self.model.scorer.version_bytes
        name = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", rid), (b"x-model-version", version)]
                message = {**message, "headers": headers}
                self.metrics.note_request((name, message["status"], time.perf_counter() - started, None))
            await send(message)

        await self.docs(scope, receive, send_with_ids)


def create_app(
    handler: Handler,
    model: ModelSlot,
    metrics: Metrics,
    *,
    max_body_bytes: int,
    limits: Limits | None = None,
    api_keys: ApiKeys | None = None,
    lifespan: Any = None,
    metrics_cache_seconds: float = 0.0,
) -> BotscoreApp:
    """Build the ASGI app from its parts; `lifespan` starts and stops them with the server;
    /metrics is rendered at most once every `metrics_cache_seconds`."""
    keys = api_keys or ApiKeys([])
    routes = scoring_routes(handler, model, metrics, keys, max_body_bytes=max_body_bytes)
    docs = operations_app(model, handler, metrics, lifespan, metrics_cache_seconds=metrics_cache_seconds)
    document(docs, max_body_bytes)
    return BotscoreApp(routes, docs, model, metrics, limits)
