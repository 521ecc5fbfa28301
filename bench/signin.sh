#!/usr/bin/env bash
# Sign-in figures for BENCHMARKS.md, all measured in one run on this machine, against the release binaries on
# loopback. For SQLite, then PostgreSQL (a fresh database, dropped at the end):
#   1. 1,000 users and 1,000 live sessions seeded (target/release/seed); Gatehouse started; resident memory idle;
#   2. GET /sessions/validate against /health/alive, as bench/http.sh measures it;
#   3. complete Microsoft sign-ins through the flow API (target/release/signin-load: /login → thirdparty_oauth →
#      the fake Entra ID → callback → exchange_token), every one a new user, $CONCURRENCY at a time for
#      $SIGNIN_SECONDS seconds after a 2-second warm-up: sign-ins/s, p50/p99, Gatehouse's own CPU per sign-in,
#      calls to "Microsoft" per sign-in counted at the fake, peak resident memory;
#   4. the database grown to 1,000,000 users and 1,000,000 sessions, Gatehouse restarted, 1. to 3. again.
# Prints a markdown table of every figure next to its target; the growth ratios compare figures of this one run.
# Usage: bash bench/signin.sh   (needs wrk, and PostgreSQL at $GATEHOUSE_TEST_PG_URL, by default
#        postgres://postgres@127.0.0.1:5432/postgres with trust auth; CONCURRENCY=32 SIGNIN_SECONDS=10 DURATION=10s)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --locked -p gatehouse -p gatehouse-testkit -p gatehouse-bench --bins
source bench/lib.sh

