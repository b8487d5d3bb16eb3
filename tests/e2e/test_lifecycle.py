"""Process lifecycle and configuration: graceful shutdown, flags/env/TOML, system publisher."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import httpx
import pytest

from lgclient import Poller, SseClient, WsClient, http_client, publish, unique


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_tells_ws_clients(gateway_factory, sig):
    gw = gateway_factory()
    j = WsClient(gw.ws_url, "json")
    m = WsClient(gw.ws_url, "msgpack")
    j.subscribe(unique("bye."))
    m.subscribe(unique("bye."))
    results = {}

    def drain(name, c):
        results[name] = c.expect_close(timeout=10)

    threads = [threading.Thread(target=drain, args=(n, c)) for n, c in (("json", j), ("msgpack", m))]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    code = gw.stop(sig=sig, grace=8)
    took = time.monotonic() - t0
    for t in threads:
        t.join(10)
    assert code == 0, f"gateway exit code {code} after {sig.name}"
    assert took < 6, f"shutdown took {took:.1f}s"
    for name in ("json", "msgpack"):
        frames, rcvd = results[name]
        assert frames, f"{name}: no disconnect frame"
        assert frames[-1]["type"] == "disconnect" and frames[-1]["code"] == "shutdown", frames[-1]
        assert frames[-1]["reconnect"] is True and isinstance(frames[-1]["reason"], str), frames[-1]
        assert rcvd is not None and rcvd.code == 1001 and rcvd.reason == "shutdown", rcvd


def test_shutdown_with_open_sse_and_poll(gateway_factory):
    gw = gateway_factory()
    topic = unique("bye.")
    s = SseClient(gw, topic)
    s.expect("connected")
    s.expect("subscribed")
    p = Poller(gw, topic)
    p.poll(cursor=None)
    pending = {}
    th = threading.Thread(target=lambda: pending.setdefault("r", _try(lambda: p.poll(timeout_ms=20000))))
    th.start()
    time.sleep(0.3)
    try:
        t0 = time.monotonic()
        code = gw.stop(grace=8)
        took = time.monotonic() - t0
        assert code == 0, code
        assert took < 6, f"open SSE/poll held the shutdown for {took:.1f}s"
        assert s.ended.wait(5), "SSE stream not ended by shutdown"
        th.join(5)
        assert not th.is_alive(), "pending long-poll not answered/closed by shutdown"
    finally:
        s.close()
        p.close()


def _try(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return e


def test_listening_line_and_port(gateway):
    assert gateway.stdout_lines[0] == f"livegate listening on http://127.0.0.1:{gateway.port}"
    assert httpx.get(gateway.http + "/health").status_code == 200


def test_settings_from_env_vars(gateway_factory):
    gw = gateway_factory(env={"LIVEGATE_HEARTBEAT_MS": "1234", "LIVEGATE_MAX_SUBSCRIPTIONS": "1"})
    with WsClient(gw.ws_url, "json") as c:
        assert c.connected["heartbeat_ms"] == 1234
        c.subscribe(unique("e."))
        c.expect_error({"type": "subscribe", "id": 1, "topic": unique("e.")}, "too_many_subscriptions")


def test_settings_from_toml(gateway_factory):
    cfg = ('heartbeat_ms = 4321\nmax_subscriptions = 2\nqueue_size = 64\nidle_timeout_ms = 60000\n'
           'max_frame_bytes = 2048\npoll_timeout_ms = 500\nsystem_publisher = false\n\n'
           '[[namespaces]]\nprefix = "tiny."\nhistory_size = 2\n\n'
           '[[namespaces]]\nprefix = "talk."\nclient_publish = true\n')
    gw = gateway_factory(config=cfg)
    with WsClient(gw.ws_url, "json") as c:
        assert c.connected["heartbeat_ms"] == 4321
        c.subscribe(unique("x."))
        c.subscribe(unique("x."))
        c.expect_error({"type": "subscribe", "id": 1, "topic": unique("x.")}, "too_many_subscriptions")
        # namespace options not given take their defaults; given ones apply
        ack = c.request({"type": "publish", "id": 2, "topic": unique("talk."), "data": 1})
        assert ack["type"] == "ack", ack
        c.expect_error({"type": "publish", "id": 3, "topic": unique("tiny."), "data": 1}, "publish_forbidden")
        c.send({"type": "publish", "id": 4, "topic": unique("talk."), "data": "x" * 3000})
        frames, rcvd = c.expect_close()
        assert rcvd is not None and rcvd.code == 1009, rcvd
    topic = unique("tiny.")
    with http_client(gw) as http:
        acks = [publish(http, topic, i) for i in range(1, 5)]
        h = http.get(f"/api/topics/{topic}/history").json()
        assert [p["offset"] for p in h["publications"]] == [3, 4], h
        r = http.get(f"/api/topics/{topic}/history", params={"since": f"{acks[0]['epoch']}:1"})
        assert r.status_code == 410, r.text
    p = Poller(gw, unique("x."))
    try:
        p.poll(cursor=None)
        t0 = time.monotonic()
        assert p.poll()["frames"] == []  # poll_timeout_ms = 500 is the default wait
        assert 0.4 <= time.monotonic() - t0 < 3
    finally:
        p.close()


def test_longest_prefix_wins(gateway_factory):
    cfg = ('[[namespaces]]\nprefix = ""\nhistory_size = 3\n\n'
           '[[namespaces]]\nprefix = "a."\nhistory_size = 4\n\n'
           '[[namespaces]]\nprefix = "a.b."\nhistory_size = 6\nclient_publish = true\n')
    gw = gateway_factory(config=cfg)
    with http_client(gw) as http:
        for topic, kept in (("zz", 3), ("a.x", 4), ("a.b.c", 6), ("a.bc", 4)):
            for i in range(10):
                publish(http, topic, i)
            h = http.get(f"/api/topics/{topic}/history").json()
            assert len(h["publications"]) == kept, (topic, kept, [p["offset"] for p in h["publications"]])
    with WsClient(gw.ws_url, "json") as c:
        assert c.request({"type": "publish", "topic": "a.b.c", "data": 1})["type"] == "ack"
        c.expect_error({"type": "publish", "id": 9, "topic": "a.x", "data": 1}, "publish_forbidden")


def test_history_size_zero_never_recovers(gateway_factory):
    gw = gateway_factory(config='[[namespaces]]\nprefix = "none."\nhistory_size = 0\n')
    topic = unique("none.")
    with http_client(gw) as http, WsClient(gw.ws_url, "json") as c:
        c.subscribe(topic)
        publish(http, topic, 1)
        p = c.publications(1)[0]
        assert p["offset"] == 1
        c2 = WsClient(gw.ws_url, "json")
        try:
            sub2 = c2.subscribe(topic, since={"epoch": p["epoch"], "offset": 1})
            assert sub2["recovered"] is True and sub2["publications"] == [], "no gap: recoverable"
        finally:
            c2.close()
        publish(http, topic, 2)
        c3 = WsClient(gw.ws_url, "json")
        try:
            sub3 = c3.subscribe(topic, since={"epoch": p["epoch"], "offset": 1})
            assert sub3["recovered"] is False and sub3["publications"] == [] and sub3["offset"] == 2, sub3
        finally:
            c3.close()


def test_bad_config_file_fails_to_start(livegate_bin, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("this is = = not toml\n")
    from conftest import register_process, stop_process
    p = subprocess.Popen([str(livegate_bin), "serve", "--listen", "127.0.0.1:0", "--no-system-publisher",
                          "--config", str(cfg), "--data-dir", str(tmp_path / "data")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    register_process(p)
    try:
        out, err = p.communicate(timeout=10)
    finally:
        stop_process(p)
    assert p.returncode != 0, "a broken config file must not start a gateway"
    assert b"listening" not in out
    assert err.strip(), "should explain the error on stderr"


# --------------------------------------------------------------- curl -----

def test_curl_sse_interop(gateway, procs):
    topic = unique("curl.")
    cp = procs(subprocess.Popen(["curl", "-sN", "--max-time", "5", f"{gateway.http}/sse?topic={topic}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    out: list[bytes] = []

    def read():
        for line in cp.stdout:
            out.append(line)

    th = threading.Thread(target=read, daemon=True)
    th.start()
    deadline = time.monotonic() + 4
    while not any(l.startswith(b"event: subscribed") for l in out):
        assert time.monotonic() < deadline, f"curl saw no subscribed event: {out}"
        time.sleep(0.05)
    with http_client(gateway) as http:
        for i in range(3):
            publish(http, topic, {"n": i})
    cp.wait(timeout=10)
    th.join(5)
    assert cp.returncode == 28, f"curl should end by --max-time (28), got {cp.returncode}"
    text = b"".join(out).decode()
    lines = text.split("\n")
    assert lines[0].rstrip("\r") == "retry: 1000", lines[:3]
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    pubs = [b for b in blocks if "event: publication" in b.split("\n")]
    assert len(pubs) == 3, text
    for i, b in enumerate(pubs):
        fields = dict(l.split(": ", 1) for l in b.split("\n") if l and not l.startswith(":"))
        assert fields["id"].startswith(f"{topic}:") and fields["id"].endswith(f":{i + 1}"), fields
        d = json.loads(fields["data"])
        assert d["type"] == "publication" and d["offset"] == i + 1 and d["data"] == {"n": i}, d
    assert text.count("event: connected") == 1 and text.count("event: subscribed") == 1


# ---------------------------------------------------- system publisher ----

@pytest.mark.parametrize("topic,key", [("$sys.cpu", "usage_percent"), ("$sys.memory", "total_bytes"),
                                       ("$sys.gateway", "connections")])
def test_system_publisher(gateway_factory, topic, key):
    gw = gateway_factory(system_publisher=True)
    s = SseClient(gw, topic)
    try:
        s.expect("connected")
        sub = s.expect("subscribed").json()
        assert sub["topic"] == topic
        t0 = time.monotonic()
        p = s.publications(1, timeout=4)[0]
        assert time.monotonic() - t0 < 4
        assert p["topic"] == topic and isinstance(p["data"], dict), p
        assert key in p["data"], p
        if key == "usage_percent":
            assert isinstance(p["data"][key], (int, float)) and p["data"][key] >= 0, p
        if key == "total_bytes":
            assert isinstance(p["data"][key], int) and p["data"][key] > 0, p
    finally:
        s.close()
    r = httpx.post(gw.http + "/api/publish", json={"topic": topic, "data": 1})
    assert r.status_code == 403, r.text


def test_no_system_publisher_flag(gateway):
    s = SseClient(gateway, "$sys.cpu")
    try:
        s.expect("connected")
        s.expect("subscribed")
        assert [e for e in s.quiet(2.0) if e.event == "publication"] == [], \
            "--no-system-publisher must not publish $sys topics"
    finally:
        s.close()


def test_history_ttl_drops_old_publications(gateway_factory):
    gw = gateway_factory(config='[[namespaces]]\nprefix = "ttl."\nhistory_size = 100\nhistory_ttl_secs = 1\n')
    topic = unique("ttl.")
    with http_client(gw) as http:
        acks = [publish(http, topic, i) for i in range(1, 4)]
        e = acks[0]["epoch"]
        h = http.get(f"/api/topics/{topic}/history").json()
        assert [p["offset"] for p in h["publications"]] == [1, 2, 3], h
        time.sleep(2.5)
        h = http.get(f"/api/topics/{topic}/history").json()
        assert h["publications"] == [] and h["offset"] == 3, f"expired publications still held: {h}"
        r = http.get(f"/api/topics/{topic}/history", params={"since": f"{e}:1"})
        assert r.status_code == 410, r.text
    with WsClient(gw.ws_url, "json") as c:
        sub = c.subscribe(topic, since={"epoch": e, "offset": 1})
        assert sub["recovered"] is False and sub["publications"] == [] and sub["offset"] == 3, sub
    with WsClient(gw.ws_url, "json") as c:
        sub = c.subscribe(topic, since={"epoch": e, "offset": 3})
        assert sub["recovered"] is True and sub["publications"] == [], "nothing missed is recoverable"
