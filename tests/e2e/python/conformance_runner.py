"""Runs the shared client conformance scenarios (tests/conformance) through
the Python package `livegate` (asyncio `livegate.Client`).

It mirrors the Rust runner (gateway/tests/conformance.rs) step for step:
the real gateway, the fault proxy (`livegate-faultproxy`) in front of it on
loopback, the client under test pointed at the proxy, publications made over
HTTP straight to the gateway with ``data = {"n": N, "pad": "x" * pad}``.

What the app sees is recorded from the public API only:

- ``client.status()``: state changes (with the transport a connection opened
  on), ``subscribed`` and ``recovered`` events;
- ``client.subscribe(topic, with_status=True)`` for every scenario topic: its
  publications (the ``n`` values) and its own ``subscribed``/``recovered``
  events, which must agree with the status stream.

Every wait is bounded, and every process started here is stopped by its pid
(the gateways through ``gateway_factory``, the proxy through ``procs``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import livegate

SCENARIOS_PATH = Path(__file__).resolve().parents[2] / "conformance" / "scenarios.json"

#: What the Rust runner uses when a scenario does not say.
DEFAULT_TRANSPORTS = ["ws", "sse", "poll"]
DEFAULT_BACKOFF_MS = (500, 20_000)

#: Client settings of scenarios.json (milliseconds) and the `livegate.Client`
#: option (seconds) each maps to; absent ones keep the engine defaults, as in
#: the Rust runner.
CLIENT_SETTINGS = {
    "heartbeat_margin_ms": "heartbeat_margin",
    "upgrade_probe_ms": "upgrade_probe",
    "connect_timeout_ms": "connect_timeout",
}

#: Whole-scenario bound, as in the Rust runner.
SCENARIO_TIMEOUT_S = 120.0


class StepFailed(AssertionError):
    pass


def load_scenarios() -> list[dict]:
    doc = json.loads(SCENARIOS_PATH.read_text())
    assert doc.get("version") == 1, f"unknown scenarios.json version {doc.get('version')}"
    return doc["scenarios"]


def variants() -> list[tuple[dict, Optional[list[str]], str]]:
    """(scenario, transports from its matrix or None, test id) for every run."""
    out = []
    for sc in load_scenarios():
        matrix = sc.get("matrix")
        if matrix:
            for entry in matrix:
                out.append((sc, list(entry), f"{sc['name']}-{'+'.join(entry)}"))
        else:
            tr = sc.get("client", {}).get("transports", DEFAULT_TRANSPORTS)
            out.append((sc, None, f"{sc['name']}-{'+'.join(tr)}"))
    return out


def client_settings(scenario: dict) -> dict[str, float]:
    """The scenario's engine settings as `livegate.Client` keyword arguments."""
    c = scenario.get("client", {})
    return {opt: c[k] / 1000.0 for k, opt in CLIENT_SETTINGS.items() if k in c}


# --------------------------------------------------------------------------
# Fault proxy


