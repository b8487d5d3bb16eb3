"""Idempotent publish by client-generated `msg_id` (protocol.md §1 "Idempotent publish", §5, §7).

A publish whose msg_id the topic still remembers is not published again: the answer is the
first publication's ack (same epoch and offset), over WebSocket and HTTP alike.
"""

from __future__ import annotations

import time

import pytest

from conftest import DEFAULT_CONFIG
from lgclient import WsClient, expect_http_error, http_client, stats, unique

CODECS = ["json", "msgpack"]
ACK_KEYS = {"type", "id", "topic", "epoch", "offset"}


def ws_publish(c: WsClient, topic: str, data, msg_id: str | None = None, **extra) -> dict:
    frame = {"type": "publish", "topic": topic, "data": data, **extra}
    if msg_id is not None:
        frame["msg_id"] = msg_id
    ack = c.request(frame)
    assert ack.get("type") == "ack", f"publish {topic} msg_id={msg_id!r}: {ack}"
    assert set(ack) == ACK_KEYS, f"the ack frame is unchanged by msg_id: {ack}"
    assert ack["topic"] == topic, ack
    return ack


def http_publish(http, topic: str, data, msg_id: str | None, via: str) -> dict:
    """via: body (JSON "msg_id"), query (?msg_id=) or header (Idempotency-Key)."""
    if via == "body":
        body = {"topic": topic, "data": data}
        if msg_id is not None:
            body["msg_id"] = msg_id
        r = http.post("/api/publish", json=body)
    elif via == "query":
        r = http.post(f"/api/publish/{topic}", json=data,
                      params={"msg_id": msg_id} if msg_id is not None else None)
    else:
        r = http.post(f"/api/publish/{topic}", json=data,
                      headers={"Idempotency-Key": msg_id} if msg_id is not None else None)
    assert r.status_code == 200, f"publish {topic} via {via}: {r.status_code} {r.text}"
    answer = r.json()
    assert answer["topic"] == topic and isinstance(answer["epoch"], str), answer
    if answer.get("duplicate", False):
        assert answer["duplicate"] is True and set(answer) == {"topic", "epoch", "offset", "duplicate"}, answer
    else:
        assert set(answer) == {"topic", "epoch", "offset"}, answer
    return answer


def no_more_publications(c: WsClient) -> None:
    extra = [f for f in c.frames_until_pong() if f.get("type") == "publication"]
    assert extra == [], f"unexpected publications: {extra}"


def history_offsets(http, topic: str) -> list[int]:
    r = http.get(f"/api/topics/{topic}/history")
    assert r.status_code == 200, r.text
    return [p["offset"] for p in r.json()["publications"]]


@pytest.mark.parametrize("codec", CODECS)
def test_ws_retry_with_same_msg_id_is_published_once(gateway, codec):
    chat = unique("chat.")
    with WsClient(gateway.ws_url, codec) as pub, WsClient(gateway.ws_url, "json") as sub:
        sub.subscribe(chat)
        first = ws_publish(pub, chat, {"n": 1}, "retry-1", event="msg")
        assert first["offset"] == 1, first
        # The retry (even with another payload) gets the first ack again, under its own request id.
        again = ws_publish(pub, chat, {"n": "changed"}, "retry-1")
        assert again["id"] != first["id"]
        assert (again["epoch"], again["offset"]) == (first["epoch"], first["offset"]), (first, again)
        p = sub.publications(1)[0]
        assert (p["offset"], p["data"], p.get("event")) == (1, {"n": 1}, "msg"), p
        no_more_publications(sub)

    # A client that reconnects and replays its offline queue: still one publication.
    with WsClient(gateway.ws_url, codec) as pub2:
        third = ws_publish(pub2, chat, {"n": 1}, "retry-1")
        assert (third["epoch"], third["offset"]) == (first["epoch"], first["offset"]), third
        nxt = ws_publish(pub2, chat, {"n": 2}, "retry-2")
        assert nxt["offset"] == 2, nxt
    with http_client(gateway) as http:
        # One window per topic, shared by every transport.
        dup = http_publish(http, chat, {"n": 1}, "retry-1", "body")
        assert dup.get("duplicate") is True and dup["offset"] == 1, dup
        assert history_offsets(http, chat) == [1, 2]
    s = stats(gateway)
    assert s["duplicates_dropped"] == 3 and s["messages_in"] == 2, s