CONCURRENCY=${CONCURRENCY:-32}
SIGNIN_SECONDS=${SIGNIN_SECONDS:-10}
PG_ADMIN_URL=${GATEHOUSE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DATABASE="gatehouse_bench_$$"
trap 'bench_cleanup; psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DATABASE" 2>/dev/null || true' EXIT
RESULTS="$WORK/results.jsonl"

# record BACKEND USERS KIND JSON: one line of $RESULTS, for the table at the end.
record() { printf '{"backend":"%s","users":"%s","kind":"%s","figures":%s}\n' "$@" >> "$RESULTS"; }

# seed DATABASE_URL COUNT: COUNT more users and as many sessions; sets SEED_SECONDS.
seed() {
  local out
  out=$(target/release/seed --database-url "$1" --users "$2" --sessions "$2")
  sed 's/^/    /' <<<"$out"
  SEED_SECONDS=$(awk '/^seeded/{print $(NF-1)}' <<<"$out")
}

# measure BACKEND USERS: starts Gatehouse; idle memory, validate, sign-in load; stops it. Validate goes first, as in
# bench/http.sh: after a sign-in load the same process validates about 20 % slower, whatever the database's size.
measure() {
  local out
  start_gatehouse; wait_ready
  record "$1" "$2" idle "{\"rss_mb\":$(rss_mb)}"
  measure_validate "$(session_jwt)"
  echo "    validate $VALIDATE_RPS req/s (p50 $VALIDATE_P50 ms, p99 $VALIDATE_P99 ms), alive $ALIVE_RPS req/s"
  record "$1" "$2" validate "$(printf '{"alive_rps":%s,"validate_rps":%s,"validate_p50_ms":%s,"validate_p99_ms":%s}' \
    "$ALIVE_RPS" "$VALIDATE_RPS" "$VALIDATE_P50" "$VALIDATE_P99")"
  signin_load --duration 2 >/dev/null
  out=$(signin_load --duration "$SIGNIN_SECONDS")
  head -n -1 <<<"$out" | sed 's/^/    /'
  record "$1" "$2" signin "$(tail -1 <<<"$out")"
  stop_gatehouse
}

echo "gatehouse $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes'), $(nproc) cores, started $(date -u '+%Y-%m-%d %H:%M UTC')"
start_fake --distinct-users
for backend in sqlite postgres; do
  if [ "$backend" = sqlite ]; then
    url="sqlite://$WORK/gatehouse.db"
  else
    psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $PG_DATABASE"
    url="${PG_ADMIN_URL%/*}/$PG_DATABASE"
  fi
  write_config "$url"
  migrate
  echo "== $backend, 1,000 users and sessions"
  seed "$url" 1000
  measure "$backend" 1k
  echo "== $backend, grown to 1,000,000 users and sessions"
  seed "$url" 999000
  record "$backend" 1m seed "{\"seconds\":$SEED_SECONDS}"
  measure "$backend" 1m
done
echo "finished $(date -u '+%Y-%m-%d %H:%M UTC')"

python3 - "$RESULTS" "$CONCURRENCY" <<'PY'
import json, sys

results = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    results[(r["backend"], r["users"], r["kind"])] = r["figures"]
    if r["kind"] == "validate":
        # Against the do-nothing endpoint measured next to it, which cancels out a machine slower at one moment.
        r["figures"]["share"] = r["figures"]["validate_rps"] / r["figures"]["alive_rps"]


def get(backend, users, kind, *path):
    value = results[(backend, users, kind)]
    for key in path:
        value = value[key]
    return value


def verdict(ok):
    return "yes" if ok else "**no**"


def row(name, target, render):
    print(f"| {name} | {target} | " + " | ".join(render(b) for b in ("sqlite", "postgres")) + " |")


def judged(users, fmt, kind, *path, ok, sqlite_only=False):
    """A figure and whether it is `ok` (for SQLite alone when the target is SQLite's)."""
    def render(b):
        value = get(b, users, kind, *path)
        return fmt.format(value) + ("" if sqlite_only and b != "sqlite" else f" ({verdict(ok(value))})")
    return render


def growth(fmt, kind, *path, higher_is_better):
    """The 1M figure, and its ratio to the 1k one: within 10 %, in the good direction or not at all."""
    def render(b):
        new, old = get(b, "1m", kind, *path), get(b, "1k", kind, *path)
        ratio = new / old
        ok = ratio >= 0.9 if higher_is_better else ratio <= 1.1
        return f"{fmt.format(new)} ({ratio:.1%} of 1k: {verdict(ok)})"
    return render


print("| Figure | Target | SQLite | PostgreSQL |")
print("|---|---|---|---|")
row(f"Sign-ins/s, {sys.argv[2]} at a time, 1k users", "≥ 300 on SQLite",
    judged("1k", "{:.0f}", "signin", "signins_per_s", ok=lambda v: v >= 300, sqlite_only=True))
row("Sign-in latency p50 / p99", "",
    lambda b: f"{get(b, '1k', 'signin', 'p50_ms'):.0f} / {get(b, '1k', 'signin', 'p99_ms'):.0f} ms")
row("Gatehouse CPU per sign-in", "≤ 2 ms",
    judged("1k", "{:.2f} ms", "signin", "gatehouse", "cpu_ms_per_signin", ok=lambda v: v <= 2))
row("Calls to Microsoft per sign-in (token + JWKS + discovery)", "exactly 1",
    judged("1k", "{:.3f}", "signin", "microsoft", "per_signin", ok=lambda v: v == 1))
row("Resident memory idle", "≤ 20 MB", judged("1k", "{:.1f} MB", "idle", "rss_mb", ok=lambda v: v <= 20))
row("Resident memory, peak under load (validate, then sign-ins)", "≤ 100 MB",
    judged("1k", "{:.1f} MB", "signin", "gatehouse", "peak_rss_mb", ok=lambda v: v <= 100))
row("`/sessions/validate` req/s (of `/health/alive`), 1k", "",
    lambda b: f"{get(b, '1k', 'validate', 'validate_rps'):.0f} ({get(b, '1k', 'validate', 'share'):.1%})")
row("`/sessions/validate` p50 / p99, 1k", "",
    lambda b: f"{get(b, '1k', 'validate', 'validate_p50_ms'):.2f} / {get(b, '1k', 'validate', 'validate_p99_ms'):.2f} ms")
row("Seeding 999,000 users and 999,000 sessions", "a few minutes at most",
    lambda b: f"{get(b, '1m', 'seed', 'seconds'):.0f} s")
row("Sign-ins/s, 1M users and sessions", "within 10 % of 1k",
    growth("{:.0f}", "signin", "signins_per_s", higher_is_better=True))
row("Sign-in p99, 1M", "within 10 % of 1k", growth("{:.0f} ms", "signin", "p99_ms", higher_is_better=False))
row("Gatehouse CPU per sign-in, 1M", "within 10 % of 1k",
    growth("{:.2f} ms", "signin", "gatehouse", "cpu_ms_per_signin", higher_is_better=False))
row("Resident memory, peak under load, 1M", "≤ 100 MB",
    judged("1m", "{:.1f} MB", "signin", "gatehouse", "peak_rss_mb", ok=lambda v: v <= 100))
row("`/sessions/validate` req/s, 1M", "within 10 % of 1k",
    growth("{:.0f}", "validate", "validate_rps", higher_is_better=True))
row("`/sessions/validate` share of `/health/alive`, 1M", "within 10 % of 1k",
    growth("{:.1%}", "validate", "share", higher_is_better=True))
row("`/sessions/validate` p99, 1M", "within 10 % of 1k",
    growth("{:.2f} ms", "validate", "validate_p99_ms", higher_is_better=False))
PY
