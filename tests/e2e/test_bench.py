"""`livegate bench` as a user runs it: a short smoke over every transport, its
reports, and clear errors for impossible parameters. Never a timed assertion:
only completion, zero loss and well-formed output."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import binary_path


def bench(*args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "RUST_BACKTRACE": "0", **(env or {})}
    return subprocess.run([str(binary_path()), "bench", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.mark.timeout(300)
def test_smoke_every_transport_no_loss(tmp_path):
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    svg = tmp_path / "r.svg"
    r = bench("-n", "5", "-t", "1", "-r", "200", "--idle", "50", "--quiet",
              "--transports", "ws,sse,poll,wt", "--encodings", "json,msgpack",
              "--json", str(out), "--markdown", str(md), "--svg", str(svg), "--fail-on-loss")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    variants = {(v["transport"], v["encoding"]) for v in report["variants"]}
    assert variants == {("ws", "json"), ("ws", "msgpack"), ("sse", "json"), ("poll", "json"),
                        ("wt", "json"), ("wt", "msgpack")}, variants
    for v in report["variants"]:
        assert v["published"] > 0, v
        assert v["lost"] == 0, v
        assert v["delivered"] == v["published"] * 5, v
        assert v["gateway_cpu_secs"] >= 0 and v["deliveries_per_cpu_sec"] is not None, v
        assert 0 < v["latency_ms"]["p50"] <= v["latency_ms"]["p99"] <= v["latency_ms"]["max"], v
    assert report["idle_kib_per_connection"] > 0
    assert "ws/json" in r.stdout and "deliveries/CPU-s" in r.stdout
    assert md.read_text().count("\n| ") >= 6
    text = svg.read_text()
    assert text.startswith("<svg") and text.count("<rect") >= 1 + 2 * 6


@pytest.mark.timeout(300)
def test_compression_axis_side_by_side(tmp_path):
    out = tmp_path / "c.json"
    r = bench("-n", "5", "-t", "1", "-r", "50", "--size", "2048", "--quiet",
              "--compression", "off,deflate", "--json", str(out), "--fail-on-loss")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    by = {v["compression"]: v for v in report["variants"]}
    assert set(by) == {"off", "deflate"}, report
    for v in by.values():
        assert v["transport"] == "ws" and v["encoding"] == "json", v
        assert v["published"] > 0 and v["lost"] == 0, v
        assert v["deliveries_per_cpu_sec"] is not None, v
    # Snapshots compress: the deflate variant puts far fewer bytes on the wire.
    assert by["deflate"]["bytes_per_delivery"] < 0.6 * by["off"]["bytes_per_delivery"], report
    assert "ws/json/deflate" in r.stdout and "CPU us/delivery" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["-n", "0"], "--subscribers must be at least 1"),
    (["--url", "http://127.0.0.1:1", "-t", "1"], "does not answer"),
    (["--transports", "carrier-pigeon"], "unknown transport"),
    (["--size", "10"], "--size must be at least 64"),
    (["--duration", "0"], "--duration"),
    (["--compression", "zstd"], "unknown compression"),
])
def test_impossible_parameters_say_what_is_wrong(args, message):
    r = bench(*args, "--quiet", timeout=60)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr


def test_too_few_file_descriptors_suggests_ulimit():
    proc = subprocess.Popen(["bash", "-c", f"ulimit -n 256; exec {binary_path()} bench -n 500 --quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RUST_BACKTRACE": "0"})
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "ulimit -n" in stderr, stderr
    # Nothing this run started is left: its gateways' config paths carry its pid
    # (`exec` kept the pid of the bash process).
    left = subprocess.run(["pgrep", "-f", f"livegate-bench-{proc.pid}-"], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout
