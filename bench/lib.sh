# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Sourced by the benchmark scripts.

# bench_builddir SRCDIR [BUILDDIR]: prints the absolute path of BUILDDIR,
# or, without it, sets up (once) and builds a release build in
# SRCDIR/build-bench and prints that.
bench_builddir() {
	local srcdir=$1 builddir=${2:-}

	if [ -z "$builddir" ]; then
		builddir=$srcdir/build-bench
		if [ ! -d "$builddir" ]; then
			meson setup "$builddir" "$srcdir" --buildtype=release >/dev/null
		fi
		ninja -C "$builddir" >/dev/null
	fi
	(cd "$builddir" && pwd)
}
