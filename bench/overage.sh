#!/usr/bin/env bash
# The cost of a group overage, for BENCHMARKS.md: complete Microsoft sign-ins through the flow API (as bench/signin.sh,
# every one a new user, on SQLite), first by users whose groups fit in the ID token (200), then by users in 250
# groups, which Microsoft leaves out of the token (the overage) and Gatehouse reads from Microsoft Graph with the
# sign-in's access token: one more call to "Microsoft" per sign-in (999 groups per Graph page). Same binaries, same
# configuration (`groups.from_graph: true`, the same 16 groups kept), one run; prints both and their ratios.
# Usage: bash bench/overage.sh   (CONCURRENCY=32 SIGNIN_SECONDS=10)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --locked -p gatehouse -p gatehouse-testkit -p gatehouse-bench --bins
source bench/lib.sh

CONCURRENCY=${CONCURRENCY:-32}
SIGNIN_SECONDS=${SIGNIN_SECONDS:-10}
# Both runs keep the same 16 groups (of the fake's ids 60000000-0000-4000-8000-0000000000{00..ff}), so the session
# JWTs are alike and the difference is the Graph read.
MICROSOFT_EXTRA='groups: { from_graph: true, keep: ["60000000-0000-4000-8000-00000000000*"] }'
write_config "sqlite://$WORK/gatehouse.db"
migrate

# run GROUPS: the fake with every person in GROUPS groups, Gatehouse started; a warm-up, then the measured load.
# Prints the load generator's JSON line.
run() {
  start_fake --distinct-users --groups "$1"
  local fake=${PIDS[-1]}
  start_gatehouse; wait_ready
  signin_load --duration 2 >/dev/null
  signin_load --duration "$SIGNIN_SECONDS" | tail -1
  stop_gatehouse
  kill "$fake"; wait "$fake" 2>/dev/null || true
}

echo "gatehouse $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes'), $(nproc) cores, started $(date -u '+%Y-%m-%d %H:%M UTC')"
plain=$(run 200); [ -n "$plain" ] || { echo "the sign-ins with 200 groups failed" >&2; exit 1; }
overage=$(run 250); [ -n "$overage" ] || { echo "the sign-ins with 250 groups failed" >&2; exit 1; }
python3 - "$plain" "$overage" <<'PY'
import json, sys
plain, overage = (json.loads(line) for line in sys.argv[1:3])
def row(name, fmt, get):
    a, b = get(plain), get(overage)
    print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {b / a:.2f} |")
print("| per sign-in | 200 groups (in the token) | 250 groups (overage, read from Graph) | overage / in the token |")
print("| --- | --- | --- | --- |")
row("sign-ins/s", "{:.1f}", lambda r: r["signins_per_s"])
row("p50 (ms)", "{:.1f}", lambda r: r["p50_ms"])
row("p99 (ms)", "{:.1f}", lambda r: r["p99_ms"])
row("Gatehouse CPU (ms)", "{:.2f}", lambda r: r["gatehouse"]["cpu_ms_per_signin"])
row("calls to Microsoft", "{:.3f}", lambda r: r["microsoft"]["per_signin"])
graph = lambda r: r["microsoft"]["calls"]["graph_requests"] / r["signins"]
print(f"| of which Graph | {graph(plain):.3f} | {graph(overage):.3f} | |")
PY
