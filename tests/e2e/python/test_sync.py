"""The blocking client: scripts and Streamlit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import livegate


def test_publish_get_drain_iterate(gw):
    with livegate.SyncClient(gw.http, transports=["websocket"], encoding="json") as client:
        assert client.state == "connected"
        sub = client.subscribe("py.sync")
        assert sub.get(timeout=0.05) is None  # nothing yet: None, not an error
        acks = [client.publish("py.sync", {"n": i}, event="tick") for i in range(10)]
        assert [a.offset for a in acks] == list(range(1, 11))
        first = sub.get(timeout=10)
        assert first is not None and first.data == {"n": 0} and first.event == "tick"
        rest = []
        deadline = time.monotonic() + 10
        while len(rest) < 9 and time.monotonic() < deadline:
            rest += sub.drain()
            time.sleep(0.01)
        assert [p.data["n"] for p in rest] == list(range(1, 10))
        client.publish("py.sync", "last")
        for pub in sub:
            assert pub.data == "last"
            break
    assert client.closed
    with pytest.raises(livegate.ClosedError):
        client.publish("py.sync", 1)


def test_blocking_waits_release_the_gil(gw):
    """A thread blocked in get() must let the main thread run Python: if it
    held the GIL the publish below could never happen and get() would hang."""
    with livegate.SyncClient(gw.http, transports=["websocket"]) as client:
        sub = client.subscribe("py.gil", with_status=True)
        live = sub.get(timeout=10)
        assert live is not None and live.kind == "subscribed"  # publish only once live
        got = []
        t = threading.Thread(target=lambda: got.append(sub.get(timeout=20)), daemon=True)
        t.start()
        time.sleep(0.1)
        publisher = livegate.Publisher(gw.http)
        publisher.publish("py.gil", "through")
        t.join(25)
        assert got and got[0] is not None and got[0].data == "through"


def test_window_for_streamlit_reruns(gw):
    with livegate.SyncClient(gw.http, transports=["websocket"]) as client:
        window = client.window("py.win", size=3)
        assert window.items() == [] and window.latest() is None
        for i in range(5):
            client.publish("py.win", i)
        deadline = time.monotonic() + 10
        while window.received < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [p.data for p in window.items()] == [2, 3, 4]
        assert window.latest().data == 4


def test_publish_timeout_while_offline(free_port):
    client = livegate.SyncClient(f"http://127.0.0.1:{free_port}", transports=["websocket"],
                                 backoff=(0.05, 0.1))
    with pytest.raises(livegate.TimeoutError) as info:
        client.publish("py.offline", 1, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(livegate.ConnectionError):
        client.connect(timeout=0.3)
    client.close()
    client.close()  # twice is fine


SCRIPT = textwrap.dedent(
    """
    import sys, livegate
    client = livegate.SyncClient(sys.argv[1], transports=["websocket"])
    client.connect()
    sub = client.subscribe("py.ctrlc")
    print("waiting", flush=True)
    try:
        {call}
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    """
)


@pytest.mark.parametrize(
    "call",
    ["sub.get()", "next(iter(sub))", "livegate.SyncClient('http://127.0.0.1:9', transports=['websocket']).connect(timeout=None)"],
    ids=["get", "iterate", "connect"],
)
def test_ctrl_c_interrupts_a_blocking_call(gw, procs, call):
    p = procs(subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(call=call), gw.http],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    assert p.stdout.readline().strip() == "waiting"
    time.sleep(0.2)
    os.kill(p.pid, signal.SIGINT)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("a blocking call ignored Ctrl-C for 10 s")
    assert p.returncode == 3, (out, err)
    assert "interrupted" in out


@pytest.mark.parametrize("transports", [None, ["sse"], ["longpoll"]], ids=["default", "sse", "longpoll"])
def test_connected_means_the_gateway_answered(free_port, transports):
    """Even with no topic (nothing to stream), connect() does not succeed
    against a port where no gateway listens."""
    client = livegate.SyncClient(f"http://127.0.0.1:{free_port}", transports=transports,
                                 backoff=(0.05, 0.1), connect_timeout=1)
    with pytest.raises(livegate.ConnectionError):
        client.connect(timeout=1.5)
    assert client.state != "connected"
    client.close()


@pytest.mark.parametrize("transports", [["sse"], ["longpoll"]], ids=["sse", "longpoll"])
def test_one_way_transport_without_topics_connects_to_a_live_gateway(gw, transports):
    with livegate.SyncClient(gw.http, transports=transports) as client:
        assert client.state == "connected"
        assert client.transport == {"sse": "sse", "longpoll": "poll"}[transports[0]]
        assert client.publish("py.oneway", {"x": 1}, timeout=10).offset == 1
