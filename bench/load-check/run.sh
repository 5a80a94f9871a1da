#!/usr/bin/env bash
# bench/load-check/run.sh: `muster bench` next to wrk on the same server, in one run on this
# machine, to check muster bench's figures against wrk's (the issue asks for within 10 %).
# The server is one Node process (`http.createServer`, 'hello'), on 127.0.0.1; the two load
# tools take turns against it (wrk, muster, wrk, muster, ...), with the same connections and
# duration, and the script prints each run's rate and latency and the ratio muster / wrk.
#
#   bench/load-check/run.sh            3 rounds, 5 s per run, 32 connections
#   bench/load-check/run.sh --quick    1 round, 1 s per run
#
# Options: --rounds N, --duration S, --connections N, --threads N (wrk's; muster bench uses
# one runtime thread per core), --no-keepalive (both tools send `Connection: close`), --no-build.
# Environment: BENCH_PORT (default 19300); MUSTER: a prebuilt muster binary; WRK: wrk's path.
#
# Needs wrk (`apt-get install wrk`) and node. Every process started here is stopped on exit,
# failure or Ctrl-C (trap); every wait is bounded.
set -euo pipefail
CMDLINE="bench/load-check/run.sh${*:+ $*}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROUNDS=3 DUR=5 CONNS=32 THREADS=2 BUILD=1 KEEPALIVE=1
PORT=${BENCH_PORT:-19300}

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) ROUNDS=1 DUR=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --no-keepalive) KEEPALIVE=0 ;;
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

WRK=${WRK:-$(command -v wrk || true)}
[ -n "$WRK" ] || { echo "run.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 1; }
if [ -z "${MUSTER:-}" ]; then
  if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release --locked -p muster >&2)
  fi
  MUSTER="$ROOT/target/release/muster"
fi
[ -x "$MUSTER" ] || { echo "run.sh: no muster binary at $MUSTER" >&2; exit 1; }

SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

node -e '
  const http = require("http");
  http.createServer((req, res) => res.end("hello")).listen(+process.argv[1], "127.0.0.1");
' "$PORT" &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$PORT/" || { echo "run.sh: the server did not start" >&2; exit 1; }

URL="http://127.0.0.1:$PORT/"
WRK_ARGS=(-t "$THREADS" -c "$CONNS" -d "${DUR}s" --latency)
BENCH_ARGS=(-c "$CONNS" -d "${DUR}s" --json)
if [ "$KEEPALIVE" = 0 ]; then
  WRK_ARGS+=(-H "Connection: close")
  BENCH_ARGS+=(--no-keepalive)
fi

echo "# $CMDLINE at commit $(cd "$ROOT" && git rev-parse --short HEAD)$( [ -n "$(cd "$ROOT" && git status --porcelain -- crates)" ] && echo " + uncommitted crates/ changes"), $(date -u +%FT%TZ) on $(nproc) cores; $(uptime)"
echo "# server: node $(node --version) http.createServer on $URL; ${CONNS} connections, ${DUR} s per run; keep-alive=$KEEPALIVE"
printf '%-6s %-7s %14s %10s %10s %10s\n' round tool "requests/s" "p50 ms" "p99 ms" failed
sum_wrk=0 sum_muster=0
for round in $(seq "$ROUNDS"); do
  out=$("$WRK" "${WRK_ARGS[@]}" "$URL")
  rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errs=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
  printf '%-6s %-7s %14s %10s %10s %10s\n' "$round" wrk "$rate" "$p50" "$p99" "${errs:-0}"
  sum_wrk=$(awk -v a="$sum_wrk" -v b="$rate" 'BEGIN {print a + b}')

  json=$("$MUSTER" bench "$URL" "${BENCH_ARGS[@]}" || true)
  read -r rate p50 p99 failed < <(node -e '
    const r = JSON.parse(process.argv[1]);
    const f = (v) => (v == null ? "-" : v.toFixed(3));
    console.log(r.transaction_rate.toFixed(2), f(r.response_time_ms.p50), f(r.response_time_ms.p99), r.failed);
  ' "$json")
  printf '%-6s %-7s %14s %10s %10s %10s\n' "$round" muster "$rate" "$p50" "$p99" "$failed"
  sum_muster=$(awk -v a="$sum_muster" -v b="$rate" 'BEGIN {print a + b}')
done
awk -v w="$sum_wrk" -v m="$sum_muster" -v n="$ROUNDS" 'BEGIN {
  printf "mean requests/s: wrk %.2f, muster bench %.2f; ratio muster/wrk %.3f\n", w / n, m / n, (w > 0 ? m / w : 0)
}'
echo "# (wrk prints latencies with units, e.g. 1.20ms; muster bench's are in ms)"
echo "# end $(date -u +%FT%TZ); $(uptime)"
