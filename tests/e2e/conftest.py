"""Fixtures that run the REAL livegate binary.

Binary: $LIVEGATE_BIN, else $CARGO_TARGET_DIR/debug/livegate, else
$HOME/.cache/livegate/target/debug/livegate.  The suite never builds it.

Every gateway is started as
    livegate serve --listen 127.0.0.1:0 [--no-system-publisher] [--config F] [--data-dir D] [extra]
with D its own directory under the test's tmp_path (kept across its
restarts) unless extra has --memory or --data-dir.
and its port is read from the first stdout line
    livegate listening on http://127.0.0.1:PORT
stderr goes to a per-test log file (printed when a test fails).  Each process
is stopped by its own pid: SIGTERM, then SIGKILL after a few seconds.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

LISTEN_RE = re.compile(r"^livegate listening on http://127\.0\.0\.1:(\d+)$")

# Namespaces used by most tests (every option given explicitly so the basic
# suite does not depend on option defaults; test_config checks the defaults).
DEFAULT_CONFIG = """\
[[namespaces]]
prefix = "small."
history_size = 5
history_ttl_secs = 3600
client_publish = false

[[namespaces]]
prefix = "chat."
history_size = 1000
history_ttl_secs = 3600
client_publish = true

[[namespaces]]
prefix = "big."
history_size = 5000
history_ttl_secs = 3600
client_publish = false
"""


def binary_path() -> Path:
    if os.environ.get("LIVEGATE_BIN"):
        return Path(os.environ["LIVEGATE_BIN"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "livegate"
    return Path.home() / ".cache" / "livegate" / "target" / "debug" / "livegate"


# Every process this suite started and has not reaped yet (safety net).
_LIVE: dict[int, subprocess.Popen] = {}
_LIVE_LOCK = threading.Lock()


def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_leftovers)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def register_process(p: subprocess.Popen) -> None:
    with _LIVE_LOCK:
        _LIVE[p.pid] = p


def stop_process(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> int:
    """Stop one process by its pid; returns its exit code (negative = killed by signal)."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
    with _LIVE_LOCK:
        _LIVE.pop(p.pid, None)
    return p.returncode


class Gateway:
    """One running gateway process (restartable: a restart gets a new port)."""

    def __init__(self, binary: Path, workdir: Path, name: str, args: list[str],
                 config: str | None, env: dict[str, str] | None, system_publisher: bool):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.extra_args = list(args)
        self.env_extra = dict(env or {})
        self.system_publisher = system_publisher
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / f"{name}.toml"
            self.config_path.write_text(config)
        self.data_dir = workdir / f"{name}.data"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.generation = 0
        self.log_paths: list[Path] = []
        self.stdout_lines: list[str] = []
        self.exit_codes: list[int] = []

    # -- addresses -------------------------------------------------------
    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        argv = [str(self.binary), "serve", "--listen", "127.0.0.1:0"]
        if not self.system_publisher:
            argv.append("--no-system-publisher")
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        if not any(a in ("--memory", "--data-dir") for a in self.extra_args):
            # Its own log, kept across restarts of this gateway only.
            argv += ["--data-dir", str(self.data_dir)]
        return argv + self.extra_args

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "Gateway":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.generation += 1
        log_path = self.workdir / f"{self.name}.{self.generation}.stderr.log"
        self.log_paths.append(log_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEGATE_")}
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env_extra)
        log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=log, env=env, preexec_fn=_die_with_parent)
        finally:
            log.close()
        register_process(self.proc)

        first: list[str] = []
        got_first = threading.Event()
        proc = self.proc
        lines = self.stdout_lines

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not first:
                    first.append(line)
                    got_first.set()
                lines.append(line)
            got_first.set()

        self.pump = threading.Thread(target=pump, daemon=True, name=f"stdout-{proc.pid}")
        self.pump.start()
        got_first.wait(timeout)
        if not first:
            code = proc.poll()
            stop_process(proc)
            raise RuntimeError(
                f"gateway printed no first line within {timeout}s (exit={code}); argv={self.argv()}\n"
                f"stderr:\n{self.log_tail()}")
        m = LISTEN_RE.match(first[0])
        if not m:
            stop_process(proc)
            raise RuntimeError(f"unexpected first stdout line {first[0]!r}; stderr:\n{self.log_tail()}")
        self.port = int(m.group(1))
        return self

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> int | None:
        if self.proc is None:
            return None
        code = stop_process(self.proc, sig, grace)
        self.exit_codes.append(code)
        # The process is gone: its stdout reaches EOF, the pump ends, and the
        # pipe can be closed (no ResourceWarning for a leaked file).
        pump = getattr(self, "pump", None)
        if pump is not None:
            pump.join(5)
        if self.proc.stdout is not None and (pump is None or not pump.is_alive()):
            self.proc.stdout.close()
        return code

    def restart(self) -> "Gateway":
        self.stop()
        return self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 60) -> str:
        out = []
        for p in self.log_paths[-2:]:
            try:
                text = p.read_text(errors="replace").splitlines()
            except OSError:
                continue
            out.append(f"--- {p.name} ---")
            out += text[-n:]
        return "\n".join(out)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def livegate_bin() -> Path:
    path = binary_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        msg = (f"livegate binary not found at {path} (set LIVEGATE_BIN or CARGO_TARGET_DIR; "
               "this suite does not build it)")
        if os.environ.get("LIVEGATE_E2E_SKIP_IF_MISSING"):
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)
    return path


@pytest.fixture
def gateway_factory(livegate_bin, tmp_path, request):
    """start(*extra_args, config=DEFAULT_CONFIG, env=None, system_publisher=False) -> Gateway."""
    started: list[Gateway] = []

    def start(*args: str, config: str | None = DEFAULT_CONFIG, env: dict[str, str] | None = None,
              system_publisher: bool = False) -> Gateway:
        gw = Gateway(livegate_bin, tmp_path, f"gw{len(started)}", list(args), config, env,
                     system_publisher)
        started.append(gw)
        return gw.start()

    yield start

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for gw in started:
        gw.stop()
    if failed:
        for gw in started:
            print(f"\n===== gateway {gw.name} argv={gw.argv()} exit codes={gw.exit_codes}")
            print(gw.log_tail())


@pytest.fixture
def gateway(gateway_factory) -> Gateway:
    """A gateway with DEFAULT_CONFIG and default flags."""
    return gateway_factory()


@pytest.fixture
def procs():
    """Register extra subprocesses (curl, ...) here; they are stopped by pid at teardown."""
    started: list[subprocess.Popen] = []

    def add(p: subprocess.Popen) -> subprocess.Popen:
        register_process(p)
        started.append(p)
        return p

    yield add
    for p in started:
        stop_process(p, signal.SIGTERM, 3.0)


@pytest.fixture
def opened():
    """Transports opened by a test, closed at teardown."""
    ts = []

    def add(t):
        ts.append(t)
        return t

    yield add
    for t in ts:
        t.close()
