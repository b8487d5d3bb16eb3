"""The Python examples (examples/python) and the client bench
(benches/python_client.py), run for real against the real gateway.

- The FastAPI service-health publisher under uvicorn (a subprocess on a free
  loopback port): a service that flips makes a `health_change` that a
  livegate.Client receives; `snapshot_update`s arrive; its HTTP API works.
- The Streamlit dashboard rendered headless with AppTest against a gateway
  whose system publisher runs every 200 ms: the metrics shown are the
  gateway's `$sys.cpu` / `$sys.memory` publications, the charts have data.
- A 1-second smoke of the bench: it completes and both clients received.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import httpx
import pytest

import livegate

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "python"
BENCH = ROOT / "benches" / "python_client.py"
API_KEY = "example-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlappingService:
    """An HTTP service on loopback whose answer the test sets (200 or 503)."""

    def __init__(self) -> None:
        self.code = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = b'{"ok": true}' if owner.code < 400 else b'{"ok": false}'
                self.send_response(owner.code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flapping():
    svc = FlappingService()
    yield svc
    svc.close()


async def next_matching(sub: livegate.Subscription, pred: Callable[[Any], bool], timeout: float,
                        seen: Optional[list] = None) -> livegate.Publication:
    """The next publication of `sub` for which pred is true, within `timeout` seconds."""
    async def find() -> livegate.Publication:
        async for pub in sub:
            if seen is not None:
                seen.append(pub)
            if pred(pub):
                return pub
        raise AssertionError(f"subscription to {sub.topic} ended")

    try:
        return await asyncio.wait_for(find(), timeout)
    except asyncio.TimeoutError:
        got = [(p.event, p.data) for p in (seen or [])][-10:]
        raise AssertionError(f"nothing matching on {sub.topic} within {timeout} s; last seen: {got}") from None


def start_fastapi(procs, tmp_path: Path, env_extra: Dict[str, str]) -> tuple:
    port = free_port()
    env = dict(os.environ)
    env.update(env_extra)
    log_path = tmp_path / "fastapi.log"
    log = open(log_path, "wb")
    try:
        p = procs(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(EXAMPLES),
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT)))
    finally:
        log.close()
    return p, f"http://127.0.0.1:{port}", log_path


def wait_http_ok(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log_path.read_text()}")


@pytest.mark.timeout(90)
def test_fastapi_health_publisher(gateway_factory, procs, tmp_path, flapping):
    gw = gateway_factory("--no-wt", "--api-key", API_KEY)
    services = [
        {"name": "billing", "kind": "http", "target": flapping.url},
        {"name": "gateway", "kind": "tcp", "target": f"127.0.0.1:{gw.port}"},
    ]

    async def scenario() -> None:
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            changes = client.subscribe("health.changes")
            snapshots = client.subscribe("health.snapshot")
            # Subscribed (live) before the app starts: its first publications are seen.
            status = client.status()
            deadline = time.monotonic() + 10
            live = set()
            while live != {"health.changes", "health.snapshot"}:
                ev = await asyncio.wait_for(status.__anext__(), max(0.1, deadline - time.monotonic()))
                if ev.kind == "subscribed":
                    live.add(ev.topic)
            status.close()

            proc, app_url, log_path = start_fastapi(procs, tmp_path, {
                "LIVEGATE_URL": gw.http,
                "LIVEGATE_API_KEY": API_KEY,
                "HEALTH_SERVICES": json.dumps(services),
                "HEALTH_CHECK_INTERVAL": "0.2",
                "HEALTH_SNAPSHOT_INTERVAL": "0.5",
                "HEALTH_PROBE_TIMEOUT": "2",
            })
            try:
                await asyncio.to_thread(wait_http_ok, f"{app_url}/healthz", proc, log_path)
                seen: list = []

                # First probe: unknown -> up, for both services.
                first = await next_matching(
                    changes, lambda p: p.data["service"] == "billing", 15, seen)
                assert first.event == "health_change"
                assert (first.data["old_status"], first.data["new_status"]) == ("unknown", "up")
                assert first.data["detail"] == "HTTP 200"
                await next_matching(changes, lambda p: p.data["service"] == "gateway"
                                    and p.data["new_status"] == "up", 15, seen)

                snap = await next_matching(
                    snapshots, lambda p: {s["service"]: s["status"] for s in p.data["services"]}
                    == {"billing": "up", "gateway": "up"}, 15)
                assert snap.event == "snapshot_update"
                assert snap.data["overall"] == "up" and snap.data["counts"]["up"] == 2

                # The service flips: exactly one health_change up -> down.
                flapping.code = 503
                down = await next_matching(changes, lambda p: p.data["service"] == "billing", 15, seen)
                assert down.event == "health_change"
                assert (down.data["old_status"], down.data["new_status"]) == ("up", "down")
                assert down.data["detail"] == "HTTP 503"
                assert down.data["checked_at"].endswith("Z") and down.time_ms > first.time_ms
                snap = await next_matching(
                    snapshots, lambda p: any(s["service"] == "billing" and s["status"] == "down"
                                             for s in p.data["services"]), 15)
                assert snap.data["overall"] == "down"

                # And back.
                flapping.code = 200
                up = await next_matching(changes, lambda p: p.data["service"] == "billing", 15, seen)
                assert (up.data["old_status"], up.data["new_status"]) == ("down", "up")

                # The HTTP API: the snapshot, and a service added at runtime.
                async with httpx.AsyncClient(base_url=app_url, timeout=5) as http:
                    body = (await http.get("/health/snapshot")).json()
                    assert {s["service"] for s in body["services"]} == {"billing", "gateway"}
                    closed = free_port()
                    res = await http.post("/services", json={
                        "name": "cache", "kind": "tcp", "target": f"127.0.0.1:{closed}"})
                    assert res.status_code == 201, res.text
                    assert (await http.post("/services", json={
                        "name": "cache", "kind": "tcp", "target": "127.0.0.1:1"})).status_code == 409
                    assert (await http.post("/services", json={
                        "name": "bad", "kind": "tcp", "target": "no-port"})).status_code == 422
                    added = await next_matching(changes, lambda p: p.data["service"] == "cache", 15, seen)
                    assert (added.data["old_status"], added.data["new_status"]) == ("unknown", "down")
                    deadline = time.monotonic() + 15
                    while True:
                        body = (await http.get("/health/snapshot")).json()
                        if any(s["service"] == "cache" for s in body["services"]):
                            break
                        assert time.monotonic() < deadline, body
                        await asyncio.sleep(0.2)
                    health = (await http.get("/healthz")).json()
                    assert health["gateway_reachable"] is True and health["published"] >= 5

                # Only flips were published: billing went unknown->up->down->up.
                billing = [(p.data["old_status"], p.data["new_status"]) for p in seen
                           if p.data["service"] == "billing"]
                assert billing == [("unknown", "up"), ("up", "down"), ("down", "up")]
            except BaseException:
                print(log_path.read_text())
                raise

    asyncio.run(scenario())


class Forwarder:
    """A stable loopback address in front of the gateway (a restarted gateway
    gets a new port): forwards each TCP connection to `upstream` (a port),
    or drops it at once while `upstream` is None."""

    def __init__(self, upstream: int) -> None:
        self.upstream: Optional[int] = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.upstream is None:
                raise OSError("gateway down")
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        except OSError:
            conn.close()
            return
        up.settimeout(None)

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for x in (a, b):
                    try:
                        x.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
        pipe(conn, up)
        conn.close()
        up.close()

    def close(self) -> None:
        self.closed = True
        self.sock.close()


@pytest.mark.timeout(60)
def test_fastapi_keeps_going_while_the_gateway_is_down(gateway_factory, procs, tmp_path, flapping):
    """Gateway down: the app keeps probing and serving; the change that
    happened meanwhile is published once the gateway is back (--memory:
    the restarted gateway comes back with a fresh history)."""
    gw = gateway_factory("--no-wt", "--api-key", API_KEY, "--memory")
    fwd = Forwarder(gw.port)
    try:
        proc, app_url, log_path = start_fastapi(procs, tmp_path, {
            "LIVEGATE_URL": f"http://127.0.0.1:{fwd.port}",
            "LIVEGATE_API_KEY": API_KEY,
            "HEALTH_SERVICES": json.dumps([{"name": "billing", "kind": "http", "target": flapping.url}]),
            "HEALTH_CHECK_INTERVAL": "0.2",
            "HEALTH_SNAPSHOT_INTERVAL": "0.5",
        })
        wait_http_ok(f"{app_url}/healthz", proc, log_path)
        deadline = time.monotonic() + 15
        while httpx.get(f"{app_url}/healthz", timeout=2).json()["published"] < 2:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

        fwd.upstream = None
        gw.stop()
        flapping.code = 503  # flips while the gateway is away
        deadline = time.monotonic() + 15
        while httpx.get(f"{app_url}/health/snapshot", timeout=2).json()["services"][0]["status"] != "down":
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # a few failed publishes
        assert proc.poll() is None
        assert httpx.get(f"{app_url}/healthz", timeout=2).json()["waiting"] >= 1

        gw.start()  # a new port behind the same address
        fwd.upstream = gw.port

        def changes() -> list:
            r = httpx.get(f"{gw.http}/api/topics/health.changes/history", timeout=2)
            return [(p["data"]["old_status"], p["data"]["new_status"]) for p in r.json()["publications"]]

        deadline = time.monotonic() + 30
        while ("up", "down") not in changes():
            assert time.monotonic() < deadline, f"{changes()}\n{log_path.read_text()}"
            time.sleep(0.2)
        assert proc.poll() is None
        # The restarted gateway has a fresh history: the waiting change is its first.
        assert changes()[0] == ("up", "down")
    finally:
        fwd.close()


# -- Streamlit -------------------------------------------------------------------------


def _float(text: str) -> float:
    return float(text.split()[0])


def _chart_rows(element) -> int:
    import pyarrow as pa

    rows = 0
    proto = element.proto
    for ds in proto.datasets:
        if ds.data.data:
            rows += pa.ipc.open_stream(io.BytesIO(ds.data.data)).read_all().num_rows
    if proto.data.data:
        rows += pa.ipc.open_stream(io.BytesIO(proto.data.data)).read_all().num_rows
    return rows


@pytest.mark.timeout(60)
def test_streamlit_dashboard_shows_live_system_metrics(gateway_factory, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    gw = gateway_factory("--no-wt", "--system-interval-ms", "200", system_publisher=True)
    monkeypatch.setenv("LIVEGATE_URL", gw.http)
    monkeypatch.setenv("LIVEGATE_WINDOW", "10")
    at = AppTest.from_file(str(EXAMPLES / "streamlit_app.py"), default_timeout=20)
    try:
        at.run()
        assert not at.exception, at.exception
        # The window fills in the background; each rerun only reads it.
        deadline = time.monotonic() + 20
        while True:
            captions = [c.value for c in at.caption]
            if any("window 10/10" in c for c in captions):
                break
            assert time.monotonic() < deadline, f"window never filled: {captions} {[m.value for m in at.markdown]}"
            time.sleep(0.3)
            at.run()
            assert not at.exception, at.exception
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception

        assert any("connected" in m.value and "Gateway" in m.value for m in at.markdown), \
            [m.value for m in at.markdown]
        metrics = {m.label: m.value for m in at.metric}
        cpu, mem = _float(metrics["CPU"]), _float(metrics["Memory"])
        assert metrics["CPU"].endswith("%") and 0.0 <= cpu <= 100.0
        assert 0.0 < mem <= 100.0

        # The values are the gateway's publications at the offsets the page names.
        caption = next(c.value for c in at.caption if "offset" in c.value)
        words = caption.replace("`", "").split()
        cpu_offset = int(words[words.index("$sys.cpu") + 2])
        mem_offset = int(words[words.index("$sys.memory") + 2])

        def publication(topic: str, offset: int) -> Dict[str, Any]:
            r = httpx.get(f"{gw.http}/api/topics/{topic}/history", params={"limit": 1000}, timeout=5)
            pubs = {p["offset"]: p for p in r.json()["publications"]}
            assert offset in pubs, (topic, offset, sorted(pubs)[-5:])
            return pubs[offset]["data"]

        cpu_data = publication("$sys.cpu", cpu_offset)
        assert cpu == pytest.approx(cpu_data["usage_percent"], abs=0.051)
        mem_data = publication("$sys.memory", mem_offset)
        assert mem == pytest.approx(100.0 * mem_data["used_bytes"] / mem_data["total_bytes"], abs=0.051)
        assert _float(metrics["Memory used"]) == pytest.approx(mem_data["used_bytes"] / 1024**3, abs=0.006)

        charts = at.get("vega_lite_chart")
        assert len(charts) == 2
        # CPU: total + one series per core, 10 points each; memory: 10 points.
        assert _chart_rows(charts[0]) >= 10 * (1 + len(cpu_data["cores"]))
        assert _chart_rows(charts[1]) == 10
    finally:
        st.cache_resource.clear()  # closes the app's client (on_release)


# -- bench smoke -------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_bench_python_client_smoke(livegate_bin, procs, tmp_path):
    """The bench runs end to end (1 s per client); never a timed assertion."""
    out = tmp_path / "bench.json"
    p = procs(subprocess.Popen(
        [sys.executable, str(BENCH), "--bin", str(livegate_bin), "--duration", "1",
         "--clients", "websockets,livegate", "--json", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(ROOT)))
    try:
        text, _ = p.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        raise AssertionError("the bench did not finish within 100 s")
    assert p.returncode == 0, text.decode(errors="replace")
    doc = json.loads(out.read_text())
    counts = {r["client"]: r["received"] for r in doc["results"]}
    assert counts["websockets"] > 0 and counts["livegate"] > 0, doc
    assert "pubs/s" in text.decode()
