"""The ceiling of the stack: a bare ASGI app that reads the body and returns a fixed answer.

Served by plain uvicorn with httptools and botscore's other uvicorn options (`OPTIONS`), it is
what no project code at all costs: not botscore's protocol class either, whose cost would
otherwise be hidden in the ceiling.
"""

from __future__ import annotations

from typing import Any

from botscore.server import UVICORN_OPTIONS

OPTIONS: dict[str, Any] = {**UVICORN_OPTIONS, "http": "httptools"}

_BODY = b'{"p_bot":0.123}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
