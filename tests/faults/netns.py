"""Hosts on one machine: each a network namespace of its own, linked by a veth pair to a
bridge in the root namespace, which holds the servers' address (Redis, the database).

Everything is named after one random suffix, so two test runs on one machine never meet,
and lives in a private /24 of 10.213.0.0/16 that no address or route of the machine
touches. The namespaces have no route but their link: nothing they send leaves the
bridge. :meth:`Network.close` deletes all of it, whatever was made before a failure.
Needs root (CAP_NET_ADMIN) and iproute2: :func:`unavailable` says why not otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess
from dataclasses import dataclass

POOL = ipaddress.ip_network("10.213.0.0/16")
TIMEOUT = 10  # seconds for any one `ip` command


def ip(*args: str) -> str:
    """Run ``ip args``; its output, or CalledProcessError with what it said."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True,
                          timeout=TIMEOUT).stdout  # fmt: skip


def unavailable() -> str | None:
    """Why hosts cannot be made here, or None: a namespace is made and deleted to know."""
    if os.geteuid() != 0:
        return "not root: network namespaces and links need CAP_NET_ADMIN"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) on PATH"
    probe = f"cronfleet-probe-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except subprocess.CalledProcessError as error:
        return f"`ip netns add` failed: {error.stderr.strip()}"
    ip("netns", "del", probe)
    return None


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the machine has an address in or a route to (any table)."""
    found = [
        ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
        for link in json.loads(ip("-j", "-4", "addr", "show"))
        for info in link.get("addr_info", [])
    ]
    for route in json.loads(ip("-j", "-4", "route", "show", "table", "all")):
        if route.get("dst") not in (None, "default"):
            found.append(ipaddress.ip_network(route["dst"], strict=False))
    return found


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of POOL that overlaps nothing the machine uses."""
    used = used_networks()
    candidates = list(POOL.subnets(new_prefix=24))[1:-1]
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise RuntimeError(f"no free /24 left in {POOL}")


@dataclass(frozen=True)
class Host:
    namespace: str
    device: str  # the root end of its link: down is a cut cable
    address: str

    def command(self, *args: str) -> list[str]:
        """``args`` run inside the host (``ip netns exec`` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.namespace, *args]


class Network:
    """``count`` hosts on a bridge; the root namespace is ``server`` on it."""

    def __init__(self, count: int) -> None:
        suffix = secrets.token_hex(3)
        subnet = free_subnet()
        addresses = [str(address) for address in subnet.hosts()]
        self.prefix = subnet.prefixlen
        self.server = addresses[0]
        self.bridge = f"cfbr{suffix}"
        self.hosts = [
            Host(f"cronfleet-{suffix}-{n}", f"cfh{n}{suffix}", addresses[n + 1])
            for n in range(count)
        ]
        self._made: list[list[str]] = []  # how to delete what was made, newest last
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def _make(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(["link", "del", self.bridge])
        ip("addr", "add", f"{self.server}/{self.prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for n, host in enumerate(self.hosts):
            ip("netns", "add", host.namespace)
            self._made.append(["netns", "del", host.namespace])
            peer = f"cfp{n}{self.bridge[4:]}"
            ip("link", "add", host.device, "type", "veth", "peer", "name", peer,
               "netns", host.namespace)  # fmt: skip
            self._made.append(["link", "del", host.device])
            ip("link", "set", host.device, "master", self.bridge, "up")
            inside = ["-n", host.namespace]
            ip(*inside, "addr", "add", f"{host.address}/{self.prefix}", "dev", peer)
            ip(*inside, "link", "set", peer, "up")
            ip(*inside, "link", "set", "lo", "up")

    def cut(self, host: Host) -> None:
        ip("link", "set", host.device, "down")

    def restore(self, host: Host) -> None:
        ip("link", "set", host.device, "up")

    def close(self) -> None:
        """Delete what was made, newest first; a link its namespace took along is gone
        already, which is fine. Stop the hosts' processes first: a namespace lives on
        (unnamed) while a process is in it."""
        errors = []
        while self._made:
            args = self._made.pop()
            try:
                ip(*args)
            except subprocess.CalledProcessError as error:
                if "Cannot find device" not in error.stderr:
                    errors.append(f"ip {' '.join(args)}: {error.stderr.strip()}")
        if errors:
            raise RuntimeError("; ".join(errors))
