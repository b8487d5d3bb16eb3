#!/usr/bin/env python3
"""How many publications per second a Python process receives (and decodes)
with the livegate package, against a plain `websockets` client, on the same
gateway, topic and payload.

    python benches/python_client.py                              # starts the debug gateway
    python benches/python_client.py --bin ~/.cache/livegate/target/release/livegate -t 5 --repeat 3
    python benches/python_client.py --url http://127.0.0.1:8080 --publisher http --api-key K

Each client runs alone, in its own process, one after the other:

- ``websockets``: ``websockets.asyncio.client.connect`` to ``/ws`` (subprotocol
  ``livegate.v1.json`` or ``.msgpack``), one subscribe frame, then every
  frame decoded (``json.loads`` / ``msgpack.unpackb``) and counted when it is
  a publication.
- ``livegate``: ``livegate.Client(url, transports=["websocket"])``,
  ``async for pub in client.subscribe(topic)`` (each ``pub.data`` decoded to
  Python objects by the package).
- ``livegate-sync``: ``livegate.SyncClient``, ``for pub in subscription``.
- ``livegate-batch``: ``livegate.SyncClient``, ``subscription.get()`` then
  ``subscription.drain()`` (everything ready, as a list), each item touched.

A publisher in this process blasts one fixed publication (``--size`` bytes
of JSON) as fast as the gateway takes it: pre-encoded WebSocket publish
frames written back to back (``--publisher ws``, needs a namespace with
``client_publish``: the gateway this script starts has one), or HTTP
``POST /api/publish/{topic}`` on several keep-alive connections
(``--publisher http``). It never runs more than ``--max-lead`` publications
ahead of what the client has received, so the client always has a backlog
to read (it is measured at its own top speed) while the gateway's
per-connection queue (``--queue-size``) never overflows.

Counted: publications received in ``--duration`` seconds from the first one;
the client's own CPU time (all its threads) over the same span. On a small
or busy machine the clients, the gateway and the publisher share the cores:
pubs/CPU-s (how much a client costs per publication) is then steadier than
pubs/s. Which livegate build is measured is the one Python imports: a wheel
built with ``--profile dev`` is several times slower than a release one.
Performance is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

# The gateway process helper shared with the e2e suite.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from gateway_process import GatewayProcess  # noqa: E402

CLIENTS = ("websockets", "livegate", "livegate-sync", "livegate-batch")
DEFAULT_BIN = Path.home() / ".cache" / "livegate" / "target" / "debug" / "livegate"
RELEASE_BIN = Path.home() / ".cache" / "livegate" / "target" / "release" / "livegate"
GATEWAY_CONFIG = """\
[[namespaces]]
prefix = "bench."
history_size = 100
history_ttl_secs = 60
client_publish = true
"""


def make_payload(size: int) -> Dict[str, Any]:
    """A JSON object whose compact encoding is exactly ``size`` bytes (>= 32)."""
    base = {"seq": 0, "host": "bench-1", "cpu": 42.5, "pad": ""}
    empty = len(json.dumps(base, separators=(",", ":")))
    base["pad"] = "x" * max(0, size - empty)
    return base


# -- clients (each in its own process) ------------------------------------------


class Counter:
    """Counts publications from the first one for ``duration`` seconds and
    shares the running count with the publisher (every 64, no lock)."""

    def __init__(self, shared, duration: float) -> None:
        self.shared = shared
        self.duration = duration
        self.n = 0
        self.t0 = 0.0
        self.cpu0 = 0.0
        self.deadline = float("inf")

    def hit(self) -> bool:
        """Counts one; True once the time is up."""
        n = self.n = self.n + 1
        if n == 1:
            self.t0 = time.perf_counter()
            self.cpu0 = time.process_time()
            self.deadline = self.t0 + self.duration
        if n & 63 == 0:
            self.shared.value = n
            now = time.perf_counter()
            if now >= self.deadline:
                self.t1, self.cpu1 = now, time.process_time()
                self.on_done()
                return True
        return False

    t1: Optional[float] = None
    cpu1 = 0.0
    on_done: Any = staticmethod(lambda: None)

    def result(self) -> Dict[str, Any]:
        # Up to the last publication counted (closing the connection is not).
        if self.t1 is None:
            self.t1, self.cpu1 = time.perf_counter(), time.process_time()
        return {"received": self.n, "elapsed": self.t1 - self.t0, "cpu": self.cpu1 - self.cpu0}


async def run_websockets(url: str, topic: str, encoding: str, counter: Counter, ready) -> None:
    import websockets.asyncio.client

    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    if encoding == "json":
        decode = json.loads
        subscribe: Any = json.dumps({"type": "subscribe", "topic": topic})
    else:
        import msgpack

        def decode(frame: bytes) -> Any:
            return msgpack.unpackb(frame, raw=False)

        subscribe = msgpack.packb({"type": "subscribe", "topic": topic})
    async with websockets.asyncio.client.connect(
        f"{scheme}://{parts.netloc}/ws",
        subprotocols=[f"livegate.v1.{encoding}"],
        compression=None,
        max_size=None,
        ping_interval=None,
    ) as ws:
        await ws.send(subscribe)
        async for message in ws:
            frame = decode(message)
            kind = frame["type"]
            if kind == "publication":
                if counter.hit():
                    return
            elif kind == "subscribed":
                ready.set()
            elif kind in ("error", "disconnect"):
                raise RuntimeError(f"gateway said {frame}")


async def run_livegate_async(url: str, topic: str, encoding: str, counter: Counter, ready) -> None:
    import livegate

    async with livegate.Client(url, transports=["websocket"], encoding=encoding) as client:
        sub = client.subscribe(topic, with_status=True)
        async for item in sub:
            if isinstance(item, livegate.Publication):
                item.data  # noqa: B018  (already decoded; touched like the other clients)
                if counter.hit():
                    return
            elif item.kind == "subscribed":
                ready.set()
            elif item.kind == "subscribe_failed":
                raise RuntimeError(f"subscribe failed: {item}")


def run_livegate_sync(url: str, topic: str, encoding: str, counter: Counter, ready) -> None:
    import livegate

    with livegate.SyncClient(url, transports=["websocket"], encoding=encoding) as client:
        sub = client.subscribe(topic, with_status=True)
        for item in sub:
            if isinstance(item, livegate.Publication):
                item.data  # noqa: B018
                if counter.hit():
                    return
            elif item.kind == "subscribed":
                ready.set()
            elif item.kind == "subscribe_failed":
                raise RuntimeError(f"subscribe failed: {item}")


def run_livegate_batch(url: str, topic: str, encoding: str, counter: Counter, ready) -> None:
    import livegate

    with livegate.SyncClient(url, transports=["websocket"], encoding=encoding) as client:
        sub = client.subscribe(topic, with_status=True)
        while True:
            first = sub.get(timeout=30)
            if first is None:
                raise RuntimeError("no publication within 30 s")
            for item in [first, *sub.drain(4096)]:
                if isinstance(item, livegate.Publication):
                    item.data  # noqa: B018
                    if counter.hit():
                        return
                elif item.kind == "subscribed":
                    ready.set()
                elif item.kind == "subscribe_failed":
                    raise RuntimeError(f"subscribe failed: {item}")


def _exit_with_parent() -> None:
    """Ends this client process if the bench goes away (even by SIGKILL):
    a livegate client would otherwise keep reconnecting forever."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def client_main(kind: str, url: str, topic: str, encoding: str, duration: float,
                shared, ready, results, profile: Optional[str]) -> None:
    _exit_with_parent()
    counter = Counter(shared, duration)
    try:
        if kind == "websockets":
            work = lambda: asyncio.run(run_websockets(url, topic, encoding, counter, ready))  # noqa: E731
        elif kind == "livegate":
            work = lambda: asyncio.run(run_livegate_async(url, topic, encoding, counter, ready))  # noqa: E731
        elif kind == "livegate-sync":
            work = lambda: run_livegate_sync(url, topic, encoding, counter, ready)  # noqa: E731
        else:
            work = lambda: run_livegate_batch(url, topic, encoding, counter, ready)  # noqa: E731
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            counter.on_done = prof.disable
            prof.runcall(work)
            prof.dump_stats(f"{profile}.{kind}.prof")
            with open(f"{profile}.{kind}.txt", "w") as f:
                pstats.Stats(prof, stream=f).sort_stats("tottime").print_stats(30)
            results.put({"client": kind, **counter.result()})
        else:
            # Reported as soon as the time is up: closing the connection is
            # not measured (a websockets client with a full receive queue
            # takes its close_timeout to close).
            counter.on_done = lambda: results.put({"client": kind, **counter.result()})
            work()
    except BaseException as e:  # reported by the parent
        results.put({"client": kind, "error": f"{type(e).__name__}: {e}", **counter.result()})


