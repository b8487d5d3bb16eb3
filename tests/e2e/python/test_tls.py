"""The Python package through a TLS-terminating proxy (a certificate from a
test CA made by the proxy at start), as gateways run in production: every
TCP transport, the Publisher, the CA file and certificate pinning options."""

from __future__ import annotations

import asyncio

import pytest

import livegate

TRANSPORTS = ["websocket", "sse", "longpoll"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_and_publisher_through_a_tls_proxy(gw, tls_proxy, transport):
    proxy = tls_proxy(gw)
    topic = f"py.tls.{transport}"

    async def main():
        async with livegate.Client(proxy.url, transports=[transport], ca_file=proxy.ca,
                                   backoff=(0.05, 0.2)) as client:
            assert client.transport is not None and client.state == "connected"
            sub = client.subscribe(topic)
            # The client's own publish (a frame on WebSocket, the HTTP
            # fallback on SSE and long-poll) and the Publisher's, both over TLS.
            ack = await client.publish(topic, {"n": 1})
            publisher = livegate.Publisher(proxy.url, ca_file=str(proxy.ca))
            ack2 = await asyncio.to_thread(publisher.publish, topic, {"n": 2})
            assert (ack.offset, ack2.offset) == (1, 2)
            got = [await asyncio.wait_for(sub.get(), 10) for _ in range(2)]
            assert [p.data["n"] for p in got] == [1, 2]
            sub.close()

    asyncio.run(main())


def test_the_sync_client_through_a_tls_proxy(gw, tls_proxy):
    proxy = tls_proxy(gw)
    with livegate.SyncClient(proxy.url, transports=["sse"], ca_file=proxy.ca) as client:
        sub = client.subscribe("py.tls.sync", with_status=True)
        live = sub.get(timeout=10)
        assert live is not None and live.kind == "subscribed"
        assert client.publish("py.tls.sync", "hi").offset == 1
        pub = sub.get(timeout=10)
        assert pub is not None and pub.data == "hi"


def test_untrusted_and_mismatched_certificates_are_refused(gw, tls_proxy):
    proxy = tls_proxy(gw)
    # The test CA is not among the system's roots.
    with pytest.raises(livegate.ConnectionError) as info:
        livegate.Publisher(proxy.url, timeout=0.5).publish("py.tls.x", 1)
    assert "certificate" in str(info.value).lower()
    with pytest.raises(livegate.ConnectionError) as info:
        livegate.Publisher(proxy.url, timeout=0.5, pin_sha256="ab" * 32).publish("py.tls.x", 1)
    assert "pinned" in str(info.value)


def test_bad_tls_arguments_are_refused_at_once(tmp_path):
    with pytest.raises(livegate.ArgumentError):
        livegate.Publisher("https://127.0.0.1:1", pin_sha256="not hex")
    with pytest.raises(livegate.ArgumentError):
        livegate.Publisher("https://127.0.0.1:1", ca_file=tmp_path / "missing.pem")
    with pytest.raises(livegate.ArgumentError):
        livegate.Client("https://127.0.0.1:1", ca_file=42)  # type: ignore[arg-type]
    with pytest.raises(livegate.ArgumentError):
        livegate.Publisher("http://[zz")
