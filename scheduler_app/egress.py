"""The egress guard: every outbound HTTP request the scheduler makes goes through here.

Why: the URL of an ``http`` job and of a notification webhook is chosen by users,
while the worker that requests it sits inside the network. Unguarded, such a URL
reaches the web's own API on loopback, a database or an admin console on a private
address, or the cloud's metadata service (the node's credentials, one GET away);
and a redirect, or a DNS answer that changes between the check and the connect
("rebinding"), leads there from a harmless-looking public name. So:

- only ``http`` and ``https``;
- the host is resolved **once**; the addresses it resolves to are judged, and the
  connection goes to a judged address (no second lookup, so nothing to rebind).
  https still sends SNI and verifies the certificate against the host name, and
  the ``Host`` header is the host as written;
- loopback, private, link-local, unique-local, shared (CGNAT), multicast,
  unspecified, reserved and cloud-metadata addresses are refused unless
  ``SCHEDULER_HTTP_ALLOW`` lists them; an IPv6 address that carries an IPv4 one
  (``::ffff:127.0.0.1``, 6to4, NAT64, Teredo) is judged by that IPv4 address too;
- redirects are followed here, at most ``SCHEDULER_HTTP_MAX_REDIRECTS``, each
  judged like the first URL; credentials and ``Host`` are not carried to another
  origin; a path is sent percent-encoded;
- the body is read up to a cap; the whole exchange has a deadline, and another
  thread may abort it (a cancelled run). Both shut the socket down, which wakes a
  blocked connect or read at once (Linux), so neither waits for a socket timeout.
  The one name lookup is not covered: a resolver that hangs holds the request for
  its own timeout (the system resolver's, a few seconds per server).

Built on :mod:`http.client`: pinning the connection to a judged address is one
overridden method, and no dependency is added for it.

``SCHEDULER_HTTP_ALLOW`` entries, comma-separated: an address or network
(``127.0.0.1``, ``10.0.0.0/8``, ``::1``), or a host name (``localhost``,
``hooks.internal``: any address the name resolves to is then allowed), each with
an optional port (``127.0.0.1:8000``, ``[::1]:8000``, ``localhost:8000``). A cloud
metadata address is allowed only by an entry naming it alone (``169.254.169.254``,
not ``169.254.0.0/16``): allowing link-local services should not open the
credentials too.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from urllib.parse import quote, urljoin, urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to, in the resolver's order.
Resolver = Callable[[str, int], list[str]]

SETTING = "SCHEDULER_HTTP_ALLOW"
SCHEMES = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Not carried by a redirect to another origin (scheme, host, port).
# What may stand unencoded in a request's path and query (the rest is percent-encoded).
URL_SAFE = "/%:@!$&'()*+,;=?~-._"
# Headers that belong to the origin they were written for: not sent on to another one
# (a Host kept would name, on the new server, a virtual host of the user's choosing).
ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "host"})
BACKSTOP = 0.5  # seconds a socket timeout leaves past the deadline (see _left)

# Cloud metadata services: AWS (and its IPv6 form), ECS tasks, GCP, Azure, DigitalOcean,
# OpenStack (169.254.169.254); Azure's wire server; Alibaba; Oracle; Tencent.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.170.23",
        "168.63.129.16", "100.100.100.200", "192.0.0.192", "169.254.0.23",
    )
)  # fmt: skip
# Names that mean one of the refused addresses whatever DNS says, refused by name (so
# also at create time, with no lookup): their nominal addresses, and what they are.
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
METADATA_NAMES = (
    "metadata.google.internal", "metadata.goog", "metadata",
    "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com",
)  # fmt: skip
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_METADATA = (ipaddress.ip_address("169.254.169.254"),)

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")


class EgressError(Exception):
    """An outbound request that did not get a response; the message says why."""


class Refused(EgressError):
    """The guard refused the destination before connecting."""


class TimedOut(EgressError):
    """No complete response within the deadline."""


class Aborted(EgressError):
    """Stopped by another thread (:meth:`Guard.abort`): the run was cancelled."""


class Failed(EgressError):
    """The network or the server failed (refused connection, reset, bad TLS, bad HTTP)."""


# --- the policy: which destinations -------------------------------------------------


@dataclass(frozen=True)
class AllowEntry:
    """One entry of SCHEDULER_HTTP_ALLOW: a network or a host name, maybe one port."""

    network: Network | None = None
    name: str | None = None
    port: int | None = None

    def admits(self, host: str, address: Address | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return self.name == _bare(host)
        if address is None or self.network is None:
            return False
        if address in METADATA_ADDRESSES and self.network.num_addresses != 1:
            return False  # a metadata address only when named alone (see the module doc)
        return address in self.network  # False across IP versions


def parse_entry(entry: str) -> AllowEntry:
    """One SCHEDULER_HTTP_ALLOW entry; ValueError saying why it is not one."""
    text = entry.strip().lower()
    port: int | None = None
    if text.startswith("["):  # [v6] or [v6]:port
        inside, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{entry!r}: the [ of an IPv6 address is not closed")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{entry!r}: write an IPv6 address with a port as [::1]:8000")
            port = _port(rest[1:], entry)
        text = inside
    elif text.count(":") == 1:  # host:port, address:port, network:port
        text, _, number = text.partition(":")
        port = _port(number, entry)
    try:
        return AllowEntry(network=ipaddress.ip_network(text, strict=False), port=port)
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(text):
        raise ValueError(f"{entry!r} is neither an address, a network (CIDR) nor a host name")
    return AllowEntry(name=_bare(text), port=port)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(text)


def allow_list(entries: Iterable[str] | None = None) -> tuple[AllowEntry, ...]:
    """The parsed allow-list (SCHEDULER_HTTP_ALLOW unless ``entries`` is given)."""
    if entries is None:
        entries = settings.SCHEDULER_HTTP_ALLOW
    return _parsed(tuple(entries))


@lru_cache(maxsize=8)
def _parsed(entries: tuple[str, ...]) -> tuple[AllowEntry, ...]:
    """Each entry read; one that cannot be is left out (it allows nothing, the safe side)
    and logged; the system check scheduler_app.E003 says so at start too."""
    parsed = []
    for entry in entries:
        try:
            parsed.append(parse_entry(entry))
        except ValueError as exc:
            logger.error("%s: %s; the entry is ignored", SETTING, exc)
    return tuple(parsed)


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo), if any: a
    packet to it may end at that IPv4 address, so it is judged as that address too."""
    if address.version == 4:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def kind_of(address: Address) -> str | None:
    """What makes ``address`` one the guard refuses ("a loopback address"), or None when
    it is an ordinary public address."""
    inner = embedded_ipv4(address)
    if inner is not None and (inner_kind := kind_of(inner)):
        return inner_kind
    if address.version == 6 and address.ipv4_mapped is not None:
        return None  # ::ffff:a.b.c.d is a.b.c.d, public as judged above
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.version == 6 and address in _UNIQUE_LOCAL, "a unique-local address"),
        (address.version == 4 and address in _SHARED, "a shared (carrier-grade NAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "a non-public address"),
    )
    return next((kind for refused, kind in checks if refused), None)