# -- publishers -------------------------------------------------------------------


class WsPublisher:
    """Writes pre-encoded, zero-masked WebSocket publish frames back to back
    on a raw socket and throws away what the gateway answers (acks)."""

    def __init__(self, url: str, topic: str, data: Dict[str, Any]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        body = json.dumps({"type": "publish", "topic": topic, "data": data},
                          separators=(",", ":")).encode()
        n = len(body)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 65536:
            head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        self.frame = head + b"\0\0\0\0" + body  # a zero mask leaves the payload as is
        self.sock: Optional[socket.socket] = None

    def connect(self) -> None:
        s = socket.create_connection((self.host, self.port), timeout=10)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: livegate.v1.json\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("the gateway closed the publisher's WebSocket handshake")
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"WebSocket handshake refused: {answer[:200]!r}")
        rest = answer.split(b"\r\n\r\n", 1)[1]
        s.settimeout(None)
        self.sock = s
        self.first_bytes = rest
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.sock is not None
        seen = self.first_bytes
        try:
            while True:
                if b"publish_forbidden" in seen or b'"type":"disconnect"' in seen:
                    self.error = seen[-300:]
                    return
                seen = self.sock.recv(1 << 16)
                if not seen:
                    return
        except OSError:
            return

    error: Optional[bytes] = None

    def send(self, count: int) -> None:
        assert self.sock is not None
        self.sock.sendall(self.frame * count)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


