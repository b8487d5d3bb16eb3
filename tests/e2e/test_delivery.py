"""Delivery, ordering and resume on every transport (protocol.md §1 resume rule, §4)."""

from __future__ import annotations

import time

import httpx
import msgpack
import pytest

from lgclient import (RESUME_TRANSPORTS, TRANSPORTS, Poller, SseClient, WsClient, check_publication,
                      check_sequence, http_client, make_transport, parse_cursor, publish,
                      publish_later, publish_many, unique)


def assert_not_recovered(sub, topic, *, latest: int, old_epoch: str | None = None):
    assert sub["type"] == "subscribed" and sub["topic"] == topic, sub
    assert sub["recovered"] is False, f"expected recovered: false, got {sub}"
    assert sub["offset"] == latest, f"current position should be {latest}: {sub}"
    assert sub.get("publications", []) == [], f"no publications may be replayed: {sub}"
    if old_epoch is not None:
        assert sub["epoch"] != old_epoch, f"epoch must change across a restart: {sub}"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_live_publications_in_order(gateway, kind, opened):
    topic = unique("live.")
    t = opened(make_transport(kind, gateway, topic))
    sub = t.subscribe()
    assert sub["type"] == "subscribed" and sub["topic"] == topic, sub
    assert sub["recovered"] is False, sub
    assert sub["offset"] == 0, f"new topic must be at offset 0: {sub}"
    assert sub.get("publications", []) == [], sub
    assert isinstance(sub["epoch"], str) and sub["epoch"], sub

    with http_client(gateway) as http:
        acks = publish_many(http, topic, 1, 50)
    assert [a["offset"] for a in acks] == list(range(1, 51))
    epochs = {a["epoch"] for a in acks}
    assert epochs == {sub["epoch"]}, f"acks epochs {epochs} vs subscribed {sub['epoch']}"

    pubs = t.publications(50)
    check_sequence(pubs, topic, sub["epoch"], 1, 50)
    if kind == "sse":
        for p in pubs:  # a one-topic stream: id is exactly topic:epoch:offset
            assert parse_cursor(p["_sse_id"]) == {topic: (sub["epoch"], p["offset"])}, p["_sse_id"]
    if kind == "poll":
        assert parse_cursor(t.token()) == {topic: (sub["epoch"], 50)}, t.token()
    assert t.quiet(0.3) == [], "duplicate or extra publications"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_subscribe_to_existing_topic_starts_live(gateway, kind, opened):
    topic = unique("live.")
    with http_client(gateway) as http:
        publish_many(http, topic, 1, 7)
        t = opened(make_transport(kind, gateway, topic))
        sub = t.subscribe()
        assert sub["recovered"] is False and sub["offset"] == 7, sub
        assert sub.get("publications", []) == [], sub
        publish(http, topic, {"i": 8})
    pubs = t.publications(1)
    check_publication(pubs[0], topic, sub["epoch"], 8, {"i": 8})
    assert t.quiet(0.3) == []


@pytest.mark.parametrize("kind", RESUME_TRANSPORTS)
def test_resume_recovers_exactly_the_missed(gateway, kind, opened):
    topic = unique("resume.")
    with http_client(gateway) as http:
        t1 = opened(make_transport(kind, gateway, topic))
        sub1 = t1.subscribe()
        publish_many(http, topic, 1, 50)
        check_sequence(t1.publications(50), topic, sub1["epoch"], 1, 50)
        token = t1.token()
        t1.close()

        publish_many(http, topic, 51, 10)

        t2 = opened(make_transport(kind, gateway, topic))
        sub2 = t2.subscribe(resume=token)
        assert sub2["recovered"] is True, f"resume within history must be recovered: {sub2}"
        assert sub2["epoch"] == sub1["epoch"], sub2
        if not sub2.get("_synthetic"):
            assert sub2["offset"] == 60, f"subscribed.offset is the latest: {sub2}"
        missed = t2.publications(10)
        check_sequence(missed, topic, sub1["epoch"], 51, 60)
        assert t2.quiet(0.3) == [], "missed publications must arrive exactly once"

        publish(http, topic, {"i": 61})
        live = t2.publications(1)
        check_sequence(live, topic, sub1["epoch"], 61, 61)
        assert t2.quiet(0.3) == []


