"""The Python client's token_provider against a gateway that checks tokens."""

from __future__ import annotations

import threading
import time

import pytest

import livegate
from lgclient import mint_jwt

SECRET = "python token provider secret"
API_KEY = "py-key"


def test_token_provider_refreshes_in_place(gateway_factory):
    gw = gateway_factory("--no-wt", "--api-key", API_KEY, "--jwt-secret", SECRET)
    calls = []
    lock = threading.Lock()

    def provider() -> str:
        with lock:
            calls.append(time.monotonic())
        # Three seconds of life: the client asks again after about 2.4 s.
        claims = {"sub": "py", "exp": int(time.time()) + 3, "subscribe": ["tok.*"]}
        return mint_jwt(claims, SECRET)

    with livegate.SyncClient(gw.http, transports=["websocket"], encoding="json",
                             token_provider=provider) as client:
        assert client.state == "connected"
        sub = client.subscribe("tok.py")
        deadline = time.monotonic() + 15
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(calls) >= 3, calls
        # Past the first tokens' exp the connection still serves: refreshed
        # in place, not replaced (a token_expired reconnect would show as
        # last_reason).
        with livegate.Publisher(gw.http, api_key=API_KEY) as pub:
            ack = pub.publish("tok.py", {"after": "refresh"})
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:
            got = sub.get(timeout=1)
        assert got is not None and got.data == {"after": "refresh"} and got.offset == ack.offset
        assert client.state == "connected"
        reason = client._raw.last_reason
        assert reason is None or reason[0] != "token_expired", reason


def test_token_provider_must_be_callable():
    with pytest.raises(livegate.ArgumentError):
        livegate.SyncClient("http://127.0.0.1:1", token_provider="not a function")
