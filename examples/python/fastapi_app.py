"""Service-health publisher: a FastAPI app that probes services and publishes
their health through livegate, as service-health dashboards do.

- ``health_change`` on ``health.changes`` whenever a service's status flips
  (``unknown`` -> ``up``, ``up`` -> ``down``, ...): ``service``,
  ``old_status``, ``new_status``, ``checked_at``, ``detail``, ``latency_ms``.
- ``snapshot_update`` on ``health.snapshot`` every few seconds: every
  service's status, and how many are up / degraded / down.

Run (from the repository root, with a gateway on 127.0.0.1:8080)::

    LIVEGATE_URL=http://127.0.0.1:8080 uvicorn fastapi_app:app --app-dir examples/python --port 8000

HTTP API: ``GET /health/snapshot`` (what the last ``snapshot_update``
carried), ``GET /services``, ``POST /services`` (add one:
``{"name": "db", "kind": "tcp", "target": "127.0.0.1:5432"}``),
``DELETE /services/{name}``, ``GET /healthz`` (this app's own state).

Configuration (environment):

=========================  ==============================================
``LIVEGATE_URL``           gateway (default ``http://127.0.0.1:8080``)
``LIVEGATE_API_KEY``       the gateway's API key, if it has one
``HEALTH_CHECK_INTERVAL``  seconds between probe rounds (default 5)
``HEALTH_SNAPSHOT_INTERVAL`` seconds between snapshots (default 15)
``HEALTH_PROBE_TIMEOUT``   seconds a probe may take (default 2)
``HEALTH_DEGRADED_MS``     an HTTP answer slower than this is ``degraded`` (default 1000)
``HEALTH_SERVICES``        the services: JSON (``[{"name":..,"kind":"http"|"tcp","target":..}]``)
                           or ``name=http://host/path,name=tcp://host:port``.
                           Default: the gateway's ``/health`` and TCP port,
                           and local PostgreSQL and Redis ports.
``HEALTH_CHANGES_TOPIC``   default ``health.changes``
``HEALTH_SNAPSHOT_TOPIC``  default ``health.snapshot``
=========================  ==============================================

When the gateway is down the app keeps probing; publications wait (health
changes in order, only the newest snapshot) and go out once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Deque, Dict, List, Literal, Optional, Tuple
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field, field_validator

import livegate

log = logging.getLogger("health")

Status = Literal["unknown", "up", "degraded", "down"]


# -- configuration -----------------------------------------------------------


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be more than 0, not {raw!r}")
    return value


@dataclass
class Settings:
    livegate_url: str
    api_key: Optional[str]
    check_interval: float
    snapshot_interval: float
    probe_timeout: float
    degraded_ms: float
    changes_topic: str
    snapshot_topic: str
    services: List["ServiceIn"]

    @classmethod
    def from_env(cls) -> "Settings":
        url = os.environ.get("LIVEGATE_URL", "http://127.0.0.1:8080").rstrip("/")
        raw = os.environ.get("HEALTH_SERVICES", "").strip()
        services = parse_services(raw) if raw else default_services(url)
        return cls(
            livegate_url=url,
            api_key=os.environ.get("LIVEGATE_API_KEY") or None,
            check_interval=_env_float("HEALTH_CHECK_INTERVAL", 5.0),
            snapshot_interval=_env_float("HEALTH_SNAPSHOT_INTERVAL", 15.0),
            probe_timeout=_env_float("HEALTH_PROBE_TIMEOUT", 2.0),
            degraded_ms=_env_float("HEALTH_DEGRADED_MS", 1000.0),
            changes_topic=os.environ.get("HEALTH_CHANGES_TOPIC", "health.changes"),
            snapshot_topic=os.environ.get("HEALTH_SNAPSHOT_TOPIC", "health.snapshot"),
            services=services,
        )


class ServiceIn(BaseModel):
    """A service to watch: an HTTP(S) URL (2xx/3xx is up) or a TCP ``host:port``
    (up when it accepts a connection)."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["http", "tcp"]
    target: str = Field(min_length=1)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str, info: Any) -> str:
        kind = info.data.get("kind")
        if kind == "http":
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("an http service needs an http:// or https:// URL")
        elif kind == "tcp":
            split_host_port(v)
        return v


def split_host_port(target: str) -> Tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a tcp service needs host:port, not {target!r}")
    return host.strip("[]"), int(port)


def parse_services(raw: str) -> List[ServiceIn]:
    """``HEALTH_SERVICES``: a JSON list, or ``name=target`` pairs separated by commas."""
    if raw.startswith("["):
        return [ServiceIn(**item) for item in json.loads(raw)]
    out = []
    for item in filter(None, (s.strip() for s in raw.split(","))):
        name, sep, target = item.partition("=")
        if not sep:
            raise SystemExit(f"HEALTH_SERVICES: expected name=target, got {item!r}")
        if target.startswith("tcp://"):
            out.append(ServiceIn(name=name, kind="tcp", target=target[len("tcp://"):]))
        else:
            out.append(ServiceIn(name=name, kind="http", target=target))
    return out


