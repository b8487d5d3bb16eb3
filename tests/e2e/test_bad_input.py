"""Bad client input on WebSocket (both codecs): error codes, ids, and survival (protocol.md §3)."""

from __future__ import annotations

import json

import msgpack
import pytest
from websockets.exceptions import InvalidStatus

from lgclient import (JSON_PROTO, MSGPACK_PROTO, RawWs, WsClient, http_client, parse_close,
                      publish, unique)

CODECS = ["json", "msgpack"]


@pytest.fixture
def bystander(gateway):
    """A second connection subscribed to a topic: it must be unaffected by the bad one."""
    topic = unique("bystander.")
    c = WsClient(gateway.ws_url, "json")
    c.subscribe(topic)

    def check():
        with http_client(gateway) as http:
            ack = publish(http, topic, {"still": "alive"})
        p = c.publications(1)[0]
        assert p["offset"] == ack["offset"] and p["data"] == {"still": "alive"}, p
        c.ping()

    yield check
    c.close()


def raw_bytes(codec: str, obj) -> str | bytes:
    return json.dumps(obj) if codec == "json" else msgpack.packb(obj, use_bin_type=True)


@pytest.mark.parametrize("codec", CODECS)
def test_malformed_frames(gateway, codec, bystander):
    with WsClient(gateway.ws_url, codec) as c:
        if codec == "json":
            c.expect_error('{"type": "ping", "id": 1', "bad_frame", raw=True, fid=None)
            c.ping()
            c.expect_error("not json at all", "bad_frame", raw=True, fid=None)
            c.ping()
            c.expect_error('[{"type":"ping","id":2}]', "bad_frame", raw=True, fid=None)
            c.ping()
            c.expect_error('"ping"', "bad_frame", raw=True, fid=None)
            c.ping()
        else:
            c.expect_error(b"\xc1", "bad_frame", raw=True, fid=None)  # 0xc1 is never valid
            c.ping()
            c.expect_error(b"\x82\xa4type", "bad_frame", raw=True, fid=None)  # truncated map
            c.ping()
            c.expect_error(msgpack.packb([{"type": "ping", "id": 2}]), "bad_frame", raw=True, fid=None)
            c.ping()
            c.expect_error(msgpack.packb(12), "bad_frame", raw=True, fid=None)
            c.ping()
        c.expect_error({"id": 3}, "bad_frame")  # no type at all
        c.ping()
        c.expect_error({"type": 5, "id": 4}, "bad_frame")
        c.ping()
        c.expect_error({"type": "nope", "id": 7}, "unknown_type")
        c.ping()
        c.expect_error({"type": "subscribe", "id": 8}, "bad_frame")  # missing topic
        c.ping()
        c.expect_error({"type": "ping", "id": "x"}, "bad_frame", fid=None)  # id unreadable
        c.ping()
        c.expect_error({"type": "subscribe", "id": 9, "topic": 5}, "bad_frame")
        c.ping()
        c.expect_error({"type": "subscribe", "id": 10, "topic": "ok.topic", "since": "1"}, "bad_frame")
        c.ping()
        c.expect_error({"type": "subscribe", "id": 11, "topic": "ok.topic",
                        "since": {"epoch": "e", "offset": -1}}, "bad_frame")
        c.ping()
        c.expect_error({"type": "history", "id": 12, "topic": "ok.topic", "limit": "5"}, "bad_frame")
        c.ping()
        c.expect_error({"type": "publish", "id": 13, "topic": "chat.x"}, "bad_frame")  # missing data
        c.ping()
        # refresh has no id field in protocol.md §2; the error just says unsupported
        c.expect_error({"type": "refresh", "token": "abc"}, "unsupported")
        c.ping()
        # none of the bad frames had an effect: "ok.topic" is not subscribed
        c.expect_error({"type": "unsubscribe", "id": 15, "topic": "ok.topic"}, "not_subscribed")
        c.ping()
        # unknown fields are ignored
        c.send({"type": "ping", "id": 16, "future_field": {"x": 1}})
        assert c.wait_for(lambda f: f.get("id") == 16) == {"type": "pong", "id": 16}
    bystander()


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("bad", ["", "a b", "x" * 201, "x" * 300, "caf\u00e9", "a:b", "a,b",
                                 "tab\t", "new\nline", "a*"])
