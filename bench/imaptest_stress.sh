#!/bin/bash
# bench/imaptest_stress.sh — imaptest's stress mode against a fresh
# mailrepd and a throw-away Dovecot (bench/dovecot.sh), one after the
# other, and the commands per second of each (a figure, never pass/fail).
#
# usage: bench/imaptest_stress.sh IMAPTEST [SECS] [CLIENTS...]
#
#   IMAPTEST  the imaptest binary (not packaged: README "IMAP compliance")
#   SECS      seconds per run (default 30)
#   CLIENTS   client counts, one run each (default: 10 50)
#
# Every run is `imaptest mbox=default.mbox clients=N secs=SECS` on one
# user's INBOX, imaptest's default command mix (LOGIN, LIST, STATUS,
# SELECT, FETCH, STORE, EXPUNGE, APPEND, LOGOUT; each client logs out
# and back in all the time).  Commands per second are the sum of its
# "Totals" line over SECS.  `Error:` lines are counted and the first
# ones printed: imaptest prints one for each protocol violation it sees.
# mailrepd is ../mailrepd (or $MAILREPD); Dovecot keeps its passwords in
# the clear (bench/dovecot.sh) while mailrepd checks PBKDF2 hashes (with
# its login cache).
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${MAILREPD:-$top/mailrepd}"
imaptest="${1:?usage: bench/imaptest_stress.sh IMAPTEST [SECS] [CLIENTS...]}"
secs="${2:-30}"
shift $(($# >= 2 ? 2 : 1))
clients="${*:-10 50}"
mbox="$(dirname "$imaptest")/tests/default.mbox"
password="bench-pass"

tmp=$(mktemp -d)
chmod 0755 "$tmp"	# Dovecot's mail user must reach its maildirs
pid=
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null;
    "$top/bench/dovecot.sh" stop "$tmp/dovecot" >/dev/null 2>&1;
    rm -rf "$tmp"' EXIT

# free_port: a loopback port that nothing listens on right now
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# stress NAME PORT USER N: one imaptest run; prints its result line
stress() {
	local name=$1 port=$2 user=$3 n=$4 out total errors
	out=$(LD_LIBRARY_PATH=/usr/lib/dovecot timeout $((secs + 60)) \
	    "$imaptest" host=127.0.0.1 port="$port" user="$user" \
	    pass="$password" mbox="$mbox" clients="$n" secs="$secs" 2>&1)
	total=$(awk '/^Totals:/ { t = NR } t && NR == t + 4 {
	    for (i = 1; i <= NF; i++) s += $i; print s }' <<<"$out")
	errors=$(grep -c '^Error:' <<<"$out")
	printf '%-9s clients=%-3d commands=%-6s cmds/s=%-7s errors=%s\n' \
	    "$name" "$n" "${total:-?}" \
	    "$(awk -v t="${total:-0}" -v s="$secs" \
	    'BEGIN { printf "%.1f", t / s }')" "$errors"
	grep '^Error:' <<<"$out" | sort | uniq -c | sort -rn | head -5
}

printf '%s\n' "$password" | "$bin" user add alice --data "$tmp/data" \
    >/dev/null 2>&1 || exit 2
port=$(free_port)
"$bin" serve --data "$tmp/data" --lmtp "127.0.0.1:$(free_port)" \
    --imap "127.0.0.1:$port" --name stress.test --log-level warn \
    >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.2
done
for n in $clients; do
	stress mailrepd "$port" alice "$n"
done
kill "$pid"
wait "$pid"
pid=

BENCH_USERS=1 BENCH_PASSWORD=$password "$top/bench/dovecot.sh" \
    start "$tmp/dovecot" >"$tmp/dovecot.ports" || exit 2
dport=$(sed -n 's/.*imap_port=\([0-9]*\).*/\1/p' "$tmp/dovecot.ports")
for n in $clients; do
	stress dovecot "$dport" user1 "$n"
done
