"""Small, strict clients for the livegate wire protocol (docs/protocol.md).

- WsClient: websockets' sync client, JSON or MessagePack codec.
- RawWs: a hand-written WebSocket client on a plain socket (no automatic
  pongs, controllable receive buffer, raw frames).
- SseClient: httpx streaming + a hand-written SSE parser on a reader thread.
- Poller: long-poll over httpx.
- Transport adapters (make_transport) that give all four a common shape for
  the delivery tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import os
import queue
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import msgpack
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

JSON_PROTO = "livegate.v1.json"
MSGPACK_PROTO = "livegate.v1.msgpack"
# websockets >= 16 warns unless a direct (non context-manager) connect opts into legacy=True
_WS_LEGACY = {"legacy": True} if "legacy" in inspect.signature(ws_connect).parameters else {}
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def unique(prefix: str = "t.") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- HTTP ----

def mint_jwt(claims: dict, secret: str, *, alg: str = "HS256") -> str:
    """A JWT signed with HMAC-SHA256 (or unsigned with alg "none"), minted with
    the standard library so the suites need no JWT package."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def http_client(gw, **kw) -> httpx.Client:
    kw.setdefault("timeout", 10.0)
    return httpx.Client(base_url=gw.http, **kw)


def publish(client: httpx.Client, topic: str, data: Any, *, via: str = "body",
            event: str | None = None, headers: dict | None = None) -> dict:
    """Publish over HTTP; asserts 200 and returns {"topic","epoch","offset"}."""
    if via == "body":
        body: dict[str, Any] = {"topic": topic, "data": data}
        if event is not None:
            body["event"] = event
        r = client.post("/api/publish", json=body, headers=headers)
    else:
        params = {"event": event} if event is not None else None
        r = client.post(f"/api/publish/{topic}", content=json.dumps(data).encode(),
                        headers={"content-type": "application/json", **(headers or {})},
                        params=params)
    assert r.status_code == 200, f"publish {topic} via {via}: {r.status_code} {r.text}"
    ack = r.json()
    assert ack["topic"] == topic, ack
    assert isinstance(ack["epoch"], str) and ack["epoch"], ack
    assert isinstance(ack["offset"], int) and ack["offset"] >= 1, ack
    return ack


def publish_later(gw, topic: str, data: Any, delay: float) -> threading.Timer:
    """Publish from a timer thread after `delay` seconds (for long-poll wake-up tests)."""
    def run():
        with http_client(gw) as c:
            publish(c, topic, data)
    t = threading.Timer(delay, run)
    t.start()
    return t


def publish_many(client: httpx.Client, topic: str, start: int, count: int,
                 make: Callable[[int], Any] | None = None) -> list[dict]:
    """Publish `count` payloads numbered start..start+count-1, alternating both endpoints."""
    make = make or (lambda i: {"i": i})
    acks = []
    for i in range(start, start + count):
        acks.append(publish(client, topic, make(i), via="body" if i % 2 else "path"))
    return acks


def expect_http_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, f"expected HTTP {status} {code}, got {r.status_code}: {r.text!r}"
    assert r.headers.get("content-type", "").startswith("application/json"), \
        f"error body content-type {r.headers.get('content-type')!r}"
    try:
        body = r.json()
    except Exception:
        raise AssertionError(f"error body is not JSON: {r.text!r}")
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    assert body.get("code") == code, f"expected code {code!r}, got {body!r}"
    assert isinstance(body.get("message"), str), body
    return body