def test_bad_topic_names(gateway, codec, bad):
    with WsClient(gateway.ws_url, codec) as c:
        c.expect_error({"type": "subscribe", "id": 1, "topic": bad}, "bad_topic")
        c.ping()
        c.expect_error({"type": "history", "id": 2, "topic": bad}, "bad_topic")
        c.ping()
        c.expect_error({"type": "unsubscribe", "id": 3, "topic": bad}, "bad_topic")
        c.ping()


@pytest.mark.parametrize("codec", CODECS)
def test_good_topic_names(gateway, codec):
    with WsClient(gateway.ws_url, codec) as c:
        for i, t in enumerate(["a", "x" * 200, "A-z_0.9/x", "$sys.cpu", "devices/42/temp"]):
            sub = c.subscribe(t)
            assert sub["topic"] == t and sub["recovered"] is False, sub


@pytest.mark.parametrize("codec", CODECS)
def test_client_publish_rules(gateway, codec, bystander):
    chat = unique("chat.")
    with WsClient(gateway.ws_url, codec) as c, WsClient(gateway.ws_url, "json") as listener:
        listener.subscribe(chat)
        c.expect_error({"type": "publish", "id": 1, "topic": "$sys.x", "data": 1}, "publish_forbidden")
        c.ping()
        c.expect_error({"type": "publish", "id": 2, "topic": "$sys.cpu", "data": 1}, "publish_forbidden")
        c.ping()
        c.expect_error({"type": "publish", "id": 3, "topic": unique("plain."), "data": 1},
                       "publish_forbidden")
        c.ping()
        c.expect_error({"type": "publish", "id": 4, "topic": chat, "data": 1, "event": ""}, "bad_event")
        c.ping()
        c.expect_error({"type": "publish", "id": 5, "topic": chat, "data": 1, "event": "a\nb"}, "bad_event")
        c.ping()
        c.expect_error({"type": "publish", "id": 6, "topic": chat, "data": 1, "event": "e" * 65}, "bad_event")
        c.ping()
        c.expect_error({"type": "publish", "id": 7, "topic": "bad topic", "data": 1}, "bad_topic")
        c.ping()
        ack = c.request({"type": "publish", "id": 8, "topic": chat, "data": {"hello": "world"},
                         "event": "msg"})
        assert ack["type"] == "ack" and ack["id"] == 8 and ack["topic"] == chat, ack
        assert ack["offset"] == 1 and isinstance(ack["epoch"], str), ack
        ack2 = c.request({"type": "publish", "id": 9, "topic": chat, "data": [1, 2]})
        assert ack2["offset"] == 2 and ack2["epoch"] == ack["epoch"], ack2
        p1, p2 = listener.publications(2)
        assert (p1["offset"], p1["data"], p1["event"]) == (1, {"hello": "world"}, "msg"), p1
        assert (p2["offset"], p2["data"]) == (2, [1, 2]), p2
        # the forbidden publishes had no effect
        assert [f for f in listener.frames_until_pong() if f.get("type") == "publication"] == []
    bystander()


def test_msgpack_client_publishes_binary(gateway):
    chat = unique("chat.")
    with WsClient(gateway.ws_url, "msgpack") as m, WsClient(gateway.ws_url, "json") as j:
        j.subscribe(chat)
        m.subscribe(chat)
        ack = m.request({"type": "publish", "id": 1, "topic": chat, "data": b"\x00\x01\xff"})
        assert ack["type"] == "ack" and ack["offset"] == 1, ack
        pj = j.publications(1)[0]
        assert pj["data"] == "AAH/" and pj.get("binary") is True, pj
        pm = m.publications(1)[0]
        assert pm["data"] == b"\x00\x01\xff", pm


