#!/usr/bin/env bash
# Sequential requests to 3 workers: strict rotation with --schedule rr; with --schedule shared
# the kernel picks the worker for each connection.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"

N=3 REQUESTS=15

for schedule in rr shared; do
  export PORT=$(free_port)
  start_muster --json -i $N --schedule $schedule -- app.js
  wait_for 10 "$N ready workers" at_least $N ready
  seq=()
  for i in $(seq 1 $REQUESTS); do
    id=$(http "$PORT" "/$i") || fail "request $i failed"
    seq+=("$id")
  done
  say "--schedule $schedule: ${seq[*]}   (per worker: $(printf '%s\n' "${seq[@]}" | sort | uniq -c | awk '{print $2 ":" $1}' | paste -sd ' '))"
  stop_muster 10
  ((MRC == 0)) || fail "muster exited $MRC after SIGTERM, expected 0"
  for id in "${seq[@]}"; do
    [[ $id =~ ^[1-$N]$ ]] || fail "unexpected answer: $id"
  done
  if [[ $schedule == rr ]]; then
    # The first N answers are N different workers, and then the same order over and over.
    (($(printf '%s\n' "${seq[@]:0:N}" | sort -u | wc -l) == N)) || fail "the first $N requests did not reach $N workers"
    for ((i = N; i < REQUESTS; i++)); do
      [[ ${seq[i]} == "${seq[i % N]}" ]] || fail "request $((i + 1)) broke the rotation"
    done
  fi
done
say "OK"
