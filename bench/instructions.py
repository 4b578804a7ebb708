"""CPU instructions per request under callgrind: the noise-free figure next to `make bench`'s ratios.

This host is shared, so throughput moves with the neighbours; instructions do not. A server runs
under `valgrind --tool=callgrind`; after a warm-up its counters are zeroed, N keep-alive POSTs of
the usual body are sent one after the other, and the counters are dumped: instructions / N.
Everything the process runs meanwhile counts (the event loop, the audit spool, its threads), as
it would under load, but only in user space: the kernel's share of a request (sockets, epoll, the
write into the page cache) is not counted, so a cost in instructions is a larger share of the count
than of the CPU time a request takes (`make bench`'s throughput and CPU per request include both).

    python bench/instructions.py [ceiling | registry | shadow | canary | CHECKOUT ...]  # CHECKOUT: has a .venv

`registry`, `shadow` and `canary` are this checkout following a model registry in a SeaweedFS started
for the run, without a second model, with a shadow, and with a canary at 10 % (bench/shadow.py):
their differences are what shadow scoring and a canary cost.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench import shadow

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BENCH_CALLGRIND_REQUESTS", "2000"))
WARMUP = 300
BODY = b'{"x1": 0.1, "x2": 0.2}'
REQUEST = (
    b"POST /bot-score HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (len(BODY), BODY)
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(conn: socket.socket, count: int) -> None:
    for _ in range(count):
        conn.sendall(REQUEST)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
        head, _, rest = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode("latin-1"))
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        while len(rest) < length:
            rest += conn.recv(65536)


def _argv(target: str, port: int) -> list[str]:
    if target == "ceiling":
        return [
            str(ROOT / ".venv" / "bin" / "python"),
            "-c",
            f"import uvicorn; from bench.ceiling import OPTIONS; uvicorn.run('bench.ceiling:app', host='127.0.0.1', "
            f"port={port}, **OPTIONS)",
        ]
    return [str(Path(target) / ".venv" / "bin" / "botscore"), "serve", "--host", "127.0.0.1", "--port", str(port)]


def callgrind_control(pid: int, action: str) -> None:
    """Tell the callgrind run of `pid` to zero its counters (`-z`) or dump them (`-d`)."""
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True)


def first_dump(folder: Path) -> int:
    """The instructions in the first dump of the callgrind run writing `*.1` into `folder`: what was
    counted between the zeroing and that dump."""
    (dump,) = folder.glob("*.1")
    summary = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.M)
    assert summary is not None, dump
    return int(summary.group(1))


def measure(target: str, **settings: str) -> float:
    """Instructions per request of `target` (the ceiling, or a checkout's `botscore serve`, with `settings`)."""
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="botscore-callgrind-"))
    out = tmp / "callgrind.out"
    # Python's own allocator, as in production: under PYTHONMALLOC=malloc every float and tuple went through
    # glibc malloc, which counted a shadow score's allocations about 40 % dearer than they are.
    env = {**os.environ, "BOTSCORE_AUDIT_DIR": str(tmp / "audit"), **settings}
    env.pop("PYTHONMALLOC", None)
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", *_argv(target, port)]
    server = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{target} did not start under valgrind") from None
                time.sleep(0.5)
        with conn:
            _post(conn, WARMUP)
            callgrind_control(server.pid, "-z")
            _post(conn, REQUESTS)
            callgrind_control(server.pid, "-d")
        return first_dump(tmp) / REQUESTS  # what the N requests cost
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


def _with_registry(mode: shadow.Mode) -> float:
    """This checkout following a registry in a SeaweedFS of its own: no second model, a shadow, or a canary."""
    sys.path.insert(0, str(ROOT))
    from bench import shadow
    from tests.support.servers import Weed

    weed = Weed(Path(tempfile.mkdtemp(prefix="botscore-callgrind-s3-"))).start()
    try:
        url = shadow.registry(weed.client(), mode)
        return measure(str(ROOT), BOTSCORE_MODEL_REGISTRY=url, **weed.aws_env())
    finally:
        weed.stop()


def main() -> None:
    for target in sys.argv[1:] or ["ceiling", str(ROOT)]:
        modes: dict[str, shadow.Mode] = {"registry": "plain", "shadow": "shadow", "canary": "canary"}
        figure = _with_registry(modes[target]) if target in modes else measure(target)
        print(f"{target}: {figure:,.0f} instructions per request", flush=True)


if __name__ == "__main__":
    main()
