"""Hostile URLs: the egress guard every outbound request (http jobs, webhooks) goes through.

No test here sends a packet anywhere but loopback: the decisions are checked with
stub resolvers and with the connect replaced by a tripwire (a refusal happens
before any connection), and the network tests talk to servers on 127.0.0.1 (the
tests allow 127.0.0.1 only, so 127.0.0.2, loopback too on Linux, is refused).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scheduler_app import checks, egress, notifications
from scheduler_app.egress import Refused
from scheduler_app.management.commands import runstack
from scheduler_app.models import Run
from tests.helpers import create_job, make_job, run_now, wait_for, wait_runs

LOOPBACK_2 = "127.0.0.2"  # loopback on Linux, and not in the tests' allow-list


# --- the decision: which addresses --------------------------------------------------

KINDS = [
    ("127.0.0.1", "a loopback address"),
    ("127.255.0.9", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.0.0.1", "a private address"),
    ("172.16.5.4", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fc00::1", "a unique-local address"),
    ("fd12:3456::1", "a unique-local address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("240.0.0.1", "a reserved address"),
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("192.0.2.1", "a private address"),  # documentation: not routable either
    ("169.254.169.254", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("168.63.129.16", "a cloud metadata address"),
    # IPv6 forms of IPv4 addresses are judged as those.
    ("::ffff:127.0.0.1", "a loopback address"),
    ("::ffff:10.1.1.1", "a private address"),
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("2002:7f00:1::", "a loopback address"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64 of 169.254.169.254
    # Public: allowed.
    ("93.184.216.34", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:93.184.216.34", None),
]


@pytest.mark.parametrize(("address", "kind"), KINDS, ids=[a for a, _ in KINDS])
def test_what_each_address_is(address, kind):
    assert egress.kind_of(ipaddress.ip_address(address)) == kind


def admits(entries: list[str], host: str, port: int = 80) -> bool:
    return egress.check_url(f"http://{host}:{port}/", egress.allow_list(entries)) is None


def test_the_allow_list_takes_addresses_networks_names_and_ports():
    assert admits(["127.0.0.1"], "127.0.0.1", 8000)
    assert not admits(["127.0.0.1"], LOOPBACK_2)
    assert admits(["127.0.0.1:8000"], "127.0.0.1", 8000)
    assert not admits(["127.0.0.1:8000"], "127.0.0.1", 8001)
    assert admits(["10.0.0.0/8"], "10.20.30.40")
    assert admits(["[::1]:8000"], "[::1]", 8000) and not admits(["[::1]:8000"], "[::1]", 80)
    assert admits(["fc00::/7"], "[fd00::5]")
    assert admits(["127.0.0.1"], "[::ffff:127.0.0.1]")  # the same address, written as IPv6
    assert admits(["localhost"], "localhost") and admits(["127.0.0.1"], "localhost")
    assert not admits(["10.0.0.0/8"], "localhost")


def test_a_metadata_address_is_allowed_only_when_named_alone():
    assert not admits(["169.254.0.0/16"], "169.254.169.254")
    assert admits(["169.254.0.0/16"], "169.254.10.10")
    assert admits(["169.254.169.254"], "169.254.169.254")


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "host name", "a:b:c:d:e:f:g:h:i", "x:99999", "[::1"]
)
def test_an_allow_list_entry_that_means_nothing_is_an_error(entry):
    with pytest.raises(ValueError):
        egress.parse_entry(entry)


def test_a_bad_allow_list_entry_fails_the_system_check(settings):
    settings.SCHEDULER_HTTP_ALLOW = ["127.0.0.1", "10.0.0.0/99"]
    (error,) = checks.http_allow_list_parses(None)
    assert error.id == "scheduler_app.E003" and "'10.0.0.0/99'" in error.msg


def test_a_refused_admin_webhook_is_a_warning_at_start(settings):
    settings.SCHEDULER_ADMIN_WEBHOOK = "http://10.0.0.9/alerts"
    (warning,) = checks.admin_webhook_is_reachable(None)
    assert warning.id == "scheduler_app.W002" and "10.0.0.9 is a private address" in warning.msg
    settings.SCHEDULER_HTTP_ALLOW = ["10.0.0.9"]
    assert checks.admin_webhook_is_reachable(None) == []


def test_make_run_says_how_to_allow_this_machine(settings):
    settings.SCHEDULER_HTTP_ALLOW = []
    assert "SCHEDULER_HTTP_ALLOW=127.0.0.1,localhost make run" in runstack.Command.egress_note()
    settings.SCHEDULER_HTTP_ALLOW = ["127.0.0.1", "localhost"]
    assert runstack.Command.egress_note().endswith("SCHEDULER_HTTP_ALLOW: 127.0.0.1, localhost.")


# --- refused before any connection ------------------------------------------------------


@pytest.fixture
def no_connect(monkeypatch) -> list[Any]:
    """A tripwire: any connection the guard would open is recorded and fails."""
    tried: list[Any] = []

    def connect(target: Any, *args: Any) -> None:
        tried.append(target)
        raise AssertionError(f"connected to {target.addresses}")

    monkeypatch.setattr(egress, "_connect", connect)
    return tried


def resolver_to(*answers: list[str]) -> Callable[[str, int], list[str]]:
    """A stub resolver giving ``answers`` in turn (the last one again after that); its
    ``calls`` list the names asked for."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address; list it in "
                             "SCHEDULER_HTTP_ALLOW to allow it."),
        ("http://169.254.169.254/latest/meta-data/iam/", "is a cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 (169.254.169.254) is a cloud"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
        (f"http://{LOOPBACK_2}:8000/api/v1/stats/", f"{LOOPBACK_2} is a loopback address"),
        ("http://0x7f.0.0.2/", "0x7f.0.0.2 (127.0.0.2) is a loopback address"),
        ("http://metadata.google.internal/", "metadata.google.internal is a cloud metadata name"),
        ("ftp://example.com/file", "refused: ftp:// is not allowed; only http:// and https://"),
        ("file:///etc/passwd", "refused: file:// is not allowed"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "refused: gopher:// is not allowed"),
    ],
)  # fmt: skip
def test_a_refused_url_is_refused_before_connecting(no_connect, url, message):
    with pytest.raises(Refused) as refused:
        egress.request("GET", url, timeout=5, resolver=resolver_to(["93.184.216.34"]))
    assert message in str(refused.value)
    assert no_connect == []