def name_kind(host: str) -> tuple[str, tuple[Address, ...]] | None:
    """(what it is, its nominal addresses) for a name refused by name, else None."""
    name = _bare(host)
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return "a loopback name", _LOOPBACK
    if name in METADATA_NAMES:
        return "a cloud metadata name", _METADATA
    return None


def _admitted(host: str, address: Address | None, port: int, allowed: Iterable[AllowEntry]) -> bool:
    inner = embedded_ipv4(address) if address is not None else None
    return any(
        entry.admits(host, address, port) or (inner is not None and entry.admits(host, inner, port))
        for entry in allowed
    )


def _refusal(what: str, kind: str) -> str:
    return f"refused: {what} is {kind}; list it in {SETTING} to allow it."


def literal_address(host: str) -> Address | None:
    """``host`` as an address when it is one, in any form a resolver reads as one
    (``127.1``, ``2130706433``, ``0x7f.0.0.1`` as well as ``127.0.0.1``); else None."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%")[0])
    except ValueError:
        pass
    bare = bare.rstrip(".")  # "127.0.0.1." is an absolute name, and that address
    if re.fullmatch(r"[0-9a-fx.]+", bare.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def check_url(url: str, allowed: Iterable[AllowEntry] | None = None) -> str | None:
    """Why ``url`` is refused, judged without any DNS lookup (at create time), or None.

    Refused: a scheme but http and https, a literal address the guard refuses, a
    name refused by name (``localhost``). Other names are judged when the request
    is made, by the addresses they resolve to then.
    """
    allowed = allow_list() if allowed is None else tuple(allowed)
    try:
        host, port = _host_port(url)
    except Refused as exc:
        return str(exc)
    return _judge_name(host, port, allowed)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = f"{scheme}://" if scheme else repr(url)
        raise Refused(f"refused: {shown} is not allowed; only http:// and https:// URLs are.")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise Refused(f"refused: {url!r} is not a valid URL ({exc}).") from None
    if not host:
        raise Refused(f"refused: {url!r} has no host.")
    return host, port or SCHEMES[scheme]


def _judge_name(host: str, port: int, allowed: tuple[AllowEntry, ...]) -> str | None:
    """The refusal that the host as written earns, before any lookup; None if none."""
    address = literal_address(host)
    if address is not None:
        kind = kind_of(address)
        if kind and not _admitted(host, address, port, allowed):
            return _refusal(_shown(host, address), kind)
        return None
    named = name_kind(host)
    if named is None:
        return None
    kind, nominal = named
    if _admitted(host, None, port, allowed) or any(
        _admitted(host, a, port, allowed) for a in nominal
    ):
        return None
    return _refusal(host, kind)


def _shown(host: str, address: Address) -> str:
    """A literal address as written, and what it means when that is not plain."""
    written = host.strip("[]")
    try:
        plain = ipaddress.ip_address(written) == address
    except ValueError:
        plain = False
    meant = embedded_ipv4(address) or address
    return written if plain and meant == address else f"{written} ({meant})"


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (one lookup), in the system's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def judge(url: str, resolver: Resolver = system_resolver) -> Target:
    """``url`` resolved once and judged: the target to connect to, or Refused.

    The addresses the guard refuses (and the allow-list does not admit) are dropped;
    the request goes to the others, in the resolver's order. None left is a refusal
    naming the first address. Failing to resolve is :class:`Failed`.
    """
    allowed = allow_list()
    host, port = _host_port(url)
    if refusal := _judge_name(host, port, allowed):
        raise Refused(refusal)
    literal = literal_address(host)
    try:
        found = [literal] if literal else [ipaddress.ip_address(a.split("%")[0])
                                           for a in resolver(host, port)]  # fmt: skip
    except (OSError, UnicodeError, ValueError) as exc:
        raise Failed(f"could not resolve {host}: {exc}") from None
    if not found:
        raise Failed(f"could not resolve {host}: no address")
    usable = [a for a in found if not kind_of(a) or _admitted(host, a, port, allowed)]
    if not usable:  # (a literal refused was refused by _judge_name already)
        first = found[0]
        raise Refused(_refusal(f"{host} resolves to {first}, which", kind_of(first) or "refused"))
    parts = urlsplit(url)
    # As sent on the wire: ASCII, what is not percent-encoded already (a user's URL, a
    # server's Location) encoded as browsers do.
    path = quote(parts.path or "/", safe=URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=URL_SAFE)
    return Target(url, parts.scheme.lower(), host, port, path, tuple(usable))


@dataclass(frozen=True)
class Target:
    """A judged URL: where to connect (``addresses``) and what to ask for."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[Address, ...]

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, _bare(self.host), self.port


