"""Instructions per request of a checkout's own request path, in process under callgrind.

bench/instructions.py serves over a socket, and what it counts moves with the host's load: the
worker's periodic jobs and threads run by the second, and under valgrind 2,000 requests take
seconds, so the same code measured 114,667 and 125,483 instructions per request in two runs.
Here one connection of the app `botscore serve` builds (its protocol class, its audit log started)
is fed N keep-alive POSTs of the usual body through a transport that only counts writes: no socket,
no event-loop turn, no job runs between them, so two runs agree to about 1 %. What it leaves out
(uvloop, the kernel) is the same for every checkout; what it counts is the connection, the route,
the data plane and the audit append.

    python bench/inprocess.py CHECKOUT ...   # CHECKOUT: a folder with src/botscore, run with this venv
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.instructions import REQUEST, REQUESTS, WARMUP, callgrind_control, first_dump  # noqa: E402  (the same requests, counted the same)


class _Transport(asyncio.Transport):
    """Counts the answers written; the connection reads nothing else of it on this path."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8887)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False


async def _feed(requests: int) -> None:
    """In the measured process: build the service, open one connection, zero the counters after the
    warm-up, feed `requests` requests, dump the counters."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from botscore import service
    from botscore.settings import load_settings

    built: Any = service.build(load_settings())
    protocol_class = built.protocol()
    if hasattr(built, "start"):
        await built.start()
        stop = built.stop
    else:  # a release before Service.start: its lifespan
        lifespan = built.app.docs.router.lifespan_context(built.app.docs)
        await lifespan.__aenter__()

        async def stop() -> None:
            await lifespan.__aexit__(None, None, None)

    config = Config(built.app, http="httptools", ws="none", lifespan="off", server_header=False)
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Mon, 07 Dec 2026 00:00:00 GMT")]
    connection = protocol_class(config=config, server_state=state, app_state={})
    transport = _Transport()
    connection.connection_made(transport)
    for _ in range(WARMUP):
        connection.data_received(REQUEST)
    callgrind_control(os.getpid(), "-z")
    for _ in range(requests):
        connection.data_received(REQUEST)
    callgrind_control(os.getpid(), "-d")
    assert transport.writes == WARMUP + requests, transport.writes  # every request answered, one write each
    await stop()


def measure(checkout: str) -> float:
    """Instructions per request of `checkout`'s request path (its src/, this venv's packages)."""
    tmp = Path(tempfile.mkdtemp(prefix="botscore-inprocess-"))
    out = tmp / "callgrind.out"
    env = {**os.environ, "PYTHONPATH": str(Path(checkout) / "src"), "PYTHONHASHSEED": "0"}
    env["BOTSCORE_AUDIT_DIR"] = str(tmp / "audit")
    env.pop("PYTHONMALLOC", None)
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", sys.executable, __file__, "--feed"]
    subprocess.run(argv, env=env, cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return first_dump(tmp) / REQUESTS  # what the N requests cost


def main() -> None:
    if sys.argv[1:] == ["--feed"]:
        asyncio.run(_feed(REQUESTS))
        return
    for checkout in sys.argv[1:] or [str(ROOT)]:
        print(f"{checkout}: {measure(checkout):,.0f} instructions per request (in process)", flush=True)


if __name__ == "__main__":
    main()