def stats(gw) -> dict:
    r = httpx.get(gw.http + "/api/stats", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05, msg: str = ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {msg or pred} (last={last!r})")


# ----------------------------------------------------------- checks -------

def check_publication(p: dict, topic: str, epoch: str | None, offset: int, data: Any = None,
                      *, check_data: bool = True) -> None:
    assert p.get("type") == "publication", p
    assert p.get("topic") == topic, p
    if epoch is not None:
        assert p.get("epoch") == epoch, f"epoch {p.get('epoch')!r} != {epoch!r}"
    assert p.get("offset") == offset, f"expected offset {offset}, got {p.get('offset')}: {p}"
    assert isinstance(p.get("time"), str) and TIME_RE.match(p["time"]), f"bad time {p.get('time')!r}"
    if check_data:
        assert p.get("data") == data, f"offset {offset}: data {p.get('data')!r} != {data!r}"


def check_sequence(pubs: list[dict], topic: str, epoch: str | None, first: int, last: int,
                   make: Callable[[int], Any] | None = None) -> None:
    make = make or (lambda i: {"i": i})
    offsets = [p.get("offset") for p in pubs]
    assert offsets == list(range(first, last + 1)), f"offsets {offsets} != {first}..{last}"
    for p in pubs:
        check_publication(p, topic, epoch, p["offset"], make(p["offset"]))


# --------------------------------------------------------- WebSocket ------

class WsClient:
    """websockets sync client speaking livegate frames (JSON or MessagePack)."""

    def __init__(self, url: str, codec: str = "json", *, subprotocols: list[str] | None = None,
                 expect_connected: bool = True, **kw):
        self.codec = codec
        if subprotocols is None:
            subprotocols = [JSON_PROTO if codec == "json" else MSGPACK_PROTO]
        kw.setdefault("compression", None)
        kw.setdefault("max_size", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 10)
        kw.setdefault("close_timeout", 3)
        self.ws = ws_connect(url, subprotocols=subprotocols or None, **_WS_LEGACY, **kw)
        self.backlog: list[dict] = []
        self.raw_log: list[str | bytes] = []
        self.connected: dict | None = None
        self._next_id = 1000
        if expect_connected:
            self.connected = self.recv(timeout=5)
            assert self.connected.get("type") == "connected", self.connected
            assert isinstance(self.connected.get("client_id"), str) and self.connected["client_id"]
            assert isinstance(self.connected.get("heartbeat_ms"), int)

    # codec ---------------------------------------------------------------
    def encode(self, frame: Any) -> str | bytes:
        if self.codec == "json":
            return json.dumps(frame)
        return msgpack.packb(frame, use_bin_type=True)

    def decode(self, msg: str | bytes) -> dict:
        if self.codec == "json":
            assert isinstance(msg, str), f"JSON connection got a binary message: {msg[:80]!r}"
            return json.loads(msg)
        assert isinstance(msg, bytes), f"MessagePack connection got a text message: {msg[:80]!r}"
        return msgpack.unpackb(msg, raw=False)

    # io --------------------------------------------------------------------
    def send(self, frame: Any) -> None:
        self.ws.send(self.encode(frame))

    def send_raw(self, data: str | bytes) -> None:
        self.ws.send(data)

    def recv(self, timeout: float = 5.0) -> dict:
        """Next frame from the wire (not from the backlog)."""
        msg = self.ws.recv(timeout=timeout)
        self.raw_log.append(msg)
        return self.decode(msg)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = 5.0) -> dict:
        """First frame (backlog first) matching pred; others stay in the backlog, in order."""
        for i, f in enumerate(self.backlog):
            if pred(f):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; backlog={self.backlog[-5:]}")
            try:
                f = self.recv(timeout=left)
            except TimeoutError:
                continue
            if pred(f):
                return f
            self.backlog.append(f)

    def request(self, frame: dict, timeout: float = 5.0) -> dict:
        """Send a frame with an id and return the reply carrying that id."""
        if "id" not in frame:
            frame = {**frame, "id": self.next_id()}
        self.send(frame)
        fid = frame["id"]
        return self.wait_for(lambda f: f.get("id") == fid and f.get("type") != "publication", timeout)

    def ping(self, timeout: float = 5.0) -> None:
        pid = self.next_id()
        self.send({"type": "ping", "id": pid})
        f = self.wait_for(lambda f: f.get("type") in ("pong", "error", "disconnect") and
                          f.get("id", pid) == pid, timeout)
        assert f.get("type") == "pong" and f.get("id") == pid, f"ping {pid} got {f}"

    def subscribe(self, topic: str, since: dict | None = None, timeout: float = 5.0) -> dict:
        frame: dict[str, Any] = {"type": "subscribe", "topic": topic}
        if since is not None:
            frame["since"] = since
        f = self.request(frame, timeout)
        assert f.get("type") == "subscribed", f"subscribe {topic}: {f}"
        return f

    def publications(self, n: int, topic: str | None = None, timeout: float = 10.0) -> list[dict]:
        """n publications (of topic, if given) in arrival order."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} publications within {timeout}s: "
                                     f"{[p.get('offset') for p in out]}")
            out.append(self.wait_for(lambda f: f.get("type") == "publication" and
                                     (topic is None or f.get("topic") == topic), left))
        return out

    def frames_until_pong(self, timeout: float = 5.0) -> list[dict]:
        """Send a ping; return every frame that arrives before its pong (ping barrier)."""
        pid = self.next_id()
        self.send({"type": "ping", "id": pid})
        before = list(self.backlog)
        self.backlog.clear()
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if f.get("type") == "pong" and f.get("id") == pid:
                return before
            before.append(f)

    def expect_error(self, frame: Any, code: str, *, raw: bool = False, fid: Any = "same",
                     timeout: float = 5.0) -> dict:
        """Send a bad frame, expect an error frame with `code` (and the same id when it had one)."""
        if raw:
            self.send_raw(frame)
        else:
            self.send(frame)
        f = self.wait_for(lambda f: f.get("type") in ("error", "disconnect", "pong", "ack",
                                                        "subscribed", "unsubscribed", "history"),
                          timeout)
        assert f.get("type") == "error", f"expected error {code}, got {f}"
        assert f.get("code") == code, f"expected error {code}, got {f}"
        assert isinstance(f.get("message"), str), f
        if fid == "same":
            fid = frame.get("id") if isinstance(frame, dict) else None
        if fid is None:
            assert f.get("id") is None, f"error must not carry an id here: {f}"
        else:
            assert f.get("id") == fid, f"error should carry id {fid}: {f}"
        return f

    def expect_close(self, timeout: float = 5.0) -> tuple[list[dict], Any]:
        """Read until the connection closes; returns (frames, close frame received)."""
        frames = list(self.backlog)
        self.backlog.clear()
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"connection not closed within {timeout}s; frames={frames[-5:]}")
                try:
                    frames.append(self.recv(timeout=left))
                except TimeoutError:
                    continue
        except ConnectionClosed as e:
            return frames, e.rcvd

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class RawWs:
    """A WebSocket client on a bare socket: no automatic pongs, nothing hidden."""

    def __init__(self, port: int, *, path: str = "/ws", subprotocols: list[str] | None = (JSON_PROTO,),
                 rcvbuf: int | None = None, extra_headers: dict | None = None,
                 expect_status: int = 101, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        for k, v in (extra_headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1]) if status_line else 0
        self.headers = {}
        for h in header_lines:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        assert self.status == expect_status, f"handshake status {self.status}, expected {expect_status}: {head!r}"
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == accept, self.headers
        self.eof = False

    def body(self, timeout: float = 3.0) -> bytes:
        """Rest of a non-101 response (Content-Length or until EOF)."""
        n = int(self.headers.get("content-length", "-1"))
        self.sock.settimeout(timeout)
        while n < 0 or len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        return self.buf if n < 0 else self.buf[:n]

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True) -> None:
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            mk = os.urandom(4)
            payload = bytes(b ^ mk[i % 4] for i, b in enumerate(payload))
            head += mk
        self.sock.sendall(head + payload)

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())

    def send_json(self, frame: Any) -> None:
        self.send_text(json.dumps(frame))

    def _fill(self, n: int, deadline: float) -> bool:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def recv_frame(self, timeout: float = 5.0) -> tuple[bool, int, bytes] | None:
        """(fin, opcode, payload) of the next frame, or None at EOF. TimeoutError on timeout."""
        deadline = time.monotonic() + timeout
        if not self._fill(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        hl = 2
        if n == 126:
            if not self._fill(4, deadline):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            hl = 4
        elif n == 127:
            if not self._fill(10, deadline):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            hl = 10
        masked = bool(b1 & 0x80)
        assert not masked, "server frames must not be masked"
        if not self._fill(hl + n, deadline):
            return None
        payload = self.buf[hl:hl + n]
        self.buf = self.buf[hl + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """Next data message (reassembled) or control frame as (opcode, payload); None at EOF."""
        deadline = time.monotonic() + timeout
        fr = self.recv_frame(timeout)
        if fr is None:
            return None
        fin, op, payload = fr
        if op >= 0x8 or fin:
            return op, payload
        parts = [payload]
        while True:
            fr = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if fr is None:
                return None
            fin, cop, p = fr
            if cop >= 0x8:  # control frames may be interleaved; keep only the data message
                continue
            parts.append(p)
            if fin:
                return op, b"".join(parts)

    def read_all(self, timeout: float = 10.0, reply_close: bool = True) -> list[tuple[int, bytes]]:
        """Every message until EOF (replying to a Close when asked)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self.recv_message(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"server did not close the connection within {timeout}s; "
                                     f"got opcodes {[op for op, _ in out]}, last={out[-3:]}")
            if m is None:
                return out
            out.append(m)
            if m[0] == 0x8 and reply_close:
                try:
                    self.send_frame(0x8, m[1][:2])
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def parse_close(payload: bytes) -> tuple[int | None, str]:
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


