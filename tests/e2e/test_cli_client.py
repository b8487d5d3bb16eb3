"""`livegate sub` and `livegate pub`: the native client on the command line.

Black-box: each test runs the real binary's `sub` / `pub` subcommands against
real gateways.  `sub` prints one JSON object per line (state, subscribed,
recovered, publication, error, ...); `pub` prints one ack line per publication
(`topic`, `epoch`, `offset`, `msg_id`).

Every `livegate sub` is started through the `cli` fixture, read by a background
thread, and stopped by its pid (SIGINT, then SIGKILL after a few seconds).
Every `livegate pub` runs with a deadline and is killed by pid if it overruns.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import DEFAULT_CONFIG, Gateway, _die_with_parent, register_process, stop_process
from lgclient import stats, unique, wait_until

BACKOFF = ["--backoff-min-ms", "50", "--backoff-max-ms", "300"]


def client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test runner's environment without any LIVEGATE_* variable (plus `extra`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEGATE_")}
    env["RUST_BACKTRACE"] = "0"  # keep error messages on stderr short
    env.update(extra or {})
    return env


# ------------------------------------------------------------ livegate sub --

class SubProcess:
    """One running `livegate sub`; stdout lines parsed as JSON by a reader thread."""

    def __init__(self, argv: list[str], stderr_path: Path, env: dict[str, str]):
        self.argv = argv
        self.stderr_path = stderr_path
        err = open(stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, env=env, preexec_fn=_die_with_parent)
        finally:
            err.close()
        register_process(self.proc)
        self.lines: list[dict] = []
        self.raw: list[str] = []
        self.bad_lines: list[str] = []
        self.eof = False
        self.cond = threading.Condition()
        self.exit_code: int | None = None
        threading.Thread(target=self._pump, daemon=True, name=f"sub-{self.proc.pid}").start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.cond:
                self.raw.append(line)
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError("not an object")
                except ValueError:
                    self.bad_lines.append(line)
                else:
                    self.lines.append(obj)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    # -- reading ----------------------------------------------------------
    def snapshot(self) -> list[dict]:
        with self.cond:
            return list(self.lines)

    def wait_for(self, pred: Callable[[list[dict]], Any], timeout: float, what: str) -> Any:
        """Wait until pred(all lines so far) is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = pred(list(self.lines))
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    break
                self.cond.wait(min(left, 0.2))
        raise AssertionError(
            f"`livegate sub` (pid {self.pid}): timed out after {timeout}s waiting for {what}"
            f" (exited={self.proc.poll()})\n{self.describe()}")

    def wait_line(self, match: Callable[[dict], bool], timeout: float, what: str,
                  start: int = 0) -> tuple[int, dict]:
        """First line at index >= start that matches; returns (index, line)."""
        def pred(lines):
            for i in range(start, len(lines)):
                if match(lines[i]):
                    return (i, lines[i])
            return None
        return self.wait_for(pred, timeout, what)

    def publications(self, topic: str | None = None) -> list[dict]:
        return [l for l in self.snapshot()
                if l.get("type") == "publication" and (topic is None or l.get("topic") == topic)]

    def wait_publications(self, topic: str, count: int, timeout: float = 10.0) -> list[dict]:
        def pred(lines):
            ps = [l for l in lines if l.get("type") == "publication" and l.get("topic") == topic]
            return ps[:count] if len(ps) >= count else None
        return self.wait_for(pred, timeout, f"{count} publication line(s) on {topic}")

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        with self.cond:
            raw = list(self.raw)
        return (f"argv={self.argv}\nstdout ({len(raw)} lines):\n" + "\n".join(raw[-60:])
                + f"\nstderr:\n{self.stderr()[-4000:]}")

    # -- stopping -----------------------------------------------------------
    def interrupt(self, grace: float = 5.0) -> tuple[int, float]:
        """SIGINT (then SIGKILL after `grace`); returns (exit code, seconds to exit)."""
        t0 = time.monotonic()
        code = stop_process(self.proc, signal.SIGINT, grace)
        self.exit_code = code
        return code, time.monotonic() - t0

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`livegate sub` still running after {timeout}s\n{self.describe()}")


