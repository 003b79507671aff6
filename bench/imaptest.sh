#!/bin/bash
# bench/imaptest.sh — run Dovecot's imaptest scripted suite against a fresh
# mailrepd and print one line per test group and the counts (what
# `make imaptest IMAPTEST=path` runs).
#
# usage: bench/imaptest.sh IMAPTEST [TESTS_DIR]
#
#   IMAPTEST   the imaptest binary (not packaged: build it from its public
#              repository, see README "IMAP compliance")
#   TESTS_DIR  its scripted tests (default: the tests/ beside the binary)
#
# mailrepd is ../mailrepd (or $MAILREPD).  Each group runs by itself so that
# a group is counted as run only when it sent commands: imaptest's own
# summary counts a group that it skipped for a missing capability as run.
# A group is PASS, FAIL (imaptest reports a failed command or an Error:
# line) or SKIP (nothing sent).  Exits 1 when a group fails.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${MAILREPD:-$top/mailrepd}"
imaptest="${1:?usage: bench/imaptest.sh IMAPTEST [TESTS_DIR]}"
tests="${2:-$(dirname "$imaptest")/tests}"
password="imaptest"

tmp=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# free_port: a loopback port that nothing listens on right now
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

for u in alice bob; do
	printf '%s\n' "$password" | "$bin" user add "$u" --data "$tmp/data" \
	    >/dev/null 2>&1 || exit 2
done
port=$(free_port)
"$bin" serve --data "$tmp/data" --lmtp "127.0.0.1:$(free_port)" \
    --imap "127.0.0.1:$port" --name imaptest.test >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
	grep -qs serve.ready "$tmp/serve.log" && break
	sleep 0.2
done

run=0 passed=0 failed=0 skipped=0
for t in "$tests"/*; do
	case "$t" in *.mbox) continue ;; esac
	[ -f "$t" ] || continue
	name=$(basename "$t")
	out=$(LD_LIBRARY_PATH=/usr/lib/dovecot timeout 120 "$imaptest" \
	    host=127.0.0.1 port="$port" user=alice user2=bob \
	    pass="$password" test="$t" 2>&1)
	if ! grep -q "individual commands failed" <<<"$out"; then
		result=FAIL		# no summary: imaptest gave up
	elif grep -q "^Error:\|^\*\*\* Test" <<<"$out" ||
	    ! grep -q "0 failed" <<<"$out"; then
		result=FAIL
	elif grep -q "^base protocol: 0/0" <<<"$out" &&
	    grep -q "^extensions: 0/0" <<<"$out"; then
		result=SKIP
	else
		result=PASS
	fi
	case $result in
	PASS) run=$((run + 1)); passed=$((passed + 1)) ;;
	FAIL) run=$((run + 1)); failed=$((failed + 1))
	      [ -n "${IMAPTEST_VERBOSE:-}" ] && printf '%s\n' "$out" ;;
	SKIP) skipped=$((skipped + 1)) ;;
	esac
	printf '%-4s %s\n' "$result" "$name"
done
echo "imaptest: $run groups run, $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
