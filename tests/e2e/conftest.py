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
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from gateway_process import GatewayProcess, die_with_parent, stop_pid

# Kept under its old name for the tests that start other processes.
_die_with_parent = die_with_parent

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


def register_process(p: subprocess.Popen) -> None:
    with _LIVE_LOCK:
        _LIVE[p.pid] = p


def stop_process(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> int:
    """Stop one process by its pid; returns its exit code (negative = killed by signal)."""
    stop_pid(p, sig, grace)
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
        self.process: GatewayProcess | None = None
        self.port: int | None = None
        self.generation = 0
        self.log_paths: list[Path] = []
        self.earlier_lines: list[str] = []
        self.exit_codes: list[int] = []

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.process.proc if self.process is not None else None

    @property
    def stdout_lines(self) -> list[str]:
        """Every stdout line of every generation, in order."""
        current = self.process.stdout_lines if self.process is not None else []
        return self.earlier_lines + current

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
        if self.process is not None:
            self.earlier_lines += self.process.stdout_lines
        with open(log_path, "wb") as log:
            try:
                self.process = GatewayProcess(self.argv(), stderr=log, env=env, timeout=timeout)
            except RuntimeError as e:
                raise RuntimeError(f"{e}\nstderr:\n{self.log_tail()}") from None
        register_process(self.process.proc)
        self.port = self.process.port
        return self

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> int | None:
        if self.process is None:
            return None
        code = self.process.stop(sig, grace)
        with _LIVE_LOCK:
            _LIVE.pop(self.process.pid, None)
        self.exit_codes.append(code)
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


class TlsProxy:
    """`livegate-faultproxy --tls-ca-out`: a TLS-terminating proxy in front of a
    gateway, as load balancers run in production, with a certificate for
    127.0.0.1 from a test CA it makes at start (PEM at `ca`). Its stdin stays
    open (it exits at EOF); it is stopped by pid."""

    def __init__(self, binary: Path, upstream_port: int, workdir: Path):
        self.ca = workdir / f"tls-ca-{upstream_port}.pem"
        self.proc = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream_port}",
             "--tls-ca-out", str(self.ca)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent)
        register_process(self.proc)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().decode().strip()
        prefix = "faultproxy listening on "
        if not first.startswith(prefix):
            stop_process(self.proc)
            raise RuntimeError(f"unexpected first line from the TLS proxy: {first!r}")
        self.addr = first[len(prefix):]
        self.url = f"https://{self.addr}"

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 3.0)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


@pytest.fixture
def tls_proxy(livegate_bin, tmp_path):
    """Starts TLS proxies in front of gateways: `tls_proxy(gateway) -> TlsProxy`."""
    binary = Path(livegate_bin).parent / "livegate-faultproxy"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build it with `cargo build -p livegate-faultproxy`",
                    pytrace=False)
    started: list[TlsProxy] = []

    def start(gw: Gateway) -> TlsProxy:
        assert gw.port is not None
        p = TlsProxy(binary, gw.port, tmp_path)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


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