def test_a_name_is_judged_by_every_address_it_resolves_to(no_connect):
    inside = resolver_to(["10.0.0.5", "fd00::5"])
    with pytest.raises(Refused) as refused:
        egress.request("GET", "https://intranet.example/", timeout=5, resolver=inside)
    assert str(refused.value) == (
        "refused: intranet.example resolves to 10.0.0.5, which is a private address; "
        "list it in SCHEDULER_HTTP_ALLOW to allow it."
    )
    assert no_connect == []
    # Mixed answers: only the public address is ever connected to.
    target = egress.judge("http://mixed.example/", resolver_to(["10.0.0.5", "93.184.216.34"]))
    assert target.addresses == (ipaddress.ip_address("93.184.216.34"),)


def test_a_name_resolves_once_so_it_cannot_rebind(http_server):
    """The first answer is allowed (127.0.0.1), every later one is not (127.0.0.2): the
    request goes to the first, and the name is never looked up again."""
    url, seen = http_server
    rebinding = resolver_to(["127.0.0.1"], [LOOPBACK_2])
    host = f"rebind.example:{url.rsplit(':', 1)[1]}"

    response = egress.request("GET", f"http://{host}/ok", timeout=5, resolver=rebinding)

    assert (response.status, response.body) == (200, b"ok")
    assert rebinding.calls == ["rebind.example"]  # type: ignore[attr-defined]
    assert seen[-1]["Host"] == host  # the name as written, not the address


def test_create_time_checks_do_no_lookup(monkeypatch, api):
    def lookup(*args: Any) -> None:
        raise AssertionError("a DNS lookup at create time")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    assert egress.check_url("https://hooks.example.com/x") is None
    job = create_job(api, name="by name", kind="http", schedule="manual",
                     payload={"url": "https://status.example.com/health"},
                     notify_webhooks=["https://hooks.example.com/x"])  # fmt: skip
    assert job["payload"]["url"] == "https://status.example.com/health"


def test_an_allowed_literal_is_accepted_at_create(api, settings):
    settings.SCHEDULER_HTTP_ALLOW = ["127.0.0.1", "10.0.0.0/8", "intranet"]
    create_job(api, name="inside", kind="http", schedule="manual",
               payload={"url": "http://10.1.2.3/health"},
               notify_webhooks=["http://127.0.0.1:9000/hook"])  # fmt: skip
    response = api.post("/api/v1/jobs/", {"name": "meta", "kind": "http", "schedule": "manual",
                        "payload": {"url": "http://169.254.169.254/"}}, format="json")  # fmt: skip
    assert response.status_code == 400
    assert "169.254.169.254 is a cloud metadata address" in response.data["payload"][0]