class PubResult:
    def __init__(self, argv, code, stdout, stderr, took):
        self.argv, self.code, self.stdout, self.stderr, self.took = argv, code, stdout, stderr, took

    @property
    def acks(self) -> list[dict]:
        out = []
        for line in self.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"`livegate pub` printed a non-JSON line {line!r}\n{self}")
        return out

    def __str__(self) -> str:
        return (f"argv={self.argv} exit={self.code} took={self.took:.2f}s\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr[-4000:]}")


class Cli:
    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.subs: list[SubProcess] = []
        self._n = 0

    def sub(self, url: str, *topics: str, transport: str = "ws", extra: list[str] | None = None,
            env: dict[str, str] | None = None) -> SubProcess:
        self._n += 1
        argv = [str(self.binary), "sub", "--url", url, "--transport", transport,
                *(extra or []), *topics]
        s = SubProcess(argv, self.workdir / f"sub{self._n}.stderr.log", client_env(env))
        self.subs.append(s)
        return s

    def run(self, args: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 15.0) -> PubResult:
        """Run `livegate ARGS` to completion (killed by pid after `timeout`)."""
        argv = [str(self.binary), *args]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env(env),
                             preexec_fn=_die_with_parent)
        register_process(p)
        try:
            out, err = p.communicate(input=stdin.encode() if stdin is not None else None,
                                     timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(p, signal.SIGKILL, 5)
            out, err = p.communicate()
            raise AssertionError(
                f"`livegate {' '.join(args)}` did not finish within {timeout}s\n"
                f"stdout:\n{out.decode(errors='replace')}\nstderr:\n{err.decode(errors='replace')}")
        finally:
            stop_process(p, signal.SIGKILL, 5)
        return PubResult(argv, p.returncode, out.decode("utf-8", "replace"),
                         err.decode("utf-8", "replace"), time.monotonic() - t0)

    def pub(self, url: str, topic: str, data: str | None = None, *, extra: list[str] | None = None,
            stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 15.0) -> PubResult:
        args = ["pub", "--url", url, *(extra or []), topic]
        if data is not None:
            args.append(data)
        return self.run(args, stdin=stdin, env=env, timeout=timeout)


@pytest.fixture
def cli(livegate_bin, tmp_path, request):
    c = Cli(livegate_bin, tmp_path)
    yield c
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for s in c.subs:
        if s.proc.poll() is None:
            s.interrupt(grace=3.0)
        if failed:
            print(f"\n===== livegate sub pid {s.pid} exit={s.proc.returncode}\n{s.describe()}")


# ------------------------------------------------------------------ checks --

def check_ack(ack: dict, topic: str, offset: int, epoch: str | None = None) -> None:
    assert set(ack) >= {"topic", "epoch", "offset", "msg_id"}, ack
    assert ack["topic"] == topic, ack
    assert isinstance(ack["epoch"], str) and ack["epoch"], ack
    if epoch is not None:
        assert ack["epoch"] == epoch, f"epoch changed: {ack} (expected {epoch})"
    assert ack["offset"] == offset, f"expected offset {offset}: {ack}"
    assert isinstance(ack["msg_id"], str) and ack["msg_id"], ack


def pub_ok(cli: Cli, url: str, topic: str, data: str | None = None, **kw) -> list[dict]:
    r = cli.pub(url, topic, data, **kw)
    assert r.code == 0, f"`livegate pub` failed\n{r}"
    return r.acks


def publish_sequence(cli: Cli, url: str, topic: str, first: int, last: int,
                     first_offset: int = 1, extra: list[str] | None = None) -> list[dict]:
    """`livegate pub URL TOPIC '{"i":N}'` for N in first..last; checks one ack each,
    with offsets first_offset, first_offset+1, ... in one epoch."""
    acks: list[dict] = []
    for k, n in enumerate(range(first, last + 1)):
        r = cli.pub(url, topic, json.dumps({"i": n}), extra=extra)
        assert r.code == 0, f"`livegate pub` #{n} failed\n{r}"
        got = r.acks
        assert len(got) == 1, f"expected one ack line\n{r}"
        check_ack(got[0], topic, first_offset + k, acks[0]["epoch"] if acks else None)
        acks.append(got[0])
    return acks


def check_pub_lines(pubs: list[dict], topic: str, epoch: str, offsets: list[int],
                    datas: list[Any]) -> None:
    assert [p["offset"] for p in pubs] == offsets, f"offsets {[p['offset'] for p in pubs]} != {offsets}"
    for p, d in zip(pubs, datas):
        assert p["topic"] == topic, p
        assert p["epoch"] == epoch, f"publication epoch {p['epoch']} != ack epoch {epoch}: {p}"
        assert p["data"] == d, f"data {p['data']!r} != {d!r}"
        assert isinstance(p.get("time"), str) and p["time"].endswith("Z"), p


def wait_subscribed(s: SubProcess, topics: list[str], transport: str | None = None,
                    timeout: float = 10.0) -> dict[str, dict]:
    """Waits for a `state` line to `connected`, then one `subscribed` line per topic."""
    ci, connected = s.wait_line(lambda l: l.get("type") == "state" and l.get("to") == "connected",
                                timeout, "a state line to `connected`")
    assert connected.get("from") in ("connecting", "reconnecting"), connected
    assert isinstance(connected.get("reason"), str) and isinstance(connected.get("message"), str), connected
    if transport is not None:
        assert transport in connected["message"], f"connected over another transport? {connected}"
    def pred(lines):
        d = {l["topic"]: l for l in lines[ci + 1:] if l.get("type") == "subscribed"}
        return d if all(t in d for t in topics) else None
    subs = s.wait_for(pred, timeout, f"subscribed lines for {topics}")
    for t in topics:
        line = subs[t]
        assert isinstance(line.get("epoch"), str) and line["epoch"], line
        assert line.get("offset") == 0, f"fresh topic {t} should be at offset 0: {line}"
    return subs


def free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


# ------------------------------------------------------------------- tests --

@pytest.mark.parametrize("transport", ["ws", "sse", "poll", "wt"])
def test_sub_and_pub_roundtrip(gateway, cli, transport):
    topic = unique("t.cli.")
    s = cli.sub(gateway.http, topic, transport=transport, extra=BACKOFF)
    subscribed = wait_subscribed(s, [topic], transport)

    # The gateway sees exactly one client connection, over the requested transport.
    others = [k for k in ("ws", "sse", "poll", "wt") if k != transport]
    conns = wait_until(lambda: (c := stats(gateway)["connections"])[transport] == 1 and c,
                       5, msg=f"one {transport} connection in /api/stats")
    assert all(conns[k] == 0 for k in others), conns

    acks = publish_sequence(cli, gateway.http, topic, 1, 5)
    epoch = acks[0]["epoch"]
    assert subscribed[topic]["epoch"] == epoch
    assert len({a["msg_id"] for a in acks}) == 5, f"msg_ids not unique: {acks}"

    pubs = s.wait_publications(topic, 5)
    check_pub_lines(pubs, topic, epoch, [1, 2, 3, 4, 5], [{"i": n} for n in range(1, 6)])
    assert "event" not in pubs[0], pubs[0]

    code, took = s.interrupt(grace=5.0)
    assert code == 0, f"sub exit code {code} after SIGINT\n{s.describe()}"
    assert took < 3.0, f"sub took {took:.1f}s to exit after SIGINT"
    assert not s.bad_lines, f"non-JSON stdout lines: {s.bad_lines}"
    assert len(s.publications(topic)) == 5, f"duplicate publications?\n{s.describe()}"
    assert not [l for l in s.snapshot() if l.get("type") == "error"], s.describe()


def test_sub_msgpack_over_ws(gateway, cli):
    topic = unique("t.mp.")
    s = cli.sub(gateway.http, topic, transport="ws", extra=["--encoding", "msgpack", *BACKOFF])
    wait_subscribed(s, [topic], "ws")
    datas = [
        {"i": 1},
        {"i": 2, "s": "héllo ✓", "f": 2.5, "neg": -7, "n": None, "b": True, "l": [1, [2, {"x": 3}]]},
        "just a string",
        [1, 2, 3],
        {"i": 5, "big": 2**53},
    ]
    acks = [pub_ok(cli, gateway.http, topic, json.dumps(d))[0] for d in datas]
    for n, a in enumerate(acks, 1):
        check_ack(a, topic, n, acks[0]["epoch"])
    pubs = s.wait_publications(topic, len(datas))
    check_pub_lines(pubs, topic, acks[0]["epoch"], [1, 2, 3, 4, 5], datas)
    code, _ = s.interrupt()
    assert code == 0, s.describe()


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_sub_several_topics(gateway, cli, transport):
    topics = [unique("t.multi."), unique("chat.multi."), unique("big.multi.")]
    s = cli.sub(gateway.http, *topics, transport=transport, extra=BACKOFF)
    wait_subscribed(s, topics, transport)
    subscribed_lines = [l for l in s.snapshot() if l.get("type") == "subscribed"]
    assert sorted(l["topic"] for l in subscribed_lines) == sorted(topics), subscribed_lines

    epochs: dict[str, str] = {}
    for n in range(1, 4):  # interleaved: a1 b1 c1 a2 b2 c2 ...
        for t in topics:
            ack = pub_ok(cli, gateway.http, t, json.dumps({"t": t, "i": n}))[0]
            check_ack(ack, t, n, epochs.get(t))
            epochs[t] = ack["epoch"]
    for t in topics:
        pubs = s.wait_publications(t, 3)
        check_pub_lines(pubs, t, epochs[t], [1, 2, 3], [{"t": t, "i": n} for n in range(1, 4)])
    code, _ = s.interrupt()
    assert code == 0, s.describe()
    for t in topics:
        assert len(s.publications(t)) == 3, s.describe()


def test_pub_reads_stdin(gateway, cli):
    topic = unique("t.stdin.")
    s = cli.sub(gateway.http, topic, transport="ws", extra=BACKOFF)
    wait_subscribed(s, [topic], "ws")
    r = cli.pub(gateway.http, topic, stdin='{"k": 1, "l": [true]}\nword\n\n')
    assert r.code == 0, str(r)
    acks = r.acks
    assert len(acks) == 2, f"3 stdin lines (one blank) should give 2 acks\n{r}"
    check_ack(acks[0], topic, 1)
    check_ack(acks[1], topic, 2, acks[0]["epoch"])
    assert acks[0]["msg_id"] != acks[1]["msg_id"], acks
    pubs = s.wait_publications(topic, 2)
    check_pub_lines(pubs, topic, acks[0]["epoch"], [1, 2], [{"k": 1, "l": [True]}, "word"])
    assert isinstance(pubs[1]["data"], str)
    code, _ = s.interrupt()
    assert code == 0, s.describe()
    assert len(s.publications(topic)) == 2, f"the blank line was published?\n{s.describe()}"


@pytest.mark.parametrize("topic_prefix", ["small.", "big.", "t.nons.", "$sys.cli."])
def test_pub_ws_forbidden(gateway, cli, topic_prefix):
    topic = unique(topic_prefix)
    r = cli.pub(gateway.http, topic, '{"a":1}', extra=["--transport", "ws", "--timeout-secs", "5"])
    assert r.code != 0, f"client publish to {topic} should be refused\n{r}"
    assert "publish_forbidden" in r.stderr, str(r)
    assert r.stdout.strip() == "", f"no ack expected\n{r}"
    assert r.took < 5, f"refusal took {r.took:.1f}s (should not wait for the timeout)"
    # Nothing was published.
    assert stats(gateway)["messages_in"] == 0


def test_pub_ws_allowed_on_chat(gateway, cli):
    topic = unique("chat.")
    s = cli.sub(gateway.http, topic, transport="ws", extra=BACKOFF)
    wait_subscribed(s, [topic], "ws")
    acks = []
    for n in (1, 2):
        got = pub_ok(cli, gateway.http, topic, json.dumps({"i": n}), extra=["--transport", "ws"])
        assert len(got) == 1, got
        check_ack(got[0], topic, n, acks[0]["epoch"] if acks else None)
        acks += got
    # stdin over ws too
    got = pub_ok(cli, gateway.http, topic, extra=["--transport", "ws"], stdin='{"i":3}\n{"i":4}\n')
    assert [a["offset"] for a in got] == [3, 4], got
    pubs = s.wait_publications(topic, 4)
    check_pub_lines(pubs, topic, acks[0]["epoch"], [1, 2, 3, 4], [{"i": n} for n in range(1, 5)])
    code, _ = s.interrupt()
    assert code == 0, s.describe()


def test_pub_api_key(gateway_factory, cli):
    gw = gateway_factory("--api-key", "K")
    topic = unique("t.key.")

    r = cli.pub(gw.http, topic, '{"i":1}')
    assert r.code != 0, f"publish without the key should fail\n{r}"
    assert "unauthorized" in r.stderr, str(r)
    assert r.stdout.strip() == "", str(r)

    r = cli.pub(gw.http, topic, '{"i":1}', extra=["--api-key", "wrong"])
    assert r.code != 0, f"publish with a wrong key should fail\n{r}"
    assert "unauthorized" in r.stderr, str(r)

    acks = pub_ok(cli, gw.http, topic, '{"i":1}', extra=["--api-key", "K"])
    assert len(acks) == 1
    check_ack(acks[0], topic, 1)
    acks2 = pub_ok(cli, gw.http, topic, '{"i":2}', env={"LIVEGATE_API_KEY": "K"})
    assert len(acks2) == 1
    check_ack(acks2[0], topic, 2, acks[0]["epoch"])
    # stdin with the key from the environment
    acks3 = pub_ok(cli, gw.http, topic, stdin='{"i":3}\n', env={"LIVEGATE_API_KEY": "K"})
    assert [a["offset"] for a in acks3] == [3], acks3
    assert stats(gw)["messages_in"] == 3


class FixedPortGateway(Gateway):
    """A gateway on a given port (conftest's Gateway always listens on port 0)."""

    def __init__(self, *args, port: int, **kw):
        super().__init__(*args, **kw)
        self.fixed_port = port

    def argv(self) -> list[str]:
        return [f"127.0.0.1:{self.fixed_port}" if a == "127.0.0.1:0" else a for a in super().argv()]


@pytest.mark.timeout(60)
def test_sub_reconnects_after_gateway_restart(gateway_factory, cli, livegate_bin, tmp_path):
    gw1 = gateway_factory()
    port = gw1.port
    topic = unique("t.resume.")
    s = cli.sub(gw1.http, topic, transport="ws", extra=BACKOFF)
    wait_subscribed(s, [topic], "ws")
    acks = publish_sequence(cli, gw1.http, topic, 1, 3)
    old_epoch = acks[0]["epoch"]
    check_pub_lines(s.wait_publications(topic, 3), topic, old_epoch, [1, 2, 3],
                    [{"i": n} for n in (1, 2, 3)])

    mark = len(s.snapshot())
    assert gw1.stop(signal.SIGTERM) == 0
    _, rec = s.wait_line(lambda l: l.get("type") == "state" and l.get("to") == "reconnecting",
                         10, "a state line to `reconnecting`", start=mark)
    assert rec.get("from") == "connected", rec
    assert rec.get("reason") == "shutdown", rec
    assert s.proc.poll() is None, f"sub exited when the gateway stopped\n{s.describe()}"

    gw2 = FixedPortGateway(livegate_bin, tmp_path, "gw-same-port", [], DEFAULT_CONFIG, None, False,
                           port=port)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                gw2.start()
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert gw2.port == port

        # The sub comes back by itself (backoff max 300 ms) and reports the lost history.
        ri, recovered = s.wait_line(lambda l: l.get("type") == "recovered", 10,
                                    "a `recovered` line", start=mark)
        assert recovered.get("topic") == topic, recovered
        assert recovered.get("recovered") is False, f"new gateway, new epoch: {recovered}"
        assert recovered.get("epoch") != old_epoch, recovered
        lines = s.snapshot()
        reconnected = [l for l in lines[mark:ri] if l.get("type") == "state" and l.get("to") == "connected"]
        assert reconnected and reconnected[-1].get("from") == "reconnecting", lines[mark:ri + 1]

        new = publish_sequence(cli, gw2.http, topic, 4, 5)
        assert [a["offset"] for a in new] == [1, 2], new
        new_epoch = new[0]["epoch"]
        assert new_epoch != old_epoch
        assert recovered["epoch"] == new_epoch, (recovered, new)

        pubs = s.wait_publications(topic, 5)
        check_pub_lines(pubs[:3], topic, old_epoch, [1, 2, 3], [{"i": n} for n in (1, 2, 3)])
        check_pub_lines(pubs[3:], topic, new_epoch, [1, 2], [{"i": 4}, {"i": 5}])
        order = [l.get("type") for l in s.snapshot()[ri:] if l.get("type") in ("recovered", "publication")]
        assert order[:3] == ["recovered", "publication", "publication"], order

        code, took = s.interrupt()
        assert code == 0, s.describe()
        assert took < 3.0, f"{took:.1f}s"
        assert len(s.publications(topic)) == 5, s.describe()
    finally:
        if gw2.proc is not None:
            gw2.stop()


def test_wt_on_a_gateway_without_webtransport_reports_why(gateway_factory, cli):
    gw = gateway_factory("--no-wt")
    s = cli.sub(gw.http, unique("t.nowt."), transport="wt", extra=BACKOFF)
    line = s.wait_for(
        lambda lines: next((l for l in lines if l.get("type") == "error"
                            and "WebTransport is not available" in l.get("message", "")), None),
        10, "an error line saying WebTransport is not available")
    assert line["code"] == "transport_failed", line
    code, _ = s.interrupt(grace=5.0)
    assert code == 0, s.describe()


def test_pub_over_wt(gateway, cli):
    topic = unique("chat.wt.")
    acks = pub_ok(cli, gateway.http, topic, '{"i":1}', extra=["--transport", "wt"])
    assert acks[0]["offset"] == 1, acks


def test_sub_transport_http_refused(gateway, cli):
    r = cli.run(["sub", "--url", gateway.http, "--transport", "http", unique("t.http.")], timeout=10)
    assert r.code != 0, str(r)
    assert "--transport http" in r.stderr and "only publishes" in r.stderr, str(r)
    assert r.stdout.strip() == "", str(r)
    assert stats(gateway)["connections"] == {"ws": 0, "sse": 0, "poll": 0, "wt": 0}


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_pub_unreachable_gives_up(cli, transport):
    url = f"http://127.0.0.1:{free_port()}"
    r = cli.pub(url, unique("t.down."), '{"i":1}',
                extra=["--transport", transport, "--timeout-secs", "2"], timeout=15)
    assert r.code != 0, str(r)
    assert r.took < 5.0, f"took {r.took:.1f}s with --timeout-secs 2\n{r}"
    assert "no acknowledgement" in r.stderr, str(r)
    assert r.stdout.strip() == "", str(r)


@pytest.mark.parametrize("command", ["sub", "pub"])
@pytest.mark.parametrize("url", ["ftp://x", "http://127.0.0.1:notaport", "not a url"])
def test_bad_url(cli, command, url):
    args = [command, "--url", url, unique("t.url.")]
    if command == "pub":
        args += ['{"i":1}']
    r = cli.run(args, timeout=10)
    assert r.code != 0, str(r)
    assert r.took < 5.0, str(r)
    assert url in r.stderr and "URL" in r.stderr, f"message should name the URL problem\n{r}"
    assert r.stdout.strip() == "", str(r)


def test_sub_bad_backoff_flags(cli):
    r = cli.run(["sub", "--url", "http://127.0.0.1:1", "--backoff-min-ms", "500",
                 "--backoff-max-ms", "100", "t.x"], timeout=10)
    assert r.code != 0, str(r)
    assert "--backoff-min-ms" in r.stderr, str(r)


def test_pub_event_name(gateway, cli):
    topic = unique("t.ev.")
    s = cli.sub(gateway.http, topic, transport="sse", extra=BACKOFF)
    wait_subscribed(s, [topic], "sse")
    acks = pub_ok(cli, gateway.http, topic, '{"i":1}', extra=["--event", "ping"])
    check_ack(acks[0], topic, 1)
    pubs = s.wait_publications(topic, 1)
    assert pubs[0].get("event") == "ping", pubs[0]
    r = cli.pub(gateway.http, topic, '{"i":2}', extra=["--event", "bad\x01name"])
    # Refused (by the client itself or by the gateway), and nothing published.
    assert r.code != 0 and "event" in r.stderr, str(r)
    assert r.stdout.strip() == "", str(r)
    assert stats(gateway)["messages_in"] == 1
    code, _ = s.interrupt()
    assert code == 0


# ---------------------------------------------------- errors and TLS proxy --

def one_clear_line(r: PubResult) -> str:
    """The whole of stderr: one line, no backtrace."""
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, str(r)
    assert "backtrace" not in r.stderr.lower() and "panicked" not in r.stderr, str(r)
    return lines[0]


@pytest.mark.parametrize("command", ["sub", "pub", "bench"])
def test_a_malformed_url_is_refused_at_once_in_one_line(cli, command):
    # RUST_BACKTRACE=1 must not turn the error into a backtrace.
    args = {
        "sub": ["sub", "--url", "http://[zz", "--transport", "ws", "t.x"],
        "pub": ["pub", "--url", "http://[zz", "t.x", "1"],
        "bench": ["bench", "--url", "http://[zz", "-n", "1", "--quiet"],
    }[command]
    r = cli.run(args, env={"RUST_BACKTRACE": "1"}, timeout=10)
    assert r.code != 0, str(r)
    assert r.took < 5.0, f"took {r.took:.1f}s\n{r}"
    line = one_clear_line(r)
    assert "bad gateway URL" in line and "http://[zz" in line, str(r)
    assert r.stdout.strip() == "", str(r)


def test_a_refusal_is_one_line_even_with_rust_backtrace(gateway, cli):
    r = cli.pub(gateway.http, unique("t.ro."), '{"i":1}', extra=["--transport", "ws"],
                env={"RUST_BACKTRACE": "1"})
    assert r.code != 0, str(r)
    assert "publish_forbidden" in one_clear_line(r), str(r)


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
def test_sub_and_pub_through_a_tls_proxy(gateway, cli, tls_proxy, transport):
    proxy = tls_proxy(gateway)
    topic = unique("chat.tls.")
    tls = ["--ca-file", str(proxy.ca)]
    s = cli.sub(proxy.url, topic, transport=transport, extra=BACKOFF + tls)
    wait_subscribed(s, [topic], transport)
    acks = pub_ok(cli, proxy.url, topic, '{"over":"tls"}', extra=["--transport", "http", *tls])
    assert acks[0]["offset"] == 1, acks
    acks = pub_ok(cli, proxy.url, topic, '{"over":"tls"}', extra=["--transport", transport, *tls])
    assert acks[0]["offset"] == 2, acks
    pubs = s.wait_publications(topic, 2)
    assert [p["offset"] for p in pubs] == [1, 2], s.describe()


def test_an_untrusted_certificate_is_refused(gateway, cli, tls_proxy):
    proxy = tls_proxy(gateway)
    r = cli.pub(proxy.url, unique("chat.tls."), "1", extra=["--transport", "http", "--timeout-secs", "1"])
    assert r.code != 0, str(r)
    assert "certificate" in one_clear_line(r).lower(), str(r)
