"""Slow consumers (queue overflow -> slow_consumer/4001) and dead peers (heartbeat_timeout/4002)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from lgclient import (RawWs, SseParser, WsClient, http_client, parse_close, stats, unique,
                      wait_until)

N_SLOW = 3000
FAST_WINDOW = 4


def _payload(i: int) -> dict:
    return {"i": i, "pad": "x" * 2000}


@pytest.mark.timeout(120)
def test_slow_consumer_is_dropped_fast_one_is_not(gateway_factory):
    gw = gateway_factory("--queue-size", "8")
    topic = unique("big.")  # history_size 5000: the gap stays recoverable

    slow = RawWs(gw.port, rcvbuf=4096)
    first = slow.recv_message()
    assert first[0] == 0x1 and json.loads(first[1])["type"] == "connected", first
    slow.send_json({"type": "subscribe", "id": 1, "topic": topic})
    m = slow.recv_message()
    sub = json.loads(m[1])
    assert sub["type"] == "subscribed" and sub["id"] == 1, sub
    epoch = sub["epoch"]
    # from here on the slow client does not read

    fast = WsClient(gw.ws_url, "json")
    fast.subscribe(topic)
    fast_got: list[dict] = []
    fast_err: list[BaseException] = []

    def read_fast():
        try:
            while len(fast_got) < N_SLOW:
                f = fast.recv(timeout=60)
                if f.get("type") == "publication":
                    fast_got.append(f)
                else:
                    fast_got.append(f)  # anything else is a failure, reported below
                    return
        except BaseException as e:  # noqa: BLE001
            fast_err.append(e)

    reader = threading.Thread(target=read_fast, daemon=True)
    reader.start()

    with http_client(gw) as http:
        for i in range(1, N_SLOW + 1):
            # The fast client is one that keeps up: publish at most FAST_WINDOW
            # ahead of what it has read, so a loaded machine that starves its
            # reader thread cannot make it a slow consumer too (its queue is 8).
            wait_until(lambda: len(fast_got) >= i - FAST_WINDOW or fast_err, timeout=60,
                       interval=0.001, msg=f"the fast client to read up to {i - FAST_WINDOW}")
            r = http.post("/api/publish", json={"topic": topic, "data": _payload(i)})
            assert r.status_code == 200, r.text
            assert r.json()["offset"] == i

    reader.join(timeout=60)
    assert not fast_err, f"fast client failed: {fast_err}"
    assert len(fast_got) == N_SLOW, f"fast client got {len(fast_got)} frames; last={fast_got[-1:]}"
    assert [f.get("type") for f in fast_got] == ["publication"] * N_SLOW, \
        [f for f in fast_got if f.get("type") != "publication"][:1]
    assert [f["offset"] for f in fast_got] == list(range(1, N_SLOW + 1))
    assert all(f["data"]["i"] == f["offset"] for f in fast_got)
    fast.ping()  # the fast client is still fine

    # now the slow one reads everything that is left
    msgs = slow.read_all(timeout=20)
    assert slow.eof, "connection should end after the close handshake"
    data = [(op, p) for op, p in msgs if op in (0x1, 0x2)]
    closes = [p for op, p in msgs if op == 0x8]
    frames = [json.loads(p) for op, p in data]
    pubs = [f for f in frames if f.get("type") == "publication"]
    others = [f for f in frames if f.get("type") != "publication"]
    k = len(pubs)
    assert [p["offset"] for p in pubs] == list(range(1, k + 1)), \
        f"slow consumer must see a contiguous prefix, got {[p['offset'] for p in pubs][:20]}..."
    assert k < N_SLOW, "the slow consumer was never dropped"
    assert others, "no disconnect frame before the close"
    assert frames[-1] == others[-1], "the disconnect frame must be the last frame"
    disc = others[-1]
    assert disc.get("type") == "disconnect" and disc.get("code") == "slow_consumer", disc
    assert disc.get("reconnect") is True, disc
    assert len(others) == 1, f"unexpected frames besides publications: {others}"
    assert closes, "no close frame"
    slow.close()

    # resume from the last publication the slow consumer handled
    c = WsClient(gw.ws_url, "json")
    try:
        since = {"epoch": epoch, "offset": k}
        sub = c.subscribe(topic, since=since, timeout=30)
        assert sub["recovered"] is True, {k: v for k, v in sub.items() if k != "publications"}
        assert sub["offset"] == N_SLOW
        assert [p["offset"] for p in sub["publications"]] == list(range(k + 1, N_SLOW + 1))
        assert all(p["data"]["i"] == p["offset"] for p in sub["publications"])
    finally:
        c.close()

    st = stats(gw)
    assert st["slow_consumers_dropped"] >= 1, st
    fast.close()
    # checked last so that a wrong close frame does not hide the resume checks above
    code, reason = parse_close(closes[0])
    assert (code, reason) == (4001, "slow_consumer"), f"close frame payload {closes[0]!r}"


def test_silent_peer_gets_heartbeat_timeout(gateway_factory):
    gw = gateway_factory("--heartbeat-ms", "200", "--idle-timeout-ms", "800")
    t0 = time.monotonic()
    raw = RawWs(gw.port)
    msgs = raw.read_all(timeout=8, reply_close=False)  # never sends anything, not even pongs
    elapsed = time.monotonic() - t0
    assert raw.eof, "server did not close the TCP connection"
    ops = [op for op, _ in msgs]
    texts = [json.loads(p) for op, p in msgs if op == 0x1]
    assert texts[0]["type"] == "connected" and texts[0]["heartbeat_ms"] == 200, texts[0]
    assert ops.count(0x9) >= 2, f"expected Pings every 200 ms before the timeout, got opcodes {ops}"
    assert texts[-1] == {"type": "disconnect", "code": "heartbeat_timeout",
                         "reason": texts[-1].get("reason"), "reconnect": True}, texts[-1]
    assert isinstance(texts[-1]["reason"], str)
    assert ops[-1] == 0x8, f"the close frame must come last: {ops}"
    code, reason = parse_close(msgs[-1][1])
    assert (code, reason) == (4002, "heartbeat_timeout"), (code, reason)
    # the disconnect text frame comes right before the close
    assert ops[-2] == 0x1
    assert 0.7 <= elapsed < 5.0, f"closed after {elapsed:.2f}s (idle timeout 0.8s)"


def test_peer_that_answers_pings_stays_connected(gateway_factory):
    gw = gateway_factory("--heartbeat-ms", "200", "--idle-timeout-ms", "800")
    c = WsClient(gw.ws_url, "json")  # websockets answers Pings automatically; sends none itself
    try:
        assert c.connected["heartbeat_ms"] == 200
        time.sleep(2.5)
        c.ping()
        topic = unique("hb.")
        c.subscribe(topic)
        with http_client(gw) as http:
            http.post("/api/publish", json={"topic": topic, "data": 1}).raise_for_status()
        assert c.publications(1)[0]["data"] == 1
    finally:
        c.close()


def test_raw_client_answering_pongs_stays_connected(gateway_factory):
    gw = gateway_factory("--heartbeat-ms", "200", "--idle-timeout-ms", "800")
    raw = RawWs(gw.port)
    try:
        deadline = time.monotonic() + 2.5
        pings = 0
        while time.monotonic() < deadline:
            try:
                m = raw.recv_message(timeout=0.3)
            except TimeoutError:
                continue
            assert m is not None, "server closed a connection that answers every Ping"
            op, payload = m
            assert op != 0x8, f"closed: {parse_close(payload)}"
            if op == 0x9:
                pings += 1
                raw.send_frame(0xA, payload)
        assert pings >= 5, pings
        raw.send_json({"type": "ping", "id": 5})
        while True:
            op, payload = raw.recv_message(timeout=3)
            if op == 0x1:
                assert json.loads(payload) == {"type": "pong", "id": 5}
                break
    finally:
        raw.close()


def _dechunk(raw: bytes) -> bytes:
    """Decode an HTTP/1.1 chunked body, tolerating a truncated end."""
    out, i = [], 0
    while i < len(raw):
        j = raw.find(b"\r\n", i)
        if j < 0:
            break
        size = int(raw[i:j].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(raw[j + 2:j + 2 + size])
        i = j + 2 + size + 2
    return b"".join(out)


@pytest.mark.timeout(90)
def test_sse_blocked_writer_is_closed(gateway_factory):
    # a huge queue so that the blocked write, not a queue overflow, ends the stream
    gw = gateway_factory("--heartbeat-ms", "200", "--idle-timeout-ms", "800", "--queue-size", "100000")
    topic = unique("big.")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", gw.port))
    try:
        sock.sendall(f"GET /sse?topic={topic} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        buf = b""
        while b"event: subscribed" not in buf:
            chunk = sock.recv(4096)
            assert chunk, buf
            buf += chunk
        head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        assert head.startswith("http/1.1 200"), head
        wait_until(lambda: stats(gw)["connections"]["sse"] == 1, 3, msg="sse connected")
        fast = WsClient(gw.ws_url, "json")
        fast.subscribe(topic)
        got: list[dict] = []
        reader = threading.Thread(target=lambda: got.extend(fast.publications(1500, topic, 60)), daemon=True)
        reader.start()
        with http_client(gw) as http:
            for i in range(1, 1501):
                r = http.post("/api/publish", json={"topic": topic, "data": _payload(i)})
                assert r.status_code == 200, r.text
        # still not reading: the gateway must give up on this stream by itself
        wait_until(lambda: stats(gw)["connections"]["sse"] == 0, 6, interval=0.2,
                   msg="blocked SSE stream closed after idle_timeout")
        reader.join(60)
        assert [p["offset"] for p in got] == list(range(1, 1501)), "the fast client must get everything"
        fast.close()
        # what the blocked client finally reads: a contiguous prefix, then the end of the stream
        sock.settimeout(5)
        while True:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            buf += chunk
        header, _, body = buf.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in header.lower():
            body = _dechunk(body)
        parser = SseParser()
        frames = []
        for line in body.decode("utf-8", "replace").split("\n"):
            ev = parser.feed_line(line.rstrip("\r"))
            if ev is not None and ev.event == "publication":
                try:
                    frames.append(ev.json())
                except ValueError:
                    pass  # a truncated last event
        offsets = [f["offset"] for f in frames]
        assert offsets == list(range(1, len(offsets) + 1)), offsets[:20]
        assert len(offsets) < 1500
    finally:
        sock.close()


def test_app_level_traffic_counts_as_alive(gateway_factory):
    gw = gateway_factory("--heartbeat-ms", "200", "--idle-timeout-ms", "800")
    raw = RawWs(gw.port)  # never answers WebSocket Pings, but sends JSON pings
    try:
        deadline = time.monotonic() + 2.5
        n = 0
        pongs = 0
        while time.monotonic() < deadline:
            n += 1
            raw.send_json({"type": "ping", "id": n})
            end = time.monotonic() + 0.3
            while (left := end - time.monotonic()) > 0:
                try:
                    m = raw.recv_message(timeout=left)
                except TimeoutError:
                    break
                assert m is not None, "closed a connection that keeps sending frames"
                op, payload = m
                assert op != 0x8, f"closed: {parse_close(payload)}"
                if op == 0x1 and json.loads(payload).get("type") == "pong":
                    pongs += 1
        assert pongs >= n - 1 >= 5, (n, pongs)
    finally:
        raw.close()
