#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
# test-subproject.sh SRC_DIR: configures tests/subproject/consumer with this
# source tree as its subprojects/composefs, builds the consumer programs
# (the library is built as part of it) and runs them.
set -eu
src=$(cd "$1" && pwd)
tmp=$(mktemp -d /tmp/cfs-subproject-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/tests/subproject/consumer" "$tmp/consumer"
mkdir "$tmp/consumer/subprojects"
ln -s "$src" "$tmp/consumer/subprojects/composefs"
# The environment's sanitizer settings do not apply to this plain build.
unset ASAN_OPTIONS UBSAN_OPTIONS
meson setup "$tmp/build" "$tmp/consumer" >"$tmp/setup.log" 2>&1 || {
	cat "$tmp/setup.log"; exit 1; }
ninja -C "$tmp/build" consumer consumer-variable >"$tmp/build.log" 2>&1 || {
	cat "$tmp/build.log"; exit 1; }
"$tmp/build/consumer"
"$tmp/build/consumer-variable"
echo "ok: composefs as a subproject, through composefs_dep and dependency('composefs')"
