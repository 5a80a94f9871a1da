#!/usr/bin/env bash
# scripts/build-static.sh: muster's executables as ./install.sh installs them and the benchmarks
# measure them: the `dist` profile (the release profile with whole-program LTO, Cargo.toml),
# linked statically against the C library and at a fixed address (non-PIE), copied into
# target/static/.
#
#   scripts/build-static.sh                       muster, muster-daemon, muster-supervisor
#   scripts/build-static.sh -p PACKAGE BIN...     other binaries of the workspace, the same way
#
# Why static: a supervisor runs once per app for months. Linked dynamically, each one maps the
# loader and the C library and keeps private copies of their relocated data and of the
# loader's bookkeeping; linked statically at a fixed address, nothing is relocated at start
# and the only private pages are its own heap and stacks (bench/README.md, "Footprint").
# Plain `cargo build` cannot ask for this per executable (`+crt-static` in RUSTFLAGS also
# reaches the proc-macro crates, which must stay dynamic), so each binary is linked with
# `cargo rustc`, which passes the flags to that binary's final compilation only.
#
# Needs glibc's static library (Debian: libc6-dev, which gcc depends on).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=muster
BINS=(muster muster-daemon muster-supervisor)
if [ "${1:-}" = -p ]; then
  [ $# -ge 3 ] || { echo "usage: scripts/build-static.sh [-p PACKAGE BIN...]" >&2; exit 2; }
  PKG=$2
  shift 2
  BINS=("$@")
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/static
mkdir -p "$OUT"

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
if ! printf 'int main(void) { return 0; }\n' | cc -x c - -static -o "$probe/a" 2>"$probe/err"; then
  echo "scripts/build-static.sh: cannot link a static C program; glibc's static library is" >&2
  echo "missing (Debian/Ubuntu: apt-get install libc6-dev). The linker said:" >&2
  sed 's/^/  /' "$probe/err" >&2
  exit 1
fi

for bin in "${BINS[@]}"; do
  (cd "$ROOT" && cargo rustc --profile dist --locked -p "$PKG" --bin "$bin" -- \
    -C target-feature=+crt-static -C relocation-model=static)
  # Copied under a temporary name and renamed: a running copy is never written over.
  cp "$TARGET/dist/$bin" "$OUT/.$bin.new"
  mv -f "$OUT/.$bin.new" "$OUT/$bin"
done
echo "built in $OUT: ${BINS[*]}" >&2
