// index.d.ts (napi-rs typegen after dts-header.d.ts) types exactly what
// index.js exports, and starts with the hand-written header unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import livegate from 'livegate';

const pkg = new URL('../../../bindings-node/', import.meta.url);
const dts = fs.readFileSync(new URL('index.d.ts', pkg), 'utf8');

test('index.d.ts declares every export of index.js, and nothing else', () => {
  const declared = new Set([...dts.matchAll(/^export declare (?:class|const|function) (\w+)/gm)].map((m) => m[1]));
  assert.deepEqual([...declared].sort(), Object.keys(livegate).sort());
});

test('index.d.ts begins with dts-header.d.ts', () => {
  const header = fs.readFileSync(new URL('dts-header.d.ts', pkg), 'utf8');
  assert.ok(dts.startsWith(header.trimEnd()), 'regenerate with `npm run typegen` in bindings-node');
});
