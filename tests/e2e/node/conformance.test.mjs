// The shared client conformance scenarios (tests/conformance/scenarios.json)
// through the Node package, one test per scenario x transport entry of its
// matrix, against the real gateway behind the fault proxy. The steps'
// semantics are tests/conformance/README.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenarios, runScenario, SCENARIO_TIMEOUT_MS, variants } from './conformance_runner.mjs';
import { noUnhandledRejections } from './helpers.mjs';

noUnhandledRejections();

for (const [scenario, transports, name] of variants()) {
  test(name, { timeout: SCENARIO_TIMEOUT_MS + 30_000 }, () => runScenario(scenario, transports));
}

test('every scenario of the file has a run here', () => {
  const names = new Set(loadScenarios().map((s) => s.name));
  const ran = new Set(variants().map(([s]) => s.name));
  assert.deepEqual(ran, names);
  assert.ok(names.size > 0);
});
