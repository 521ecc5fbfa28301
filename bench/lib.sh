# What bench/http.sh and bench/signin.sh share; sourced, not run. The caller has `set -euo pipefail`, is in the
# repository root and has built the release binaries. Everything runs on loopback ports picked here; the processes
# started and the work directory are cleaned up on exit (bench_cleanup, the EXIT trap).

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
bench_cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"; }
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port); ENTRA_PORT=$(free_port); ENTRA_CONTROL_PORT=$(free_port)
GH="http://127.0.0.1:$API_PORT"
ENTRA_CONTROL="http://127.0.0.1:$ENTRA_CONTROL_PORT"

# write_config DATABASE_URL: Gatehouse's benchmark configuration, in $WORK/gatehouse.yaml; $MICROSOFT_EXTRA, when
# set, adds keys to the Microsoft provider's settings (YAML flow style, e.g. `groups: { from_graph: true }`).
write_config() {
  cat > "$WORK/gatehouse.yaml" <<YAML
server: { public: { address: "127.0.0.1:$API_PORT" }, admin: { enabled: false } }
database: { url: "$1" }
secret_keys: ["bench-secret-key-0123456789abcdef"]
log: { level: warn }
session: { enable_auth_token_header: true, cookie: { secure: false }, algorithm: ${SESSION_ALGORITHM:-RS256} }
# All load comes from one address, which the per-address limit on token exchanges would stop after three.
rate_limiter: { enabled: false }
third_party:
  redirect_url: $GH/thirdparty/callback
  error_redirect_url: $GH
  allowed_redirect_urls: ["$GH**"]
  providers: { microsoft: { enabled: true, client_id: gatehouse-dev-client, secret: gatehouse-dev-secret, cloud_instance: "http://127.0.0.1:$ENTRA_PORT"${MICROSOFT_EXTRA:+, $MICROSOFT_EXTRA} } }
YAML
}

# start_fake [FLAG…]: the fake Entra ID, with its control endpoint on $ENTRA_CONTROL.
start_fake() {
  target/release/fake-entra --port "$ENTRA_PORT" --control-port "$ENTRA_CONTROL_PORT" "$@" >/dev/null & PIDS+=($!)
  for _ in $(seq 1 500); do curl -sf "$ENTRA_CONTROL/stats" >/dev/null && return 0; sleep 0.01; done
  echo "fake-entra did not start" >&2; return 1
}

migrate() { target/release/gatehouse migrate --config "$WORK/gatehouse.yaml" >/dev/null; }
start_gatehouse() {
  target/release/gatehouse serve --config "$WORK/gatehouse.yaml" 2>>"$WORK/gatehouse.log" & GATEHOUSE=$!; PIDS+=($GATEHOUSE)
}
stop_gatehouse() { kill "$GATEHOUSE"; wait "$GATEHOUSE" 2>/dev/null || true; }
wait_ready() {
  for _ in $(seq 1 500); do curl -sf "$GH/health/ready" >/dev/null && return 0; sleep 0.01; done
  echo "Gatehouse did not become ready:" >&2; cat "$WORK/gatehouse.log" >&2; return 1
}

# signin_load [FLAG…]: complete sign-ins against the running Gatehouse, $CONCURRENCY at a time, with its CPU and
# memory and the calls it makes to the fake counted; the last line printed is the report as JSON.
signin_load() {
  target/release/signin-load --base-url "$GH" --concurrency "$CONCURRENCY" \
    --gatehouse-pid "$GATEHOUSE" --entra-control "$ENTRA_CONTROL" "$@"
}

rss_mb() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$GATEHOUSE/status"; }
peak_rss_mb() { awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$GATEHOUSE/status"; }

# session_jwt: one Microsoft sign-in through the fake with curl, as in the README walk-through; prints the JWT.
session_jwt() {
  local authorize callback landing jwt
  authorize=$(curl -s -c "$WORK/jar" -o /dev/null -w '%{redirect_url}' "$GH/thirdparty/auth?provider=microsoft&redirect_to=$GH/")
  callback=$(curl -s -o /dev/null -w '%{redirect_url}' "$authorize")
  landing=$(curl -s -b "$WORK/jar" -o /dev/null -w '%{redirect_url}' "$callback")
  jwt=$(curl -s -D - -o /dev/null -H 'content-type: application/json' -d "{\"value\":\"${landing##*hanko_token=}\"}" "$GH/token" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
  [ -n "$jwt" ] || { echo "could not obtain a session" >&2; return 1; }
  curl -sf -H "authorization: Bearer $jwt" "$GH/sessions/validate" | grep -q '"is_valid":true'
  echo "$jwt"
}

# measure_validate JWT: GET /sessions/validate with a bearer JWT against the same binary's do-nothing /health/alive,
# 64 connections with wrk for $DURATION (10s) each, after a 2-second warm-up of both. Sets ALIVE_RPS ALIVE_P50
# ALIVE_P99 and VALIDATE_RPS VALIDATE_P50 VALIDATE_P99 (latencies in ms).
measure_validate() {
  local alive validate
  DURATION=2s wrk_run "$GH/health/alive" >/dev/null
  DURATION=2s wrk_run -H "Authorization: Bearer $1" "$GH/sessions/validate" >/dev/null
  alive=$(wrk_run "$GH/health/alive")
  validate=$(wrk_run -H "Authorization: Bearer $1" "$GH/sessions/validate")
  ALIVE_RPS=$(rps "$alive"); ALIVE_P50=$(pct_ms "$alive" 50%); ALIVE_P99=$(pct_ms "$alive" 99%)
  VALIDATE_RPS=$(rps "$validate"); VALIDATE_P50=$(pct_ms "$validate" 50%); VALIDATE_P99=$(pct_ms "$validate" 99%)
}
wrk_run() { wrk -t2 -c64 -d"${DURATION:-10s}" --latency "$@" 2>/dev/null; }
rps() { awk '/Requests\/sec/{print $2}' <<<"$1"; }
# pct_ms WRK_OUTPUT PERCENTILE: that latency percentile in ms (wrk prints us, ms or s).
pct_ms() {
  awk -v p="$2" '$1==p{v=$2; f=1; if (v ~ /us$/) f=0.001; else if (v ~ /ms$/) f=1; else if (v ~ /s$/) f=1000;
                 sub(/[a-z]+$/, "", v); printf "%.2f", v*f}' <<<"$1"
}
