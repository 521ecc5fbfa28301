#!/usr/bin/env bash
# HTTP figures for BENCHMARKS.md, all measured in one run on this machine, against the release binary on loopback:
#   1. GET /sessions/validate with a valid bearer JWT vs. the same binary's /health/alive (64 connections, wrk);
#   2. start-up time, process start to /health/ready answering, migrations already applied (median of 20);
#   3. resident memory idle, and after the load.
# Usage: bash bench/http.sh   (builds what it needs; needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build -q --release --locked -p gatehouse -p gatehouse-testkit --bins

WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port); ENTRA_PORT=$(free_port)
GH="http://127.0.0.1:$API_PORT"
cat > "$WORK/gatehouse.yaml" <<YAML
server: { public: { address: "127.0.0.1:$API_PORT" } }
database: { url: "sqlite://$WORK/gatehouse.db" }
secret_keys: ["bench-secret-key-0123456789abcdef"]
log: { level: warn }
session: { enable_auth_token_header: true, cookie: { secure: false } }
third_party:
  redirect_url: $GH/thirdparty/callback
  error_redirect_url: $GH
  allowed_redirect_urls: ["$GH**"]
  providers: { microsoft: { enabled: true, client_id: gatehouse-dev-client, secret: gatehouse-dev-secret, cloud_instance: "http://127.0.0.1:$ENTRA_PORT" } }
YAML
target/release/fake-entra --port "$ENTRA_PORT" >/dev/null & PIDS+=($!)

wait_ready() { for _ in $(seq 1 500); do curl -sf "$GH/health/ready" >/dev/null && return 0; sleep 0.01; done; return 1; }
start() { target/release/gatehouse serve --config "$WORK/gatehouse.yaml" 2>/dev/null & GATEHOUSE=$!; PIDS+=($GATEHOUSE); }

target/release/gatehouse migrate --config "$WORK/gatehouse.yaml" >/dev/null
# Start-up: process start to /health/ready, migrations applied, keys already in the database.
start; wait_ready; kill "$GATEHOUSE"; wait "$GATEHOUSE" 2>/dev/null || true
STARTUPS=()
for _ in $(seq 1 20); do
  t0=$(date +%s%N); start; wait_ready; t1=$(date +%s%N)
  STARTUPS+=($(( (t1 - t0) / 1000000 )))
  kill "$GATEHOUSE"; wait "$GATEHOUSE" 2>/dev/null || true
done
STARTUP_MS=$(printf '%s\n' "${STARTUPS[@]}" | sort -n | sed -n 10p)

start; wait_ready
# A real session: one Microsoft sign-in through the fake, as in the README walk-through.
AUTHORIZE=$(curl -s -c "$WORK/jar" -o /dev/null -w '%{redirect_url}' "$GH/thirdparty/auth?provider=microsoft&redirect_to=$GH/")
CALLBACK=$(curl -s -o /dev/null -w '%{redirect_url}' "$AUTHORIZE")
LANDING=$(curl -s -b "$WORK/jar" -o /dev/null -w '%{redirect_url}' "$CALLBACK")
JWT=$(curl -s -D - -o /dev/null -H 'content-type: application/json' -d "{\"value\":\"${LANDING##*hanko_token=}\"}" "$GH/token" \
  | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
[ -n "$JWT" ] || { echo "could not obtain a session" >&2; exit 1; }
curl -sf -H "authorization: Bearer $JWT" "$GH/sessions/validate" | grep -q '"is_valid":true'

rss_mb() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$GATEHOUSE/status"; }
IDLE_MB=$(rss_mb)
run() { wrk -t2 -c64 -d"${DURATION:-10s}" --latency "$@" 2>/dev/null; }
ALIVE=$(run "$GH/health/alive")
VALIDATE=$(run -H "Authorization: Bearer $JWT" "$GH/sessions/validate")
PEAK_MB=$(awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$GATEHOUSE/status")
rps() { awk '/Requests\/sec/{print $2}' <<<"$1"; }
pct() { awk -v p="$2" '$1==p{print $2}' <<<"$1"; }
ALIVE_RPS=$(rps "$ALIVE"); VALIDATE_RPS=$(rps "$VALIDATE")
echo "gatehouse $(git rev-parse --short HEAD), $(nproc) cores, $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), SQLite"
printf '| %-40s | %12s | %8s | %8s |\n' "endpoint (64 connections, wrk -t2)" "requests/s" "p50" "p99"
printf '| %-40s | %12s | %8s | %8s |\n' "GET /health/alive (do-nothing)" "$ALIVE_RPS" "$(pct "$ALIVE" 50%)" "$(pct "$ALIVE" 99%)"
printf '| %-40s | %12s | %8s | %8s |\n' "GET /sessions/validate (bearer JWT)" "$VALIDATE_RPS" "$(pct "$VALIDATE" 50%)" "$(pct "$VALIDATE" 99%)"
echo "validate / alive = $(python3 -c "print(f'{$VALIDATE_RPS/$ALIVE_RPS:.0%}')")"
echo "start-up to /health/ready: median ${STARTUP_MS} ms (20 starts: ${STARTUPS[*]})"
echo "resident memory: idle ${IDLE_MB} MB, peak after the load ${PEAK_MB} MB"