def _bare(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


# --- the exchange: one request, pinned, bounded, abortable ---------------------------


class Guard:
    """One request's socket, so that another thread can stop it: :meth:`abort` (a cancel)
    or :meth:`expire` (the deadline) shuts the socket down, which wakes a blocked connect
    or read; the request then raises :class:`Aborted` or :class:`TimedOut`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stopped: EgressError | None = None  # what the request raises, once stopped

    def abort(self) -> None:
        """Stop the request: the run was cancelled."""
        self._stop(Aborted("cancelled"))

    def expire(self, reason: str) -> None:
        """Stop the request: its deadline passed."""
        self._stop(TimedOut(reason))

    def _stop(self, error: EgressError) -> None:
        with self._lock:
            if self._stopped is None:
                self._stopped = error
            sock = self._sock
        if sock is not None:
            _shut(sock)

    def attach(self, sock: socket.socket) -> None:
        """The socket the request now waits on (shut at once if it was stopped already)."""
        with self._lock:
            self._sock = sock
            stopped = self._stopped is not None
        if stopped:
            _shut(sock)

    def check(self) -> None:
        """Raise Aborted or TimedOut when the request was stopped."""
        if self._stopped is not None:
            raise self._stopped


def _shut(sock: socket.socket) -> None:
    """Shut the socket down in both directions (for TLS, the socket under it: the TLS
    layer's own shutdown would talk to the peer)."""
    with contextlib.suppress(OSError):  # not connected yet, or closed: nothing blocks on it
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _PinnedConnection(http.client.HTTPConnection):
    """http.client's connection, connecting to the judged addresses instead of resolving
    ``host`` again; everything else (the Host header) still uses ``host``."""

    def __init__(self, target: Target, guard: Guard, connect_timeout: float, deadline: float):
        super().__init__(target.host, target.port, timeout=_left(deadline))
        self._target, self._guard = target, guard
        self._connect_timeout, self._deadline = connect_timeout, deadline

    def connect(self) -> None:
        self.sock = _connect(self._target, self._guard, self._connect_timeout, self._deadline)


@cache
def tls_context() -> ssl.SSLContext:
    """The default context (it verifies the chain and the host name), made once: making
    one loads the system's certificate store."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class _PinnedTLSConnection(http.client.HTTPSConnection):
    """The same over TLS, with SNI and the certificate verified against ``host`` (the
    default context). The TLS socket is handed to the guard before its handshake, so a
    cancel or the deadline also stops a handshake that hangs."""

    def __init__(self, target: Target, guard: Guard, connect_timeout: float, deadline: float):
        super().__init__(target.host, target.port, timeout=_left(deadline), context=tls_context())
        self._target, self._guard = target, guard
        self._connect_timeout, self._deadline = connect_timeout, deadline

    def connect(self) -> None:
        raw = _connect(self._target, self._guard, self._connect_timeout, self._deadline)
        sock = self._context.wrap_socket(raw, server_hostname=self.host,
                                         do_handshake_on_connect=False)  # fmt: skip
        self._guard.attach(sock)  # it took over the file descriptor
        try:
            sock.do_handshake()
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _connect(
    target: Target, guard: Guard, connect_timeout: float, deadline: float
) -> socket.socket:
    """A TCP connection to the first of the target's addresses that answers."""
    error: OSError | None = None
    for address in target.addresses:
        guard.check()
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        guard.attach(sock)
        try:
            sock.settimeout(min(connect_timeout, _left(deadline)))
            sock.connect((str(address), target.port))
            sock.settimeout(_left(deadline))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    guard.check()
    if isinstance(error, TimeoutError):
        raise TimeoutError(f"no connection to {target.host} within {connect_timeout:g} s")
    raise error or OSError(f"no address to connect to for {target.host}")


def _left(deadline: float) -> float:
    """A socket timeout for what is left until the deadline, plus a little: the deadline
    itself is kept by the guard's timer (which says so), the socket timeout is only a
    backstop; never zero (a zero timeout would mean non-blocking)."""
    return max(deadline - time.monotonic(), 0.0) + BACKSTOP


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes  # at most ``max_body`` bytes
    truncated: bool  # the body went on past the cap
    url: str  # the URL that answered (after redirects)


def _exchange(
    target: Target, method: str, headers: Mapping[str, str], body: bytes | None,
    guard: Guard, connect_timeout: float, deadline: float, max_body: int,
) -> Response:  # fmt: skip
    cls = _PinnedTLSConnection if target.scheme == "https" else _PinnedConnection
    conn = cls(target, guard, connect_timeout, deadline)
    try:
        conn.request(method, target.path, body=body, headers=dict(headers))
        response = conn.getresponse()
        data = response.read(max_body) if max_body > 0 else b""
        truncated = not response.isclosed() and method != "HEAD" and len(data) >= max_body
        guard.check()  # a shut socket reads as an early end: it was stopped, not answered
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Response(response.status, headers, data, truncated, target.url)
    finally:
        conn.close()


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float,
    max_body: int | None = None,
    guard: Guard | None = None,
    resolver: Resolver = system_resolver,
) -> Response:
    """Send one request through the guard, following redirects; the final response
    (an error status is a response), or an :class:`EgressError`.

    ``timeout`` bounds the whole exchange, redirects included (SCHEDULER_HTTP_MAX_REDIRECTS
    of them); SCHEDULER_HTTP_CONNECT_TIMEOUT each connection attempt; ``max_body`` (by
    default SCHEDULER_HTTP_BODY_LIMIT) the bytes of the body read. ``guard`` lets another
    thread abort the request (:meth:`Guard.abort`).
    """
    connect_timeout = settings.SCHEDULER_HTTP_CONNECT_TIMEOUT
    max_body = settings.SCHEDULER_HTTP_BODY_LIMIT if max_body is None else max_body
    hops = settings.SCHEDULER_HTTP_MAX_REDIRECTS
    guard = guard or Guard()
    deadline = time.monotonic() + timeout
    timer = threading.Timer(timeout, guard.expire, args=(f"timed out after {timeout:g} s",))
    timer.daemon = True
    timer.start()
    headers = dict(headers or {})
    try:
        previous: Target | None = None
        for hop in range(hops + 1):
            guard.check()
            try:
                target = judge(url, resolver)
            except Refused as exc:
                if previous is None:
                    raise
                reason = str(exc).removeprefix("refused: ")
                raise Refused(f"refused: redirected to {url}, {reason}") from None
            if previous is not None and previous.origin != target.origin:
                headers = {k: v for k, v in headers.items()
                           if k.lower() not in ORIGIN_BOUND_HEADERS}  # fmt: skip
            response = _guarded(target, method, headers, body, guard, connect_timeout,
                                deadline, max_body)  # fmt: skip
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            if hop == hops:
                raise Failed(f"more than {hops} redirects; the last one to {location}")
            url = urljoin(target.url, location)
            method, body, headers = _redirected(response.status, method, body, headers)
            previous = target
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        timer.cancel()


def _guarded(
    target: Target, method: str, headers: Mapping[str, str], body: bytes | None,
    guard: Guard, connect_timeout: float, deadline: float, max_body: int,
) -> Response:  # fmt: skip
    """One exchange, its failures told apart: stopped (cancel, deadline) or failed."""
    try:
        return _exchange(target, method, headers, body, guard, connect_timeout, deadline,
                         max_body)  # fmt: skip
    except (OSError, http.client.HTTPException, ValueError) as exc:
        guard.check()  # stopped by the other thread: say so, not what the socket saw
        if isinstance(exc, TimeoutError):  # every TimedOut says "timed out" first
            said = str(exc) or "timed out"
            raise TimedOut(said if said.startswith("timed out") else f"timed out: {said}") from None
        raise Failed(f"{target.url}: {exc or type(exc).__name__}") from None


def _redirected(
    status: int, method: str, body: bytes | None, headers: dict[str, str]
) -> tuple[str, bytes | None, dict[str, str]]:
    """What the next request is: 307 and 308 repeat it; 301, 302 and 303 become a GET
    without a body (as browsers and urllib do), HEAD staying HEAD."""
    if status in (307, 308) or method == "HEAD":
        return method, body, headers
    dropped = {"content-type", "content-length"}
    return "GET", None, {k: v for k, v in headers.items() if k.lower() not in dropped}
