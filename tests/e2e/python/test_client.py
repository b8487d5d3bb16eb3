"""The asyncio client against the real gateway."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import httpx
import pytest

import livegate


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


TRANSPORTS = ["websocket", "sse", "longpoll"]


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_publish_and_receive_every_field(gw, transport, encoding):
    value = {"host": "db-1", "cpu": 97.5, "tags": ["prod", "eu"], "ok": False, "note": None,
             "big": 2**64 - 1, "neg": -(2**63), "text": "héllo ✓"}

    async def main():
        async with livegate.Client(gw.http, transports=[transport], encoding=encoding) as client:
            assert client.state == "connected"
            sub = client.subscribe("py.metrics")
            before = time.time()
            ack = await client.publish("py.metrics", value, event="snapshot_update")
            assert isinstance(ack, livegate.Ack)
            assert (ack.topic, ack.offset) == ("py.metrics", 1)
            pub = await sub.get()
            assert isinstance(pub, livegate.Publication)
            assert pub.topic == "py.metrics"
            assert pub.offset == 1
            assert pub.epoch == ack.epoch
            assert pub.event == "snapshot_update"
            assert pub.data == value
            assert abs(pub.time_ms / 1000 - before) < 60
            assert pub.time.tzinfo == timezone.utc
            assert pub.time == datetime.fromtimestamp(pub.time_ms / 1000, timezone.utc)
            assert "py.metrics" in repr(pub)
            sub.close()

    run(main())


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_binary_payloads_stay_bytes(gw, encoding):
    blob = bytes(range(256))

    async def main():
        async with livegate.Client(gw.http, transports=["websocket"], encoding=encoding) as client:
            sub = client.subscribe("py.blobs")
            await client.publish("py.blobs", blob)
            await client.publish("py.blobs", bytearray(b"\x00\xff"))
            await client.publish("py.blobs", memoryview(b"mv"))
            got = [(await sub.get()).data for _ in range(3)]
            assert got == [blob, b"\x00\xff", b"mv"]

    run(main())


def test_publishes_keep_call_order_and_arrive_once(gw):
    async def main():
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            sub = client.subscribe("py.order")
            acks = await asyncio.gather(*(client.publish("py.order", i) for i in range(300)))
            assert [a.offset for a in acks] == list(range(1, 301))
            seen = []
            async for pub in sub:
                seen.append((pub.offset, pub.data))
                if len(seen) == 300:
                    break
            assert seen == [(i + 1, i) for i in range(300)]

    run(main())


def test_cancelled_waits_lose_nothing(gw):
    """asyncio.wait_for timeouts around the iterator (a common pattern) must
    not drop publications that were on their way."""

    async def main():
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            sub = client.subscribe("py.cancel", with_status=True)
            assert (await sub.get()).kind == "subscribed"  # publish only once live
            publisher = livegate.AsyncPublisher(gw.http)

            async def produce():
                for i in range(200):
                    await publisher.publish("py.cancel", i)

            producer = asyncio.create_task(produce())
            seen = []
            deadline = time.monotonic() + 20
            while len(seen) < 200 and time.monotonic() < deadline:
                try:
                    pub = await asyncio.wait_for(sub.get(), 0.001)
                except asyncio.TimeoutError:
                    continue
                seen.append(pub.data)
            await producer
            assert seen == list(range(200))

    run(main())


def test_status_events_and_in_order_status(gw):
    async def main():
        client = livegate.Client(gw.http, transports=["websocket"])
        await client.connect()
        status = client.status()
        sub = client.subscribe("py.status", with_status=True)
        first = await sub.get()
        assert isinstance(first, livegate.StatusEvent)
        assert (first.kind, first.topic, first.offset) == ("subscribed", "py.status", 0)
        await client.publish("py.status", "x")
        second = await sub.get()
        assert isinstance(second, livegate.Publication) and second.data == "x"
        await client.close()
        kinds = []
        async for ev in status:
            kinds.append((ev.kind, ev.state))
            if ev.kind == "state" and ev.state == "closed":
                assert ev.previous == "connected"
                assert ev.message
                break
        assert ("subscribed", None) in kinds
        assert client.closed
        # The subscription ends with the client.
        with pytest.raises(StopAsyncIteration):
            await sub.get()

    run(main())


def test_closing_a_subscription_unsubscribes(gw):
    async def main():
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            a = client.subscribe("py.unsub.a")
            b = client.subscribe("py.unsub.b")
            await client.publish("py.unsub.a", 1)
            assert (await a.get()).data == 1
            a.close()
            # The unsubscribe goes out on the connection before this subscribe,
            # so once "c" is live the gateway no longer sends "a".
            c = client.subscribe("py.unsub.c", with_status=True)
            assert (await c.get()).kind == "subscribed"
            async with httpx.AsyncClient() as http:
                out_before = (await http.get(f"{gw.http}/api/stats")).json()["messages_out"]
                await http.post(f"{gw.http}/api/publish/py.unsub.a", json=2)
                await http.post(f"{gw.http}/api/publish/py.unsub.b", json=3)
                assert (await b.get()).data == 3
                out_after = (await http.get(f"{gw.http}/api/stats")).json()["messages_out"]
            assert out_after - out_before == 1, "the closed subscription still received"

    run(main())


def test_refused_publish_raises_protocol_error(gw):
    async def main():
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            with pytest.raises(livegate.ProtocolError) as info:
                await client.publish("ro.locked", {"x": 1})
            assert info.value.code == "publish_forbidden"
            assert "ro.locked" in str(info.value)
            # The client is still usable afterwards.
            assert (await client.publish("py.after", 1)).offset == 1

    run(main())


def test_refused_subscription_raises_from_the_iterator(gateway_factory):
    from conftest import PY_CONFIG

    gw = gateway_factory("--no-wt", "--max-subscriptions", "1", config=PY_CONFIG)

    async def main():
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            first = client.subscribe("py.one", with_status=True)
            assert (await first.get()).kind == "subscribed"
            second = client.subscribe("py.two")
            with pytest.raises(livegate.ProtocolError) as info:
                await second.get()
            assert info.value.code == "too_many_subscriptions"
            assert "py.two" in str(info.value)

    run(main())


def test_window_keeps_the_latest(gw):
    async def main():
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            window = client.window("py.window", size=5)
            probe = client.subscribe("py.window")
            for i in range(12):
                await client.publish("py.window", {"i": i})
            for _ in range(12):
                await probe.get()
            deadline = time.monotonic() + 10
            while window.received < 12 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert window.received == 12
            assert len(window) == 5 and window.size == 5
            assert [p.data["i"] for p in window.items()] == [7, 8, 9, 10, 11]
            assert window.latest().offset == 12
            assert window.gaps == 0 and window.failure is None

    run(main())


def test_connect_to_nothing_says_why(free_port):
    async def main():
        client = livegate.Client(f"http://127.0.0.1:{free_port}", transports=["websocket"],
                                 backoff=(0.05, 0.1))
        with pytest.raises(livegate.ConnectionError) as info:
            await client.connect(timeout=1.0)
        message = str(info.value)
        assert f"127.0.0.1:{free_port}" in message
        assert "refused" in message.lower()
        assert isinstance(info.value, ConnectionError)  # the built-in, too
        await client.close()

    run(main())


def test_client_survives_a_gateway_restart_and_says_so(gateway_factory, free_port):
    """A gateway (in memory) restarted on the same port has new epochs: the
    client comes back by itself and says recovered=False rather than pretend."""
    from conftest import PY_CONFIG

    port = free_port
    gw = gateway_factory("--no-wt", config=PY_CONFIG)
    gw.stop()
    gw.extra_args = ["--no-wt"]
    gw.argv = lambda: [str(gw.binary), "serve", "--listen", f"127.0.0.1:{port}",
                       "--no-system-publisher", "--config", str(gw.config_path), "--no-wt",
                       "--memory"]
    gw.start()

    async def main():
        client = livegate.Client(gw.http, transports=["websocket"], backoff=(0.05, 0.2))
        await client.connect()
        sub = client.subscribe("py.restart", with_status=True)
        assert (await sub.get()).kind == "subscribed"
        await client.publish("py.restart", "before")
        assert (await sub.get()).data == "before"
        await asyncio.get_running_loop().run_in_executor(None, gw.restart)
        ev = await sub.get()
        assert ev.kind == "recovered" and ev.recovered is False
        await client.connect(timeout=10)
        await client.publish("py.restart", "after")
        pub = await sub.get()
        assert (pub.data, pub.offset) == ("after", 1)
        await client.close()

    run(main(), timeout=60)


def test_publish_is_queued_when_called_not_when_awaited(gw):
    async def main():
        async with livegate.Client(gw.http, transports=["websocket"]) as client:
            first = client.publish("py.calls", 1)
            second = client.publish("py.calls", 2)
            b = await second
            a = await first
            assert (a.offset, b.offset) == (1, 2)
            # and it is a coroutine, so create_task takes it
            task = asyncio.create_task(client.publish("py.calls", 3))
            assert (await task).offset == 3

    run(main())
