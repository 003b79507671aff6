#!/bin/sh
# valgrind.sh — one short session under valgrind memcheck: LMTP deliver,
# then IMAP LOGIN, SELECT, FETCH, STORE, EXPUNGE, LOGOUT; SIGTERM.  Fails
# on any invalid access or definite/indirect/possible leak.
#
#   test/valgrind.sh [MAILREPD]   (default: build/valgrind/mailrepd, the
#                                  release objects linked dynamically)
# Everything runs on 127.0.0.1 and under a temporary directory; bounded in
# time (the session script has timeouts, valgrind is killed after 120 s).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind.sh: no valgrind; skipped"; exit 0; }
bin=${1:-}
if [ -z "$bin" ]; then
	make -s -C "$here" build/valgrind/mailrepd >/dev/null
	bin=$here/build/valgrind/mailrepd
fi
tmp=$(mktemp -d /tmp/mailrepd-vg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
printf 'secret-pw\n' | "$bin" user add alice --data "$tmp/data" >/dev/null
lmtp=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
imap=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
timeout 120 valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
    --log-file="$tmp/vg.log" \
    "$bin" serve --data "$tmp/data" --lmtp "127.0.0.1:$lmtp" \
    --imap "127.0.0.1:$imap" --name vg.test 2>"$tmp/serve.log" &
pid=$!
python3 - "$lmtp" "$imap" <<'PY'
import imaplib, smtplib, sys, time
lmtp, imap = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 60
while True:                       # valgrind starts slowly
    try:
        c = smtplib.LMTP("127.0.0.1", lmtp, timeout=30)
        break
    except OSError:
        assert time.monotonic() < deadline, "server never came up"
        time.sleep(0.2)
c.ehlo("client.test")
for i in range(3):
    c.sendmail("s@remote.test", ["alice@example.com"],
               b"From: <s@remote.test>\r\nSubject: vg %d\r\nMessage-ID: "
               b"<vg%d@test>\r\n\r\nbody %d\r\n.dot line\r\n" % (i, i, i))
c.quit()
m = imaplib.IMAP4("127.0.0.1", imap, timeout=30)
m.login("alice", "secret-pw")
assert m.select("INBOX")[1] == [b"3"]
assert m.fetch("1:*", "(FLAGS UID ENVELOPE BODYSTRUCTURE BODY.PEEK[])")[0] == "OK"
assert m.search(None, "SUBJECT", "vg")[1] == [b"1 2 3"]
assert m.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
assert m.expunge()[0] == "OK"
assert m.select("INBOX")[1] == [b"2"]
m.logout()
print("session ok")
PY
kill -TERM $pid
rc=0; wait $pid || rc=$?
sed -n '/HEAP SUMMARY/,$p' "$tmp/vg.log"
if [ $rc -ne 0 ] || grep -q -E "Invalid (read|write|free)|uninitialised|definitely lost: [1-9]|indirectly lost: [1-9]|possibly lost: [1-9]" "$tmp/vg.log"; then
	echo "valgrind.sh: FAILED (exit $rc)"; cat "$tmp/vg.log" | head -100; cat "$tmp/serve.log" | tail -20
	exit 1
fi
echo "valgrind.sh: no leaks, no invalid accesses"
