"""Publishing over HTTP, for servers that only publish."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from . import _options
from ._livegate import Ack, RawPublisher
from .errors import ClosedError


class _Base:
    def __init__(
        self,
        url: str,
        *,
        api_key: Optional[str] = None,
        timeout: float = 15.0,
        encoding: str = "json",
        ca_file: Union[None, str, "os.PathLike[str]"] = None,
        pin_sha256: Optional[str] = None,
    ) -> None:
        _options._check_str("url", url)
        _options._check_str("api_key", api_key, optional=True)
        _options._check_str("encoding", encoding)
        t = _options.timeout(timeout)
        if t is None:
            raise _options.ArgumentError("timeout must be a number of seconds", "invalid")
        self._raw = RawPublisher(url, api_key, t, encoding, *_options.tls(ca_file, pin_sha256))
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the publisher is closed; create a new one", "closed")

    def close(self) -> None:
        self._closed = True


class Publisher(_Base):
    """Publishes over HTTP (``POST /api/publish/{topic}``), blocking.

    Each publish carries a fresh id, so a retry after a network error or a
    lost answer is published once; retries stop after ``timeout`` seconds.
    ``encoding`` is how payloads travel (``"json"`` or ``"msgpack"``);
    ``bytes`` are always sent as a binary payload. For an ``https://``
    gateway the system's roots are trusted; ``ca_file`` (a PEM file) adds
    CAs, ``pin_sha256`` accepts exactly the certificate with that SHA-256.
    Publishes reuse kept-alive connections.

    >>> pub = livegate.Publisher("http://127.0.0.1:8080", api_key="secret")
    >>> pub.publish("health", {"service": "db", "status": "down"}, event="health_change")
    """

    def publish(self, topic: str, data: Any, event: Optional[str] = None) -> Ack:
        self._check_open()
        return self._raw.publish_blocking(_options.topic(topic), data, _options.event(event))

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncPublisher(_Base):
    """:class:`Publisher` for asyncio: ``await publisher.publish(...)``."""

    async def publish(self, topic: str, data: Any, event: Optional[str] = None) -> Ack:
        self._check_open()
        return await self._raw.publish(_options.topic(topic), data, _options.event(event))

    async def __aenter__(self) -> "AsyncPublisher":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
