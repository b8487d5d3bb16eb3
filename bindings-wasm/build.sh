#!/usr/bin/env bash
# Builds the browser package into bindings-wasm/pkg/: the engine compiled for
# wasm32-unknown-unknown, wasm-bindgen's ES module glue (--target web: no
# bundler needed), the driver (js/) and package.json. Installs the wasm32
# target and the wasm-bindgen CLI of exactly the version Cargo.toml pins
# when they are missing (the two must match). Prints the gzip size.
set -euo pipefail
cd "$(dirname "$0")"

version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "build.sh: no pinned wasm-bindgen version in Cargo.toml" >&2; exit 1; }
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  # Built in a temporary directory of its own, not in CARGO_TARGET_DIR.
  env -u CARGO_TARGET_DIR cargo install -q wasm-bindgen-cli --version "$version"
fi

target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -q --release --target wasm32-unknown-unknown
rm -rf pkg
wasm-bindgen --target web --out-dir pkg --out-name livegate_wasm --remove-name-section --remove-producers-section \
  "$target/wasm32-unknown-unknown/release/livegate_wasm.wasm"
cp js/*.js js/*.d.ts package.json README.md pkg/
gz=$(gzip -9 -c pkg/livegate_wasm_bg.wasm | wc -c)
echo "bindings-wasm/pkg: livegate_wasm_bg.wasm $(wc -c < pkg/livegate_wasm_bg.wasm) bytes, $gz gzipped"
