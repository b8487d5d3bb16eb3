"""Compression (docs/protocol.md §4.1, §4.2, §4.3): permessage-deflate on /ws,
gzip on SSE and long-poll; compressing peers get exactly what others get,
and every kind of bad compressed input has its close code."""

from __future__ import annotations

import json
import subprocess
import time
import zlib

import httpx
import msgpack
import pytest

from lgclient import (JSON_PROTO, MSGPACK_PROTO, RawWs, WsClient, http_client, parse_close,
                      publish, unique)

DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"  # what Chromium sends
ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def snapshot(i: int) -> dict:
    """A dashboard-like JSON value of about 2 KiB that changes a little each time."""
    return {"seq": i, "hosts": [{"name": f"node-{h:02d}", "cpu": (h * 7 + i) % 100,
                                 "mem": 40 + h, "status": "ok", "region": "eu-west"}
                                for h in range(24)]}


def deflate_message(data: bytes) -> bytes:
    """RFC 7692 §7.2.1: raw deflate, sync flush, 00 00 ff ff removed."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class DeflateWs(RawWs):
    """RawWs that records RSV1 and inflates compressed server messages."""

    def __init__(self, port: int, *, offer: str | None = DEFLATE_OFFER, **kw):
        headers = {"Sec-WebSocket-Extensions": offer} if offer else {}
        super().__init__(port, extra_headers=headers, **kw)
        self.rsv1: list[bool] = []

    def recv_frame(self, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        if not self._fill(1, deadline):
            return None
        self.rsv1.append(bool(self.buf[0] & 0x40))
        return super().recv_frame(max(0.01, deadline - time.monotonic()))

    def message(self, timeout: float = 5.0):
        """(opcode, payload inflated when RSV1 was set) of the next message."""
        m = self.recv_message(timeout)
        if m is None:
            return None
        op, payload = m
        if op < 0x8 and self.rsv1[-1]:
            payload = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
        return op, payload

    def frame_json(self, timeout: float = 5.0) -> dict:
        m = self.message(timeout)
        assert m is not None and m[0] == 0x1, m
        return json.loads(m[1])

    def until(self, pred, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            f = self.frame_json(max(0.01, deadline - time.monotonic()))
            if pred(f):
                return f

    def close_code(self, timeout: float = 5.0) -> tuple[list[dict], int | None, str]:
        """Frames until the close frame, and its code and reason."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            m = self.message(max(0.01, deadline - time.monotonic()))
            assert m is not None, f"EOF without a close frame; frames {frames}"
            op, payload = m
            if op == 0x8:
                code, reason = parse_close(payload)
                return frames, code, reason
            if op == 0x1:
                frames.append(json.loads(payload))


@pytest.fixture
def bystander(gateway):
    """A compressing connection that must be unaffected by the bad one."""
    topic = unique("small.by.")
    c = WsClient(gateway.ws_url, "json", compression="deflate")
    c.subscribe(topic)

    def check():
        with http_client(gateway) as http:
            ack = publish(http, topic, snapshot(1))
        p = c.publications(1)[0]
        assert p["offset"] == ack["offset"] and p["data"] == snapshot(1), p
        c.ping()

    yield check
    c.close()


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_websockets_with_deflate_receive_what_plain_peers_receive(gateway, codec):
    topic = unique("chat.z.")
    plain = WsClient(gateway.ws_url, codec)
    zipped = WsClient(gateway.ws_url, codec, compression="deflate")
    try:
        assert zipped.ws.response.headers.get("Sec-WebSocket-Extensions") == ANSWER
        assert plain.ws.response.headers.get("Sec-WebSocket-Extensions") is None
        for c in (plain, zipped):
            c.subscribe(topic)
        values = [snapshot(i) if i % 3 else {"small": i} for i in range(30)]
        with http_client(gateway) as http:
            for v in values:
                publish(http, topic, v)
        # The compressing peer publishes too: websockets deflates what it sends.
        for i in range(3):
            ack = zipped.request({"type": "publish", "topic": topic, "data": snapshot(100 + i)})
            assert ack["type"] == "ack", ack
        a = plain.publications(33, topic)
        b = zipped.publications(33, topic)
        assert a == b
        assert [p["data"] for p in a] == values + [snapshot(100 + i) for i in range(3)]
        # Byte for byte: the same frames.
        pubs = lambda c: [m for m in c.raw_log if (json.loads(m) if codec == "json"
                                                   else msgpack.unpackb(m)).get("type") == "publication"]
        assert pubs(plain) == pubs(zipped)
    finally:
        plain.close()
        zipped.close()


