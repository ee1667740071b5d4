#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Build composefs, turn the bundled sample tree (sample.dump) into an
# image, mount it with the kernel, list it, read a file, and unmount.
#
#   tests/sample/run-sample.sh [--tools DIR]
#
# Without --tools the script installs the build dependencies when they are
# missing (Debian, as root), builds into ./build and uses the tools from
# there. With --tools DIR it uses already built tools and builds nothing.
# Mounting needs root; otherwise the image is only inspected.

set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
tools=
if [ "${1:-}" = "--tools" ] && [ -n "${2:-}" ]; then
	tools=$2
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--tools DIR]" >&2
	exit 2
fi

step() { printf '\n== %s\n' "$*"; }

if [ -z "$tools" ]; then
	need=()
	for p in meson ninja cc pkg-config python3 fsck.erofs; do
		command -v "$p" >/dev/null || need+=("$p")
	done
	for h in openssl/sha.h libfsverity.h xxhash.h; do
		[ -e "/usr/include/$h" ] || need+=("$h")
	done
	if [ ${#need[@]} -gt 0 ]; then
		step "missing: ${need[*]}; installing build dependencies"
		if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
			echo "run as root on Debian, or install: meson ninja-build gcc" \
			     "pkg-config libssl-dev libfsverity-dev libxxhash-dev" \
			     "erofs-utils python3" >&2
			exit 1
		fi
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq </dev/null
		apt-get install -y -qq --no-install-recommends meson ninja-build gcc \
			pkg-config libssl-dev libfsverity-dev libxxhash-dev \
			libcap-dev libfuse3-dev erofs-utils python3 util-linux \
			</dev/null >/dev/null
	fi
	step "building into $top/build"
	cd "$top"
	[ -d build/meson-private ] || meson setup build >/dev/null
	ninja -C build tools/mkcomposefs tools/composefs-info
	tools=$top/build/tools
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/composefs-sample.XXXXXX")
mnt=$work/mnt
mounted=
cleanup() {
	if [ -n "$mounted" ]; then
		umount "$mnt" || umount -l "$mnt"
	fi
	rm -rf "$work"
}
trap cleanup EXIT

step "mkcomposefs --from-file sample.dump sample.cfs"
"$tools/mkcomposefs" --print-digest --from-file "$here/sample.dump" \
	"$work/sample.cfs"
ls -l "$work/sample.cfs"

step "composefs-info ls sample.cfs"
"$tools/composefs-info" ls "$work/sample.cfs"

step "composefs-info objects sample.cfs (files kept outside the image)"
"$tools/composefs-info" objects "$work/sample.cfs"

if [ "$(id -u)" != 0 ]; then
	step "not root: skipping the kernel mount"
	exit 0
fi

step "mount -t erofs -o ro sample.cfs mnt"
mkdir "$mnt"
if ! mount -t erofs -o ro "$work/sample.cfs" "$mnt" 2>/dev/null; then
	mount -t erofs -o ro,loop "$work/sample.cfs" "$mnt"
fi
mounted=1

step "ls -lR mnt"
# composefs adds 256 overlay whiteouts (character devices 0:0 named 00..ff)
# to the root; hide them here to keep the listing short.
ls -lR "$mnt" | awk '
	$1 ~ /^c/ && $5 == "0," && $6 == "0" && $NF ~ /^[0-9a-f][0-9a-f]$/ \
		{ hidden++; next }
	{ print }
	END { if (hidden) printf "(%d whiteout entries 00..ff not shown)\n", hidden }'

step "cat mnt/etc/motd"
cat "$mnt/etc/motd"

step "umount mnt"
umount "$mnt"
mounted=
echo "done"
