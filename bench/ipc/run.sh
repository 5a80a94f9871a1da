#!/usr/bin/env bash
# Builds ipc-bench in release and runs every IPC case side by side (see bench/README.md).
# Arguments go to ipc-bench: --quick (smoke run, seconds), --json, --rounds N, --secs S, ...
# The table (or JSON) goes to stdout; progress and the machine's load go to stderr.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release --locked -p ipc-bench >&2
target="${CARGO_TARGET_DIR:-$root/target}"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -n "$(git status --porcelain -- crates bench/ipc 2>/dev/null)" ] && commit+=", crates/ or bench/ipc modified"
case " $* " in
*" --json "*) ;;
*) echo "commit: $commit; command: bench/ipc/run.sh${*:+ $*}" ;;
esac
echo "uptime before: $(uptime)" >&2
status=0
"$target/release/ipc-bench" "$@" || status=$?
echo "uptime after:  $(uptime)" >&2
exit "$status"
