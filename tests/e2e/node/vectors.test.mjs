// The addon's codecs against the shared vectors (tests/vectors/frames.json):
// the Rust core inside the addon reads and writes exactly the bytes every
// other implementation does, and hands publications to JavaScript as the
// frames say.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import livegate from 'livegate';

const VECTORS = JSON.parse(fs.readFileSync(new URL('../../vectors/frames.json', import.meta.url), 'utf8'));
const native = livegate;
const bytes = (v, enc) => (enc === 'json' ? Buffer.from(v.json) : Buffer.from(v.msgpack_hex, 'hex'));

function decode(batch) {
  // What a subscription does with a batch (index.js decodeBatch).
  return JSON.parse(batch.json).map((p) => (p.binary === undefined ? p : { ...p, data: batch.binaries[p.binary] }));
}

test('valid frames transcode exactly, both ways', () => {
  assert.ok(VECTORS.valid.length > 5);
  for (const v of VECTORS.valid) {
    for (const source of ['json', 'msgpack']) {
      for (const target of ['json', 'msgpack']) {
        const out = native.transcodeFrame(v.direction, source, target, bytes(v, source));
        assert.deepEqual(out, bytes(v, target), `${v.name}: ${source} -> ${target}`);
      }
    }
  }
});

test('invalid frames are refused with their code', () => {
  assert.ok(VECTORS.invalid.length > 0);
  for (const v of VECTORS.invalid) {
    assert.throws(
      () => native.transcodeFrame('client', v.encoding, 'json', Buffer.from(v.hex, 'hex')),
      (e) => e.message.startsWith(`livegate:protocol:${v.error}:`),
      v.name,
    );
  }
});

test('publications reach JavaScript as the frames say', () => {
  const publishing = VECTORS.valid.filter((v) => v.direction === 'server'
    && (v.frame.type === 'publication' || (v.frame.type === 'subscribed' && v.frame.publications?.length)));
  assert.ok(publishing.length >= 2);
  for (const v of publishing) {
    const expected = v.frame.type === 'publication' ? [v.frame] : v.frame.publications;
    for (const encoding of ['json', 'msgpack']) {
      const got = decode(native.decodePublications(encoding, bytes(v, encoding)));
      assert.equal(got.length, expected.length, v.name);
      got.forEach((p, i) => {
        const f = expected[i];
        assert.equal(p.topic, f.topic);
        assert.equal(p.offset, f.offset);
        assert.equal(p.epoch, f.epoch);
        assert.equal(p.event, f.event ?? null);
        assert.equal(p.timeMs, Date.parse(f.time), `${v.name} time`);
        if (Buffer.isBuffer(p.data)) {
          // JSON frames carry binary payloads as base64 text (docs/protocol.md).
          assert.ok(encoding === 'msgpack' || typeof f.data === 'string', v.name);
        } else {
          assert.deepEqual(p.data, f.data, `${v.name} (${encoding})`);
        }
      });
    }
  }
});