# --- on the wire, on 127.0.0.1 only ------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """/ok: 200 "ok"; /big: 100 000 bytes; /slow: headers, then a byte every 0.1 s for
    a minute; /to?url=U: a 302 to U; /loop: a redirect to itself."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **dict(self.headers.items())})
        path, _, query = self.path.partition("?")
        if path == "/to":
            self.send_response(302)
            self.send_header("Location", query.removeprefix("url="))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/slow":
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(600):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(0.1)
        else:
            body = b"x" * 100_000 if path == "/big" else b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(host: str = "127.0.0.1") -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    server = ThreadingHTTPServer((host, 0), type("H", (Handler,), {"seen": seen}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with serving() as served:
        yield served


@pytest.fixture
def listener_on_loopback_2() -> Iterator[tuple[int, socket.socket]]:
    """A socket listening on 127.0.0.2: it shows whether anything connected to it."""
    sock = socket.socket()
    sock.bind((LOOPBACK_2, 0))
    sock.listen(5)
    sock.setblocking(False)
    yield sock.getsockname()[1], sock
    sock.close()


def connected(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
        return True
    except BlockingIOError:
        return False


def test_a_redirect_to_a_refused_address_is_refused(http_server, listener_on_loopback_2, settings):
    url, _ = http_server
    settings.SCHEDULER_HTTP_ALLOW = [url.removeprefix("http://")]  # exactly 127.0.0.1:port
    port, listener = listener_on_loopback_2
    inside = f"http://{LOOPBACK_2}:{port}/api/v1/stats/"

    with pytest.raises(Refused) as refused:
        egress.request("GET", f"{url}/to?url={inside}", timeout=5)

    assert str(refused.value) == (
        f"refused: redirected to {inside}, {LOOPBACK_2} is a loopback address; "
        "list it in SCHEDULER_HTTP_ALLOW to allow it."
    )
    assert not connected(listener)


def test_redirects_are_followed_a_bounded_number_of_times(http_server, settings):
    url, seen = http_server
    settings.SCHEDULER_HTTP_MAX_REDIRECTS = 3
    response = egress.request("GET", f"{url}/to?url=/ok", timeout=5)
    assert (response.status, response.body, response.url) == (200, b"ok", f"{url}/ok")
    with pytest.raises(egress.Failed, match="more than 3 redirects"):
        egress.request("GET", f"{url}/loop", timeout=5)
    assert [s["path"] for s in seen].count("/loop") == 4


def test_credentials_and_host_do_not_follow_a_redirect_to_another_origin(http_server):
    url, _ = http_server
    with serving() as (other, seen_there):
        egress.request("GET", f"{url}/to?url={other}/ok", timeout=5,
                       headers={"Authorization": "Bearer s3cret", "X-Trace": "1",
                                "Host": "intranet.internal"})  # fmt: skip
    assert "Authorization" not in seen_there[0] and seen_there[0]["X-Trace"] == "1"
    assert seen_there[0]["Host"] == other.removeprefix("http://")


def test_a_path_that_is_not_ascii_is_sent_percent_encoded(http_server):
    url, seen = http_server
    response = egress.request("GET", f"{url}/to?url=/caf\u00e9?q=\u00fc", timeout=5)
    assert response.status == 200
    assert seen[-1]["path"] == "/caf%C3%A9?q=%C3%BC"


def test_the_body_is_read_up_to_the_cap(http_server, settings):
    url, _ = http_server
    settings.SCHEDULER_HTTP_BODY_LIMIT = 1000
    response = egress.request("GET", f"{url}/big", timeout=5)
    assert (len(response.body), response.truncated) == (1000, True)
    small = egress.request("GET", f"{url}/ok", timeout=5)
    assert (small.body, small.truncated) == (b"ok", False)


def test_the_deadline_bounds_a_server_that_trickles(http_server):
    url, _ = http_server
    started = time.monotonic()
    with pytest.raises(egress.TimedOut, match="timed out after 1 s"):
        egress.request("GET", f"{url}/slow", timeout=1)
    assert time.monotonic() - started < 2


def test_another_thread_aborts_a_request_at_once(http_server):
    url, _ = http_server
    guard = egress.Guard()
    threading.Timer(0.3, guard.abort).start()
    started = time.monotonic()
    with pytest.raises(egress.Aborted):
        egress.request("GET", f"{url}/slow", timeout=30, guard=guard)
    assert time.monotonic() - started < 1


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections and never answers (never accepts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A port on 127.0.0.1 whose backlog is full: a new connection hangs in connect."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for filler in fillers:
        filler.close()
    sock.close()


@pytest.mark.parametrize(
    ("listener", "setting", "limit", "logged"),
    [
        ("silent_listener", "SCHEDULER_WEBHOOK_TIMEOUT", 1, "timed out after 1 s"),  # never answers
        ("full_listener", "SCHEDULER_HTTP_CONNECT_TIMEOUT", 0.5, "no connection to 127.0.0.1"),
    ],
)
def test_a_webhook_that_hangs_is_given_up_at_its_limit(
    request, settings, caplog, listener, setting, limit, logged
):
    port = request.getfixturevalue(listener)
    setattr(settings, setting, limit)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="scheduler_app.notifications"):
        notifications.deliver("s", {"event": "failure"}, [], [f"http://127.0.0.1:{port}/hook"])
    assert time.monotonic() - started < limit + 1
    assert logged in caplog.text


def test_a_refused_webhook_is_logged_and_never_sent(no_connect, caplog):
    with caplog.at_level(logging.WARNING, logger="scheduler_app.notifications"):
        notifications.deliver("s", {"event": "failure"}, [], [f"http://{LOOPBACK_2}/hook"])
    assert f"refused: {LOOPBACK_2} is a loopback address" in caplog.text
    assert no_connect == []


# --- https: the pinned address keeps SNI and the certificate check ----------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[str | None]]]:
    """An https server on 127.0.0.1 with a self-signed certificate for egress.test."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=egress.test", "-addext", "subjectAltName=DNS:egress.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    seen: list[dict[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Handler,), {"seen": seen}))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], cert, names
    server.shutdown()
    server.server_close()


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_name(tls_server, monkeypatch):
    port, cert, names = tls_server
    to_loopback = resolver_to(["127.0.0.1"])
    # Not trusted by the system: verification is on.
    with pytest.raises(egress.Failed, match="CERTIFICATE_VERIFY_FAILED"):
        egress.request("GET", f"https://egress.test:{port}/ok", timeout=5, resolver=to_loopback)

    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(egress, "tls_context", lambda: trusting)
    response = egress.request("GET", f"https://egress.test:{port}/ok", timeout=5,
                              resolver=to_loopback)  # fmt: skip
    assert (response.status, response.body) == (200, b"ok")
    assert names[-1] == "egress.test"  # SNI: the name, though the connection went to 127.0.0.1
    # The certificate is checked against the name asked for, not the address connected to.
    with pytest.raises(egress.Failed, match=r"Hostname mismatch|doesn.t match"):
        egress.request("GET", f"https://other.test:{port}/ok", timeout=5, resolver=to_loopback)


# --- through the real worker --------------------------------------------------------------


def run_of(api: Any, job_id: int) -> Run:
    run_now(api, {"id": job_id})
    (run,) = wait_runs(job_id, 1, timeout=60, finished_at__isnull=False)
    return run


@pytest.mark.stack
def test_an_http_job_to_a_refused_address_fails_naming_it(live, api, owner, http_server):
    # Saved around the API's check (as an older job, or one whose name now resolves inside).
    url, seen = http_server
    port = url.rsplit(":", 1)[1]
    job = make_job(owner, name="inside", kind="http", schedule={"type": "manual"},
                   payload={"url": f"http://{LOOPBACK_2}:{port}/api/v1/stats/", "method": "GET",
                            "headers": {}, "body": None, "expect_status": [200]})  # fmt: skip
    run = run_of(api, job.id)
    assert run.status == Run.Status.FAILED
    assert run.error == (
        f"refused: {LOOPBACK_2} is a loopback address; list it in SCHEDULER_HTTP_ALLOW to allow it."
    )
    assert "body_excerpt" not in run.result and seen == []


@pytest.mark.stack
def test_an_http_job_redirected_inside_fails_and_a_big_body_is_cut(
    live, api, http_server, listener_on_loopback_2
):
    url, _ = http_server
    port, listener = listener_on_loopback_2
    inside = f"http://{LOOPBACK_2}:{port}/"
    job = create_job(api, name="redirected", kind="http", schedule="manual",
                     payload={"url": f"{url}/to?url={inside}"})  # fmt: skip
    run = run_of(api, job["id"])
    assert run.status == Run.Status.FAILED
    assert run.error.startswith(f"refused: redirected to {inside}, {LOOPBACK_2} is a loopback")
    assert not connected(listener)

    big = create_job(api, name="big", kind="http", schedule="manual",
                     payload={"url": f"{url}/big"})  # fmt: skip
    run = run_of(api, big["id"])
    assert run.status == Run.Status.SUCCEEDED
    assert run.result["body_truncated_at"] == 65536 and len(run.output) == 65536


@pytest.mark.stack
def test_cancelling_an_http_job_stops_its_request_within_a_second_or_two(live, api, http_server):
    url, _ = http_server
    job = create_job(api, name="slow", kind="http", schedule="manual", timeout=120,
                     payload={"url": f"{url}/slow"})  # fmt: skip
    run_id = run_now(api, job)
    wait_runs(job["id"], 1, status=Run.Status.RUNNING)

    cancelled_at = time.monotonic()
    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 200
    run = wait_for(lambda: Run.objects.filter(id=run_id, duration__isnull=False).first(),
                   timeout=10, interval=0.05)  # fmt: skip
    ended_after = time.monotonic() - cancelled_at

    assert ended_after < 2.5, f"the request went on {ended_after:.1f} s after the cancel"
    assert run.status == Run.Status.CANCELLED
    assert run.duration < 10 and "elapsed_ms" in run.result
