#!/usr/bin/env bash
# HTTP figures for BENCHMARKS.md, all measured in one run on this machine, against the release binary on loopback:
#   1. GET /sessions/validate with a valid bearer JWT vs. the same binary's /health/alive (64 connections, wrk);
#   2. start-up time, process start to /health/ready answering, migrations already applied (median of 20);
#   3. resident memory idle, and after the load.
# Usage: bash bench/http.sh   (builds what it needs; needs wrk: apt-get install wrk; DURATION=10s per wrk run)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --locked -p gatehouse -p gatehouse-testkit --bins
source bench/lib.sh

write_config "sqlite://$WORK/gatehouse.db"
start_fake
migrate
# Start-up: process start to /health/ready, migrations applied, keys already in the database.
start_gatehouse; wait_ready; stop_gatehouse
STARTUPS=()
for _ in $(seq 1 20); do
  t0=$(date +%s%N); start_gatehouse; wait_ready; t1=$(date +%s%N)
  STARTUPS+=($(( (t1 - t0) / 1000000 )))
  stop_gatehouse
done
STARTUP_MS=$(printf '%s\n' "${STARTUPS[@]}" | sort -n | sed -n 10p)

start_gatehouse; wait_ready
JWT=$(session_jwt)
IDLE_MB=$(rss_mb)
measure_validate "$JWT"
PEAK_MB=$(peak_rss_mb)
echo "gatehouse $(git rev-parse --short HEAD), $(nproc) cores, $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), SQLite"
printf '| %-40s | %12s | %8s | %8s |\n' "endpoint (64 connections, wrk -t2)" "requests/s" "p50 ms" "p99 ms"
printf '| %-40s | %12s | %8s | %8s |\n' "GET /health/alive (do-nothing)" "$ALIVE_RPS" "$ALIVE_P50" "$ALIVE_P99"
printf '| %-40s | %12s | %8s | %8s |\n' "GET /sessions/validate (bearer JWT)" "$VALIDATE_RPS" "$VALIDATE_P50" "$VALIDATE_P99"
echo "validate / alive = $(python3 -c "print(f'{$VALIDATE_RPS/$ALIVE_RPS:.0%}')")"
echo "start-up to /health/ready: median ${STARTUP_MS} ms (20 starts: ${STARTUPS[*]})"
echo "resident memory: idle ${IDLE_MB} MB, peak after the load ${PEAK_MB} MB"