@pytest.mark.parametrize("codec", CODECS)
def test_subscription_rules(gateway_factory, codec):
    gw = gateway_factory("--max-subscriptions", "3")
    with WsClient(gw.ws_url, codec) as c:
        a, b, d, e = (unique("s.") for _ in range(4))
        c.subscribe(a)
        c.expect_error({"type": "subscribe", "id": 1, "topic": a}, "already_subscribed")
        c.ping()
        c.subscribe(b)
        c.subscribe(d)
        c.expect_error({"type": "subscribe", "id": 2, "topic": e}, "too_many_subscriptions")
        c.ping()
        c.expect_error({"type": "unsubscribe", "id": 3, "topic": e}, "not_subscribed")
        c.ping()
        un = c.request({"type": "unsubscribe", "id": 4, "topic": a})
        assert un == {"type": "unsubscribed", "id": 4, "topic": a}, un
        c.expect_error({"type": "unsubscribe", "id": 5, "topic": a}, "not_subscribed")
        c.ping()
        sub = c.subscribe(e)
        assert sub["topic"] == e
        # the 3 current subscriptions still work; the failed ones did nothing
        with http_client(gw) as http:
            for t in (a, b, d, e):
                publish(http, t, {"t": t})
        got = [f for f in c.frames_until_pong() if f.get("type") == "publication"]
        got += c.publications(3 - len(got)) if len(got) < 3 else []
        assert sorted(p["topic"] for p in got) == sorted([b, d, e]), got


@pytest.mark.parametrize("codec", CODECS)
def test_history_requests(gateway, codec):
    topic = unique("small.")  # keeps 5
    with http_client(gateway) as http:
        acks = [publish(http, topic, {"i": i}) for i in range(1, 11)]
    epoch = acks[0]["epoch"]
    with WsClient(gateway.ws_url, codec) as c:
        h = c.request({"type": "history", "id": 1, "topic": topic, "since": {"epoch": epoch, "offset": 7}})
        assert h["type"] == "history" and h["id"] == 1 and h["topic"] == topic, h
        assert h["epoch"] == epoch and h["offset"] == 10 and h["more"] is False, h
        assert [(p["type"], p["offset"], p["data"]) for p in h["publications"]] == \
            [("publication", i, {"i": i}) for i in (8, 9, 10)]
        h = c.request({"type": "history", "id": 2, "topic": topic, "since": {"epoch": epoch, "offset": 5},
                       "limit": 2})
        assert [p["offset"] for p in h["publications"]] == [6, 7] and h["more"] is True, h
        h = c.request({"type": "history", "id": 3, "topic": topic, "since": {"epoch": epoch, "offset": 10}})
        assert h["publications"] == [] and h["more"] is False, h
        h = c.request({"type": "history", "id": 4, "topic": topic})
        offs = [p["offset"] for p in h["publications"]]
        assert offs == [6, 7, 8, 9, 10], f"without since: what history holds, oldest first: {offs}"
        c.expect_error({"type": "history", "id": 5, "topic": topic, "since": {"epoch": epoch, "offset": 2}},
                       "history_unavailable")
        c.ping()
        c.expect_error({"type": "history", "id": 6, "topic": topic, "since": {"epoch": "other", "offset": 8}},
                       "history_unavailable")
        c.ping()
        c.expect_error({"type": "history", "id": 7, "topic": topic, "limit": 0}, "bad_limit")
        c.ping()
        c.expect_error({"type": "history", "id": 8, "topic": topic, "limit": 1001}, "bad_limit")
        c.ping()
        h = c.request({"type": "history", "id": 9, "topic": topic, "limit": 1000})
        assert h["type"] == "history", h
        # history of a topic nobody published to: empty, offset 0
        h = c.request({"type": "history", "id": 10, "topic": unique("empty.")})
        assert h["type"] == "history" and h["offset"] == 0 and h["publications"] == [], h


