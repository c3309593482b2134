"""Taking the database away from some processes (a stack of its own) and bringing it back,
while the test itself still reads it.

PostgreSQL: the processes reach it through :class:`TcpProxy`, which the test cuts: its
listener is closed (a new connection is refused) and every connection through it is
closed (a query in flight fails), as when the server restarts or the network drops.

SQLite has no connection to cut: :class:`SqliteLink` is the honest equivalent. The
processes open the file through a symbolic link to its directory; cutting removes the
link, so no process can open the database (nor its -wal and -shm files beside it), and
takes SQLite's write lock, so connections opened before cannot write either (they wait
for it, up to their busy timeout, then fail with "database is locked").
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from pathlib import Path

from scheduler_app.embedded_redis import free_port


class TcpProxy:
    """``host``:``port`` (127.0.0.1 unless told) forwarding to ``target``, until cut."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target, self.host = target, host
        self.port = free_port()
        self.url = ""  # the database URL through it, for its user to fill in
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.restore()

    def restore(self) -> None:
        """Listen (again) on the same port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def cut(self) -> None:
        """Refuse new connections and close every open one."""
        listener, self._listener = self._listener, None
        if listener is not None and self._accepting is not None:
            self._accepting.join()
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._connections |= {client, server}
            ends = [2]  # the last pump to stop closes both sockets
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink, ends), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, ends: list[int]) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):  # wakes the other pump
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            ends[0] -= 1
            if ends[0] == 0:
                self._connections -= {source, sink}
                source.close()
                sink.close()


class SqliteLink:
    """The SQLite database ``path``, reached through a link at ``link``, until cut."""

    def __init__(self, path: Path, link: Path) -> None:
        self.path, self.link = path, link
        self.url = f"sqlite:///{link / path.name}"
        self._holder: sqlite3.Connection | None = None
        self.restore()

    def restore(self) -> None:
        if self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None
        if not self.link.is_symlink():
            os.symlink(self.path.parent, self.link)

    def cut(self) -> None:
        self.link.unlink()
        self._holder = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._holder.execute("BEGIN IMMEDIATE")  # the write lock, until restore

    def close(self) -> None:
        self.restore()
        self.link.unlink()