# --------------------------------------------------------------- SSE ------

@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseParser:
    """Line-based SSE parser (WHATWG rules, enough for the tests)."""
    comments: list[str] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    _event: str | None = None
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    _has: bool = False

    def feed_line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._has:
                return None
            ev = SseEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id, self._has = None, [], None, False
            return ev
        if line.startswith(":"):
            self.comments.append(line[1:].lstrip(" "))
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event, self._has = value, True
        elif name == "data":
            self._data.append(value)
            self._has = True
        elif name == "id":
            self._id, self._has = value, True
        elif name == "retry":
            if value.isdigit():
                self.retry.append(int(value))
        return None


class SseClient:
    """GET /sse as a stream (httpx), events parsed on a reader thread into a queue."""

    def __init__(self, gw, topics: list[str] | str, *, since: str | None = None,
                 last_event_id: str | None = None, params: list | None = None, timeout: float = 10.0):
        if isinstance(topics, str):
            topics = [topics]
        q: list[tuple[str, str]] = [("topic", t) for t in topics]
        if since is not None:
            q.append(("since", since))
        q += params or []
        headers = {"accept": "text/event-stream", "accept-encoding": "identity"}
        if last_event_id is not None:
            headers["last-event-id"] = last_event_id
        self.client = httpx.Client(base_url=gw.http, timeout=httpx.Timeout(timeout, read=None))
        self._cm = self.client.stream("GET", "/sse", params=q, headers=headers)
        self.response = self._cm.__enter__()
        self.events: "queue.Queue[SseEvent | None]" = queue.Queue()
        self.parser = SseParser()
        self.raw_lines: list[str] = []
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.backlog: list[SseEvent] = []
        self.last_id: str | None = None
        if self.response.status_code == 200:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _lines(self):
        """SSE lines: split on CRLF, LF or CR only (httpx.iter_lines also splits on U+2028 etc.)."""
        buf = b""
        for chunk in self.response.iter_raw():
            buf += chunk
            while True:
                m = re.search(rb"\r\n|\n|\r", buf)
                if m is None:
                    break
                if m.group() == b"\r" and m.end() == len(buf):
                    break  # maybe the first half of a CRLF
                yield buf[:m.start()].decode("utf-8")
                buf = buf[m.end():]
        if buf:
            yield buf.decode("utf-8")

    def _run(self) -> None:
        try:
            for line in self._lines():
                self.raw_lines.append(line)
                ev = self.parser.feed_line(line)
                if ev is not None:
                    self.events.put(ev)
        except BaseException as e:  # noqa: BLE001 - reported via .error
            self.error = e
        finally:
            self.ended.set()
            self.events.put(None)

    def next_event(self, timeout: float = 5.0) -> SseEvent | None:
        """Next event (backlog first); None when the stream ended; TimeoutError on timeout."""
        if self.backlog:
            return self.backlog.pop(0)
        try:
            ev = self.events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no SSE event within {timeout}s")
        if ev is None:
            self.events.put(None)  # keep reporting the end
        elif ev.id is not None:
            self.last_id = ev.id
        return ev

    def expect(self, event: str, timeout: float = 5.0) -> SseEvent:
        ev = self.next_event(timeout)
        assert ev is not None, f"stream ended while expecting {event!r} (error={self.error!r})"
        assert ev.event == event, f"expected event {event!r}, got {ev}"
        return ev

    def publications(self, n: int, timeout: float = 10.0) -> list[dict]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"SSE: got {len(out)} of {n} publications")
            ev = self.next_event(left)
            assert ev is not None, f"SSE stream ended after {len(out)} publications"
            assert ev.event == "publication", f"unexpected SSE event {ev}"
            assert ev.id, f"publication event without id: {ev}"
            f = ev.json()
            f["_sse_id"] = ev.id
            out.append(f)
        return out

    def quiet(self, seconds: float) -> list[SseEvent]:
        """Events that arrive within `seconds` (expected to be none)."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self.next_event(left)
            except TimeoutError:
                break
            if ev is None:
                break
            got.append(ev)
        return got

    def close(self) -> None:
        try:
            ns = self.response.extensions.get("network_stream")
            sock = ns.get_extra_info("socket") if ns is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        try:
            self._cm.__exit__(None, None, None)
        except Exception:
            pass
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def parse_cursor(cursor: str) -> dict[str, tuple[str, int]]:
    """'t1:e1:3,t2:e2:7' -> {t1: (e1, 3), ...} (topics may not contain ':' or ',')."""
    out = {}
    for entry in cursor.split(","):
        topic, epoch, off = entry.rsplit(":", 2)
        out[topic] = (epoch, int(off))
    return out


# --------------------------------------------------------------- poll -----

class Poller:
    def __init__(self, gw, topics: list[str] | str):
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.client = httpx.Client(base_url=gw.http, timeout=70.0)
        self.cursor: str | None = None
        self.answers: list[dict] = []

    def poll(self, cursor: str | None = "self", timeout_ms: int | None = None) -> dict:
        if cursor == "self":
            cursor = self.cursor
        q: list[tuple[str, Any]] = [("topic", t) for t in self.topics]
        if cursor is not None:
            q.append(("cursor", cursor))
        if timeout_ms is not None:
            q.append(("timeout_ms", timeout_ms))
        r = self.client.get("/poll", params=q)
        assert r.status_code == 200, f"poll: {r.status_code} {r.text}"
        body = r.json()
        assert isinstance(body.get("cursor"), str), body
        assert isinstance(body.get("frames"), list), body
        self.cursor = body["cursor"]
        self.answers.append(body)
        return body

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------- transport adapters -----

class Transport:
    """Common shape over WS-JSON, WS-MessagePack, SSE and long-poll for one topic.

    subscribe(resume=None) -> the 'subscribed' frame (poll: synthesized when the
    answer holds only publications); publications(n); token() -> what this
    transport resumes with; quiet() -> publications that arrive within a moment.
    """
    name = "?"

    def __init__(self, gw, topic: str):
        self.gw, self.topic = gw, topic
        self.pending: list[dict] = []

    def close(self) -> None: ...


class WsTransport(Transport):
    def __init__(self, gw, topic, codec):
        super().__init__(gw, topic)
        self.name = f"ws-{codec}"
        self.c = WsClient(gw.ws_url, codec)
        self.last: dict | None = None

    def subscribe(self, resume=None):
        sub = self.c.subscribe(self.topic, since=resume)
        assert isinstance(sub.get("publications"), list), sub
        self.pending = list(sub["publications"])
        self.epoch = sub["epoch"]
        if sub["publications"]:
            self.last = sub["publications"][-1]
        return sub

    def publications(self, n, timeout=15.0):
        take = self.pending[:n]
        self.pending = self.pending[n:]
        out = take + self.c.publications(n - len(take), self.topic, timeout)
        if out:
            self.last = out[-1]
        return out

    def token(self):
        assert self.last is not None
        return {"epoch": self.last["epoch"], "offset": self.last["offset"]}

    def quiet(self, seconds=0.5):
        time.sleep(seconds)
        extra = self.pending + [f for f in self.c.frames_until_pong() if f.get("type") == "publication"]
        self.pending = []
        return extra

    def close(self):
        self.c.close()


class SseTransport(Transport):
    def __init__(self, gw, topic, resume_via="header"):
        super().__init__(gw, topic)
        self.name = f"sse-{resume_via}"
        self.resume_via = resume_via
        self.s: SseClient | None = None

    def subscribe(self, resume=None):
        kw = {}
        if resume is not None:
            kw = {"last_event_id": resume} if self.resume_via == "header" else {"since": resume}
        self.s = SseClient(self.gw, self.topic, **kw)
        assert self.s.response.status_code == 200, self.s.response.read()
        ctype = self.s.response.headers.get("content-type", "")
        assert ctype.startswith("text/event-stream"), ctype
        con = self.s.expect("connected")
        assert con.json()["type"] == "connected", con
        ev = self.s.expect("subscribed")
        sub = ev.json()
        assert sub["type"] == "subscribed" and sub["topic"] == self.topic, sub
        assert sub.get("publications") == [], f"SSE subscribed must have empty publications: {sub}"
        assert self.s.parser.retry and self.s.parser.retry[0] == 1000, \
            f"expected 'retry: 1000' first, got {self.s.raw_lines[:5]}"
        first = next(l for l in self.s.raw_lines if l)
        assert re.match(r"^retry: ?1000$", first), f"'retry: 1000' must come first: {self.s.raw_lines[:3]}"
        self.epoch = sub["epoch"]
        return sub

    def publications(self, n, timeout=15.0):
        return self.s.publications(n, timeout)

    def token(self):
        assert self.s.last_id, "no event id seen"
        return self.s.last_id

    def quiet(self, seconds=0.5):
        return [e.json() for e in self.s.quiet(seconds) if e.event == "publication"]

    def close(self):
        if self.s:
            self.s.close()


class PollTransport(Transport):
    name = "poll"

    def __init__(self, gw, topic):
        super().__init__(gw, topic)
        self.p = Poller(gw, topic)

    def subscribe(self, resume=None):
        if resume is None:
            t0 = time.monotonic()
            ans = self.p.poll(cursor=None, timeout_ms=5000)
            assert time.monotonic() - t0 < 2.0, "poll without cursor must answer at once"
            subs = [f for f in ans["frames"] if f.get("type") == "subscribed"]
            assert len(subs) == 1 and len(ans["frames"]) == 1, ans
            sub = subs[0]
            self.epoch = sub["epoch"]
            return sub
        ans = self.p.poll(cursor=resume, timeout_ms=1500)
        frames = ans["frames"]
        subs = [f for f in frames if f.get("type") == "subscribed"]
        pubs = [f for f in frames if f.get("type") == "publication"]
        assert len(subs) + len(pubs) == len(frames), f"unexpected frames {frames}"
        if subs:
            assert len(subs) == 1, frames
            sub = dict(subs[0])
            sub.setdefault("publications", [])
            # missed publications of a recovered cursor come as publication frames
            self.pending = list(sub["publications"]) + pubs
            sub["_poll_publications"] = pubs
        else:
            # recoverable cursor: the answer is just the missed publications
            sub = {"type": "subscribed", "topic": self.topic, "recovered": True,
                   "epoch": pubs[-1]["epoch"] if pubs else None,
                   "offset": pubs[-1]["offset"] if pubs else None,
                   "publications": list(pubs), "_synthetic": True}
            self.pending = list(pubs)
        return sub

    def publications(self, n, timeout=15.0):
        out = self.pending[:n]
        self.pending = self.pending[n:]
        deadline = time.monotonic() + timeout
        while len(out) < n:
            assert time.monotonic() < deadline, f"poll: got {len(out)} of {n}"
            ans = self.p.poll(timeout_ms=2000)
            for f in ans["frames"]:
                assert f.get("type") == "publication", f"unexpected poll frame {f}"
                out.append(f)
        assert len(out) == n, f"poll returned more publications than published: {[p['offset'] for p in out]}"
        return out

    def token(self):
        return self.p.cursor

    def quiet(self, seconds=0.5):
        extra = list(self.pending)
        self.pending = []
        ans = self.p.poll(timeout_ms=int(seconds * 1000))
        return extra + [f for f in ans["frames"] if f.get("type") == "publication"]

    def close(self):
        self.p.close()


TRANSPORTS = ["ws-json", "ws-msgpack", "sse", "poll"]
RESUME_TRANSPORTS = ["ws-json", "ws-msgpack", "sse-header", "sse-query", "poll"]


def make_transport(kind: str, gw, topic: str) -> Transport:
    if kind == "ws-json":
        return WsTransport(gw, topic, "json")
    if kind == "ws-msgpack":
        return WsTransport(gw, topic, "msgpack")
    if kind in ("sse", "sse-header"):
        return SseTransport(gw, topic, "header")
    if kind == "sse-query":
        return SseTransport(gw, topic, "query")
    if kind == "poll":
        return PollTransport(gw, topic)
    raise ValueError(kind)
