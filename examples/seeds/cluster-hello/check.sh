#!/usr/bin/env bash
# An ordinary cluster program, unchanged, under muster: every event, with --json and without;
# each worker answers requests.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"

ready_plain() { (($(grep -c '^\[muster\] worker .* ready$' "$LOG") >= 2)); }

# serve_both: requests (at most 20) until both worker ids have answered.
serve_both() {
  declare -A ids=()
  for i in $(seq 1 20); do
    body=$(http "$PORT" /) || fail "request $i failed"
    say "  $body"
    [[ $body =~ ^worker\ ([0-9]+), ]] && ids[${BASH_REMATCH[1]}]=1
    ((${#ids[@]} == 2)) && return
  done
  fail "only worker(s) ${!ids[*]} answered 20 requests"
}

for mode in json plain; do
  export PORT=$(free_port)
  flags=(-i 2 --host 127.0.0.1)
  [[ $mode == json ]] && flags+=(--json)
  say "=== muster cluster ${flags[*]} -- app.js"
  start_muster "${flags[@]}" -- app.js
  if [[ $mode == json ]]; then
    wait_for 10 "2 ready workers" at_least 2 ready
  else
    wait_for 10 "2 ready workers" ready_plain
  fi
  if command -v ss >/dev/null; then
    listeners=$(ss -ltn)
    grep -q " 127.0.0.1:$PORT " <<<"$listeners" || fail "port $PORT is not bound on 127.0.0.1 (--host)"
  fi
  serve_both
  stop_muster 10
  ((MRC == 0)) || fail "muster exited $MRC after SIGTERM, expected 0"
  cat "$LOG"

  ! grep -q '^\[master\]' "$LOG" || fail "the master branch ran"
  (($(grep -c '^\[worker\] [12] started' "$LOG") == 2)) || fail "the worker branch did not run twice"
  if [[ $mode == json ]]; then
    for ev in fork online listening ready disconnect exit; do
      (($(count_events $ev) == 2)) || fail "expected 2 '$ev' events"
    done
    (($(count_events stopped) == 1)) || fail "no 'stopped' event"
    [[ $(events listening port | sort -u) == "$PORT" ]] || fail "listening events name another port"
    # The stop sequence: disconnect, then the stop signal (SIGTERM) once the worker's channel
    # has closed. A worker ends by itself (code 0) or by that signal, never by SIGKILL.
    for ending in $(events exit signal | sort -u); do
      [[ $ending == None || $ending == SIGTERM ]] || fail "a worker ended by $ending"
    done
    [[ $(events exit exitedAfterDisconnect | sort -u) == True ]] || fail "a worker exited before its disconnect"
  else
    for re in 'fork slot [01]' 'online' "listening 127.0.0.1:$PORT" 'ready' 'disconnect' \
      'exit code (0 signal -|- signal SIGTERM) \(after disconnect\)'; do
      (($(grep -cE "^\[muster\] worker [12] \(pid [0-9]+\) $re$" "$LOG") == 2)) || fail "expected 2 '$re' lines"
    done
    grep -qx '\[muster\] stopped' "$LOG" || fail "no 'stopped' line"
  fi
done
say "OK"
