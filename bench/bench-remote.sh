#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Serving a store over HTTP. Publishes TREE (default /usr/lib/x86_64-linux-gnu,
# about 1 GB) with mkcomposefs --digest-store --store-image, serves the store
# with nginx on 127.0.0.1, then times, on a warm page cache:
#   - composefs-store fetch of the whole image into an empty store (--jobs 16)
#   - cp -a of the store directory (the local floor)
#   - a sequential loop of one curl process per object over a sample
#     (SAMPLE objects, default 300), extrapolated to the whole store
#   - composefs-fuse -o remote= over an empty store: first read of one
#     file, and find over the whole tree (which must fetch nothing)
# Wall and CPU times are printed; nothing passes or fails on time.
# Usage: bench/bench-remote.sh [BUILDDIR] [TREE]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
builddir=$(bench_builddir "$here/.." "${1:-}")
tree=${2:-/usr/lib/x86_64-linux-gnu}
sample=${SAMPLE:-300}
tools=$builddir/tools

work=$(mktemp -d /var/tmp/cfs-bench-remote.XXXXXX)
nginx_pid=
cleanup() {
	if mountpoint -q "$work/mnt" 2>/dev/null; then fusermount3 -u "$work/mnt" || true; fi
	if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# wall seconds, user+sys seconds of a command (stdout discarded)
timed() {
	local out
	out=$(/usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -1)
	set -- $out
	printf '%6.2f s wall, %6.2f s CPU' "$1" "$(echo "$2 + $3" | bc)"
}

echo "== publishing $tree"
digest=$("$tools/mkcomposefs" --digest-store="$work/store" --store-image "$tree")
n_objects=$(find "$work/store" -type f -name '??????????????????????????????????????????????????????????????' | wc -l)
bytes=$(du -sb --apparent-size "$work/store" | cut -f1)
printf 'store: %d objects, %.1f MiB (image %s)\n' "$n_objects" "$(echo "$bytes / 1048576" | bc -l)" "$digest"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server { listen 127.0.0.1:$port; root $work/store; location / { } }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
nginx_pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	sleep 0.1
done
url=http://127.0.0.1:$port

# Warm the page cache for the source store.
cat "$work"/store/*/* >/dev/null

echo "== copying the whole store (warm cache)"
printf 'cp -a                      : %s\n' "$(timed cp -a "$work/store" "$work/copy")"
rm -rf "$work/copy"
for jobs in 16 64; do
	printf 'composefs-store fetch -j%-3d: %s\n' "$jobs" \
		"$(timed "$tools/composefs-store" fetch --quiet --jobs=$jobs --from="$url" "$work/fetched" "$digest")"
	rm -rf "$work/fetched"
done

echo "== one curl per object, sequential, over $sample objects"
find "$work/store" -type f -name '??????????????????????????????????????????????????????????????' |
	head -n "$sample" | sed "s|^$work/store/||" > "$work/sample"
mkdir -p "$work/curl"
start=$(date +%s.%N)
while read -r obj; do
	curl -s -f -o "$work/curl/${obj#*/}" "$url/$obj"
done < "$work/sample"
end=$(date +%s.%N)
per=$(echo "($end - $start) / $sample" | bc -l)
printf 'curl loop                  : %.2f ms per object, %.0f s extrapolated to %d objects\n' \
	"$(echo "$per * 1000" | bc -l)" "$(echo "$per * $n_objects" | bc -l)" "$n_objects"

echo "== lazy mount over an empty store"
mkdir "$work/lazy" "$work/mnt"
cp "$work/store/${digest:0:2}/${digest:2}" "$work/image"
"$tools/composefs-fuse" -o source="$work/image",basedir="$work/lazy",remote="$url" "$work/mnt"
file=$(cd "$tree" && find . -type f -size +100k | head -1)
printf 'first read of %s (%s bytes): %s\n' "$file" "$(stat -c %s "$tree/$file")" \
	"$(timed cat "$work/mnt/$file")"
printf 'find over the tree          : %s\n' "$(timed find "$work/mnt")"
printf 'objects in the local store after find: %d\n' \
	"$(find "$work/lazy" -type f -name '??????????????????????????????????????????????????????????????' | wc -l)"
fusermount3 -u "$work/mnt"
