#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Builds composefs in a Debian 11 (bullseye) chroot, with warnings as
# errors, and runs the tests that need no mounts there: the oldest system
# we build for (glibc 2.31, Linux 5.10 headers, OpenSSL 1.1, libfuse 3.10,
# meson 0.56). Run as root from the top of a clone:
#
#     .ci/bullseye.sh [BUILD_LOG_DIR]
#
# The chroot is made once with debootstrap and kept outside the clone, in
# $COMPOSEFS_CI_CACHE/bullseye (default /var/cache/composefs-ci); later runs
# reuse it and only install packages added to BULLSEYE_PACKAGES since. The
# sources are copied in fresh each run (git ls-files plus untracked files
# not ignored). The chroot's /proc and /dev are mounted in a private mount
# namespace, so nothing stays mounted when the script ends.
# Copies the test log to BUILD_LOG_DIR/meson-logs/testlog.json when given.

set -eu
cd "$(dirname "$0")/.."

# Packages the build and the tests need in the chroot. Add here what the
# project's build starts to need (keep in step with PACKAGES in .ci/run);
# an existing chroot gets the missing ones on the next run.
BULLSEYE_PACKAGES=(
	gcc g++ libc6-dev meson ninja-build pkg-config python3 gzip
	libssl-dev libfsverity-dev fsverity libfuse3-dev libxxhash-dev libcap-dev
	libarchive-dev libjson-c-dev libcurl4-openssl-dev zlib1g-dev libzstd-dev
	umoci zstd
)
# Suites left out: those that mount (mount, kernel, fuse), the long seeded
# mutation and random runs (the same code paths run in the main builds) and
# the subproject build.
SKIP_SUITES=(mount kernel fuse mutate random subproject)
MIRROR=${COMPOSEFS_BULLSEYE_MIRROR:-http://deb.debian.org/debian}

cache=${COMPOSEFS_CI_CACHE:-/var/cache/composefs-ci}
root=$cache/bullseye
logdir=${1:-}

log() { printf '=== bullseye: %s\n' "$*"; }

mkdir -p "$cache"
if [ ! -x "$root/usr/bin/apt-get" ]; then
	log "creating the chroot in $root (debootstrap, once)"
	rm -rf "$root.tmp"
	debootstrap --variant=minbase bullseye "$root.tmp" "$MIRROR" \
		>"$cache/debootstrap.log" 2>&1 || {
		tail -20 "$cache/debootstrap.log"; exit 1; }
	rm -f "$root.tmp/etc/apt/apt.conf.d/"*docker* 2>/dev/null || true
	rm -rf "$root"
	mv "$root.tmp" "$root"
fi

in_chroot() {
	unshare --mount --propagation private -- bash -c '
		set -e
		root=$1; shift
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"' \
		in_chroot "$root" "$@"
}

stamp="$root/var/lib/composefs-ci-packages"
want="${BULLSEYE_PACKAGES[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
	log "installing packages"
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	in_chroot apt-get update -qq
	in_chroot apt-get install -y -qq --no-install-recommends "${BULLSEYE_PACKAGES[@]}" \
		>/dev/null
	echo "$want" >"$stamp"
fi

log "copying the sources"
rm -rf "$root/build"
mkdir -p "$root/build/composefs"
{ git ls-files; git ls-files --others --exclude-standard; } |
	grep -v -e '^build' | tar -T - -cf - | tar -C "$root/build/composefs" -xf -

no_suites=()
for s in "${SKIP_SUITES[@]}"; do
	no_suites+=(--no-suite "$s")
done
log "building and testing ($(in_chroot meson --version) meson)"
rc=0
in_chroot bash -c 'cd /build/composefs &&
	meson setup build -Dwerror=true >setup.log 2>&1 || { cat setup.log; exit 1; }
	ninja -C build &&
	meson test -C build --print-errorlogs --num-processes 2 "$@"' \
	bash "${no_suites[@]}" </dev/null || rc=$?
if [ -n "$logdir" ]; then
	mkdir -p "$logdir/meson-logs"
	cp "$root/build/composefs/build/meson-logs/testlog.json" "$logdir/meson-logs/" \
		2>/dev/null || rm -f "$logdir/meson-logs/testlog.json"
fi
exit $rc