@pytest.mark.parametrize("via", ["body", "query", "header"])
def test_http_retry_with_same_msg_id_is_published_once(gateway, via):
    topic = unique("api.")
    with WsClient(gateway.ws_url, "json") as sub, http_client(gateway) as http:
        sub.subscribe(topic)
        first = http_publish(http, topic, {"n": 1}, "order-42", via)
        assert "duplicate" not in first and first["offset"] == 1, first
        again = http_publish(http, topic, {"n": 1}, "order-42", via)
        assert again == {**first, "duplicate": True}, (first, again)
        p = sub.publications(1)[0]
        assert (p["offset"], p["data"]) == (1, {"n": 1}), p
        no_more_publications(sub)
        assert history_offsets(http, topic) == [1]
        # Every way of naming the id names the same id.
        for other in ("body", "query", "header"):
            dup = http_publish(http, topic, {"n": 1}, "order-42", other)
            assert dup == {**first, "duplicate": True}, (other, dup)
        # Publishes without an id are never deduplicated.
        assert http_publish(http, topic, {"n": 1}, None, via)["offset"] == 2
        assert http_publish(http, topic, {"n": 1}, None, via)["offset"] == 3
        assert [q["offset"] for q in sub.publications(2)] == [2, 3]


def test_query_and_header_may_agree_but_not_differ(gateway):
    topic = unique("api.")
    with http_client(gateway) as http:
        r = http.post(f"/api/publish/{topic}", json=1, params={"msg_id": "k1"},
                      headers={"Idempotency-Key": "k1"})
        assert r.status_code == 200 and r.json()["offset"] == 1, r.text
        r = http.post(f"/api/publish/{topic}", json=1, params={"msg_id": "k1"},
                      headers={"Idempotency-Key": "k2"})
        expect_http_error(r, 400, "bad_request")
        assert history_offsets(http, topic) == [1]


def test_different_msg_ids_are_different_publications(gateway):
    chat = unique("chat.")
    with WsClient(gateway.ws_url, "json") as c, WsClient(gateway.ws_url, "json") as sub, \
            http_client(gateway) as http:
        sub.subscribe(chat)
        a = ws_publish(c, chat, "a", "id-a")
        b = ws_publish(c, chat, "b", "id-b")
        h = http_publish(http, chat, "c", "id-c", "body")
        q = http_publish(http, chat, "d", "id-d", "query")
        assert [x["offset"] for x in (a, b, h, q)] == [1, 2, 3, 4]
        assert "duplicate" not in h and "duplicate" not in q
        assert [p["data"] for p in sub.publications(4)] == ["a", "b", "c", "d"]
        # The same id on another topic is another publication: the window is per topic.
        other = unique("chat.")
        assert ws_publish(c, other, "a", "id-a")["offset"] == 1
        assert "duplicate" not in http_publish(http, unique("api."), "c", "id-c", "header")
        no_more_publications(sub)


@pytest.mark.parametrize("codec", CODECS)
def test_bad_msg_id_over_websocket(gateway, codec):
    chat = unique("chat.")
    with WsClient(gateway.ws_url, codec) as c, WsClient(gateway.ws_url, "json") as sub:
        sub.subscribe(chat)
        bad = ["", "x" * 65, "\u00e9" * 33, "a\nb", "tab\there", "del\x7f", "nul\x00", 123, ["a"]]
        for i, msg_id in enumerate(bad, start=1):
            f = c.expect_error({"type": "publish", "id": i, "topic": chat, "data": 1, "msg_id": msg_id},
                               "bad_frame")
            assert f["message"], f
            c.ping()
        # the bad publishes had no effect; the connection works, limits are inclusive
        no_more_publications(sub)
        assert ws_publish(c, chat, 1, "x" * 64)["offset"] == 1
        assert ws_publish(c, chat, 2, "\u00e9" * 32)["offset"] == 2  # 64 bytes of UTF-8
        assert ws_publish(c, chat, 3, "spaces and ünïcode ok")["offset"] == 3
        assert [p["offset"] for p in sub.publications(3)] == [1, 2, 3]