class HttpPublisher:
    """``POST /api/publish/{topic}`` on keep-alive connections, several threads."""

    def __init__(self, url: str, topic: str, data: Dict[str, Any], api_key: Optional[str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        body = json.dumps(data, separators=(",", ":")).encode()
        auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self.request = (f"POST /api/publish/{topic} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                        f"Content-Type: application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
                        ).encode() + body
        self.error: Optional[bytes] = None
        self.local = threading.local()

    def connect(self) -> None:
        pass

    def send(self, count: int) -> None:
        s = getattr(self.local, "sock", None)
        if s is None:
            s = self.local.sock = socket.create_connection((self.host, self.port), timeout=10)
        # Pipelined: hyper answers HTTP/1.1 requests in order.
        s.sendall(self.request * count)
        got, buf = 0, b""
        while got < count:
            chunk = s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("the gateway closed the publish connection")
            buf += chunk
            got = buf.count(b"HTTP/1.1 ")
        if b"HTTP/1.1 200" not in buf[:12]:
            self.error = buf[:300]

    def close(self) -> None:
        pass


def publish_until(pub, shared, stop: threading.Event, max_lead: int, chunk: int, stats: Dict[str, int],
                  lock: threading.Lock) -> None:
    while not stop.is_set():
        if pub.error:
            hint = " (no client_publish on this topic? try --publisher http)" if b"publish_forbidden" in pub.error else ""
            raise RuntimeError(f"the gateway refused the publishes{hint}: {pub.error!r}")
        with lock:
            if stats["sent"] - shared.value > max_lead:
                wait = True
            else:
                stats["sent"] += chunk
                wait = False
        if wait:
            t = time.perf_counter()
            time.sleep(0.0005)
            with lock:
                stats["lead_wait"] += time.perf_counter() - t
            continue
        pub.send(chunk)


# -- gateway ----------------------------------------------------------------------


class Gateway:
    def __init__(self, binary: Path, queue_size: int) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="lg-pybench-")
        config = Path(self.dir.name) / "bench.toml"
        config.write_text(GATEWAY_CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEGATE_")}
        self.log = open(Path(self.dir.name) / "gateway.log", "wb")
        try:
            self.process = GatewayProcess(
                [str(binary), "serve", "--listen", "127.0.0.1:0", "--no-system-publisher", "--no-wt",
                 "--config", str(config), "--queue-size", str(queue_size), "--log", "warn", "--memory"],
                stderr=self.log, env=env)
        except RuntimeError as e:
            self.log.close()
            self.dir.cleanup()
            raise SystemExit(str(e)) from None
        self.url = self.process.url

    def stop(self) -> None:
        self.process.stop()
        self.log.close()
        self.dir.cleanup()


# -- one measurement ---------------------------------------------------------------


def measure(kind: str, args, url: str, topic: str, data: Dict[str, Any]) -> Dict[str, Any]:
    ctx = mp.get_context("spawn")
    shared = ctx.Value("q", 0, lock=False)
    ready = ctx.Event()
    results = ctx.Queue()
    proc = ctx.Process(target=client_main, name=f"bench-{kind}", daemon=True,
                       args=(kind, url, topic, args.encoding, args.duration, shared, ready, results,
                             args.profile))
    proc.start()
    stop = threading.Event()
    stats: Dict[str, Any] = {"sent": 0, "lead_wait": 0.0}
    lock = threading.Lock()
    publishers = []
    threads = []
    errors: List[BaseException] = []
    try:
        if not ready.wait(20):
            raise RuntimeError(f"{kind}: not subscribed within 20 s")
        nthreads = 1 if args.publisher == "ws" else 4
        for _ in range(nthreads):
            pub = (WsPublisher(url, topic, data) if args.publisher == "ws"
                   else HttpPublisher(url, topic, data, args.api_key))
            pub.connect()
            publishers.append(pub)

        def run(p):
            try:
                publish_until(p, shared, stop, args.max_lead, args.chunk, stats, lock)
            except BaseException as e:
                errors.append(e)
                stop.set()

        t_start = time.perf_counter()
        for p in publishers:
            t = threading.Thread(target=run, args=(p,), daemon=True)
            t.start()
            threads.append(t)
        deadline = time.monotonic() + args.duration + 20
        result = None
        while time.monotonic() < deadline:
            if errors:
                break
            try:
                result = results.get(timeout=0.2)
                break
            except Exception:
                if not proc.is_alive():
                    break
        t_total = time.perf_counter() - t_start
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for p in publishers:
            p.close()
        proc.join(3)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if errors:
        raise SystemExit(f"{kind}: publisher failed: {errors[0]}")
    if result is None:
        raise SystemExit(f"{kind}: no result (client exit code {proc.exitcode})")
    if "error" in result:
        raise SystemExit(f"{kind}: client failed after {result['received']}: {result['error']}")
    el = max(result["elapsed"], 1e-9)
    return {
        "client": kind,
        "received": result["received"],
        "seconds": round(el, 3),
        "pubs_per_s": result["received"] / el,
        "client_cpu_percent": 100.0 * result["cpu"] / el,
        "pubs_per_cpu_s": result["received"] / max(result["cpu"], 1e-9),
        "published": stats["sent"],
        # Share of the time the publisher waited, --max-lead ahead of the
        # client: low means the publisher was the limit.
        "publisher_waited_percent": min(100.0, 100.0 * stats["lead_wait"] / len(publishers) / max(t_total, 1e-9)),
    }


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running gateway (http://host:port); else one is started from --bin")
    ap.add_argument("--bin", type=Path, default=None,
                    help=f"gateway binary to start (default {DEFAULT_BIN}; a release build is better)")
    ap.add_argument("-t", "--duration", type=float, default=5.0, help="seconds counted per client (default 5)")
    ap.add_argument("-s", "--size", type=int, default=256, help="payload bytes, JSON (default 256)")
    ap.add_argument("-e", "--encoding", choices=("json", "msgpack"), default="json",
                    help="frame encoding of both clients (default json)")
    ap.add_argument("--clients", default=",".join(CLIENTS),
                    help=f"comma separated, from {','.join(CLIENTS)} (default all, in this order)")
    ap.add_argument("--publisher", choices=("ws", "http"), default="ws",
                    help="publish over a WebSocket (needs client_publish on the topic) or HTTP")
    ap.add_argument("--api-key", help="for --publisher http against a gateway with an API key")
    ap.add_argument("--topic", default="bench.pyclient", help="default bench.pyclient")
    ap.add_argument("--queue-size", type=int, default=16384,
                    help="--queue-size of the gateway started here (default 16384)")
    ap.add_argument("--max-lead", type=int, default=None,
                    help="most publications ahead of the client (default 4000; 500 with --url, "
                         "under the gateway's default queue of 1024)")
    ap.add_argument("--chunk", type=int, default=50, help="publications per write (default 50)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of all clients; the median of each is reported (default 1)")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="also write the results as JSON (to FILE, or stdout)")
    ap.add_argument("--profile", metavar="PREFIX",
                    help="run each client under cProfile: PREFIX.<client>.prof and .txt (slows them)")
    args = ap.parse_args(argv)
    # SIGTERM (a test's teardown) runs the cleanup below: the gateway is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.size < 32:
        ap.error("--size must be at least 32")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    kinds = [k.strip() for k in args.clients.split(",") if k.strip()]
    for k in kinds:
        if k not in CLIENTS:
            ap.error(f"unknown client {k!r}; choose from {', '.join(CLIENTS)}")
    if args.max_lead is None:
        args.max_lead = 500 if args.url else 4000

    gateway = None
    binary = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        binary = args.bin or DEFAULT_BIN
        if not binary.is_file():
            raise SystemExit(f"no gateway binary at {binary} (give --bin or --url)")
        gateway = Gateway(binary, args.queue_size)
        url = gateway.url
    data = make_payload(args.size)
    runs: Dict[str, List[Dict[str, Any]]] = {k: [] for k in kinds}
    try:
        # Rounds interleave the clients, so that load from elsewhere on the
        # machine spreads over all of them; the median round is reported.
        for _ in range(args.repeat):
            for kind in kinds:
                runs[kind].append(measure(kind, args, url, args.topic, data))
    finally:
        if gateway is not None:
            gateway.stop()
    rows = []
    for kind in kinds:
        ordered = sorted(runs[kind], key=lambda r: r["pubs_per_s"])
        row = dict(ordered[len(ordered) // 2])
        row["runs"] = [round(r["pubs_per_s"]) for r in runs[kind]]
        row["runs_pubs_per_cpu_s"] = [round(r["pubs_per_cpu_s"]) for r in runs[kind]]
        rows.append(row)

    base = next((r["pubs_per_s"] for r in rows if r["client"] == "websockets"), None)
    for r in rows:
        r["vs_websockets"] = (r["pubs_per_s"] / base) if base else None
    build = "release" if binary and "release" in str(binary) else ("debug" if binary else "external")
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"gateway: {url} ({build}{': ' + str(binary) if binary else ''}), publisher {args.publisher}, "
          f"{args.size}-byte JSON payload, {args.encoding} frames, {args.duration:g} s per client, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
          + (f", median of {args.repeat} rounds" if args.repeat > 1 else ""), file=out)
    head = (f"{'client':<14} {'received':>9} {'pubs/s':>10} {'vs websockets':>14} {'client CPU':>11} "
            f"{'pubs/CPU-s':>11}")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        ratio = f"{r['vs_websockets']:.2f}x" if r["vs_websockets"] else "-"
        print(f"{r['client']:<14} {r['received']:>9} {r['pubs_per_s']:>10.0f} {ratio:>14} "
              f"{r['client_cpu_percent']:>10.0f}% {r['pubs_per_cpu_s']:>11.0f}"
              + (f"   rounds: {', '.join(str(x) for x in r['runs'])}" if args.repeat > 1 else ""),
              file=out)
    print("client CPU: the client process's CPU time (all its threads) over the counted span; a client "
          "well under 100% waited for publications or for a core (the gateway, the publisher or other "
          "load on the machine was the limit)", file=out)
    if build == "debug":
        print("note: debug gateway; its delivery rate, not the clients, may be what is measured", file=out)
    if args.json:
        doc = {"url": url, "binary": str(binary) if binary else None, "build": build,
               "repeat": args.repeat, "load_average": os.getloadavg(),
               "publisher": args.publisher, "size": args.size, "encoding": args.encoding,
               "duration": args.duration, "cpus": os.cpu_count(), "results": rows}
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
