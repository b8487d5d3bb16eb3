#!/usr/bin/env bash
# Peer comparison: the same `livegate bench` load against Nchan (nginx), a
# Node `ws` broadcast server, the FastAPI ConnectionManager pattern and
# livegate, each on loopback, one after the other. Installs what it needs
# (Debian's nginx + libnginx-mod-nchan, npm `ws`, PyPI fastapi + uvicorn),
# stops every process it starts by its pid.
#
#   bash benches/peers/run.sh [livegate bench flags, e.g. -n 1000 -t 10]
#
# Every server gets plain WebSocket subscribers and HTTP POST publishes
# (livegate: /ws with a subscribe frame, /api/publish/{topic}).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${LIVEGATE_CACHE:-$HOME/.cache/livegate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/release-target}"
mkdir -p "$CACHE"

if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null
fi
VENV="$CACHE/peers-venv"
[ -x "$VENV/bin/uvicorn" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q fastapi uvicorn websockets; }
(cd benches/peers/node-ws && npm ci --silent --no-audit --no-fund)
cargo build -q --release -p livegate --bin livegate
LIVEGATE="$CARGO_TARGET_DIR/release/livegate"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open" >&2
  return 1
}

LOGS="$CACHE/peers-logs"
mkdir -p "$LOGS"
nginx -c "$PWD/benches/peers/nchan.conf" -p /tmp 2>"$LOGS/nchan.log" & pids+=($!)
node benches/peers/node-ws/server.js 9102 >"$LOGS/node-ws.log" 2>&1 & pids+=($!)
"$VENV/bin/uvicorn" fastapi_app:app --app-dir benches/peers --host 127.0.0.1 --port 9103 \
  --log-level warning --ws websockets >"$LOGS/fastapi.log" 2>&1 & pids+=($!)
"$LIVEGATE" serve --listen 127.0.0.1:9104 --no-system-publisher --no-wt --log warn >/dev/null & pids+=($!)
for p in 9101 9102 9103 9104; do wait_port "$p"; done

peer() { printf '{"name":"%s","ws":"%s","publish":"%s","pid":%s%s}' "$@"; }
sub='{\"type\":\"subscribe\",\"topic\":\"bench.peers\"}'
"$LIVEGATE" bench --quiet \
  --peer "$(peer livegate-ws ws://127.0.0.1:9104/ws http://127.0.0.1:9104/api/publish/bench.peers "${pids[3]}" ",\"subscribe\":\"$sub\"")" \
  --peer "$(peer nchan ws://127.0.0.1:9101/sub http://127.0.0.1:9101/pub "${pids[0]}" "")" \
  --peer "$(peer node-ws ws://127.0.0.1:9102/sub http://127.0.0.1:9102/pub "${pids[1]}" "")" \
  --peer "$(peer fastapi ws://127.0.0.1:9103/sub http://127.0.0.1:9103/pub "${pids[2]}" "")" \
  "$@"