def test_bad_msg_id_over_http(gateway):
    topic = unique("api.")
    with http_client(gateway) as http:
        for msg_id in ["", "x" * 65, "a\nb", "a\x01", 5, ["a"], {"a": 1}]:
            r = http.post("/api/publish", json={"topic": topic, "data": 1, "msg_id": msg_id})
            body = expect_http_error(r, 400, "bad_request")
            assert "msg_id" in body["message"], body
        for msg_id in ["", "x" * 65, "a\x01b", "a\nb"]:
            r = http.post(f"/api/publish/{topic}", json=1, params={"msg_id": msg_id})
            expect_http_error(r, 400, "bad_request")
        r = http.post(f"/api/publish/{topic}", json=1, headers={"Idempotency-Key": "k" * 65})
        expect_http_error(r, 400, "bad_request")
        r = http.post(f"/api/publish/{topic}", json=1,
                      headers=[("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")])
        expect_http_error(r, 400, "bad_request")
        assert history_offsets(http, topic) == []
        assert http_publish(http, topic, 1, "k" * 64, "header")["offset"] == 1


def test_window_evicts_oldest_ids_by_count(gateway_factory):
    gw = gateway_factory("--dedupe-window-size", "2")
    chat = unique("chat.")
    with WsClient(gw.ws_url, "json") as c, http_client(gw) as http:
        assert ws_publish(c, chat, 1, "a")["offset"] == 1
        assert http_publish(http, chat, 2, "b", "body")["offset"] == 2
        assert ws_publish(c, chat, 1, "a")["offset"] == 1          # still in the window
        assert ws_publish(c, chat, 3, "c")["offset"] == 3          # evicts "a"
        assert ws_publish(c, chat, 1, "a")["offset"] == 4          # published again; evicts "b"
        dup = http_publish(http, chat, 3, "c", "query")
        assert (dup["offset"], dup.get("duplicate")) == (3, True), dup
        again = http_publish(http, chat, 2, "b", "header")
        assert "duplicate" not in again and again["offset"] == 5, again
        assert history_offsets(http, chat) == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_window_evicts_ids_by_age(gateway_factory):
    gw = gateway_factory(env={"LIVEGATE_DEDUPE_WINDOW_SECS": "1"})
    chat = unique("chat.")
    with WsClient(gw.ws_url, "json") as c:
        assert ws_publish(c, chat, 1, "a")["offset"] == 1
        assert ws_publish(c, chat, 1, "a")["offset"] == 1
        time.sleep(1.5)
        assert ws_publish(c, chat, 1, "a")["offset"] == 2, "older than the window: published again"
        assert ws_publish(c, chat, 1, "a")["offset"] == 2


def test_window_size_zero_turns_dedupe_off(gateway_factory):
    gw = gateway_factory(config="dedupe_window_size = 0\n" + DEFAULT_CONFIG)
    chat = unique("chat.")
    with WsClient(gw.ws_url, "json") as c, http_client(gw) as http:
        assert ws_publish(c, chat, 1, "a")["offset"] == 1
        assert ws_publish(c, chat, 1, "a")["offset"] == 2
        assert "duplicate" not in http_publish(http, chat, 1, "a", "body")
        # ids are still validated
        expect_http_error(http.post("/api/publish", json={"topic": chat, "data": 1, "msg_id": ""}),
                          400, "bad_request")
