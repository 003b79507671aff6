"""A drain cut short before it began is no drain that succeeded.

A SIGQUIT and a SIGTERM that reach the server at the same time, before
its loop has started the drain, stop it without flushing anything to
its replicas: its exit status, and what `mailrepd drain` reports from
DATA/mailrepd.exit, must be 5 (cut short), never 0 ("every replica has
everything").  The server is stopped (SIGSTOP) while the signals are
sent, so that they arrive together, as they can from an operator and an
init system.
"""
import os
import signal

from test_drain import wait_exit, with_a_replica_behind
from test_replication import cluster, secret  # noqa: F401


def test_sigquit_and_sigterm_together_exit_5(cluster):
    master = with_a_replica_behind(cluster)
    pid = master.proc.pid
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGQUIT)
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)
    assert wait_exit(master) == 5
    with open(os.path.join(master.data, "mailrepd.exit")) as f:
        assert f.read().strip() == "5"
