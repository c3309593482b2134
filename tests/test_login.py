"""Logging in against hostile clients: the token endpoint's throttles (per address, per
username, whatever else the request carries), the per-account backoff, and the tokens'
life (rotate, revoke, expiry, a password change). All on the real cache (Redis),
emptied before each test (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import timedelta

import time_machine
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from scheduler_app import login_guard
from tests.helpers import client_for, wait_for

LOGIN = "/api/v1/auth/token/"


def login(username: str, password: str, client: APIClient | None = None, **headers: str):
    client = client or APIClient()
    return client.post(LOGIN, {"username": username, "password": password}, **headers)


def test_rotating_x_forwarded_for_does_not_escape_the_address_throttle(db):
    # A different username each time: only the per-address throttle (20/minute) counts.
    codes = [
        login(f"user{i}", "guess", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(21)
    ]
    assert codes == [400] * 20 + [429]


def test_behind_a_trusted_proxy_the_address_is_the_proxys_last_entry(db, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # The client may prepend anything: the proxy's own entry (the last) is what counts.
    codes = [
        login(f"user{i}", "guess", HTTP_X_FORWARDED_FOR=f"spoof{i}, 198.51.100.7").status_code
        for i in range(21)
    ]
    assert codes[-1] == 429
    # Another client behind the same proxy has its own count.
    assert login("other", "guess", HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 400


def test_trusted_proxy_count_is_drfs_num_proxies():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import config.settings as s; print(s.REST_FRAMEWORK['NUM_PROXIES'])",
        ],
        env={**os.environ, "DEBUG": "1", "TRUSTED_PROXY_COUNT": "2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "2", result.stderr


def test_a_valid_token_in_authorization_does_not_lift_the_login_throttles(owner, outsider):
    # Bob, signed in with his own token, guesses Alice's password from ever new addresses.
    bob = client_for(outsider)
    codes = [
        login("alice", f"guess{i}", bob, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(8)
    ]
    assert codes == [400] * 5 + [429] * 3
    # ... and the right password is refused now too.
    assert login("alice", "alice-password-1", bob).status_code == 429


def test_the_per_username_throttle_counts_from_every_address_and_spelling(db, settings):
    settings.LOGIN_FAILURE_LIMIT = 0  # the backoff off: only the throttle counts
    spellings = ["alice", " alice", "ALICE ", "Alice"]
    codes = [
        login(spellings[i % 4], "guess", REMOTE_ADDR=f"10.0.0.{i}", HTTP_X_FORWARDED_FOR="1.2.3.4")
        for i in range(11)
    ]
    assert [c.status_code for c in codes] == [400] * 10 + [429]
    assert int(codes[-1]["Retry-After"]) > 0


def test_failed_logins_lock_the_account_for_a_growing_time(owner, teammate, settings):
    settings.LOGIN_LOCKOUT_SECONDS = 1
    for _ in range(5):
        assert login("alice", "wrong").status_code == 400
    locked = login("alice", "alice-password-1")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "1"
    assert "Too many failed logins for this account" in locked.data["detail"]
    # Another account is not affected.
    assert login("carol", "carol-password-1").status_code == 200

    wait_for(lambda: login_guard.locked_for("alice") == 0, timeout=10)
    # Past the limit every failure doubles the lock.
    assert login("alice", "wrong").status_code == 400
    locked = login("alice", "alice-password-1")
    assert (locked.status_code, locked["Retry-After"]) == (429, "2")

    wait_for(lambda: login_guard.locked_for("alice") == 0, timeout=10)
    assert login("alice", "alice-password-1").status_code == 200
    # The success forgot the failures: this one is the first again.
    assert login("alice", "wrong").status_code == 400
    assert login_guard.locked_for("alice") == 0
    assert cache.get(f"login:failures:{login_guard.account_key('alice')}") == 1


def test_the_lock_covers_every_spelling_and_the_admin_login_form(owner, settings):
    owner.is_staff = True
    owner.save()
    for _ in range(5):
        login("ALICE", "wrong")
    assert login("alice", "alice-password-1").status_code == 429
    page = Client().post("/admin/login/", {"username": "alice", "password": "alice-password-1"})
    assert page.status_code == 200  # the form again, not the redirect of a login
    assert "Too many failed logins for this account" in page.content.decode()
    assert "_auth_user_id" not in Client().session


def test_parallel_guesses_get_at_most_one_past_the_limit(db):
    allowed: list[login_guard.Attempt] = []
    start = threading.Barrier(20)

    def guess() -> None:
        start.wait()
        with contextlib.suppress(login_guard.Locked):
            allowed.append(login_guard.begin("mallory"))

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 5 + 1
    assert login_guard.locked_for("mallory") > 0


def test_a_token_rotates_and_the_old_one_stops_working(owner):
    api = client_for(owner)
    old = api._credentials["HTTP_AUTHORIZATION"]
    response = api.post("/api/v1/auth/token/rotate/")
    assert response.status_code == 200
    new = response.data["token"]
    assert f"Token {new}" != old
    assert api.get("/api/v1/jobs/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api.get("/api/v1/jobs/").status_code == 200


def test_a_token_is_revoked(owner):
    api = client_for(owner)
    assert api.delete(LOGIN).status_code == 204
    assert api.get("/api/v1/jobs/").status_code == 401
    assert not Token.objects.filter(user=owner).exists()
    assert APIClient().delete(LOGIN).status_code == 401


def test_a_token_expires_after_its_ttl(owner, settings):
    settings.API_TOKEN_TTL = 60
    api = client_for(owner)
    assert api.get("/api/v1/jobs/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        response = api.get("/api/v1/jobs/")
        assert response.status_code == 401
        assert "Token has expired" in response.data["detail"]
        # Logging in again gives a new token, which works.
        fresh = login("alice", "alice-password-1")
        assert fresh.status_code == 200
        api.credentials(HTTP_AUTHORIZATION=f"Token {fresh.data['token']}")
        assert api.get("/api/v1/jobs/").status_code == 200


def test_set_password_revokes_the_users_tokens(owner, outsider):
    api, other = client_for(owner), client_for(outsider)
    owner.set_password("a-new-password-2")
    owner.save()
    assert api.get("/api/v1/jobs/").status_code == 401
    assert other.get("/api/v1/jobs/").status_code == 200
    # Saving other fields, or the same hash, revokes nothing.
    api = client_for(owner)
    owner.first_name = "Alice"
    owner.save()
    get_user_model().objects.get(pk=owner.pk).save()
    assert api.get("/api/v1/jobs/").status_code == 200


def test_an_unusable_password_saved_alone_revokes_the_users_tokens(owner):
    api = client_for(owner)
    user = get_user_model().objects.get(pk=owner.pk)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    assert api.get("/api/v1/jobs/").status_code == 401


def test_the_admin_password_form_revokes_the_users_tokens(owner, admin_client):
    api = client_for(owner)
    response = admin_client.post(
        f"/admin/auth/user/{owner.pk}/password/",
        {"password1": "a-new-password-2", "password2": "a-new-password-2"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert api.get("/api/v1/jobs/").status_code == 401


def test_a_hash_upgrade_at_login_is_not_a_password_change(owner, settings):
    api = client_for(owner)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.ScryptPasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert login("alice", "alice-password-1").status_code == 200
    owner.refresh_from_db()
    assert owner.password.startswith("scrypt$")  # rehashed
    assert api.get("/api/v1/jobs/").status_code == 200


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={**clean, "ALLOWED_HOSTS": "scheduler.example.com", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_debug_off():
    result = check_deploy(DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_https_settings_can_be_relaxed_for_a_plain_http_deployment():
    result = check_deploy(DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), SECURE_SSL_REDIRECT="0")
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_the_proxys_https_header_is_read_from_the_environment():
    code = "import config.settings as s; print(s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DEBUG": "1", "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') False", result.stderr


def test_plain_http_is_redirected_but_the_health_probe_and_a_tls_proxys_requests_are_not(
    db, settings
):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/api/v1/jobs/").status_code == 301
    assert Client().get("/api/v1/health/").status_code in (200, 503)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert Client().get("/api/v1/jobs/", HTTP_X_FORWARDED_PROTO="https").status_code == 401


def test_an_administrator_unlocks_an_account(owner):
    for _ in range(5):
        login("alice", "wrong")
    assert login("alice", "alice-password-1").status_code == 429
    out = io.StringIO()
    call_command("unlock_login", "Alice", stdout=out)
    assert "Alice: unlocked (was locked for" in out.getvalue()
    assert login("alice", "alice-password-1").status_code == 200


def test_the_api_throttle_counts_in_a_window_and_says_when_to_come_back(owner, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "3/minute")
    api = client_for(owner)
    codes = [api.get("/api/v1/jobs/") for _ in range(4)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    assert 0 < int(codes[-1]["Retry-After"]) <= 60
    # A counter in the cache per caller and window, not DRF's list of every request's time.
    key, window = f"throttle_user_{owner.pk}", int(time.time() // 60)
    assert cache.get(key) is None
    assert (cache.get(f"{key}:{window - 1}") or 0) + (cache.get(f"{key}:{window}") or 0) == 4
