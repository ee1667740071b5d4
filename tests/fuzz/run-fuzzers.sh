#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Runs the libFuzzer targets of a build configured with -Dfuzzers=true:
#
#   tests/fuzz/run-fuzzers.sh BUILDDIR SECONDS [TARGET...]
#
# Each target (default: all) runs for SECONDS from the committed seeds and
# regression inputs (and the optional reference assets, found in
# COMPOSEFS_SHARED, by default ../shared beside the source tree, when they
# are there), one after the other, with new inputs kept in a scratch corpus
# under BUILDDIR/fuzz-runs/TARGET. Prints one line per target with its
# executions, coverage and outcome; a crash, leak, timeout or out-of-memory
# input is left in BUILDDIR/fuzz-runs/TARGET/ as crash-*, leak-*, timeout-*
# or oom-* and makes the script exit 1. FUZZ_JOBS=N runs N targets at once.

set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run-fuzzers.sh BUILDDIR SECONDS [TARGET...]}
secs=${2:?usage: run-fuzzers.sh BUILDDIR SECONDS [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] ||
	targets=(dump-parse image-read write-roundtrip fuse-view mount-options)
shared=${COMPOSEFS_SHARED:-$(dirname "$(dirname "$here")")/../shared}

run_one() {
	local t=$1 seeds=() dict=() maxlen extra=() s
	case $t in
	dump-parse | write-roundtrip)
		seeds=(dumps dumps-found) maxlen=65536 dict=(-dict="$here/dumpfile.dict")
		[ -n "$shared" ] && [ -d "$shared/assets/upstream" ] &&
			extra=("$shared/assets/upstream") ;;
	image-read | fuse-view)
		seeds=(images) maxlen=65536
		[ -n "$shared" ] && [ -d "$shared/golden" ] && extra=("$shared/golden") ;;
	mount-options)
		seeds=(mount-options mount-options-found) maxlen=4096
		dict=(-dict="$here/mount-options.dict") ;;
	*)
		echo "fuzz-$t: FAILED: unknown target"
		return 1 ;;
	esac
	local exe="$build/tests/fuzz/fuzz-$t" dir="$build/fuzz-runs/$t"
	if [ ! -x "$exe" ]; then
		echo "fuzz-$t: FAILED: not built (configure with CC=clang -Dfuzzers=true)"
		return 1
	fi
	mkdir -p "$dir/corpus"
	local regress=()
	[ -d "$here/regressions/$t" ] && regress=("$here/regressions/$t")
	"$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len="$maxlen" "${dict[@]}" -print_final_stats=1 \
		-artifact_prefix="$dir/" "$dir/corpus" "${seeds[@]/#/$here/corpus/}" \
		"${regress[@]}" "${extra[@]}" >"$dir/log" 2>&1
	local rc=$?
	local execs cov ft
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
	if [ $rc -eq 0 ]; then
		echo "fuzz-$t: ok: ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}"
		return 0
	fi
	echo "fuzz-$t: FAILED (exit $rc) after ${execs:-?} executions; see $dir/log:"
	grep -E 'ERROR|invariant|SUMMARY|Test unit written' "$dir/log" | head -5 | sed 's/^/  /'
	return 1
}

status=0
jobs=${FUZZ_JOBS:-1}
if [ "$jobs" -le 1 ]; then
	for t in "${targets[@]}"; do
		run_one "$t" || status=1
	done
else
	pids=()
	for t in "${targets[@]}"; do
		run_one "$t" &
		pids+=($!)
		if [ ${#pids[@]} -ge "$jobs" ]; then
			wait "${pids[0]}" || status=1
			pids=("${pids[@]:1}")
		fi
	done
	for p in "${pids[@]}"; do
		wait "$p" || status=1
	done
fi
exit $status
