"""What botscore's connection uses of uvicorn beyond its public options, in one place: uvicorn is
pinned, and tests/unit/http/test_protocol.py names the attribute an upgrade moved."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

# Every uvicorn name this package uses beyond the documented options: (owner, attribute).
UVICORN_INTERNALS: tuple[tuple[type, str], ...] = (
    (HttpToolsProtocol, "data_received"),
    (HttpToolsProtocol, "on_message_begin"),
    (HttpToolsProtocol, "on_header"),
    (HttpToolsProtocol, "on_headers_complete"),
    (HttpToolsProtocol, "on_body"),
    (HttpToolsProtocol, "on_message_complete"),
    (HttpToolsProtocol, "on_response_complete"),
    (HttpToolsProtocol, "_unset_keepalive_if_required"),  # data_received is ours, not called: its parts
    (HttpToolsProtocol, "_unsupported_upgrade_warning"),
    (HttpToolsProtocol, "pause_writing"),
    (HttpToolsProtocol, "resume_writing"),
    (HttpToolsProtocol, "timeout_keep_alive_handler"),
    # per-connection state, set in __init__ / connection_made / the parser callbacks
    (HttpToolsProtocol, "parser"),
    (HttpToolsProtocol, "url"),
    (HttpToolsProtocol, "headers"),
    (HttpToolsProtocol, "scope"),
    (HttpToolsProtocol, "cycle"),
    (HttpToolsProtocol, "pipeline"),
    (HttpToolsProtocol, "flow"),
    (HttpToolsProtocol, "transport"),
    (HttpToolsProtocol, "loop"),
    (HttpToolsProtocol, "connections"),
    (HttpToolsProtocol, "tasks"),
    (HttpToolsProtocol, "server_state"),
    (HttpToolsProtocol, "expect_100_continue"),
    (HttpToolsProtocol, "timeout_keep_alive"),
    (HttpToolsProtocol, "timeout_keep_alive_task"),
    (HttpToolsProtocol, "logger"),
    (ServerState, "default_headers"),  # the Date header uvicorn renews every second
    (ServerState, "total_requests"),
    # the request-response cycle of a request answered over ASGI
    (RequestResponseCycle, "response_complete"),
    (RequestResponseCycle, "keep_alive"),
    (RequestResponseCycle, "more_body"),
    (RequestResponseCycle, "message_event"),
    (RequestResponseCycle, "disconnected"),
)
