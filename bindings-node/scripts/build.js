#!/usr/bin/env node
// Builds the addon from source with cargo and copies it to ./livegate.node.
// Runs as the package's `install` script (there are no prebuilt binaries).
//
//   LIVEGATE_NODE_PROFILE  cargo profile: release (default) or dev
//   CARGO_TARGET_DIR       where cargo builds (default: the workspace's target/)
//   CARGO                  the cargo to run (default: cargo on PATH, then ~/.cargo/bin/cargo)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const pkgDir = path.resolve(__dirname, '..');
const workspace = path.resolve(pkgDir, '..');
const profile = process.env.LIVEGATE_NODE_PROFILE || 'release';

function fail(message) {
  console.error(`livegate: ${message}`);
  process.exit(1);
}

if (!fs.existsSync(path.join(workspace, 'Cargo.toml')) || !fs.existsSync(path.join(workspace, 'client'))) {
  fail(`the package builds from the livegate source tree, but ${workspace} is not one; ` +
    'install it from a checkout: npm install /path/to/livegate/bindings-node');
}

function findCargo() {
  if (process.env.CARGO) return process.env.CARGO;
  const probe = spawnSync('cargo', ['--version'], { stdio: 'ignore' });
  if (probe.status === 0) return 'cargo';
  const home = path.join(os.homedir(), '.cargo', 'bin', 'cargo');
  if (fs.existsSync(home)) return home;
  return fail('cargo was not found: install Rust (https://rustup.rs) and try again');
}

const cargo = findCargo();
console.error(`livegate: building the native addon (cargo, ${profile} profile); this takes a few minutes the first time`);
const built = spawnSync(cargo, ['build', '-p', 'livegate-node', '--profile', profile], {
  cwd: workspace,
  stdio: ['ignore', 'inherit', 'inherit'],
});
if (built.error) fail(`could not run ${cargo}: ${built.error.message}`);
if (built.status !== 0) fail(`cargo build failed (exit ${built.status}); see the messages above`);

const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(workspace, process.env.CARGO_TARGET_DIR)
  : path.join(workspace, 'target');
// The dev profile builds into target/debug, every other into target/<profile>.
const outDir = path.join(targetDir, profile === 'dev' ? 'debug' : profile);
const library = {
  darwin: 'liblivegate_node.dylib',
  win32: 'livegate_node.dll',
}[process.platform] || 'liblivegate_node.so';
const from = path.join(outDir, library);
if (!fs.existsSync(from)) fail(`cargo finished but ${from} is missing`);
const to = path.join(pkgDir, 'livegate.node');
// Copy to a temporary name and rename: a process that has the old addon
// loaded keeps its mapping intact.
const tmp = `${to}.${process.pid}.tmp`;
fs.copyFileSync(from, tmp);
fs.renameSync(tmp, to);
console.error(`livegate: addon ready at ${to}`);
