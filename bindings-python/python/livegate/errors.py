"""Exceptions raised by livegate.

Every exception is a :class:`LivegateError` and also the built-in exception a
caller would already catch for the same trouble (``ConnectionError``,
``ValueError``, ``TypeError``, ``TimeoutError``). ``code`` is the
machine-readable reason: the gateway's error code (``docs/protocol.md``) or
one of this package's (``io``, ``closed``, ``bad_url``, ``invalid``,
``bad_payload``, ``timeout``, ``connect_timeout``).
"""

from __future__ import annotations

import builtins
from typing import Optional

__all__ = [
    "LivegateError",
    "ConnectionError",
    "ClosedError",
    "ProtocolError",
    "ArgumentError",
    "PayloadError",
    "TimeoutError",
]


class LivegateError(Exception):
    """Base class of every livegate exception."""

    code: Optional[str]

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code


class ConnectionError(LivegateError, builtins.ConnectionError):
    """The gateway could not be reached, or the network failed."""


class ClosedError(LivegateError):
    """The client was closed (by the app, or by the gateway for good)."""


class ProtocolError(LivegateError):
    """The gateway refused a request (``code`` says why) or sent something wrong."""


class ArgumentError(LivegateError, builtins.ValueError):
    """A bad argument: URL, option, topic or event name."""


class PayloadError(LivegateError, builtins.TypeError):
    """The data cannot be encoded as a payload."""


class TimeoutError(LivegateError, builtins.TimeoutError):
    """A wait ran out of time."""
