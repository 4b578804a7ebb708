"""Score a batch of checkouts with tritonclient, over the Open Inference Protocol (/v2) (docs/clients.md).

    pip install 'tritonclient[http]' numpy
    BOTSCORE_API_KEY=... python score_triton.py 127.0.0.1:8887 batch_42 0.1,0.2 1.8,0.3

One call is one id: its audit rows (one per instance, `item` 0 to N-1) share it.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main() -> None:
    url, call_id, pairs = sys.argv[1], sys.argv[2], [arg.split(",") for arg in sys.argv[3:]]
    x1 = np.array([float(a) for a, _ in pairs])
    x2 = np.array([float(b) for _, b in pairs])
    headers = {"X-Request-ID": call_id}  # the audit rows' id
    if key := os.environ.get("BOTSCORE_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    # Seconds, per attempt: the same budget as a single score (docs/clients.md); batches of 1,000
    # take longer, give them more.
    seconds = int(os.environ.get("BOTSCORE_TIMEOUT_MS", "250")) / 1000
    client = httpclient.InferenceServerClient(url, connection_timeout=seconds, network_timeout=seconds * 5)
    inputs = [httpclient.InferInput("x1", [len(pairs)], "FP64"), httpclient.InferInput("x2", [len(pairs)], "FP64")]
    inputs[0].set_data_from_numpy(x1)
    inputs[1].set_data_from_numpy(x2)
    try:
        result = client.infer("bot-score", inputs, request_id=call_id, headers=headers)
    except InferenceServerException as exc:  # the protocol's error: its message names the problem
        print(f"{call_id} no score ({exc.status()} {exc.message()})")
        return
    finally:
        client.close()
    for item, p_bot in enumerate(result.as_numpy("p_bot").tolist()):
        print(f"{call_id}[{item}] p_bot={p_bot!r}")


if __name__ == "__main__":
    main()
