"""The brief's load test, for any botscore URL:

    locust -f locustfile.py --headless -u 50 -r 10 -t 1m --host http://127.0.0.1:8887

Each simulated client scores transactions drawn from the training distributions (and now
and then a batch), and fails a request whose answer is not a probability. Set
BOTSCORE_API_KEY when the service has BOTSCORE_API_KEYS. For the service's own throughput
and latency against the stack's ceiling, use `make bench`.
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, task

HEADERS = {"Content-Type": "application/json"}
if os.environ.get("BOTSCORE_API_KEY"):
    HEADERS["Authorization"] = f"Bearer {os.environ['BOTSCORE_API_KEY']}"


def transaction() -> dict[str, float]:
    if random.random() < 0.2:  # a bot: fast checkout, many attempts
        return {"x1": random.gauss(0.9, 0.5), "x2": abs(random.gauss(0.75, 0.45))}
    return {"x1": random.gauss(1.75, 0.35), "x2": abs(random.gauss(0.25, 0.25))}


class Checkout(FastHttpUser):
    wait_time = between(0.01, 0.1)

    @task(20)
    def score(self) -> None:
        with self.client.post("/bot-score", json=transaction(), headers=HEADERS, catch_response=True) as response:
            if response.status_code != 200 or not 0.0 <= response.json().get("p_bot", -1) <= 1.0:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(1)
    def score_batch(self) -> None:
        body = {"instances": [transaction() for _ in range(10)]}
        with self.client.post("/bot-score/batch", json=body, headers=HEADERS, catch_response=True) as response:
            if response.status_code != 200 or len(response.json().get("p_bot", [])) != 10:
                response.failure(f"{response.status_code}: {response.text[:200]}")