@pytest.mark.parametrize("kind", RESUME_TRANSPORTS)
def test_resume_with_nothing_missed(gateway, kind, opened):
    topic = unique("resume.")
    with http_client(gateway) as http:
        t1 = opened(make_transport(kind, gateway, topic))
        t1.subscribe()
        publish_many(http, topic, 1, 3)
        t1.publications(3)
        token = t1.token()
        t1.close()
        t2 = opened(make_transport(kind, gateway, topic))
        if kind == "poll":
            # nothing missed: the poll waits; a publication during the wait ends it
            timer = publish_later(gateway, topic, {"i": 4}, 0.5)
            t2.subscribe(resume=token)
            timer.join()
            assert not [f for f in t2.p.answers[-1]["frames"] if f.get("type") == "subscribed"], \
                t2.p.answers[-1]
            pubs = t2.publications(1)
        else:
            sub = t2.subscribe(resume=token)
            assert sub["recovered"] is True and sub["offset"] == 3, sub
            assert sub.get("publications", []) == [], sub
            assert t2.quiet(0.3) == []
            publish(http, topic, {"i": 4})
            pubs = t2.publications(1)
        check_sequence(pubs, topic, None, 4, 4)


@pytest.mark.parametrize("kind", RESUME_TRANSPORTS)
def test_resume_beyond_history_is_not_recovered(gateway, kind, opened):
    topic = unique("small.")  # history_size = 5
    with http_client(gateway) as http:
        t1 = opened(make_transport(kind, gateway, topic))
        sub1 = t1.subscribe()
        publish_many(http, topic, 1, 3)
        check_sequence(t1.publications(3), topic, sub1["epoch"], 1, 3)
        token = t1.token()
        t1.close()

        publish_many(http, topic, 4, 10)  # offsets 4..13, history keeps 9..13 only

        t2 = opened(make_transport(kind, gateway, topic))
        sub2 = t2.subscribe(resume=token)
        assert not sub2.get("_synthetic"), \
            f"an unrecoverable cursor must produce a subscribed frame with recovered: false, got {sub2}"
        assert_not_recovered(sub2, topic, latest=13)
        assert sub2["epoch"] == sub1["epoch"], sub2
        assert t2.quiet(0.3) == [], "an unrecoverable resume must not replay anything"

        publish(http, topic, {"i": 14})
        check_sequence(t2.publications(1), topic, sub1["epoch"], 14, 14)


@pytest.mark.parametrize("kind", RESUME_TRANSPORTS)
def test_resume_inside_small_history_is_recovered(gateway, kind, opened):
    topic = unique("small.")  # history_size = 5
    with http_client(gateway) as http:
        t1 = opened(make_transport(kind, gateway, topic))
        sub1 = t1.subscribe()
        # in batches that fit in history: a poller is only as live as its polls
        publish_many(http, topic, 1, 4)
        check_sequence(t1.publications(4), topic, sub1["epoch"], 1, 4)
        publish_many(http, topic, 5, 4)
        check_sequence(t1.publications(4), topic, sub1["epoch"], 5, 8)
        token = t1.token()
        t1.close()
        publish_many(http, topic, 9, 5)  # 9..13: exactly what history holds
        t2 = opened(make_transport(kind, gateway, topic))
        sub2 = t2.subscribe(resume=token)
        assert sub2["recovered"] is True, sub2
        check_sequence(t2.publications(5), topic, sub1["epoch"], 9, 13)
        assert t2.quiet(0.3) == []


@pytest.mark.parametrize("kind", RESUME_TRANSPORTS)
def test_resume_after_in_memory_gateway_restart_changes_epoch(gateway_factory, kind, opened):
    """With --memory history dies with the process (test_disk_log covers the default)."""
    gateway = gateway_factory("--memory")
    topic = unique("restart.")
    with http_client(gateway) as http:
        t1 = opened(make_transport(kind, gateway, topic))
        sub1 = t1.subscribe()
        publish_many(http, topic, 1, 5)
        check_sequence(t1.publications(5), topic, sub1["epoch"], 1, 5)
        token = t1.token()
        t1.close()
    old_epoch = sub1["epoch"]

    gateway.restart()
    with http_client(gateway) as http:
        # the new history has offsets 1..7 that overlap the old position 5
        acks = publish_many(http, topic, 101, 7)
        assert acks[0]["offset"] == 1 and acks[0]["epoch"] != old_epoch, acks[0]
        new_epoch = acks[0]["epoch"]

        t2 = opened(make_transport(kind, gateway, topic))
        sub2 = t2.subscribe(resume=token)
        assert not sub2.get("_synthetic"), \
            f"old-epoch cursor must produce a subscribed frame with recovered: false, got {sub2}"
        assert_not_recovered(sub2, topic, latest=7, old_epoch=old_epoch)
        assert sub2["epoch"] == new_epoch, sub2
        assert t2.quiet(0.3) == [], "nothing of the new epoch may be replayed for an old-epoch position"

        publish(http, topic, {"i": 8})
        check_sequence(t2.publications(1), topic, new_epoch, 8, 8)


