"""What one connection and one worker may hold: the bounds the HTTP protocol and the routes share."""

from __future__ import annotations

from dataclasses import dataclass

TIMED_OUT = "botscore.timed_out"  # scope key the protocol sets when a request's body was not received in time


@dataclass(frozen=True)
class Limits:
    """BOTSCORE_MAX_HEADER_BYTES, BOTSCORE_REQUEST_TIMEOUT_SECONDS and BOTSCORE_MAX_IN_FLIGHT (0: no
    bound); their defaults are the settings' (botscore.settings), from which the service builds this."""

    max_header_bytes: int
    request_timeout: float
    max_in_flight: int
