"""Connection tokens against the real binary (protocol.md §8): grants allowed
and refused per operation on every transport, bad tokens, refresh, expiry.

Tokens are minted here with the standard library (HS256), so the suite
needs no JWT package."""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from conftest import DEFAULT_CONFIG
from lgclient import JSON_PROTO, WsClient, mint_jwt, unique

SECRET = "e2e secret, long enough for HS256"
API_KEY = "backend-key"
CONFIG = DEFAULT_CONFIG + f'\n[auth]\njwt_secret = "{SECRET}"\n'


def mint(claims: dict, *, secret: str = SECRET, alg: str = "HS256") -> str:
    return mint_jwt(claims, secret, alg=alg)


def token(sub: str = "alice", ttl: int = 600, **claims) -> str:
    base = {
        "sub": sub,
        "exp": int(time.time()) + ttl,
        "subscribe": ["chat.{sub}.*", "chat.public.*"],
        "publish": ["chat.{sub}.*"],
        "history": ["chat.public.*"],
    }
    base.update(claims)
    return mint(base)


@pytest.fixture
def authgw(gateway_factory):
    return gateway_factory("--api-key", API_KEY, config=CONFIG)


def answer(c: WsClient, frame: dict) -> dict:
    """The answer to `frame` (its own publications echo back first)."""
    frame = dict(frame, id=c.next_id())
    c.send(frame)
    return c.wait_for(lambda f: f.get("id") == frame["id"] and f.get("type") != "publication")


def outcome(f: dict) -> str:
    return f["code"] if f["type"] == "error" else f["type"]


@pytest.mark.parametrize("carrier", ["header", "query", "subprotocol"])
def test_websocket_grants_each_operation(authgw, carrier):
    t = token()
    url, kw = authgw.ws_url, {}
    if carrier == "header":
        kw["additional_headers"] = {"Authorization": f"Bearer {t}"}
    elif carrier == "query":
        url += f"?token={t}"
    else:
        kw["subprotocols"] = [JSON_PROTO, f"bearer.{t}"]
    own, other, public = unique("chat.alice."), unique("chat.bob."), unique("chat.public.")
    with WsClient(url, "json", **kw) as c:
        cases = [
            ({"type": "subscribe", "topic": own}, "subscribed"),
            ({"type": "subscribe", "topic": public}, "subscribed"),
            ({"type": "subscribe", "topic": other}, "forbidden"),
            ({"type": "subscribe", "topic": "$sys.cpu"}, "forbidden"),
            ({"type": "publish", "topic": own, "data": 1}, "ack"),
            ({"type": "publish", "topic": public, "data": 1}, "forbidden"),
            ({"type": "history", "topic": public}, "history"),
            ({"type": "history", "topic": own}, "forbidden"),
        ]
        for frame, expect in cases:
            assert outcome(answer(c, frame)) == expect, frame


def test_every_transport_refuses_missing_and_bad_tokens(authgw):
    now = int(time.time())
    bad = {
        "none": None,
        "expired": token(ttl=-120),
        "forged": mint({"sub": "alice", "exp": now + 600, "subscribe": ["*"]}, secret="nope"),
        "alg none": mint({"sub": "alice", "exp": now + 600, "subscribe": ["*"]}, alg="none"),
        "garbage": "not-a-token",
    }
    topic = unique("chat.public.")
    with httpx.Client(base_url=authgw.http, timeout=5) as http:
        for why, t in bad.items():
            headers = {"Authorization": f"Bearer {t}"} if t else {}
            for path in [f"/poll?topic={topic}&timeout_ms=0", f"/sse?topic={topic}",
                         f"/api/topics/{topic}/history"]:
                r = http.get(path, headers=headers)
                assert (r.status_code, r.json()["code"]) == (401, "unauthorized"), (why, path)
            with pytest.raises(InvalidStatus) as e:
                WsClient(authgw.ws_url, "json", additional_headers=headers)
            assert e.value.response.status_code == 401, why
        # The API key still makes a backend; a token's grants hold over HTTP too.
        good = {"Authorization": f"Bearer {token()}"}
        assert http.get(f"/poll?topic={topic}&timeout_ms=0", headers=good).status_code == 200
        assert http.get(f"/poll?topic=chat.bob.x&timeout_ms=0", headers=good).status_code == 403
        r = http.get(f"/sse?topic=$sys.cpu&token={token()}")
        assert (r.status_code, r.json()["code"]) == (403, "forbidden")
        r = http.post("/api/publish", json={"topic": "chat.alice.x", "data": 1}, headers=good)
        assert r.status_code == 200, r.text
        r = http.post("/api/publish", json={"topic": topic, "data": 1}, headers=good)
        assert (r.status_code, r.json()["code"]) == (403, "forbidden")
        r = http.post("/api/publish", json={"topic": topic, "data": 1},
                      headers={"X-Api-Key": API_KEY})
        assert r.status_code == 200, r.text


def test_refresh_keeps_the_connection_and_expiry_disconnects(authgw):
    topic = unique("chat.public.")
    with WsClient(f"{authgw.ws_url}?token={token(ttl=2)}", "json") as kept, \
            WsClient(f"{authgw.ws_url}?token={token(sub='carol', ttl=2)}", "json") as lapsed:
        kept.subscribe(topic)
        # A token of another subject is refused and changes nothing.
        kept.send({"type": "refresh", "token": token(sub="bob")})
        assert kept.wait_for(lambda f: f["type"] == "error")["code"] == "unauthorized"
        kept.send({"type": "refresh", "token": token(ttl=600)})
        # Past the first token's exp, `lapsed` is cut with token_expired ...
        frames, close = lapsed.expect_close(timeout=10)
        last = frames[-1]
        assert (last["type"], last["code"], last["reconnect"]) == \
            ("disconnect", "token_expired", True), frames
        assert close is not None and close.code == 4004
        # ... while `kept` still has its subscription and receives.
        with httpx.Client(base_url=authgw.http, timeout=5) as http:
            r = http.post("/api/publish", json={"topic": topic, "data": {"after": "refresh"}},
                          headers={"X-Api-Key": API_KEY})
            assert r.status_code == 200, r.text
        assert kept.publications(1, topic)[0]["data"] == {"after": "refresh"}
        kept.ping()


def test_refresh_without_tokens_configured_is_unsupported(gateway):
    with WsClient(gateway.ws_url, "json") as c:
        c.expect_error({"type": "refresh", "token": token()}, "unsupported", fid=None)
