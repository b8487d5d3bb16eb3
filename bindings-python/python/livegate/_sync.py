"""The blocking client, for scripts and Streamlit.

Every blocking call releases the GIL while it waits and returns promptly on
Ctrl-C (KeyboardInterrupt). For Streamlit, :meth:`SyncClient.window` keeps a
topic's latest publications in the background so a rerun only reads them.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import (
    Any,
    Deque,
    Generic,
    List,
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
from .errors import ClosedError

_BATCH = 1024

T = TypeVar("T", Publication, StatusEvent, Union[Publication, StatusEvent])


class SyncClient(ClientBase):
    """A connection to a livegate gateway, with blocking calls.

    Same options as :class:`livegate.Client`. It starts connecting when made
    and reconnects by itself; the network runs on background threads, so
    nothing here holds the GIL while waiting.

    >>> with livegate.SyncClient("http://127.0.0.1:8080") as client:
    ...     for pub in client.subscribe("alerts"):
    ...         print(pub.event, pub.data)
    """

    def connect(self, timeout: Optional[float] = 10.0) -> "SyncClient":
        """Blocks until connected; raises :class:`livegate.ConnectionError`
        after ``timeout`` seconds (the client keeps trying)."""
        self._check_open()
        self._raw.wait_connected_blocking(_options.timeout(timeout))
        return self

    def __enter__(self) -> "SyncClient":
        return self.connect()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    @overload
    def subscribe(
        self, topic: str, *, with_status: Literal[False] = False
    ) -> "SyncSubscription[Publication]": ...

    @overload
    def subscribe(
        self, topic: str, *, with_status: Literal[True]
    ) -> "SyncSubscription[Union[Publication, StatusEvent]]": ...

    def subscribe(self, topic: str, *, with_status: bool = False) -> "SyncSubscription[Any]":
        """Subscribes to ``topic``; iterate the result (blocking), or call
        :meth:`SyncSubscription.get` / :meth:`SyncSubscription.drain`."""
        self._check_open()
        return SyncSubscription(self._raw.subscribe(_options.topic(topic), bool(with_status)))

    def window(self, topic: str, size: int = 100) -> Window:
        """The last ``size`` publications of ``topic``, kept up to date in the
        background. ``window.items()`` and ``window.latest()`` never wait:
        call them on every Streamlit rerun."""
        self._check_open()
        return self._raw.window(_options.topic(topic), int(size))

    def status(self) -> "SyncStatus":
        """Status events from now on."""
        self._check_open()
        return SyncStatus(self._raw.status())

    def publish(
        self,
        topic: str,
        data: Any,
        event: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Ack:
        """Publishes and blocks until the gateway's ack (or ``timeout``
        seconds: :class:`livegate.TimeoutError`, the publish stays queued)."""
        self._check_open()
        return self._raw.publish_blocking(
            _options.topic(topic), data, _options.event(event), _options.timeout(timeout)
        )

    def close(self) -> None:
        """Closes the connection and stops reconnecting."""
        if self._closed:
            return
        self._closed = True
        self._raw.close_blocking()



class _SyncFeed(Generic[T]):
    def __init__(self, raw: Union[RawSubscription, RawStatus]) -> None:
        self._raw = raw
        self._buffer: Deque[T] = deque()

    def _next(self, timeout: Optional[float]) -> Optional[T]:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            batch = self._raw.drain(_BATCH)
            if batch:
                self._buffer.extend(batch)  # type: ignore[arg-type]
                continue
            ready = self._raw.wait_blocking(timeout)
            if ready is None:
                return None
            if not ready:
                raise StopIteration

    def drain(self, max: int = _BATCH) -> List[T]:
        """Everything ready now (at most ``max``), without waiting."""
        out: List[T] = []
        while self._buffer and len(out) < max:
            out.append(self._buffer.popleft())
        if len(out) < max:
            out.extend(self._raw.drain(max - len(out)))  # type: ignore[arg-type]
        return out

    def _forever(self) -> T:
        item = self._next(None)
        assert item is not None  # without a timeout, only an item or the end
        return item

    def close(self) -> None:
        self._raw.close()


class SyncSubscription(_SyncFeed[T]):
    """A topic's publications, as a blocking iterator."""

    @property
    def topic(self) -> str:
        raw = self._raw
        assert isinstance(raw, RawSubscription)
        return raw.topic

    def __iter__(self) -> "SyncSubscription[T]":
        return self

    def __next__(self) -> T:
        return self._forever()

    def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """The next publication (or status event, with ``with_status=True``),
        or None after ``timeout`` seconds."""
        try:
            return self._next(_options.timeout(timeout))
        except StopIteration:
            raise ClosedError(f"the subscription to {self.topic!r} has ended", "closed") from None

    def __enter__(self) -> "SyncSubscription[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SyncSubscription(topic={self.topic!r})"


class SyncStatus(_SyncFeed[StatusEvent]):
    """Status events, as a blocking iterator."""

    def __iter__(self) -> "SyncStatus":
        return self

    def __next__(self) -> StatusEvent:
        return self._forever()

    def get(self, timeout: Optional[float] = None) -> Optional[StatusEvent]:
        """The next status event, or None after ``timeout`` seconds."""
        try:
            return self._next(_options.timeout(timeout))
        except StopIteration:
            raise ClosedError("the client is closed", "closed") from None
