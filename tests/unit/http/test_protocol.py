"""What BotscoreProtocol relies on in uvicorn beyond its options: each name still there, named when not.

uvicorn is pinned; on an upgrade, this test says which attribute of which class moved, before any
connection test fails for a reason that is hard to see.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from botscore.http.limits import Limits
from botscore.http.protocol import UVICORN_INTERNALS, BotscoreProtocol, ConnectionOptions, bounded


class _Transport(asyncio.Transport):
    """A transport that keeps what is written (a real one needs a socket; uvicorn reads only these)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8887)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await asyncio.sleep(3600)  # stays unanswered: its cycle is looked at while pending


def _missing(objects: dict[type, object]) -> list[str]:
    return [
        f"{owner.__module__}.{owner.__qualname__}.{name}"
        for owner, name in UVICORN_INTERNALS
        if not hasattr(owner, name) and not hasattr(objects[owner], name)
    ]


def test_every_uvicorn_internal_the_protocol_uses_is_still_there() -> None:
    async def connection() -> list[str]:
        config = Config(_app, http="httptools", ws="none", lifespan="off")
        config.load()
        state = ServerState()
        protocol = bounded(ConnectionOptions(Limits(32768, 10.0, 0)))(config=config, server_state=state, app_state={})
        protocol.connection_made(_Transport())
        protocol.data_received(b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        cycle = protocol.cycle
        assert isinstance(cycle, RequestResponseCycle)
        missing = _missing({HttpToolsProtocol: protocol, RequestResponseCycle: cycle, ServerState: state})
        for task in list(state.tasks):
            task.cancel()
        return missing

    assert asyncio.run(connection()) == []


def test_the_internals_check_names_a_moved_attribute() -> None:
    class Moved:
        pass

    objects: dict[type, object] = {HttpToolsProtocol: Moved(), RequestResponseCycle: Moved(), ServerState: Moved()}
    missing = _missing(objects)
    assert "uvicorn.protocols.http.httptools_impl.RequestResponseCycle.response_complete" in missing
    assert "uvicorn.server.ServerState.default_headers" in missing


def test_the_protocol_is_built_with_its_options_not_found_on_the_app() -> None:
    options = ConnectionOptions(Limits(1024, 1.0, 5))
    protocol_class = bounded(options)
    assert issubclass(protocol_class, BotscoreProtocol) and protocol_class.options is options


def test_a_worker_holds_connections_from_its_in_flight_bound_below_its_open_file_limit() -> None:
    from botscore.http.limits import connection_limit

    assert connection_limit(256, open_files=65536) == 1024  # at least MIN_CONNECTIONS
    assert connection_limit(1000, open_files=65536) == 4000  # 4 per request in flight
    assert connection_limit(1000, open_files=1024) == 896  # 128 descriptors left to the audit log
    assert connection_limit(238, open_files=256) == 128


def test_a_request_handed_to_the_app_gets_the_scope_plain_uvicorn_gives_it() -> None:
    """The connection makes no scope for the requests it answers itself; one handed to the app gets it when
    handed (`_to_app`): the same scope, headers and all, as under uvicorn's own protocol."""
    request = b"POST /other/a%20b?q=1 HTTP/1.1\r\nHost: x\r\nX-Id: 7\r\nContent-Length: 2\r\n\r\n{}"

    async def scope_under(protocol_class: type[HttpToolsProtocol]) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope)

        config = Config(app, http="httptools", ws="none", lifespan="off")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={"k": 1})
        protocol.connection_made(_Transport())
        protocol.data_received(request)
        await asyncio.sleep(0)
        (scope,) = seen
        return scope

    ours = asyncio.run(scope_under(bounded(ConnectionOptions(Limits(32768, 10.0, 0)))))
    plain = asyncio.run(scope_under(HttpToolsProtocol))
    assert ours == plain
    assert ours["headers"] == [(b"host", b"x"), (b"x-id", b"7"), (b"content-length", b"2")]
    assert (ours["path"], ours["query_string"], ours["state"]) == ("/other/a b", b"q=1", {"k": 1})
