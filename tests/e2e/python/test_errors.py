"""Bad input gets a Python exception that says what to do: never a hang,
never a Rust panic (pyo3's PanicException) reaching Python."""

from __future__ import annotations

import asyncio
import math

import pytest

import livegate

URL = "http://127.0.0.1:1"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"url": 8080}, "url must be a str"),
        ({"url": "localhost:8080"}, "expected http://"),
        ({"url": "ftp://x"}, "expected http://"),
        ({"url": "http://host:notaport"}, "port"),
        ({"transports": ["carrier-pigeon"]}, "unknown transport"),
        ({"transports": []}, "transports is empty"),
        ({"transports": 5}, "transports must be a list"),
        ({"encoding": "xml"}, "encoding must be"),
        ({"backoff": (0, 1)}, "backoff must be"),
        ({"backoff": (5, 1)}, "backoff must be"),
        ({"backoff": "fast"}, "backoff must be"),
        ({"topics": [1]}, "each topic must be a str"),
        ({"topics": ["bad topic!"]}, "topic"),
        ({"token": 5}, "token must be"),
    ],
)
@pytest.mark.parametrize("cls", [livegate.Client, livegate.SyncClient])
def test_bad_client_arguments(cls, kwargs, fragment):
    args = {"url": URL, **kwargs}
    url = args.pop("url")
    with pytest.raises(livegate.ArgumentError) as info:
        cls(url, **args)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def _client():
    return livegate.SyncClient(URL, transports=["websocket"], encoding="json")


def test_bad_topic_and_event_names():
    c = _client()
    for bad in ["", "has space", "a" * 1000]:
        with pytest.raises(livegate.ArgumentError):
            c.subscribe(bad)
        with pytest.raises(livegate.ArgumentError):
            c.publish(bad, 1, timeout=0.1)
    with pytest.raises(livegate.ArgumentError):
        c.subscribe(42)  # type: ignore[arg-type]
    with pytest.raises(livegate.ArgumentError):
        c.publish("py.x", 1, event="bad\nevent", timeout=0.1)
    with pytest.raises(livegate.ArgumentError):
        c.publish("py.x", 1, timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(livegate.ArgumentError):
        c.window("py.x", size=0)
    c.close()


def _cycle():
    a: list = []
    a.append(a)
    return a


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"when": object()}, "at data['when']: an object of type object cannot be encoded"),
        ({"k": [1, {1.5j}]}, "at data['k'][1]"),
        ({"v": math.nan}, "not a JSON number"),
        ([math.inf], "not a JSON number"),
        ({"n": 2**70}, "does not fit in 64 bits"),
        ({"raw": b"\x00"}, "bytes inside a JSON value"),
        ({(1, 2): "tuple key"}, "dict keys must be"),
        (_cycle(), "nested deeper than 128"),
    ],
    ids=["object", "path", "nan", "inf", "bigint", "nested-bytes", "tuple-key", "cycle"],
)
def test_unencodable_payloads(data, fragment):
    c = _client()
    with pytest.raises(livegate.PayloadError) as info:
        c.publish("py.x", data, timeout=0.1)
    assert fragment in str(info.value)
    assert isinstance(info.value, TypeError)
    assert info.value.code == "bad_payload"
    c.close()


def test_msgpack_takes_what_json_cannot():
    from livegate import _livegate

    import msgpack

    raw = _livegate.encode_payload({"raw": b"\x00\x01", "nan": math.inf, 1: "int key"}, "msgpack")
    assert msgpack.unpackb(raw, strict_map_key=False) == {"raw": b"\x00\x01", "nan": math.inf, "1": "int key"}


def test_errors_raised_inside_iteration_propagate():
    class Boom:
        def __iter__(self):
            raise RuntimeError("boom")

    class Model:
        def model_dump(self, mode="python"):
            assert mode == "json"
            return {"from": "pydantic"}

    from livegate import _livegate

    assert _livegate.encode_payload(Model(), "json") == b'{"from":"pydantic"}'
    # A list subclass whose iteration fails: the app's own exception, unchanged.
    class BadList(list):
        def __iter__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _livegate.encode_payload(BadList([1]), "json")


def test_closed_clients_refuse_everything():
    async def main():
        client = livegate.Client(URL, transports=["websocket"])
        await client.close()
        for call in (lambda: client.subscribe("py.x"), lambda: client.window("py.x"),
                     lambda: client.status()):
            with pytest.raises(livegate.ClosedError) as info:
                call()
            assert "create a new one" in str(info.value)
        with pytest.raises(livegate.ClosedError):
            await client.publish("py.x", 1)
        with pytest.raises(livegate.ClosedError):
            await client.connect()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_exceptions_form_one_family():
    for cls in (livegate.ConnectionError, livegate.ClosedError, livegate.ProtocolError,
                livegate.ArgumentError, livegate.PayloadError, livegate.TimeoutError):
        assert issubclass(cls, livegate.LivegateError)
    e = livegate.ProtocolError("nope", "forbidden")
    assert (str(e), e.code) == ("nope", "forbidden")
