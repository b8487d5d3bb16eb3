"""History on disk, the default of `livegate serve`: kept across restarts and
SIGKILL, torn tails cut at start-up, one gateway per data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from conftest import register_process, stop_process
from lgclient import RESUME_TRANSPORTS, check_sequence, http_client, make_transport, publish_many, unique


def history(http: httpx.Client, topic: str) -> dict:
    """Every kept publication of `topic` (pages of 1000 followed to the end)."""
    pubs: list[dict] = []
    since = None
    for _ in range(100):
        params = {"limit": 1000}
        if since is not None:
            params["since"] = since
        r = http.get(f"/api/topics/{topic}/history", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        pubs += page["publications"]
        if not page["more"]:
            return {"epoch": page["epoch"], "offset": page["offset"], "publications": pubs}
        since = f"{page['epoch']}:{pubs[-1]['offset']}"
    raise AssertionError("history did not end within 100 pages")


@pytest.mark.parametrize("kind", RESUME_TRANSPORTS)
def test_a_restarted_gateway_keeps_epochs_and_history_and_clients_resume(gateway, kind, opened):
    topic = unique("restart.")
    with http_client(gateway) as http:
        t1 = opened(make_transport(kind, gateway, topic))
        sub1 = t1.subscribe()
        publish_many(http, topic, 1, 5)
        check_sequence(t1.publications(5), topic, sub1["epoch"], 1, 5)
        token = t1.token()
        t1.close()
    epoch = sub1["epoch"]

    assert gateway.stop(signal.SIGTERM) == 0
    gateway.start()
    with http_client(gateway) as http:
        kept = history(http, topic)
        assert kept["epoch"] == epoch and kept["offset"] == 5, kept
        check_sequence(kept["publications"], topic, epoch, 1, 5)
        acks = publish_many(http, topic, 6, 3)
        assert [(a["epoch"], a["offset"]) for a in acks] == [(epoch, 6), (epoch, 7), (epoch, 8)], acks

        t2 = opened(make_transport(kind, gateway, topic))
        sub2 = t2.subscribe(resume=token)
        assert sub2["recovered"] is True, f"same epoch after a restart: {sub2}"
        assert sub2["epoch"] == epoch and sub2["offset"] == 8, sub2
        check_sequence(t2.publications(3), topic, epoch, 6, 8)


def test_sigkill_during_a_publish_storm_loses_no_acknowledged_publication(gateway_factory):
    # Small segments: the storm also rolls segments and writes checkpoints.
    gw = gateway_factory("--segment-bytes", "8192")
    topics = [unique("big.storm-") for _ in range(4)]
    acked: dict[str, dict[int, dict]] = {t: {} for t in topics}
    stop = threading.Event()
    errors: list[str] = []

    def storm(topic: str) -> None:
        with http_client(gw, timeout=5.0) as http:
            for i in range(4000):
                if stop.is_set():
                    return
                try:
                    r = http.post(f"/api/publish/{topic}", json={"i": i})
                except httpx.HTTPError:
                    return  # the gateway died mid-request: not acknowledged
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text}")
                    return
                ack = r.json()
                acked[topic][ack["offset"]] = {"i": i, "epoch": ack["epoch"]}

    threads = [threading.Thread(target=storm, args=(t,), daemon=True) for t in topics]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while sum(len(a) for a in acked.values()) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    gw.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not errors, errors
    assert all(acked.values()), "every publisher got acknowledgements before the kill"

    gw.start()
    with http_client(gw) as http:
        for topic in topics:
            kept = history(http, topic)
            offsets = [p["offset"] for p in kept["publications"]]
            assert offsets == list(range(1, len(offsets) + 1)), f"{topic}: gaps or repeats"
            assert kept["offset"] == len(offsets), kept["offset"]
            by_offset = {p["offset"]: p for p in kept["publications"]}
            for offset, a in acked[topic].items():
                assert offset in by_offset, f"{topic}: acknowledged offset {offset} lost"
                assert by_offset[offset]["data"] == {"i": a["i"]}, by_offset[offset]
                assert by_offset[offset]["epoch"] == a["epoch"]
            # The log goes on where it stopped.
            r = http.post(f"/api/publish/{topic}", json={"after": True})
            assert r.json()["offset"] == len(offsets) + 1, r.json()


def test_a_torn_tail_is_cut_at_start_up_and_logged(gateway):
    topic = unique("torn.")
    with http_client(gateway) as http:
        publish_many(http, topic, 1, 3)
    assert gateway.stop(signal.SIGTERM) == 0
    segments = sorted(gateway.data_dir.glob("*.seg"))
    assert segments, list(gateway.data_dir.iterdir())
    good = segments[-1].stat().st_size
    with open(segments[-1], "ab") as f:
        # A record header promising 200 bytes, and 10 of them: a write cut short.
        f.write((200).to_bytes(4, "little") + b"\0\0\0\0" + b"x" * 10)

    gateway.start()
    log = gateway.log_paths[-1].read_text()
    assert "cutting a torn tail" in log and "cut_bytes=18" in log, log
    assert segments[-1].stat().st_size == good
    with http_client(gateway) as http:
        kept = history(http, topic)
        assert [p["offset"] for p in kept["publications"]] == [1, 2, 3]
        assert publish_many(http, topic, 4, 1)[0]["offset"] == 4


def run_refused(livegate_bin, *args: str) -> tuple[int, str]:
    p = subprocess.Popen([str(livegate_bin), "serve", "--listen", "127.0.0.1:0", "--no-system-publisher",
                          "--no-wt", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    register_process(p)
    try:
        out, err = p.communicate(timeout=15)
    finally:
        stop_process(p)
    assert b"listening" not in out, out
    return p.returncode, err.decode()


def test_a_second_gateway_on_the_same_data_dir_is_refused(gateway, livegate_bin):
    code, err = run_refused(livegate_bin, "--data-dir", str(gateway.data_dir))
    assert code != 0
    assert "in use by another livegate" in err, err
    with http_client(gateway) as http:  # the first one is untouched
        assert http.get("/health").status_code == 200


def test_an_unusable_data_dir_is_a_clear_start_up_error(livegate_bin, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, err = run_refused(livegate_bin, "--data-dir", str(not_a_dir / "data"))
    assert code != 0
    assert "cannot use data directory" in err, err


def test_memory_and_data_dir_together_are_refused(livegate_bin, tmp_path):
    code, err = run_refused(livegate_bin, "--memory", "--data-dir", str(tmp_path / "d"))
    assert code != 0 and "--memory" in err, err


def test_a_full_disk_fails_publishes_with_unavailable_and_the_gateway_recovers(gateway_factory, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not mounted:
        pytest.skip("needs a small tmpfs: root and mount(8)")
    try:
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * 200_000)
        gw = gateway_factory("--data-dir", str(mnt / "data"))
        topic = unique("full.")
        pad = "x" * 50_000
        with http_client(gw) as http:
            answers = []
            for i in range(30):  # 30 x 50 KB: more than the 512 KiB there are
                r = http.post(f"/api/publish/{topic}", json={"i": i, "pad": pad})
                answers.append(r)
                if r.status_code != 200:
                    break
            assert answers[-1].status_code == 503, [a.status_code for a in answers]
            assert answers[-1].json()["code"] == "unavailable", answers[-1].text
            acked = len(answers) - 1
            assert acked > 0
            kept = history(http, topic)
            assert [p["offset"] for p in kept["publications"]] == list(range(1, acked + 1))
            assert gw.running() and http.get("/health").status_code == 200

            filler.unlink()  # room again: the next publish gets the next offset
            r = http.post(f"/api/publish/{topic}", json={"i": "after", "pad": pad})
            assert r.status_code == 200 and r.json()["offset"] == acked + 1, r.text
        assert gw.stop(signal.SIGTERM) == 0
        gw.start()
        with http_client(gw) as http:
            kept = history(http, topic)
            assert [p["offset"] for p in kept["publications"]] == list(range(1, acked + 2))
        gw.stop()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