@pytest.mark.parametrize("kind", ["ws-json", "ws-msgpack"])
def test_ws_since_ahead_of_latest_or_unknown_epoch(gateway, kind):
    topic = unique("resume.")
    with http_client(gateway) as http:
        ack = publish_many(http, topic, 1, 3)[-1]
    with WsClient(gateway.ws_url, kind[3:]) as c:
        sub = c.subscribe(topic, since={"epoch": ack["epoch"], "offset": 99})
        assert_not_recovered(sub, topic, latest=3)
        sub = c.subscribe(unique("other."), since={"epoch": "nope", "offset": 0})
        assert sub["recovered"] is False and sub["offset"] == 0, sub
        sub = c.subscribe(unique("other."), since={"epoch": ack["epoch"], "offset": 1})
        assert sub["recovered"] is False, f"epoch of another topic cannot recover: {sub}"


def test_ws_many_topics_one_connection(gateway):
    a, b = unique("multi."), unique("multi.")
    with WsClient(gateway.ws_url, "json") as c, http_client(gateway) as http:
        ea = c.subscribe(a)["epoch"]
        eb = c.subscribe(b)["epoch"]
        for i in range(1, 21):
            publish(http, a if i % 2 else b, {"i": i})
        pubs = c.publications(20)
        assert [(p["topic"], p["offset"], p["data"]["i"]) for p in pubs] == \
            [((a if i % 2 else b), (i + 1) // 2, i) for i in range(1, 21)]
        assert all(p["epoch"] == (ea if p["topic"] == a else eb) for p in pubs)
        un = c.request({"type": "unsubscribe", "topic": a})
        assert un["type"] == "unsubscribed" and un["topic"] == a, un
        publish(http, a, {"i": 99})
        publish(http, b, {"i": 100})
        p = c.publications(1)[0]
        assert p["topic"] == b and p["data"] == {"i": 100}, p
        assert [f for f in c.frames_until_pong() if f.get("type") == "publication"] == []


def test_event_name_is_delivered(gateway):
    topic = unique("ev.")
    with WsClient(gateway.ws_url, "json") as c, http_client(gateway) as http:
        c.subscribe(topic)
        publish(http, topic, {"x": 1}, event="price-update")
        publish(http, topic, {"x": 2}, via="path", event="tick")
        publish(http, topic, {"x": 3})
        p1, p2, p3 = c.publications(3)
        assert p1["event"] == "price-update" and p2["event"] == "tick", (p1, p2)
        assert "event" not in p3, f"absent optional fields are omitted: {p3}"
        assert "binary" not in p3, p3


# ---------------------------------------------------------------- SSE -----

def test_sse_cursor_covers_every_topic(gateway):
    a, b = unique("sse."), unique("sse.")
    with http_client(gateway) as http:
        s = SseClient(gateway, [a, b])
        try:
            s.expect("connected")
            subs = {s.expect("subscribed").json()["topic"], s.expect("subscribed").json()["topic"]}
            assert subs == {a, b}
            publish(http, a, {"i": 1})
            publish(http, b, {"i": 2})
            publish(http, a, {"i": 3})
            pubs = s.publications(3)
            assert [(p["topic"], p["offset"]) for p in pubs] == [(a, 1), (b, 1), (a, 2)]
            cur = parse_cursor(pubs[-1]["_sse_id"])
            assert cur[a] == (pubs[2]["epoch"], 2) and cur[b] == (pubs[1]["epoch"], 1), cur
            first = parse_cursor(pubs[0]["_sse_id"])
            assert first[a] == (pubs[0]["epoch"], 1), first
            token = pubs[-1]["_sse_id"]
        finally:
            s.close()
        publish(http, b, {"i": 4})
        publish(http, a, {"i": 5})
        s = SseClient(gateway, [a, b], last_event_id=token)
        try:
            s.expect("connected")
            evs = [s.next_event(5) for _ in range(4)]
            assert None not in evs, evs
            subs = [e.json() for e in evs if e.event == "subscribed"]
            pubs = [e.json() for e in evs if e.event == "publication"]
            assert sorted(x["topic"] for x in subs) == sorted([a, b]), evs
            assert all(x["recovered"] is True for x in subs), subs
            assert sorted((p["topic"], p["offset"]) for p in pubs) == sorted([(b, 2), (a, 3)])
            assert s.quiet(0.3) == []
            # protocol.md §4.2: connected, then one subscribed per topic, then the missed publications
            assert [e.event for e in evs] == ["subscribed", "subscribed", "publication", "publication"], \
                [(e.event, e.data[:60]) for e in evs]
        finally:
            s.close()


def test_sse_last_event_id_wins_over_since(gateway):
    topic = unique("sse.")
    with http_client(gateway) as http:
        acks = publish_many(http, topic, 1, 10)
    e = acks[0]["epoch"]
    s = SseClient(gateway, topic, since=f"{topic}:{e}:2", last_event_id=f"{topic}:{e}:8")
    try:
        s.expect("connected")
        assert s.expect("subscribed").json()["recovered"] is True
        check_sequence(s.publications(2), topic, e, 9, 10)
        assert s.quiet(0.3) == []
    finally:
        s.close()


def test_sse_multiline_payload_is_split_into_data_lines(gateway):
    topic = unique("sse.")
    body = b'{\n  "a": 1,\n  "b": [1, 2]\n}'
    s = SseClient(gateway, topic)
    try:
        s.expect("connected")
        s.expect("subscribed")
        r = httpx.post(f"{gateway.http}/api/publish/{topic}", content=body,
                       headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        p = s.publications(1)[0]
        assert p["data"] == {"a": 1, "b": [1, 2]}, p
    finally:
        s.close()


def test_sse_heartbeat_comments(gateway_factory):
    gw = gateway_factory("--heartbeat-ms", "200")
    s = SseClient(gw, unique("hb."))
    try:
        s.expect("connected")
        s.expect("subscribed")
        time.sleep(1.3)
        assert s.quiet(0.1) == []
        pings = [c for c in s.parser.comments if c.strip() == "ping"]
        assert len(pings) >= 3, f"expected ': ping' every 200 ms, got comments {s.parser.comments}"
    finally:
        s.close()


# --------------------------------------------------------------- poll -----

def test_poll_waits_and_times_out_empty(gateway):
    topic = unique("poll.")
    p = Poller(gateway, topic)
    try:
        p.poll(cursor=None)
        t0 = time.monotonic()
        ans = p.poll(timeout_ms=700)
        dt = time.monotonic() - t0
        assert ans["frames"] == [], ans
        assert 0.6 <= dt < 5, f"empty long-poll answer after {dt:.2f}s, expected ~0.7s"
    finally:
        p.close()


def test_poll_answers_as_soon_as_a_publication_arrives(gateway):
    topic = unique("poll.")
    p = Poller(gateway, topic)
    try:
        p.poll(cursor=None)
        timer = publish_later(gateway, topic, {"i": 1}, 0.5)
        t0 = time.monotonic()
        ans = p.poll(timeout_ms=10000)
        dt = time.monotonic() - t0
        timer.join()
        assert 0.3 <= dt < 3, f"long-poll took {dt:.2f}s"
        assert [f["offset"] for f in ans["frames"]] == [1], ans
        assert parse_cursor(ans["cursor"])[topic][1] == 1, ans["cursor"]
    finally:
        p.close()


@pytest.mark.timeout(90)
def test_poll_caps_answers_at_1000(gateway):
    topic = unique("big.")
    p = Poller(gateway, topic)
    try:
        p.poll(cursor=None)
        with http_client(gateway) as http:
            for i in range(1, 1101):
                r = http.post(f"/api/publish/{topic}", content=str(i).encode(),
                              headers={"content-type": "application/json"})
                assert r.status_code == 200, r.text
        a1 = p.poll(timeout_ms=2000)
        assert [f["offset"] for f in a1["frames"]] == list(range(1, 1001)), "first answer: 1..1000"
        a2 = p.poll(timeout_ms=2000)
        assert [f["offset"] for f in a2["frames"]] == list(range(1001, 1101))
        assert [f["data"] for f in a2["frames"]] == list(range(1001, 1101))
    finally:
        p.close()


def test_poll_several_topics_and_new_topic_in_cursor(gateway):
    a, b = unique("poll."), unique("poll.")
    p = Poller(gateway, a)
    try:
        p.poll(cursor=None)
        with http_client(gateway) as http:
            publish(http, a, {"i": 1})
            ans = p.poll(timeout_ms=2000)
            assert [f["offset"] for f in ans["frames"]] == [1]
            # add topic b: it is not in the cursor, so it starts live with a subscribed frame
            p.topics = [a, b]
            ans = p.poll(timeout_ms=2000)
            subs = [f for f in ans["frames"] if f["type"] == "subscribed"]
            assert [s["topic"] for s in subs] == [b], ans
            cur = parse_cursor(ans["cursor"])
            assert cur[a][1] == 1, cur
            publish(http, b, {"i": 2})
            publish(http, a, {"i": 3})
            got = []
            for _ in range(5):
                got += p.poll(timeout_ms=1000)["frames"]
                if len(got) >= 2:
                    break
            assert sorted((f["topic"], f["offset"]) for f in got) == sorted([(b, 1), (a, 2)]), got
    finally:
        p.close()


# ----------------------------------------------------- encodings ----------

def test_payload_encodings_across_transports(gateway):
    topic = unique("enc.")
    blob = bytes(range(256))
    j = WsClient(gateway.ws_url, "json")
    m = WsClient(gateway.ws_url, "msgpack")
    s = SseClient(gateway, topic)
    p = Poller(gateway, topic)
    try:
        j.subscribe(topic)
        m.subscribe(topic)
        s.expect("connected")
        s.expect("subscribed")
        p.poll(cursor=None)
        with http_client(gateway) as http:
            r = http.post(f"/api/publish/{topic}", content=msgpack.packb({"k": [1, "two", None]}),
                          headers={"content-type": "application/msgpack"})
            assert r.status_code == 200, r.text
            r = http.post(f"/api/publish/{topic}", content=blob,
                          headers={"content-type": "application/octet-stream"})
            assert r.status_code == 200, r.text
            r = http.post(f"/api/publish/{topic}", content=b"hello world",
                          headers={"content-type": "text/plain"})
            assert r.status_code == 200, r.text
            r = http.post(f"/api/publish/{topic}", content=msgpack.packb(7),
                          headers={"content-type": "application/x-msgpack"})
            assert r.status_code == 200, r.text
        jp = j.publications(4)
        mp = m.publications(4)
        assert [p["offset"] for p in jp] == [1, 2, 3, 4] == [p["offset"] for p in mp]
        assert jp[0]["data"] == {"k": [1, "two", None]} == mp[0]["data"]
        import base64
        assert jp[1]["data"] == base64.b64encode(blob).decode() and jp[1].get("binary") is True, jp[1]
        assert mp[1]["data"] == blob and isinstance(mp[1]["data"], bytes), mp[1]
        assert jp[2]["data"] == "hello world" == mp[2]["data"]
        assert jp[3]["data"] == 7 == mp[3]["data"]
        assert "binary" not in jp[0] and "binary" not in jp[2], jp
        sp = s.publications(4)
        pp = p.poll(timeout_ms=2000)["frames"]
        for name, got in (("sse", sp), ("poll", pp)):
            assert [f["offset"] for f in got] == [1, 2, 3, 4], (name, got)
            assert [f["data"] for f in got] == [jp[i]["data"] for i in range(4)], name
            assert got[1].get("binary") is True and "binary" not in got[0], (name, got[1])
    finally:
        j.close()
        m.close()
        s.close()
        p.close()


def test_json_payload_forwarded_byte_for_byte(gateway):
    topic = unique("verbatim.")
    payload = '{"z":1,  "a" : [1, 2.50, "\\u00e9", 1e3]}'
    c = WsClient(gateway.ws_url, "json")
    try:
        c.subscribe(topic)
        r = httpx.post(f"{gateway.http}/api/publish/{topic}", content=payload.encode(),
                       headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        body = '{"topic":"%s","data":%s}' % (topic, payload)
        r = httpx.post(f"{gateway.http}/api/publish", content=body.encode(),
                       headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        c.publications(2)
        raw = [m for m in c.raw_log if '"publication"' in m]
        assert len(raw) == 2, raw
        for msg in raw:
            assert payload in msg, f"payload not forwarded verbatim: {msg}"
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_fan_out_to_many_clients(gateway):
    topic = unique("fan.")
    ws = [WsClient(gateway.ws_url, "json" if i % 2 else "msgpack") for i in range(16)]
    sse = [SseClient(gateway, topic) for _ in range(3)]
    try:
        for c in ws:
            c.subscribe(topic)
        for s in sse:
            s.expect("connected")
            s.expect("subscribed")
        with http_client(gateway) as http:
            publish_many(http, topic, 1, 100)
        epochs = set()
        for got in [c.publications(100, topic) for c in ws] + [s.publications(100) for s in sse]:
            check_sequence(got, topic, None, 1, 100)
            epochs |= {p["epoch"] for p in got}
        assert len(epochs) == 1, epochs
    finally:
        for c in ws:
            c.close()
        for s in sse:
            s.close()


@pytest.mark.timeout(60)
def test_large_and_unicode_payloads_on_every_transport(gateway, opened):
    topic = unique("large.")
    ts = [opened(make_transport(k, gateway, topic)) for k in TRANSPORTS]
    for t in ts:
        t.subscribe()
    payloads = [{"s": "h\u00e9llo \U0001F30D \u2028 \"quoted\" \\ back", "n": -1.25, "z": None},
                {"blob": "y" * (512 * 1024)}]
    with http_client(gateway) as http:
        for d in payloads:
            publish(http, topic, d)
    for t in ts:
        got = t.publications(2)
        assert [p["offset"] for p in got] == [1, 2], t.name
        assert got[0]["data"] == payloads[0], (t.name, got[0]["data"])
        assert got[1]["data"] == payloads[1], t.name


def test_poll_mixed_recoverable_and_not(gateway):
    small, plain = unique("small."), unique("poll.")
    p = Poller(gateway, [small, plain])
    try:
        p.poll(cursor=None)
        cur0 = p.cursor
        with http_client(gateway) as http:
            publish_many(http, small, 1, 8)   # more than small. keeps (5)
            publish_many(http, plain, 1, 3)
        ans = p.poll(cursor=cur0, timeout_ms=2000)
        subs = [f for f in ans["frames"] if f["type"] == "subscribed"]
        pubs = [f for f in ans["frames"] if f["type"] == "publication"]
        assert [(f["topic"], f["recovered"], f["offset"]) for f in subs] == [(small, False, 8)], ans
        assert [(f["topic"], f["offset"]) for f in pubs] == [(plain, 1), (plain, 2), (plain, 3)], ans
        cur = parse_cursor(ans["cursor"])
        assert cur[small][1] == 8 and cur[plain][1] == 3, cur
    finally:
        p.close()


def test_client_ids_are_unique(gateway):
    cs = [WsClient(gateway.ws_url, "json") for _ in range(6)]
    try:
        ids = [c.connected["client_id"] for c in cs]
        assert len(set(ids)) == 6, ids
    finally:
        for c in cs:
            c.close()


@pytest.mark.timeout(60)
def test_concurrent_publishers_get_unique_gapless_offsets(gateway):
    import threading
    topic = unique("conc.")
    c = WsClient(gateway.ws_url, "msgpack")
    acks: list[dict] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(w: int):
        try:
            with http_client(gateway) as http:
                for i in range(100):
                    a = publish(http, topic, {"w": w, "i": i}, via="body" if i % 2 else "path")
                    with lock:
                        acks.append({**a, "w": w, "i": i})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    try:
        c.subscribe(topic)
        ths = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(50)
        assert not errors, errors
        assert sorted(a["offset"] for a in acks) == list(range(1, 401)), "offsets must be unique and gapless"
        pubs = c.publications(400, topic, 30)
        assert [p["offset"] for p in pubs] == list(range(1, 401))
        by_offset = {a["offset"]: {"w": a["w"], "i": a["i"]} for a in acks}
        assert all(p["data"] == by_offset[p["offset"]] for p in pubs), "ack offset and delivered data disagree"
        for w in range(4):  # each publisher's own order is kept
            mine = [p["data"]["i"] for p in pubs if p["data"]["w"] == w]
            assert mine == list(range(100)), (w, mine[:10])
    finally:
        c.close()
