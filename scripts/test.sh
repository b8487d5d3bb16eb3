#!/usr/bin/env bash
# Runs every test of livegate on a fresh Debian machine with Rust installed:
# installs what the tests need (wasm32 target, wasm-bindgen-cli, cargo-fuzz, a Python venv,
# npm packages, Debian's chromium), then lints, builds once (dev profile) and
# runs the Rust tests, a short fuzz smoke, the end-to-end pytest suite, the
# Python package's suite (its wheel built and installed in a fresh virtualenv),
# the Node package's suite (its addon built by npm from source), builds the
# browser package and runs the browser tests against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/livegate/target}"
CACHE="${LIVEGATE_CACHE:-$HOME/.cache/livegate}"
mkdir -p "$CACHE"
step() { printf '\n== %s\n' "$*"; }

step "installing what the tests need"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
missing=()
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
VENV="$CACHE/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt
(cd tests/browser && npm ci --silent --no-audit --no-fund)

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "livegate-core builds for wasm32"
cargo check -q -p livegate-core --target wasm32-unknown-unknown

step "browser package (bindings-wasm, its own workspace): format, lints for wasm32, unit tests"
cargo fmt --manifest-path bindings-wasm/Cargo.toml -- --check
cargo clippy -q --manifest-path bindings-wasm/Cargo.toml --target wasm32-unknown-unknown --all-targets -- -D warnings
cargo test -q --manifest-path bindings-wasm/Cargo.toml

step "Rust tests"
cargo build -q --workspace --bins
cargo test -q --workspace

step "fuzz smoke: frame, payload and cursor decoders, client engine, client parsers (libFuzzer)"
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz
# cargo-fuzz needs nightly flags; the stable toolchain allows them with RUSTC_BOOTSTRAP.
for target in decode_frames payload_and_cursor client_engine client_parsers; do
  log="$CACHE/fuzz-$target.log"
  if ! (cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$CACHE/fuzz-target" \
      cargo fuzz run -s none "$target" -- -max_total_time="${LIVEGATE_FUZZ_SECS:-20}" -max_len=4096 \
      >"$log" 2>&1); then
    tail -n 40 "$log"
    echo "fuzz target $target found a failure (input saved under fuzz/artifacts/$target)"
    exit 1
  fi
  echo "$target: $(grep -E '^Done' "$log" | tail -n 1)"
done

step "end-to-end tests against the real binary (pytest)"
export LIVEGATE_BIN="$CARGO_TARGET_DIR/debug/livegate"
"$VENV/bin/python" -m pytest -q tests/e2e --ignore=tests/e2e/python

step "Python package: pip install ./bindings-python in a fresh virtualenv, then its tests"
PYVENV="$CACHE/pyvenv"
rm -rf "$PYVENV"
python3 -m venv "$PYVENV"
"$PYVENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/e2e/python/requirements.txt
# The dev profile, as everything else here: one profile, built once.
MATURIN_PEP517_ARGS="--profile dev" "$PYVENV/bin/python" -m pip install -q --disable-pip-version-check ./bindings-python
"$PYVENV/bin/python" -m pytest -q tests/e2e/python

step "Node package: npm install builds the addon from source (bindings-node), then node --test"
# The test project depends on ./bindings-node (linked), whose install script
# runs cargo (the dev profile, as everything here) and puts livegate.node in place.
rm -f bindings-node/livegate.node
(cd tests/e2e/node && LIVEGATE_NODE_PROFILE=dev npm ci --no-audit --no-fund --foreground-scripts)
[ -f bindings-node/livegate.node ] || { echo "npm ci did not build bindings-node/livegate.node"; exit 1; }
(cd examples/node && npm ci --silent --no-audit --no-fund --ignore-scripts)
(cd tests/e2e/node && node --test)

step "browser package: wasm32 build, wasm-bindgen (the pinned CLI), bindings-wasm/pkg"
bash bindings-wasm/build.sh

step "browser tests in headless Chromium (node --test, playwright-core)"
(cd tests/browser && node --test)
