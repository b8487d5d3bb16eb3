"""Fixtures for the tests of the Python package `livegate` (bindings-python).

They run in a virtualenv where the package's wheel is installed (scripts/test.sh
builds it fresh); the gateway fixtures come from ../conftest.py.
"""

from __future__ import annotations

import socket

import pytest

# Topics under "py." accept client publishes and keep a long history; "tiny."
# keeps 3 publications, to make resumes fail on purpose.
PY_CONFIG = """\
[[namespaces]]
prefix = "py."
history_size = 1000
history_ttl_secs = 3600
client_publish = true

[[namespaces]]
prefix = "tiny."
history_size = 3
history_ttl_secs = 3600
client_publish = true

[[namespaces]]
prefix = "ro."
history_size = 10
history_ttl_secs = 3600
client_publish = false
"""


@pytest.fixture
def gw(gateway_factory):
    """A gateway with the namespaces above and no WebTransport."""
    return gateway_factory("--no-wt", config=PY_CONFIG)


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
