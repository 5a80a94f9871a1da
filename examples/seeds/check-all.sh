#!/usr/bin/env bash
# Runs every examples/seeds/*/check.sh, each bounded by a timeout; exits non-zero if any fails.
set -uo pipefail
if [[ -n ${MUSTER:-} && $MUSTER != /* ]]; then export MUSTER=$PWD/$MUSTER; fi
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
if [[ -z ${MUSTER:-} ]]; then
  (cd "$ROOT" && cargo build -q -p muster) || exit 1
fi

# Each check.sh adds the session id of every muster it starts; whatever a killed check left
# behind is killed here.
export SEEDS_SESSIONS
OUT=$(mktemp -d "${TMPDIR:-/tmp}/seeds-check-all.XXXXXX")
SEEDS_SESSIONS=$OUT/sessions
: >"$SEEDS_SESSIONS"
kill_leftovers() {
  local sid p
  while read -r sid; do
    for p in $(ps -o pid= -s "$sid" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done
  done <"$SEEDS_SESSIONS"
  : >"$SEEDS_SESSIONS"
}
trap 'kill_leftovers; rm -rf "$OUT"' EXIT

failed=()
for check in */check.sh; do
  name=${check%/check.sh}
  start=$(date +%s%N)
  if timeout -k 5 "${CHECK_TIMEOUT:-120}" bash "$check" >"$OUT/$name.log" 2>&1; then
    result=PASS
  else
    result=FAIL
    failed+=("$name")
  fi
  kill_leftovers
  printf '%-14s %s  %5d ms\n' "$name" "$result" $((($(date +%s%N) - start) / 1000000))
  if [[ $result == FAIL ]]; then
    sed 's/^/    /' "$OUT/$name.log"
  fi
done

if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all passed"
