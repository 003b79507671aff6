#!/bin/sh
# Soft failover of a master/replica pair on one host or over ssh.
#
#   contrib/failover.sh OLD_MASTER_DATA NEW_MASTER_DATA NEW_MASTER_REPL \
#       [extra serve options for the old master, as a replica]
#
# 1. drain the old master (SIGQUIT) and require status 0: every replica
#    has everything; stop with status 3 when one is behind (the log names
#    it), leaving the replica unpromoted;
# 2. promote the replica (`mailrepd promote`), which then accepts writes;
# 3. start the old master as a replica of the new one (--replicate-from
#    NEW_MASTER_REPL, HOST:PORT of the new master's --repl-listen).
# MAILREPD names the binary (default: mailrepd in PATH).
set -eu
MAILREPD=${MAILREPD:-mailrepd}
[ $# -ge 3 ] || { echo "usage: $0 OLD_DATA NEW_DATA NEW_REPL_HOST:PORT" \
    "[serve options...]" >&2; exit 2; }
old=$1 new=$2 repl=$3
shift 3

set +e
"$MAILREPD" drain --data "$old"
st=$?
set -e
if [ "$st" -ne 0 ]; then
	echo "failover: old master exited $st, not 0: not promoting" >&2
	exit "$st"
fi
"$MAILREPD" promote --data "$new"
nohup "$MAILREPD" serve --data "$old" --replicate-from "$repl" "$@" \
    >>"$old/serve.log" 2>&1 &
echo "failover: $new is the master; $old follows $repl (pid $!)"