def test_server_frames_carry_rsv1_only_when_negotiated_and_large(gateway):
    topic = unique("small.rsv.")
    z = DeflateWs(gateway.port)
    p = DeflateWs(gateway.port, offer=None)
    # Asking for a smaller server window than the shared deflate uses is declined.
    small = DeflateWs(gateway.port, offer="permessage-deflate; server_max_window_bits=10")
    try:
        assert z.headers.get("sec-websocket-extensions") == ANSWER
        assert "sec-websocket-extensions" not in p.headers
        assert "sec-websocket-extensions" not in small.headers
        for c in (z, p, small):
            assert c.frame_json()["type"] == "connected"
            c.send_json({"type": "subscribe", "id": 1, "topic": topic})
            assert c.until(lambda f: f.get("id") == 1)["type"] == "subscribed"
            c.rsv1.clear()
        with http_client(gateway) as http:
            publish(http, topic, snapshot(7))
            publish(http, topic, {"tiny": 1})
        for c, want in ((z, [True, False]), (p, [False, False]), (small, [False, False])):
            got = [c.until(lambda f: f.get("type") == "publication")["data"] for _ in range(2)]
            assert got == [snapshot(7), {"tiny": 1}]
            assert c.rsv1 == want
    finally:
        for c in (z, p, small):
            c.close()


