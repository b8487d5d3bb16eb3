"""Argument checks shared by the clients: clear messages for wrong types."""

from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from ._livegate import RawClient
from .errors import ArgumentError

__all__ = ["ArgumentError", "RawClient", "TRANSPORTS"]

TRANSPORTS = ("webtransport", "websocket", "sse", "longpoll")


def _check_str(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        kind = "a str or None" if optional else "a str"
        raise ArgumentError(f"{name} must be {kind}, not {type(value).__name__}", "invalid")


def topic(value: Any) -> str:
    if not isinstance(value, str):
        _check_str("topic", value)
    return str(value)


def event(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        _check_str("event", value)
    return str(value)


def number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentError(f"{name} must be a number, not {type(value).__name__}", "invalid")
    return float(value)


def timeout(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentError(
            f"timeout must be a number of seconds or None, not {type(value).__name__}", "invalid"
        )
    return float(value)


def raw_client(
    url: Any,
    transports: Union[None, str, Sequence[str]],
    encoding: Any,
    token: Any,
    api_key: Any,
    backoff: Any,
    topics: Iterable[str],
    webtransport_insecure: Any,
    webtransport_cert_hash: Any,
    settings: Sequence[Tuple[str, float]] = (),
    ca_file: Any = None,
    pin_sha256: Any = None,
    token_provider: Any = None,
) -> RawClient:
    _check_str("url", url)
    names: Optional[List[str]]
    if transports is None:
        names = None
    elif isinstance(transports, str):
        names = [transports]
    else:
        try:
            names = list(transports)
        except TypeError:
            raise ArgumentError(
                f"transports must be a list of names such as {list(TRANSPORTS)}, "
                f"not {type(transports).__name__}",
                "invalid",
            ) from None
        for n in names:
            _check_str("each transport", n)
    _check_str("encoding", encoding)
    _check_str("token", token, optional=True)
    _check_str("api_key", api_key, optional=True)
    if token_provider is not None and not callable(token_provider):
        raise ArgumentError(
            f"token_provider must be a function returning a token, not "
            f"{type(token_provider).__name__}",
            "invalid",
        )
    pair: Optional[Tuple[float, float]] = None
    if backoff is not None:
        try:
            lo, hi = backoff
            pair = (float(lo), float(hi))
        except (TypeError, ValueError):
            raise ArgumentError(
                f"backoff must be (min_seconds, max_seconds), not {backoff!r}", "invalid"
            ) from None
    if isinstance(topics, str):
        topic_list = [topics]
    else:
        topic_list = list(topics)
    for t in topic_list:
        _check_str("each topic", t)
    _check_str("webtransport_cert_hash", webtransport_cert_hash, optional=True)
    return RawClient(
        url,
        names,
        encoding,
        token,
        api_key,
        pair,
        topic_list,
        bool(webtransport_insecure),
        webtransport_cert_hash,
        list(settings),
        *tls(ca_file, pin_sha256),
        token_provider,
    )


def tls(ca_file: Any, pin_sha256: Any) -> Tuple[Optional[str], Optional[str]]:
    """Checks the TLS options of clients and publishers (``https://`` gateways)."""
    if ca_file is not None:
        try:
            ca_file = os.fspath(ca_file)
        except TypeError:
            raise ArgumentError(
                f"ca_file must be a path, not {type(ca_file).__name__}", "invalid"
            ) from None
        _check_str("ca_file", ca_file)
    _check_str("pin_sha256", pin_sha256, optional=True)
    return ca_file, pin_sha256