def default_services(livegate_url: str) -> List[ServiceIn]:
    parts = urlsplit(livegate_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return [
        ServiceIn(name="livegate", kind="http", target=f"{livegate_url}/health"),
        ServiceIn(name="livegate-port", kind="tcp", target=f"{parts.hostname}:{port}"),
        ServiceIn(name="postgres", kind="tcp", target="127.0.0.1:5432"),
        ServiceIn(name="redis", kind="tcp", target="127.0.0.1:6379"),
    ]


# -- probing -----------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ServiceState:
    spec: ServiceIn
    status: Status = "unknown"
    detail: str = "not checked yet"
    checked_at: Optional[str] = None
    since: Optional[str] = None
    latency_ms: Optional[float] = None

    def as_dict(self) -> Dict[str, Any]:
        return {
            "service": self.spec.name,
            "kind": self.spec.kind,
            "target": self.spec.target,
            "status": self.status,
            "detail": self.detail,
            "checked_at": self.checked_at,
            "since": self.since,
            "latency_ms": self.latency_ms,
        }


async def probe(spec: ServiceIn, http: httpx.AsyncClient, settings: Settings) -> Tuple[Status, str, float]:
    """One check: (status, detail, latency in ms)."""
    start = time.perf_counter()
    try:
        if spec.kind == "tcp":
            host, port = split_host_port(spec.target)
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), settings.probe_timeout
            )
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            ms = (time.perf_counter() - start) * 1000
            return "up", f"accepted a connection on {host}:{port}", ms
        res = await http.get(spec.target, timeout=settings.probe_timeout)
        ms = (time.perf_counter() - start) * 1000
        if res.status_code >= 400:
            return "down", f"HTTP {res.status_code}", ms
        if ms > settings.degraded_ms:
            return "degraded", f"HTTP {res.status_code} in {ms:.0f} ms", ms
        return "up", f"HTTP {res.status_code}", ms
    except (asyncio.TimeoutError, httpx.TimeoutException):
        ms = (time.perf_counter() - start) * 1000
        return "down", f"no answer within {settings.probe_timeout:g} s", ms
    except (OSError, httpx.HTTPError) as e:
        ms = (time.perf_counter() - start) * 1000
        return "down", f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, ms


# -- publishing ----------------------------------------------------------------