def test_fragmented_compressed_message_with_interleaved_control_frames(gateway, bystander):
    topic = unique("chat.frag.")
    c = DeflateWs(gateway.port)
    try:
        assert c.frame_json()["type"] == "connected"
        body = json.dumps({"type": "publish", "id": 5, "topic": topic, "data": snapshot(3)}).encode()
        z = deflate_message(body)
        parts = [z[: len(z) // 3], z[len(z) // 3: 2 * len(z) // 3], z[2 * len(z) // 3:]]
        c.send_frame(0x41, parts[0], fin=False)  # text, RSV1 on the first frame only
        c.send_frame(0x9, b"mid")  # a ping between fragments
        c.send_frame(0x0, parts[1], fin=False)
        c.send_frame(0xA, b"")  # an unsolicited pong
        c.send_frame(0x0, parts[2], fin=True)
        # A second compressed message in one frame, then an uncompressed one.
        c.send_frame(0x41, deflate_message(json.dumps({"type": "ping", "id": 6}).encode()))
        c.send_json({"type": "ping", "id": 7})
        pong = c.message()
        assert pong == (0xA, b"mid"), pong
        assert c.until(lambda f: f.get("id") == 5)["type"] == "ack"
        assert c.until(lambda f: f.get("id") == 6)["type"] == "pong"
        assert c.until(lambda f: f.get("id") == 7)["type"] == "pong"
        with http_client(gateway) as http:
            got = http.get(f"/api/topics/{topic}/history").json()
        assert got["publications"][0]["data"] == snapshot(3), got
    finally:
        c.close()
    bystander()


def _bad(gateway, offer, frames):
    c = DeflateWs(gateway.port, offer=offer)
    try:
        assert c.frame_json()["type"] == "connected"
        for op, payload, fin in frames:
            c.send_frame(op, payload, fin=fin)
        frames, code, reason = c.close_code()
        return [f for f in frames if f.get("type") == "disconnect"], code, reason
    finally:
        c.close()


@pytest.mark.parametrize("case,offer,frames,code,name", [
    ("corrupt deflate", DEFLATE_OFFER, [(0x41, b"\xff\xfe\xfd\xfc\x00\x01", True)],
     1007, "invalid_payload"),
    ("compressed ping", DEFLATE_OFFER, [(0x49, b"", True)], 1002, "protocol_error"),
    ("RSV1 on a continuation", DEFLATE_OFFER,
     [(0x01, b'{"type":', False), (0x40, deflate_message(b'"ping"}'), True)], 1002, "protocol_error"),
    ("RSV1 without negotiation", None, [(0x41, deflate_message(b'{"type":"ping","id":1}'), True)],
     1002, "protocol_error"),
    ("decompression bomb", DEFLATE_OFFER, [(0x41, deflate_message(b" " * (8 << 20)), True)],
     1009, "frame_too_large"),
])
def test_bad_compressed_input_gets_its_close_code(gateway, bystander, case, offer, frames, code, name):
    disconnects, got, reason = _bad(gateway, offer, frames)
    assert (got, reason) == (code, name), case
    assert [d["code"] for d in disconnects] == [name], (case, disconnects)
    assert disconnects[0]["reconnect"] is False
    bystander()


def test_compression_can_be_turned_off(gateway_factory):
    gw = gateway_factory("--no-compression")
    c = DeflateWs(gw.port)
    try:
        assert "sec-websocket-extensions" not in c.headers
    finally:
        c.close()
    with httpx.Client(base_url=gw.http) as http:
        r = http.get("/poll", params={"topic": unique("small."), "timeout_ms": 100},
                     headers={"accept-encoding": "gzip"})
        assert r.status_code == 200 and "content-encoding" not in r.headers


def _gunzip_stream():
    return zlib.decompressobj(wbits=31)


def test_sse_gzip_delivers_each_event_at_once_and_ends_with_a_valid_trailer(gateway):
    topic = unique("small.sse.")
    client = httpx.Client(base_url=gateway.http, timeout=httpx.Timeout(10, read=10))
    cm = client.stream("GET", "/sse", params={"topic": topic},
                       headers={"accept-encoding": "gzip"})
    r = cm.__enter__()
    try:
        assert r.headers["content-encoding"] == "gzip"
        d = _gunzip_stream()
        raw = r.iter_raw()
        text = b""

        def until(marker: bytes) -> None:
            nonlocal text
            deadline = time.monotonic() + 10
            while marker not in text:
                assert time.monotonic() < deadline, text[-300:]
                text += d.decompress(next(raw))

        until(b"event: subscribed")
        with http_client(gateway) as http:
            for i in range(5):
                v = snapshot(i) if i % 2 == 0 else {"small": i}
                publish(http, topic, v)
                # This event inflates completely before the next is published.
                until(json.dumps(v, separators=(",", ":")).encode())
        gateway.stop()
        for chunk in raw:
            text += d.decompress(chunk)
        assert d.eof and d.unused_data == b"", "gzip trailer (CRC32, length) missing or wrong"
        assert b"event: disconnect" in text
        events = [e for e in text.decode().split("\n\n") if "event: publication" in e]
        got = [json.loads(e.split("data: ", 1)[1])["data"] for e in events]
        assert got == [snapshot(i) if i % 2 == 0 else {"small": i} for i in range(5)]
    finally:
        cm.__exit__(None, None, None)
        client.close()


def test_sse_through_curl_compressed(gateway, procs):
    topic = unique("small.curl.")
    p = procs(subprocess.Popen(
        ["curl", "-sS", "-N", "--compressed", "--max-time", "20", "-D", "-",
         f"{gateway.http}/sse?topic={topic}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    assert p.stdout is not None
    lines: list[str] = []

    def read_until(pred) -> None:
        deadline = time.monotonic() + 10
        while not any(pred(l) for l in lines):
            assert time.monotonic() < deadline, lines[-10:]
            line = p.stdout.readline()
            assert line, f"curl ended: {p.stderr.read() if p.stderr else ''}"
            lines.append(line.decode().rstrip("\r\n"))

    read_until(lambda l: l == "event: subscribed")
    assert any(l.lower() == "content-encoding: gzip" for l in lines), lines
    with http_client(gateway) as http:
        for i in range(3):
            publish(http, topic, snapshot(i))
            want = json.dumps({"seq": i}, separators=(",", ":"))[:-1]
            read_until(lambda l, w=want: l.startswith("data: ") and w in l)
    data = [json.loads(l[6:]) for l in lines if l.startswith("data: ")]
    assert [f["data"] for f in data if f.get("type") == "publication"] == [snapshot(i) for i in range(3)]


def test_long_poll_answers_gzip_when_accepted(gateway):
    topic = unique("small.poll.")
    with httpx.Client(base_url=gateway.http) as http:
        first = http.get("/poll", params={"topic": topic, "timeout_ms": 100}).json()
        with http_client(gateway) as pub:
            for i in range(3):
                publish(pub, topic, snapshot(i))
        q = {"topic": topic, "cursor": first["cursor"], "timeout_ms": 100}
        zipped = http.get("/poll", params=q, headers={"accept-encoding": "gzip"})
        plain = http.get("/poll", params=q, headers={"accept-encoding": "identity"})
    assert zipped.headers.get("content-encoding") == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()
    assert [f["data"] for f in plain.json()["frames"]] == [snapshot(i) for i in range(3)]
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
