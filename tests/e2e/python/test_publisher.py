"""Publishing over HTTP from servers: livegate.Publisher and AsyncPublisher."""

from __future__ import annotations

import asyncio

import pytest

import livegate
from conftest import PY_CONFIG


def test_sync_and_async_publishers(gw):
    with livegate.SyncClient(gw.http, transports=["websocket"]) as client:
        sub = client.subscribe("py.pub", with_status=True)
        live = sub.get(timeout=10)
        assert live is not None and live.kind == "subscribed"  # publish only once live
        publisher = livegate.Publisher(gw.http)
        ack = publisher.publish("py.pub", {"service": "db", "status": "down"}, event="health_change")
        assert (ack.topic, ack.offset) == ("py.pub", 1) and ack.msg_id

        async def publish_async():
            async with livegate.AsyncPublisher(gw.http, encoding="msgpack") as p:
                return await p.publish("py.pub", {"service": "db", "status": "up"}, event="health_change")

        ack2 = asyncio.run(publish_async())
        assert ack2.offset == 2 and ack2.epoch == ack.epoch
        got = [sub.get(timeout=10) for _ in range(2)]
        assert [(p.event, p.data["status"]) for p in got] == [("health_change", "down"), ("health_change", "up")]
        publisher.close()
        with pytest.raises(livegate.ClosedError):
            publisher.publish("py.pub", 1)


def test_api_key(gateway_factory):
    gw = gateway_factory("--no-wt", "--api-key", "s3cret", config=PY_CONFIG)
    with pytest.raises(livegate.ProtocolError) as info:
        livegate.Publisher(gw.http).publish("ro.news", 1)
    assert info.value.code == "unauthorized"
    with pytest.raises(livegate.ProtocolError):
        livegate.Publisher(gw.http, api_key="wrong").publish("ro.news", 1)
    # HTTP publishing is the server's way in: allowed where clients may not publish.
    assert livegate.Publisher(gw.http, api_key="s3cret").publish("ro.news", 1).offset == 1


def test_unreachable_gateway_is_a_connection_error_after_the_timeout(free_port):
    port = free_port
    publisher = livegate.Publisher(f"http://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(livegate.ConnectionError) as info:
        publisher.publish("py.x", 1)
    assert f"127.0.0.1:{port}" in str(info.value)


def test_bad_publisher_arguments():
    with pytest.raises(livegate.ArgumentError):
        livegate.Publisher("localhost:8080")
    with pytest.raises(livegate.ArgumentError):
        livegate.Publisher("http://127.0.0.1:1", timeout=-1)
    with pytest.raises(livegate.ArgumentError):
        livegate.Publisher("http://127.0.0.1:1", encoding="xml")
    p = livegate.Publisher("http://127.0.0.1:1")
    with pytest.raises(livegate.ArgumentError):
        p.publish("bad topic!", 1)
    with pytest.raises(livegate.PayloadError):
        p.publish("py.x", {"when": object()})
