#!/bin/sh
# bench/cross.sh — figures per architecture: stripped size, idle RSS,
# LMTP messages per second and the server's CPU time per message, for
# ./mailrepd and the ARM binaries of `make cross` under qemu-user-static.
# Figures, never pass/fail.  Messages per second are bound by fsync (one
# per group commit) and so by the disk and the machine's load; the CPU
# time per message shows what emulation costs.
#
# usage: bench/cross.sh [MESSAGES]     (default 1000, 4 KiB each, 4
#                                       connections)
# Needs `make mailrepd`, `make cross ARCH=arm64`, `make cross ARCH=armhf`
# and `make -C bench`.  Under emulation the RSS is qemu's process: the
# guest's memory plus qemu's own (its translated-code cache above all).
set -eu

messages=${1:-1000}
tmp=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT

# CPU time (user + system) of process $1 so far, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# A free port on 127.0.0.1.
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

printf '| binary | stripped size | idle RSS | LMTP msg/s | server CPU per message |\n'
printf '| --- | --- | --- | --- | --- |\n'
for arch in amd64 arm64 armhf; do
	case $arch in
	amd64) run=""; bin=./mailrepd; strip -R .comment -o "$tmp/stripped" "$bin" ;;
	arm64) run=qemu-aarch64-static; bin=build/arm64/mailrepd
		cp build/arm64/mailrepd.stripped "$tmp/stripped" ;;
	armhf) run=qemu-arm-static; bin=build/armhf/mailrepd
		cp build/armhf/mailrepd.stripped "$tmp/stripped" ;;
	esac
	size=$(stat -c %s "$tmp/stripped")
	port=$(free_port)
	rm -rf "$tmp/data"
	$run "$bin" serve --data "$tmp/data" --lmtp "127.0.0.1:$port" \
	    --catch-all yes --name bench.test 2>"$tmp/log" &
	pid=$!
	i=0
	until bench/lmtp_load --port "$port" --messages 1 >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/log"; exit 1; }
		sleep 0.1
	done
	sleep 2
	rss=$(ps -o rss= -p "$pid" | tr -d ' ')
	cpu=$(cpu_ticks "$pid")
	rate=$(bench/lmtp_load --port "$port" --messages "$messages" \
	    --connections 4 --users 10 --json 2>/dev/null |
	    /usr/bin/python3 -c 'import json, sys; print("%.0f" % json.load(sys.stdin)["messages_per_s"])')
	cpu=$(( $(cpu_ticks "$pid") - cpu ))
	kill -TERM "$pid"; wait "$pid" || true; pid=
	printf '| %s%s | %.2f MiB | %.1f MiB | %s | %.0f us |\n' "$arch" \
	    "${run:+ (under $run)}" "$(echo "$size / 1048576" | bc -l)" \
	    "$(echo "$rss / 1024" | bc -l)" "$rate" \
	    "$(echo "$cpu * 1000000 / $(getconf CLK_TCK) / $messages" | bc -l)"
done
