"""A bounded load generator for tests: threads posting to /bot-score, counting what was answered."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    answered: dict[str, int] = field(default_factory=dict)  # X-Request-ID -> status
    failures: list[str] = field(default_factory=list)  # transport errors (nothing answered)

    def ids(self, status: int | None = None) -> set[str]:
        return {rid for rid, code in self.answered.items() if status is None or code == status}


class Load:
    """Posts from `threads` threads until stopped, `max_requests` are sent, or `max_seconds` pass."""

    def __init__(
        self,
        url: str,
        *,
        threads: int = 4,
        max_requests: int = 20_000,
        max_seconds: float = 120,
        keepalive: bool = True,
    ) -> None:
        self.url = url + "/bot-score"
        self.keepalive = keepalive  # False: a new connection per request, so every worker gets some
        self.threads = threads
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.result = LoadResult()
        self._sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> Load:
        self._deadline = time.monotonic() + self.max_seconds
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def wait_for(self, answered: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.result.answered) < answered:
            assert time.monotonic() < deadline, f"only {len(self.result.answered)} answered"
            time.sleep(0.02)

    def stop(self) -> LoadResult:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)
        return self.result

    def _run(self, n: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=None if self.keepalive else 0)
        with httpx.Client(timeout=httpx.Timeout(10.0), limits=limits) as client:
            i = 0
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                with self._lock:
                    if self._sent >= self.max_requests:
                        return
                    self._sent += 1
                i += 1
                try:
                    response = client.post(self.url, json={"x1": (i % 40) / 10, "x2": n / 4})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.result.failures.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.01)
                    continue
                with self._lock:
                    self.result.answered[response.headers["x-request-id"]] = response.status_code
