"""The access token (header, bearer, cookie) and the loopback Host check, as functions."""

from __future__ import annotations

import hmac

from saescope.web import security
from saescope.web.security import host_name, presented_token, same_token


def test_tokens_are_compared_in_constant_time(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    assert same_token("secret-token", "secret-token") and not same_token("secret-tokeX", "secret-token")
    assert not same_token(None, "secret-token")
    assert calls == [(b"secret-token", b"secret-token"), (b"secret-tokeX", b"secret-token")]


def test_a_token_is_found_in_a_header_a_bearer_or_the_cookie() -> None:
    assert presented_token({"authorization": "Bearer abc"}) == "abc"
    assert presented_token({"x-saescope-token": "def"}) == "def"
    assert presented_token({"cookie": "other=1; saescope_token=ghi"}) == "ghi"
    assert presented_token({"cookie": "other=1"}) is None
    assert presented_token({"cookie": '"\\\x00'}) is None
    assert presented_token({}) is None


def test_host_names() -> None:
    assert host_name("127.0.0.1:8000") == "127.0.0.1"
    assert host_name("localhost") == "localhost"
    assert host_name("[::1]:80") == "[::1]"
    assert host_name("evil.example:8000") == "evil.example"
