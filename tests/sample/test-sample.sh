#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Build composefs, turn the bundled sample tree (sample.dump) into an
# image, mount it with mount.composefs, fill an object store from it with
# mkcomposefs --digest-store, mount the new image over that store, list
# it, read files through it, and unmount.
#
#   tests/sample/test-sample.sh [--tools DIR]
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
	ninja -C build tools/mkcomposefs tools/composefs-info tools/mount.composefs
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

step "mount.composefs -o basedir=objects sample.cfs mnt"
# tests/sample/objects holds the one object sample.dump refers to.
mkdir "$mnt"
"$tools/mount.composefs" -o basedir="$here/objects" "$work/sample.cfs" "$mnt"
mounted=1

step "mkcomposefs --digest-store=store mnt tree.cfs"
# Scan the mounted tree: files over 64 bytes are copied into the new object
# store under their fs-verity digest, smaller ones go into the image.
"$tools/mkcomposefs" --print-digest --digest-store="$work/store" "$mnt" \
	"$work/tree.cfs"
(cd "$work" && find store -type f)
umount "$mnt"
mounted=

step "mount.composefs -o basedir=store tree.cfs mnt"
"$tools/mount.composefs" -o basedir="$work/store" "$work/tree.cfs" "$mnt"
mounted=1
grep " $mnt " /proc/self/mountinfo | cut -d' ' -f5,9-

step "ls -lR mnt"
ls -lR "$mnt"

step "cat mnt/etc/motd mnt/data/notes.txt"
cat "$mnt/etc/motd"
# notes.txt is read from its object in the store, through overlayfs.
cat "$mnt/data/notes.txt"

step "umount mnt"
umount "$mnt"
mounted=
echo "done"
