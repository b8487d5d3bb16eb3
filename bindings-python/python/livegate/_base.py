"""What the asyncio and the blocking client share: options, state, checks."""

from __future__ import annotations

import os
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from . import _options
from ._livegate import RawClient
from .errors import ClosedError


class ClientBase:
    """Options and state of a client (see :class:`livegate.Client`)."""

    def __init__(
        self,
        url: str,
        *,
        transports: Union[None, str, Sequence[str]] = None,
        encoding: str = "msgpack",
        token: Optional[str] = None,
        api_key: Optional[str] = None,
        backoff: Optional[Tuple[float, float]] = None,
        topics: Iterable[str] = (),
        connect_timeout: Optional[float] = None,
        heartbeat_margin: Optional[float] = None,
        upgrade_probe: Optional[float] = None,
        offline_queue: Optional[int] = None,
        webtransport_insecure: bool = False,
        webtransport_cert_hash: Optional[str] = None,
        ca_file: Union[None, str, "os.PathLike[str]"] = None,
        pin_sha256: Optional[str] = None,
        token_provider: Optional[Callable[[], str]] = None,
    ) -> None:
        settings: List[Tuple[str, float]] = []
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("heartbeat_margin", heartbeat_margin),
            ("upgrade_probe", upgrade_probe),
            ("offline_queue", offline_queue),
        ):
            if value is not None:
                settings.append((name, _options.number(name, value)))
        self._raw: RawClient = _options.raw_client(
            url,
            transports,
            encoding,
            token,
            api_key,
            backoff,
            topics,
            webtransport_insecure,
            webtransport_cert_hash,
            settings,
            ca_file,
            pin_sha256,
            token_provider,
        )
        self._closed = False

    @property
    def state(self) -> str:
        """``"disconnected"``, ``"connecting"``, ``"connected"``,
        ``"reconnecting"`` or ``"closed"``."""
        return self._raw.state

    @property
    def transport(self) -> Optional[str]:
        """The transport of the live connection (``"wt"``, ``"ws"``,
        ``"sse"``, ``"poll"``), or None when not connected."""
        return self._raw.transport

    @property
    def last_error(self) -> Optional[Tuple[str, str]]:
        """The last error as ``(code, message)``, such as a transport that
        failed to open, or None."""
        return self._raw.last_error

    @property
    def closed(self) -> bool:
        """Whether the client was closed (by the app, or by the gateway for good)."""
        return self._closed or self._raw.state == "closed"

    def _check_open(self) -> None:
        if self.closed:
            raise ClosedError(
                "the client is closed; create a new one to connect again", "closed"
            )

    def __repr__(self) -> str:
        return repr(self._raw).replace("Client(", f"{type(self).__name__}(", 1)