@pytest.mark.parametrize("codec", CODECS)
def test_oversized_message_closes_1009(gateway_factory, codec):
    gw = gateway_factory("--max-frame-bytes", "1024")
    chat = unique("chat.")
    with WsClient(gw.ws_url, codec) as ok:
        ok.ping()
        # a frame just under the limit is fine
        small = {"type": "publish", "id": 1, "topic": chat, "data": "y" * 800}
        assert len(raw_bytes(codec, small)) < 1024
        assert ok.request(small)["type"] == "ack"
    c = WsClient(gw.ws_url, codec)
    big = {"type": "publish", "id": 1, "topic": chat, "data": "x" * 4000}
    c.send(big)
    frames, rcvd = c.expect_close()
    assert rcvd is not None and rcvd.code == 1009, f"expected close 1009, got {rcvd}"
    if frames:
        assert frames[-1]["type"] == "disconnect", frames
        assert frames[-1]["code"] == "frame_too_large" and frames[-1]["reconnect"] is False, frames[-1]
        assert rcvd.reason == "frame_too_large", rcvd
    with WsClient(gw.ws_url, "json") as other:
        other.ping()


@pytest.mark.parametrize("codec", CODECS)
def test_wrong_message_kind_closes_1003(gateway, codec, bystander):
    c = WsClient(gateway.ws_url, codec)
    if codec == "json":
        c.send_raw(json.dumps({"type": "ping", "id": 1}).encode())  # binary on a JSON connection
    else:
        c.send_raw(json.dumps({"type": "ping", "id": 1}))  # text on a MessagePack connection
    frames, rcvd = c.expect_close()
    assert rcvd is not None and rcvd.code == 1003, f"expected close 1003, got {rcvd}"
    assert rcvd.reason == "unsupported_data", rcvd
    assert frames and frames[-1]["type"] == "disconnect", frames
    assert frames[-1]["code"] == "unsupported_data" and frames[-1]["reconnect"] is False, frames[-1]
    assert [f["type"] for f in frames] == ["disconnect"], f"the ping must not be answered: {frames}"
    bystander()


def test_unknown_subprotocol_is_refused(gateway):
    with pytest.raises(InvalidStatus) as ei:
        WsClient(gateway.ws_url, "json", subprotocols=["chat.v9"])
    assert ei.value.response.status_code == 400
    raw = RawWs(gateway.port, subprotocols=["foo", "bar"], expect_status=400)
    raw.close()


def test_subprotocol_negotiation(gateway):
    # several offered: the known one is chosen
    with WsClient(gateway.ws_url, "msgpack", subprotocols=["foo", MSGPACK_PROTO]) as c:
        assert c.ws.subprotocol == MSGPACK_PROTO
        c.ping()
    with WsClient(gateway.ws_url, "json", subprotocols=[JSON_PROTO]) as c:
        assert c.ws.subprotocol == JSON_PROTO
        c.ping()
    # none offered: JSON (text messages)
    with WsClient(gateway.ws_url, "json", subprotocols=[]) as c:
        assert c.ws.subprotocol is None
        c.ping()
    # the websockets default (permessage-deflate offered) must interoperate too
    with WsClient(gateway.ws_url, "json", compression="deflate") as c:
        c.ping()
        # a WebSocket-level Ping from the client gets a Pong
        assert c.ws.ping(b"hi").wait(3), "no Pong for a client Ping"
        c.ping()


