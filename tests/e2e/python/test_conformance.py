"""The shared client conformance scenarios (tests/conformance/scenarios.json),
run through the Python package `livegate` (asyncio `livegate.Client`), one
test per scenario x transport entry of its matrix, against the real gateway
behind the fault proxy (`livegate-faultproxy`, next to the livegate binary or
$LIVEGATE_FAULTPROXY). The steps' semantics are tests/conformance/README.md;
the Rust runner of the same file is gateway/tests/conformance.rs.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import conformance_runner as cr

#: Runs that fail because of the Python package (not of the scenario or the
#: gateway): test id -> reason. Each is xfail(strict=True), so fixing the
#: binding turns the run red until the entry is removed.
KNOWN_BINDING_BUGS: dict[str, str] = {}


def _params():
    out = []
    for scenario, transports, test_id in cr.variants():
        marks = []
        if test_id in KNOWN_BINDING_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BINDING_BUGS[test_id]))
        out.append(pytest.param(scenario, transports, id=test_id, marks=marks))
    return out


@pytest.fixture(scope="session")
def faultproxy_bin(livegate_bin) -> Path:
    if os.environ.get("LIVEGATE_FAULTPROXY"):
        return Path(os.environ["LIVEGATE_FAULTPROXY"])
    return Path(livegate_bin).parent / "livegate-faultproxy"


@pytest.mark.slow
@pytest.mark.timeout(cr.SCENARIO_TIMEOUT_S + 60)
@pytest.mark.parametrize("scenario,transports", _params())
def test_conformance(scenario, transports, gateway_factory, procs, faultproxy_bin):
    asyncio.run(cr.run_scenario(scenario, transports, gateway_factory, faultproxy_bin, procs))


def test_every_scenario_is_collected():
    """Each scenario of the file has a run here (a new scenario needs no edit)."""
    names = {sc["name"] for sc in cr.load_scenarios()}
    ran = {sc["name"] for sc, _, _ in cr.variants()}
    assert names == ran and names
