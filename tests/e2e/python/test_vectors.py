"""The package's codecs against the shared vectors (tests/vectors/frames.json):
the Rust core inside the wheel must read and write exactly the bytes every
other implementation does, and hand publications to Python as the frames say."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

import livegate
from livegate import _livegate

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "frames.json").read_text()
)


def _bytes(vector: dict, encoding: str) -> bytes:
    return vector["json"].encode() if encoding == "json" else bytes.fromhex(vector["msgpack_hex"])


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
@pytest.mark.parametrize("source", ["json", "msgpack"])
def test_valid_frames_transcode_exactly(vector, source):
    data = _bytes(vector, source)
    for target in ("json", "msgpack"):
        out = _livegate.transcode_frame(vector["direction"], source, target, data)
        assert out == _bytes(vector, target), f"{source} -> {target}"


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_frames_are_refused_with_their_code(vector):
    with pytest.raises(livegate.ProtocolError) as info:
        _livegate.transcode_frame("client", vector["encoding"], "json", bytes.fromhex(vector["hex"]))
    assert info.value.code == vector["error"]


def _server_publications(vector: dict) -> list:
    frame = vector["frame"]
    if frame["type"] == "publication":
        return [frame]
    if frame["type"] == "subscribed":
        return frame.get("publications", [])
    return []


PUBLISHING = [v for v in VECTORS["valid"] if v["direction"] == "server" and _server_publications(v)]


@pytest.mark.parametrize("vector", PUBLISHING, ids=lambda v: v["name"])
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_publications_reach_python_as_the_frames_say(vector, encoding):
    expected = _server_publications(vector)
    got = _livegate.decode_publications(encoding, _bytes(vector, encoding))
    assert len(got) == len(expected)
    for pub, frame in zip(got, expected):
        assert isinstance(pub, livegate.Publication)
        assert pub.topic == frame["topic"]
        assert pub.offset == frame["offset"]
        assert pub.epoch == frame["epoch"]
        assert pub.event == frame.get("event")
        when = datetime.strptime(frame["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert pub.time == when
        assert pub.time_ms == int(when.timestamp() * 1000)
        if isinstance(pub.data, bytes):
            # Binary payloads: JSON frames carry them as base64 text (docs/protocol.md).
            assert encoding == "msgpack" or isinstance(frame["data"], str)
        else:
            assert pub.data == frame["data"]


def test_vectors_cover_publications():
    assert len(PUBLISHING) >= 2


@pytest.mark.parametrize(
    "value",
    [
        {"host": "db-1", "cpu": 97.5, "tags": ["prod"], "ok": False, "note": None},
        "héllo \"world\"",
        [1, -2, 2**63 - 1, 2**64 - 1, -(2**63), 0.1, 1e300, True, None],
        {"nested": {"deep": [[[{"x": "y"}]]]}},
        {},
        [],
    ],
)
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_payloads_encode_as_the_core_decodes(value, encoding):
    """What publish sends is valid in its encoding and means the same value."""
    raw = _livegate.encode_payload(value, encoding)
    if encoding == "json":
        assert json.loads(raw) == value
    else:
        import msgpack

        assert msgpack.unpackb(raw, strict_map_key=False) == value
