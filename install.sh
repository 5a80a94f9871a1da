#!/usr/bin/env bash
# ./install.sh [DIR]: builds muster (scripts/build-static.sh: release profile with LTO,
# statically linked) and installs its three executables side by side into DIR, by default
# ~/.cargo/bin (on the PATH of anyone who has installed Rust with rustup). They must stay
# together: `muster` starts `muster-daemon` from beside itself, and the daemon starts
# `muster-supervisor`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${1:-${CARGO_HOME:-$HOME/.cargo}/bin}
[ $# -le 1 ] || { echo "usage: ./install.sh [DIR]" >&2; exit 2; }
"$ROOT/scripts/build-static.sh"
mkdir -p "$DIR"
for bin in muster muster-daemon muster-supervisor; do
  # A new file renamed into place: a running daemon or supervisor keeps its own copy.
  install -m 0755 "${CARGO_TARGET_DIR:-$ROOT/target}/static/$bin" "$DIR/.$bin.new"
  mv -f "$DIR/.$bin.new" "$DIR/$bin"
done
echo "installed muster, muster-daemon and muster-supervisor in $DIR"
case ":$PATH:" in
  *":$DIR:"*) ;;
  *) echo "note: $DIR is not on your PATH" ;;
esac