class FaultProxy:
    """`livegate-faultproxy`, driven over its stdin; stopped by pid."""

    def __init__(self, binary: Path, upstream: str, register: Callable[[subprocess.Popen], Any]):
        if not binary.is_file():
            raise RuntimeError(
                f"{binary} is missing: build it with `cargo build -p livegate-faultproxy` "
                "(CARGO_TARGET_DIR=$HOME/.cache/livegate/target)")
        self.proc = register(subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--upstream", upstream],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._lock = threading.Lock()
        self.stderr: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, daemon=True,
                             name=f"faultproxy-out-{self.proc.pid}"),
            threading.Thread(target=self._pump_err, daemon=True,
                             name=f"faultproxy-err-{self.proc.pid}"),
        ]
        for t in self._pumps:
            t.start()
        first = self._read(10.0)
        prefix = "faultproxy listening on "
        if first is None or not first.startswith(prefix):
            self.stop()
            raise RuntimeError(f"fault proxy: unexpected first line {first!r}; "
                               f"stderr: {''.join(self.stderr)}")
        self.addr = first[len(prefix):]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").strip())
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode("utf-8", "replace"))

    def _read(self, timeout: float) -> Optional[str]:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def command(self, cmd: str, timeout: float = 10.0) -> str:
        """Sends one command; returns its answer line."""
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(cmd.encode() + b"\n")
            self.proc.stdin.flush()
            answer = self._read(timeout)
        if answer is None:
            raise StepFailed(f"fault proxy gave no answer to {cmd!r} within {timeout} s "
                             f"(exit={self.proc.poll()}); stderr: {''.join(self.stderr)[-2000:]}")
        return answer

    def accepted(self) -> int:
        try:
            return int(json.loads(self.command("stats")).get("accepted", 0))
        except ValueError:
            return 0

    def stop(self) -> None:
        """EOF on stdin makes it exit; SIGTERM/SIGKILL by pid otherwise."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        for t in self._pumps:
            t.join(timeout=2)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


# --------------------------------------------------------------------------
# HTTP to the gateway (not through the proxy)


def http_request(port: int, method: str, path: str, body: Optional[bytes] = None,
                 timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def publish_http(port: int, topic: str, first: int, count: int, pad: int,
                 interval_s: float, stop: threading.Event) -> None:
    """POST /api/publish/{topic} with {"n": N, "pad": ...} for N in first..first+count.
    No retries (a retry could publish twice); raises on the first failure."""
    padding = "x" * pad
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)
    try:
        for n in range(first, first + count):
            if stop.is_set():
                raise RuntimeError(f"publishing stopped before n={n}")
            body = json.dumps({"n": n, "pad": padding}).encode()
            conn.request("POST", f"/api/publish/{topic}", body=body,
                         headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            answer = res.read()
            if res.status != 200:
                raise RuntimeError(f"publish {n} answered {res.status}: {answer[:200]!r}")
            if res.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)
            if interval_s > 0:
                time.sleep(interval_s)
    finally:
        conn.close()


# --------------------------------------------------------------------------
# What the app saw


@dataclass
class Recorder:
    #: (state, reason code, transport when opened, message)
    states: list[tuple[str, str, Optional[str], str]] = field(default_factory=list)
    received: dict[str, list[int]] = field(default_factory=dict)
    #: topics with a `subscribed` event: on client.status() / on the subscription
    subscribed_status: set[str] = field(default_factory=set)
    subscribed_sub: set[str] = field(default_factory=set)
    #: (topic, recovered): on client.status() / on the subscription
    recovered_status: list[tuple[str, bool]] = field(default_factory=list)
    recovered_sub: list[tuple[str, bool]] = field(default_factory=list)
    other_status: list[Any] = field(default_factory=list)
    #: exceptions raised by the reader tasks
    reader_errors: list[str] = field(default_factory=list)

    def last_states(self, n: int = 6) -> list:
        return [s[:3] for s in self.states[-n:]]


class Run:
    def __init__(self, scenario: dict, transports: Optional[list[str]], gateway_factory,
                 proxy_bin: Path, register_proc):
        self.scenario = scenario
        gw = scenario.get("gateway", {})
        self.gateway = gateway_factory(*gw.get("args", []), config=gw.get("config"))
        self.proxy = FaultProxy(proxy_bin, f"127.0.0.1:{self.gateway.port}", register_proc)
        c = scenario.get("client", {})
        self.transports = transports or c.get("transports") or DEFAULT_TRANSPORTS
        self.topics = list(c.get("topics", []))
        self.backoff_ms = (c.get("backoff_min_ms", DEFAULT_BACKOFF_MS[0]),
                           c.get("backoff_max_ms", DEFAULT_BACKOFF_MS[1]))
        self.rec = Recorder()
        self.published: dict[str, int] = {}
        self.background: list[tuple[asyncio.Future, threading.Event]] = []
        self.acks: list[asyncio.Task] = []
        self.client: Optional[livegate.Client] = None
        self.tasks: list[asyncio.Task] = []
        self.subs: list[Any] = []
        self.status = None

    # -- client and its readers --------------------------------------------
    def start_client(self) -> None:
        self.client = livegate.Client(
            f"http://{self.proxy.addr}",
            transports=self.transports,
            encoding="msgpack",
            backoff=(self.backoff_ms[0] / 1000.0, self.backoff_ms[1] / 1000.0),
            topics=self.topics,
            **client_settings(self.scenario),
        )
        # Registered right after the client is made (before any I/O answer
        # can come back); the first `connecting` change may already be gone,
        # which no step waits for (wait_state falls back to client.state).
        self.status = self.client.status()
        self.tasks.append(asyncio.create_task(self._read_status(self.status)))
        for t in self.topics:
            sub = self.client.subscribe(t, with_status=True)
            self.subs.append(sub)
            self.rec.received[t] = []
            self.tasks.append(asyncio.create_task(self._read_subscription(t, sub)))

    async def _read_status(self, stream) -> None:
        try:
            async for ev in stream:
                if ev.kind == "state":
                    opened = ev.transport if ev.code == "opened" else None
                    self.rec.states.append((ev.state, ev.code or "", opened, ev.message or ""))
                elif ev.kind == "subscribed":
                    self.rec.subscribed_status.add(ev.topic)
                elif ev.kind == "recovered":
                    self.rec.recovered_status.append((ev.topic, bool(ev.recovered)))
                else:
                    self.rec.other_status.append(ev)
        except Exception as e:  # noqa: BLE001 - reported by the steps
            self.rec.reader_errors.append(f"status(): {e!r}")

    async def _read_subscription(self, topic: str, sub) -> None:
        got = self.rec.received[topic]
        try:
            async for item in sub:
                if isinstance(item, livegate.Publication):
                    data = item.data
                    n = data.get("n", 0) if isinstance(data, dict) else 0
                    got.append(int(n))
                elif item.kind == "subscribed":
                    self.rec.subscribed_sub.add(topic)
                elif item.kind == "recovered":
                    self.rec.recovered_sub.append((topic, bool(item.recovered)))
                else:
                    self.rec.other_status.append(item)
        except Exception as e:  # noqa: BLE001 - reported by the steps
            self.rec.reader_errors.append(f"subscribe({topic!r}): {e!r}")

    # -- helpers -----------------------------------------------------------
    async def wait(self, timeout_s: float, what: str, ok: Callable[[Recorder], bool]) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if ok(self.rec):
                return
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"timed out after {timeout_s:.1f}s waiting for {what}; "
                    f"states: {self.rec.last_states()}; client.state={self.client.state!r}; "
                    f"reader errors: {self.rec.reader_errors}")
            await asyncio.sleep(0.01)

    def current_state(self) -> tuple[str, str, Optional[str]]:
        if self.rec.states:
            return self.rec.states[-1][:3]
        # Nothing recorded yet (only the first `connecting` can come before
        # the status stream is registered): what the client says now.
        return (self.client.state, "", None)

    # -- steps -------------------------------------------------------------
    async def step(self, s: dict) -> None:
        op = s["op"]
        timeout_s = s.get("timeout_ms", 10_000) / 1000.0
        topic = s.get("topic", "")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise StepFailed(f"unknown op {op}")
        await handler(s, topic, timeout_s)

    async def op_wait_state(self, s, topic, timeout_s):
        want, tr, reason = s["state"], s.get("transport"), s.get("reason")

        def ok(_r):
            st, code, t = self.current_state()
            return st == want and (tr is None or t == tr) and (reason is None or code == reason)

        await self.wait(timeout_s, f"state {want} transport={tr} reason={reason}", ok)

    async def op_wait_subscribed(self, s, topic, timeout_s):
        await self.wait(timeout_s, f"subscribed to {topic} (on status() and on the subscription)",
                        lambda r: topic in r.subscribed_status and topic in r.subscribed_sub)

    async def op_publish(self, s, topic, timeout_s):
        count = int(s["count"])
        first = self.published.get(topic, 0) + 1
        self.published[topic] = first + count - 1
        stop = threading.Event()
        fut = asyncio.ensure_future(asyncio.to_thread(
            publish_http, self.gateway.port, topic, first, count, int(s.get("pad_bytes", 0)),
            s.get("interval_ms", 0) / 1000.0, stop))
        if s.get("background"):
            self.background.append((fut, stop))
        else:
            try:
                await fut
            except Exception as e:
                raise StepFailed(f"publishing over HTTP failed: {e}") from e

    async def op_wait_publisher(self, s, topic, timeout_s):
        while self.background:
            fut, _ = self.background.pop(0)
            try:
                await asyncio.wait_for(asyncio.shield(fut), 60.0)
            except asyncio.TimeoutError:
                raise StepFailed("background publishing did not finish within 60 s") from None
            except Exception as e:
                raise StepFailed(f"background publishing failed: {e}") from e

    async def op_expect_received(self, s, topic, timeout_s):
        count = int(s["count"])
        await self.wait(timeout_s, f"{count} publications on {topic}",
                        lambda r: len(r.received.get(topic, [])) >= count)
        # Anything doubled would show up right behind.
        await asyncio.sleep(0.1)
        got = list(self.rec.received.get(topic, []))
        want = list(range(1, count + 1))
        if got != want:
            first_bad = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                             min(len(got), count))
            dups = len(got) - len(set(got))
            missing = sorted(set(want) - set(got))
            raise StepFailed(
                f"received {len(got)} publications on {topic}, expected exactly 1..={count} "
                f"in order; first difference at index {first_bad} (from there: "
                f"{got[first_bad:first_bad + 5]}); {dups} duplicates, "
                f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}")

    async def op_expect_recovered(self, s, topic, timeout_s):
        want = bool(s["recovered"])
        await self.wait(
            timeout_s, f"recovered={want} on {topic} (on status() and on the subscription)",
            lambda r: (topic, want) in r.recovered_status and (topic, want) in r.recovered_sub)

    async def op_expect_reconnects(self, s, topic, timeout_s):
        at_least = int(s.get("at_least", 1))
        n = sum(1 for st in self.rec.states if st[0] == "reconnecting")
        if n < at_least:
            raise StepFailed(f"{n} reconnects, expected at least {at_least}; "
                             f"states: {self.rec.last_states(12)}")

    async def op_fault(self, s, topic, timeout_s):
        cmd = s["command"]
        answer = await asyncio.to_thread(self.proxy.command, cmd)
        if answer != "ok":
            raise StepFailed(f"proxy answered {answer!r} to {cmd!r}")

    async def op_restart_gateway(self, s, topic, timeout_s):
        code = await asyncio.to_thread(self.gateway.stop)
        if code != 0:
            raise StepFailed(f"gateway exited with {code} on SIGTERM")
        await asyncio.to_thread(self.gateway.start)
        cmd = f"upstream 127.0.0.1:{self.gateway.port}"
        answer = await asyncio.to_thread(self.proxy.command, cmd)
        if answer != "ok":
            raise StepFailed(f"proxy answered {answer!r} to {cmd!r}")

    async def op_client_publish(self, s, topic, timeout_s):
        count = int(s["count"])
        pad = "x" * int(s.get("pad_bytes", 0))
        for i in range(1, count + 1):
            # Tasks start in creation order, so the publishes are queued in
            # call order; the acks are awaited later (expect_acks).
            self.acks.append(asyncio.create_task(self.client.publish(topic, {"n": i, "pad": pad})))
        await asyncio.sleep(0)

    async def op_expect_acks(self, s, topic, timeout_s):
        count = int(s.get("count", 0))
        offsets = []
        deadline = time.monotonic() + timeout_s
        while self.acks:
            task = self.acks.pop(0)
            try:
                ack = await asyncio.wait_for(asyncio.shield(task),
                                             max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                self.acks.insert(0, task)
                raise StepFailed("an ack did not come in time") from None
            except livegate.LivegateError as e:
                raise StepFailed(f"publish failed: {e!r} (code {e.code})") from e
            offsets.append(ack.offset)
        if len(set(offsets)) != count:
            raise StepFailed(f"{len(set(offsets))} distinct acked offsets, expected {count}: "
                             f"{sorted(offsets)[:30]}")

    async def op_expect_history(self, s, topic, timeout_s):
        count = int(s.get("count", 0))
        status, body = await asyncio.to_thread(
            http_request, self.gateway.port, "GET", f"/api/topics/{topic}/history?limit=1000")
        try:
            v = json.loads(body)
        except ValueError as e:
            raise StepFailed(f"history: {e}: {body[:300]!r}") from e
        n = len(v.get("publications") or [])
        if status != 200 or n != count or v.get("offset") != count:
            raise StepFailed(f"history of {topic} holds {n} (latest offset {v.get('offset')}, "
                             f"status {status}), expected exactly {count}")

    async def op_expect_gateway_stat(self, s, topic, timeout_s):
        stat, at_least = s["stat"], int(s.get("at_least", 1))
        deadline = time.monotonic() + timeout_s
        while True:
            body = b""
            try:
                _, body = await asyncio.to_thread(http_request, self.gateway.port, "GET",
                                                  "/api/stats")
                v = json.loads(body)
            except (OSError, ValueError):
                v = {}
            val = v.get(stat, 0) if isinstance(v, dict) else 0
            if isinstance(val, int) and val >= at_least:
                return
            if time.monotonic() >= deadline:
                raise StepFailed(f"gateway stat {stat} stayed below {at_least}: {body[:500]!r}")
            await asyncio.sleep(0.05)

    async def op_expect_no_reconnect(self, s, topic, timeout_s):
        before = await asyncio.to_thread(self.proxy.accepted)
        await asyncio.sleep(s.get("ms", 1000) / 1000.0)
        after = await asyncio.to_thread(self.proxy.accepted)
        state = self.client.state
        if state != "closed" or after != before:
            raise StepFailed(f"client state {state!r}, proxy connections {before} -> {after}")

    async def op_sleep(self, s, topic, timeout_s):
        await asyncio.sleep(s.get("ms", 0) / 1000.0)

    # -- the whole scenario ----------------------------------------------------
    async def run_steps(self) -> None:
        self.start_client()
        for i, st in enumerate(self.scenario["steps"], 1):
            try:
                await self.step(st)
            except StepFailed as e:
                raise StepFailed(f"step {i} ({st['op']}): {e}") from None

    async def shutdown(self) -> None:
        for fut, stop in self.background:
            stop.set()
        for fut, _ in self.background:
            try:
                await asyncio.wait_for(fut, 15.0)
            except BaseException:  # noqa: BLE001 - best effort at teardown
                pass
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.close(), 10.0)
            except BaseException:  # noqa: BLE001
                pass
        for t in self.acks:
            t.cancel()
        for sub in self.subs:
            sub.close()
        if self.status is not None:
            self.status.close()
        pending = self.tasks + self.acks
        if pending:
            done, still = await asyncio.wait(pending, timeout=5.0)
            for t in still:
                t.cancel()
            for t in done:
                if not t.cancelled():
                    t.exception()  # retrieved: no "never retrieved" warnings

    def stop_processes(self) -> None:
        self.proxy.stop()
        self.gateway.stop()


async def run_scenario(scenario: dict, transports: Optional[list[str]], gateway_factory,
                       proxy_bin: Path, register_proc) -> None:
    run = await asyncio.to_thread(Run, scenario, transports, gateway_factory, proxy_bin,
                                  register_proc)
    try:
        await asyncio.wait_for(run.run_steps(), SCENARIO_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise StepFailed(f"scenario took longer than {SCENARIO_TIMEOUT_S:.0f} s; "
                         f"states: {run.rec.last_states()}") from None
    finally:
        try:
            await run.shutdown()
        finally:
            await asyncio.to_thread(run.stop_processes)
