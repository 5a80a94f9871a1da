#!/usr/bin/env bash
# Two workers share one socket the primary bound; both answer connections on it.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"

PORT=$(free_port)
start_muster --json --schedule shared --listen "127.0.0.1:$PORT" \
  --send-listener '"server"' -i 2 -- worker.js
wait_for 10 "2 ready workers" at_least 2 ready
mapfile -t PIDS < <(events fork pid)
say "workers: ${PIDS[*]}"

# The kernel picks which worker accepts each connection: make 20 connections, and more (up
# to 100) until both workers have answered.
declare -A count=()
for i in $(seq 1 100); do
  line=$(curl -sS --max-time 2 "telnet://127.0.0.1:$PORT" </dev/null) || fail "connection $i: no answer"
  ((i <= 20)) && say "$line"
  pid=${line#child }
  count[$pid]=$((${count[$pid]:-0} + 1))
  ((i >= 20 && ${#count[@]} == 2)) && break
done
for pid in "${PIDS[@]}"; do
  [[ -n ${count[$pid]:-} ]] || fail "worker $pid answered none of $i connections"
done
say "$i connections: ${count[${PIDS[0]}]} answered by ${PIDS[0]}, ${count[${PIDS[1]}]} by ${PIDS[1]}"

stop_muster 10
((MRC == 0)) || fail "muster exited $MRC after SIGTERM, expected 0"
((${#PIDS[@]} == 2)) && (($(count_events exit) == 2)) || fail "expected 2 exits"
say "OK"
