#!/usr/bin/env bash
# Fails unless FILE is a statically linked ELF executable: `file` must say "statically linked"
# (or "static-pie linked") and `ldd` must list no shared library. The package's handler must be
# static: the Flex Consumption image's glibc is not ours to choose.
#
#   scripts/check-static.sh FILE
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 1 ] || die "usage: scripts/check-static.sh FILE"
binary=$1
[ -f "$binary" ] || die "$binary not found"
description=$(file -b "$binary")
case "$description" in
  ELF*"statically linked"* | ELF*"static-pie linked"*) ;;
  *) die "$binary is not a static executable: $description" ;;
esac
# ldd exits non-zero for a static file and says so; any "=>" line is a shared library.
libraries=$(ldd "$binary" 2>&1 || true)
if grep -q "=>" <<<"$libraries"; then
  die "$binary links shared libraries: $libraries"
fi
say "$binary is static ($description)"