class Outbox:
    """Publications waiting for the gateway: health changes in order (the
    oldest dropped past ``max_changes``), and only the newest snapshot."""

    def __init__(self, max_changes: int = 10_000) -> None:
        self.changes: Deque[Dict[str, Any]] = deque(maxlen=max_changes)
        self.snapshot: Optional[Dict[str, Any]] = None
        self.wake = asyncio.Event()
        self.dropped = 0

    def add_change(self, change: Dict[str, Any]) -> None:
        if len(self.changes) == self.changes.maxlen:
            self.dropped += 1
        self.changes.append(change)
        self.wake.set()

    def set_snapshot(self, snapshot: Dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.wake.set()

    def __len__(self) -> int:
        return len(self.changes) + (self.snapshot is not None)


@dataclass
class Monitor:
    settings: Settings
    services: Dict[str, ServiceState] = field(default_factory=dict)
    outbox: Outbox = field(default_factory=Outbox)
    last_snapshot: Dict[str, Any] = field(default_factory=dict)
    published: int = 0
    gateway_ok: Optional[bool] = None
    last_publish_error: Optional[str] = None
    check_now: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, spec: ServiceIn) -> ServiceState:
        state = ServiceState(spec)
        self.services[spec.name] = state
        return state

    def snapshot(self) -> Dict[str, Any]:
        services = [s.as_dict() for s in self.services.values()]
        counts = {k: 0 for k in ("up", "degraded", "down", "unknown")}
        for s in services:
            counts[s["status"]] += 1
        overall = (
            "down" if counts["down"] else "degraded" if counts["degraded"]
            else "unknown" if counts["unknown"] else "up"
        )
        return {"generated_at": now_iso(), "overall": overall, "counts": counts, "services": services}

    async def check_all(self, http: httpx.AsyncClient) -> None:
        states = list(self.services.values())
        results = await asyncio.gather(*(probe(s.spec, http, self.settings) for s in states))
        checked_at = now_iso()
        for state, (status, detail, ms) in zip(states, results):
            if self.services.get(state.spec.name) is not state:
                continue  # removed while probing
            old = state.status
            state.status, state.detail = status, detail
            state.checked_at, state.latency_ms = checked_at, round(ms, 1)
            if status != old:
                state.since = checked_at
                log.info("%s: %s -> %s (%s)", state.spec.name, old, status, detail)
                self.outbox.add_change({
                    "service": state.spec.name,
                    "old_status": old,
                    "new_status": status,
                    "checked_at": checked_at,
                    "detail": detail,
                    "latency_ms": state.latency_ms,
                })

    async def check_loop(self) -> None:
        next_snapshot = 0.0
        async with httpx.AsyncClient(follow_redirects=False) as http:
            while True:
                try:
                    await self.check_all(http)
                    if time.monotonic() >= next_snapshot:
                        self.last_snapshot = self.snapshot()
                        self.outbox.set_snapshot(self.last_snapshot)
                        next_snapshot = time.monotonic() + self.settings.snapshot_interval
                except Exception:
                    log.exception("probe round failed")
                self.check_now.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.check_now.wait(), self.settings.check_interval)

    async def publish_loop(self, publisher: livegate.AsyncPublisher) -> None:
        """Sends the outbox in order. A gateway that cannot be reached is
        logged once and retried with backoff (the publisher itself retries
        each publish for its timeout, with the same msg_id); a refusal
        (bad API key, bad topic) is logged and that publication dropped."""
        s = self.settings
        pause = 1.0
        while True:
            await self.outbox.wake.wait()
            self.outbox.wake.clear()
            while len(self.outbox):
                if self.outbox.changes:
                    topic, event, data = s.changes_topic, "health_change", self.outbox.changes[0]
                else:
                    topic, event, data = s.snapshot_topic, "snapshot_update", self.outbox.snapshot
                try:
                    await publisher.publish(topic, data, event=event)
                except livegate.ConnectionError as e:
                    self.last_publish_error = str(e)
                    if self.gateway_ok is not False:
                        log.warning("gateway unreachable, %d publication(s) waiting: %s", len(self.outbox), e)
                    self.gateway_ok = False
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 30.0)
                    continue
                except livegate.LivegateError as e:
                    self.last_publish_error = str(e)
                    log.error("gateway refused %s on %s (%s): %s; dropped", event, topic, e.code, e)
                else:
                    self.published += 1
                    if self.gateway_ok is False:
                        log.info("gateway reachable again")
                    self.gateway_ok, pause = True, 1.0
                # Sent or refused: take it out (unless a newer snapshot replaced it meanwhile).
                if event == "health_change":
                    if self.outbox.changes and self.outbox.changes[0] is data:
                        self.outbox.changes.popleft()
                elif self.outbox.snapshot is data:
                    self.outbox.snapshot = None


# -- the app -------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI):
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe otherwise
    settings = Settings.from_env()
    monitor = Monitor(settings)
    for spec in settings.services:
        monitor.add(spec)
    monitor.last_snapshot = monitor.snapshot()
    publisher = livegate.AsyncPublisher(settings.livegate_url, api_key=settings.api_key, timeout=10.0)
    app.state.monitor = monitor
    log.info("watching %d services, publishing to %s (%s, %s)", len(monitor.services),
             settings.livegate_url, settings.changes_topic, settings.snapshot_topic)
    tasks = [
        asyncio.create_task(monitor.check_loop(), name="health-checks"),
        asyncio.create_task(monitor.publish_loop(publisher), name="health-publisher"),
    ]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        publisher.close()


app = FastAPI(title="service health", lifespan=lifespan)


def _monitor() -> Monitor:
    return app.state.monitor


@app.get("/health/snapshot")
async def get_snapshot() -> Dict[str, Any]:
    """The latest snapshot (as published on the snapshot topic)."""
    return _monitor().last_snapshot


@app.get("/services")
async def list_services() -> List[Dict[str, Any]]:
    return [s.as_dict() for s in _monitor().services.values()]


@app.post("/services", status_code=201)
async def add_service(spec: ServiceIn) -> Dict[str, Any]:
    """Adds a service; it is probed at once (its first health_change follows)."""
    m = _monitor()
    if spec.name in m.services:
        raise HTTPException(409, f"service {spec.name!r} already exists")
    state = m.add(spec)
    m.check_now.set()
    return state.as_dict()


@app.delete("/services/{name}", status_code=204)
async def remove_service(name: str) -> None:
    if _monitor().services.pop(name, None) is None:
        raise HTTPException(404, f"no service {name!r}")


@app.get("/healthz")
async def healthz() -> Dict[str, Any]:
    """This app's own state: is the gateway reachable, what is waiting."""
    m = _monitor()
    return {
        "status": "ok",
        "gateway": m.settings.livegate_url,
        "gateway_reachable": m.gateway_ok,
        "published": m.published,
        "waiting": len(m.outbox),
        "dropped": m.outbox.dropped,
        "last_publish_error": m.last_publish_error,
    }
