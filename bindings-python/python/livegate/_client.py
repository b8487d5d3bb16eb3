"""The asyncio client."""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Coroutine,
    Deque,
    Generic,
    Literal,
    Optional,
    Type,
    TypeVar,
    Union,
    overload,
)

from . import _options
from ._base import ClientBase
from ._livegate import Ack, Publication, RawStatus, RawSubscription, StatusEvent, Window

#: Items moved from Rust to Python per call.
_BATCH = 1024

#: What a subscription yields: publications, and status events if asked.
T = TypeVar("T", Publication, Union[Publication, StatusEvent])


class Client(ClientBase):
    """A connection to a livegate gateway, for asyncio code.

    The client starts connecting as soon as it is made and from then on
    reconnects by itself, with backoff, resuming every subscription where it
    left off. ``transports`` are tried best first (default: WebTransport,
    WebSocket, SSE, long-poll); ``encoding`` is the frame encoding on
    WebSocket and WebTransport (``"msgpack"`` or ``"json"``).

    Other options: ``token`` (sent as ``Authorization: Bearer``),
    ``token_provider`` (a plain function returning a fresh token, called on
    a worker thread before the first connection, when a JWT's life is four
    fifths gone (the new token replaces the old in place) and when the
    gateway ends a connection with ``token_expired``),
    ``api_key`` (for publishes over the HTTP fallbacks), ``backoff``
    (``(min, max)`` reconnect delay in seconds, default ``(0.5, 20)``),
    ``topics`` (subscribed from the first connection), ``connect_timeout``
    (seconds a transport may take to open, default 10), ``heartbeat_margin``
    (silence tolerated past the gateway's heartbeat before the connection is
    replaced, default 10), ``upgrade_probe`` (how often a fallback transport
    tries the better ones again, default 60), ``offline_queue`` (publishes
    kept while disconnected, default 1000), ``webtransport_cert_hash`` /
    ``webtransport_insecure`` (certificate pinning; by default the gateway's
    ``/wt/cert-hash`` is trusted). For an ``https://`` gateway (behind a TLS
    proxy) the system's roots are trusted; ``ca_file`` (a PEM file) adds
    CAs, ``pin_sha256`` accepts exactly the certificate with that SHA-256.

    >>> async with livegate.Client("http://127.0.0.1:8080") as client:
    ...     async for pub in client.subscribe("metrics.cpu"):
    ...         print(pub.offset, pub.data)
    """

    async def connect(self, timeout: Optional[float] = 10.0) -> "Client":
        """Waits until connected. Raises :class:`livegate.ConnectionError`
        (with the last reason) after ``timeout`` seconds; the client keeps
        trying in the background, so calling again may succeed."""
        self._check_open()
        await self._raw.wait_connected(_options.timeout(timeout))
        return self

    async def __aenter__(self) -> "Client":
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    @overload
    def subscribe(
        self, topic: str, *, with_status: Literal[False] = False
    ) -> "Subscription[Publication]": ...

    @overload
    def subscribe(
        self, topic: str, *, with_status: Literal[True]
    ) -> "Subscription[Union[Publication, StatusEvent]]": ...

    def subscribe(self, topic: str, *, with_status: bool = False) -> "Subscription[Any]":
        """Subscribes to ``topic``. Iterate the result with ``async for`` to
        get its publications, each exactly once and in order across
        reconnects. With ``with_status=True`` the iteration also yields the
        subscription's :class:`StatusEvent` s (``subscribed``, ``recovered``)
        in order with the publications."""
        self._check_open()
        return Subscription(self._raw.subscribe(_options.topic(topic), bool(with_status)))

    def window(self, topic: str, size: int = 100) -> Window:
        """The last ``size`` publications of ``topic``, kept up to date in the
        background; reading it never waits."""
        self._check_open()
        return self._raw.window(_options.topic(topic), int(size))

    def status(self) -> "StatusStream":
        """Status events from now on: state changes with their reasons,
        subscriptions live, recovered (or not) after a reconnect, refused."""
        self._check_open()
        return StatusStream(self._raw.status())

    def publish(
        self, topic: str, data: Any, event: Optional[str] = None
    ) -> Coroutine[Any, Any, Ack]:
        """Publishes ``data`` (JSON-compatible values, or ``bytes`` for a
        binary payload); await the result for the gateway's :class:`Ack`.
        The publish is queued when this is called, so publishes keep the
        order of the calls whatever order they are awaited in. While
        disconnected it waits in the offline queue; a retried publish lands
        once."""
        self._check_open()
        queued = self._raw.publish(_options.topic(topic), data, _options.event(event))
        # A coroutine rather than the future itself, so that
        # asyncio.create_task(client.publish(...)) works as for any async API.
        return _ack(queued)

    async def close(self) -> None:
        """Closes the connection and stops reconnecting; subscriptions end."""
        self._closed = True
        await self._raw.close()


async def _ack(queued: Awaitable[Ack]) -> Ack:
    return await queued


#: What a feed yields.
F = TypeVar("F", Publication, StatusEvent, Union[Publication, StatusEvent])


class _AsyncFeed(Generic[F]):
    """A feed of the Rust half read as an async iterator, a batch at a time."""

    def __init__(self, raw: Union[RawSubscription, RawStatus]) -> None:
        self._raw = raw
        self._buffer: Deque[F] = deque()

    def __aiter__(self) -> "_AsyncFeed[F]":
        return self

    async def __anext__(self) -> F:
        # Items come from Rust in batches: one wake-up of the event loop per
        # batch, not per item.
        while True:
            if self._buffer:
                return self._buffer.popleft()
            batch = self._raw.drain(_BATCH)
            if batch:
                self._buffer.extend(batch)  # type: ignore[arg-type]
                continue
            if not await self._raw.wait():
                raise StopAsyncIteration

    def close(self) -> None:
        self._raw.close()


class Subscription(_AsyncFeed[T]):
    """A topic's publications, as an async iterator."""

    def __init__(self, raw: RawSubscription) -> None:
        super().__init__(raw)
        self._sub = raw

    @property
    def topic(self) -> str:
        return self._sub.topic

    def __aiter__(self) -> "Subscription[T]":
        return self

    async def get(self) -> T:
        """The next publication (raises StopAsyncIteration once ended)."""
        return await self.__anext__()

    def close(self) -> None:
        """Unsubscribes (once no other subscription of the client needs the topic)."""
        super().close()

    async def __aenter__(self) -> "Subscription[T]":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Subscription(topic={self.topic!r})"


class StatusStream(_AsyncFeed[StatusEvent]):
    """Status events, as an async iterator."""

    def __aiter__(self) -> "StatusStream":
        return self
