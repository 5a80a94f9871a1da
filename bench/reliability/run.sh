#!/usr/bin/env bash
# The figures of README's Reliability section and the IPC bounds: the trust and bounds tests
# print what they measured (lines written and dropped, peak RSS growth); this runs them with
# their output shown and stamps the run with the commit and the load average.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
echo "date: $(date -u +%FT%TZ)"
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test --locked -q -p muster --test trust -- --nocapture --test-threads=1 2>&1
cargo test --locked -q -p muster-ipc --test bounds -- --nocapture --test-threads=1 2>&1
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
