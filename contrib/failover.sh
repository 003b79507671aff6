#!/bin/sh
# Soft failover of a master/replica pair whose data directories are on
# this host (run it on each end over ssh otherwise, step by step).
#
#   contrib/failover.sh OLD_MASTER_DATA NEW_MASTER_DATA NEW_MASTER_REPL \
#       [the old master's usual serve options, without --data]
#
# 1. drain the old master (SIGQUIT, `mailrepd drain`) and require status
#    0: every replica has everything; stop with its status (3: one is
#    behind, the log names it) and leave the replica unpromoted;
# 2. promote the replica (`mailrepd promote`), which then accepts writes;
# 3. record in the old master's store that it is a replica of the new one
#    (`mailrepd demote --replicate-from NEW_MASTER_REPL`, HOST:PORT of the
#    new master's --repl-listen) and start it again with its usual
#    options: it follows the new master, which reconciles it first.
#    It keeps following across restarts until `mailrepd promote`.
# MAILREPD names the binary (default: mailrepd in PATH).  The old master
# logs to OLD_MASTER_DATA/serve.log.
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
"$MAILREPD" demote --data "$old" --replicate-from "$repl"
nohup "$MAILREPD" serve --data "$old" "$@" >>"$old/serve.log" 2>&1 &
echo "failover: $new is the master; $old follows $repl (pid $!)"
