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

from conftest import DOMAIN
from test_drain import wait_exit
from test_replication import (cluster, lmtp_one, message,  # noqa: F401
                              secret, wait_same)


def test_sigquit_and_sigterm_together_exit_5(cluster):
    master, (rep,) = cluster(1)
    wait_same(master, rep)
    rep.stop()
    assert lmtp_one(master.port, "alice@" + DOMAIN,
                    message("unreplicated"))[0].startswith("250")
    pid = master.proc.pid
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGQUIT)
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)
    assert wait_exit(master) == 5
    with open(os.path.join(master.data, "mailrepd.exit")) as f:
        assert f.read().strip() == "5"
