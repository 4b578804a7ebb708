"""What one connection and one worker may hold: the bounds the HTTP protocol and the routes share."""

from __future__ import annotations

import resource
from dataclasses import dataclass

TIMED_OUT = "botscore.timed_out"  # scope key the protocol sets when a request's body was not received in time


@dataclass(frozen=True)
class Limits:
    """BOTSCORE_MAX_HEADER_BYTES, BOTSCORE_REQUEST_TIMEOUT_SECONDS and BOTSCORE_MAX_IN_FLIGHT (0: no
    bound); their defaults are the settings' (botscore.settings), from which the service builds this."""

    max_header_bytes: int
    request_timeout: float
    max_in_flight: int
    max_connections: int = 0  # connections a worker holds (`connection_limit`); 0: no bound


CONNECTIONS_PER_IN_FLIGHT = 4  # connections a worker holds per request it may work on at once
MIN_CONNECTIONS = 1024  # a worker holds at least this many (nginx's worker_connections is 512 to 1,024)...
RESERVED_FILES = 128  # ...and leaves this many file descriptors to its spool, shipper, heartbeat and logs


def connection_limit(max_in_flight: int, open_files: int | None = None) -> int:
    """The connections one worker holds: CONNECTIONS_PER_IN_FLIGHT times the in-flight bound (which the
    capacity figures size: docs/capacity.json), at least MIN_CONNECTIONS, and always RESERVED_FILES
    below the worker's open-file limit, so that accepting a client never starves the audit log of a
    descriptor. `open_files`: the limit (RLIMIT_NOFILE's soft one unless given)."""
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    wanted = max(MIN_CONNECTIONS, CONNECTIONS_PER_IN_FLIGHT * max_in_flight)
    if open_files == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, open_files - RESERVED_FILES))
