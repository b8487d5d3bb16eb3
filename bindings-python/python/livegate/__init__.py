"""livegate: the client of the livegate real-time gateway.

The client reconnects, resumes and falls back between transports
(WebTransport, WebSocket, SSE, long-poll) by itself; every publication is
delivered exactly once and in order, or you are told plainly that some were
lost (``StatusEvent(kind="recovered", recovered=False)``).

- :class:`Client`: asyncio (FastAPI, scripts).
- :class:`SyncClient`: blocking calls and background windows (Streamlit, scripts).
- :class:`Publisher` / :class:`AsyncPublisher`: publish over HTTP from servers.
"""

from __future__ import annotations

from ._livegate import Ack, Publication, StatusEvent, Window, __version__
from ._client import Client, StatusStream, Subscription
from ._sync import SyncClient, SyncStatus, SyncSubscription
from ._publisher import AsyncPublisher, Publisher
from .errors import (
    ArgumentError,
    ClosedError,
    ConnectionError,
    LivegateError,
    PayloadError,
    ProtocolError,
    TimeoutError,
)

__all__ = [
    "Ack",
    "ArgumentError",
    "AsyncPublisher",
    "Client",
    "ClosedError",
    "ConnectionError",
    "LivegateError",
    "PayloadError",
    "ProtocolError",
    "Publication",
    "Publisher",
    "StatusEvent",
    "StatusStream",
    "Subscription",
    "SyncClient",
    "SyncStatus",
    "SyncSubscription",
    "TimeoutError",
    "Window",
    "__version__",
]