@pytest.mark.parametrize("violation", ["unmasked", "reserved_opcode", "rsv1_bit", "fragmented_ping"])
def test_protocol_violation_closes_1002(gateway, bystander, violation):
    raw = RawWs(gateway.port)
    op, payload = raw.recv_message()
    assert json.loads(payload)["type"] == "connected"
    body = json.dumps({"type": "ping", "id": 1}).encode()
    if violation == "unmasked":
        raw.send_frame(0x1, body, mask=False)
    elif violation == "reserved_opcode":
        raw.send_frame(0x3, body)
    elif violation == "rsv1_bit":
        raw.send_frame(0x40 | 0x1, body)  # RSV1 without a negotiated extension
    else:
        raw.send_frame(0x9, b"x", fin=False)  # control frames must not be fragmented
    msgs = raw.read_all(timeout=5)
    closes = [p for op, p in msgs if op == 0x8]
    texts = [json.loads(p) for op, p in msgs if op == 0x1]
    assert not [t for t in texts if t.get("type") == "pong"], texts
    if closes:
        code, reason = parse_close(closes[0])
        assert code == 1002, (code, reason)
        if texts:
            assert texts[-1]["code"] == "protocol_error" and texts[-1]["reconnect"] is False, texts
    assert raw.eof
    raw.close()
    bystander()


@pytest.mark.parametrize("codec", CODECS)
def test_replies_without_id_omit_it(gateway, codec):
    topic = unique("noid.")
    with WsClient(gateway.ws_url, codec) as c:
        c.send({"type": "ping"})
        pong = c.recv()
        assert pong.get("type") == "pong" and "id" not in pong, pong
        c.send({"type": "subscribe", "topic": topic})
        sub = c.recv()
        assert sub["type"] == "subscribed" and "id" not in sub, sub
        assert set(sub) >= {"type", "topic", "epoch", "offset", "recovered", "publications"}, sub
        c.send({"type": "history", "topic": topic})
        h = c.recv()
        assert h["type"] == "history" and "id" not in h, h
        assert set(h) >= {"type", "topic", "epoch", "offset", "publications", "more"}, h
        c.send({"type": "unsubscribe", "topic": topic})
        un = c.recv()
        assert un.get("type") == "unsubscribed" and un.get("topic") == topic and "id" not in un, un
        c.send({"type": "nope"})
        e = c.recv()
        assert e["type"] == "error" and e["code"] == "unknown_type" and "id" not in e, e
        c.send({"type": "publish", "topic": "chat.noid", "data": 1})
        ack = c.recv()
        assert ack["type"] == "ack" and "id" not in ack and ack["offset"] == 1, ack
        assert set(ack) >= {"type", "topic", "epoch", "offset"}, ack


@pytest.mark.parametrize("codec", CODECS)
def test_u64_ids_round_trip(gateway, codec):
    big = 2**64 - 1
    with WsClient(gateway.ws_url, codec) as c:
        c.send({"type": "ping", "id": big})
        f = c.recv()
        assert f.get("type") == "pong" and f.get("id") == big, f"u64 id must round-trip exactly: {f}"
        if codec == "json":
            assert str(big) in c.raw_log[-1], c.raw_log[-1]
            c.expect_error('{"type":"ping","id":18446744073709551616}', "bad_frame", raw=True, fid=None)
            c.ping()
        c.expect_error({"type": "ping", "id": -1}, "bad_frame", fid=None)
        c.ping()
        c.expect_error({"type": "ping", "id": 1.5}, "bad_frame", fid=None)
        c.ping()


def test_frame_size_limit_boundary(gateway_factory):
    gw = gateway_factory("--max-frame-bytes", "1024")
    chat = unique("chat.")

    def frame_of(size: int) -> str:
        base = json.dumps({"type": "publish", "id": 1, "topic": chat, "data": ""})
        text = json.dumps({"type": "publish", "id": 1, "topic": chat, "data": "x" * (size - len(base))})
        assert len(text.encode()) == size
        return text

    with WsClient(gw.ws_url, "json") as c:
        c.send_raw(frame_of(1024))
        f = c.wait_for(lambda f: f.get("id") == 1)
        assert f["type"] == "ack", f"a message of exactly max_frame_bytes is allowed: {f}"
    c = WsClient(gw.ws_url, "json")
    c.send_raw(frame_of(1025))
    frames, rcvd = c.expect_close()
    assert rcvd is not None and rcvd.code == 1009, rcvd
