"""One worker's calls of each arm during a canary, in a sliding window, for the canary's guardrails."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from botscore.ops.metrics import take


class Tally:
    """The request path only extends lists (`note_production`, `note_canary`: status, latency in seconds;
    `note_compared`: the candidate's score, production's score); `roll`, off the request path, moves
    them into the window as one chunk and drops chunks older than `window_seconds`."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._pending: tuple[list[float], list[float], list[float]] = ([], [], [])
        self.note_production: Callable[[tuple[float, float]], None] = self._pending[0].extend
        self.note_canary: Callable[[tuple[float, float]], None] = self._pending[1].extend
        self.note_compared: Callable[[tuple[float, float]], None] = self._pending[2].extend
        self._chunks: deque[tuple[float, list[float], list[float], list[float]]] = deque()

    def roll(self, now: float) -> tuple[list[float], list[float], list[float]]:
        """Take what was noted since the last roll as a chunk at `now` (monotonic seconds), drop chunks out of
        the window, and return the window: production's calls, the canary's, and the compared scores."""
        production, canary, compared = (take(pending) for pending in self._pending)
        self._chunks.append((now, production, canary, compared))
        while self._chunks[0][0] <= now - self.window_seconds:
            self._chunks.popleft()
        chunks = self._chunks
        return (
            [v for chunk in chunks for v in chunk[1]],
            [v for chunk in chunks for v in chunk[2]],
            [v for chunk in chunks for v in chunk[3]],
        )
