"""A randomized split-brain (issue 7): many rounds of a forced split with
random deliveries, flag changes and expunges on both sides, each ended by
the old master's rejoin: either a hard failover (the master dies, the
replica is promoted, the old master comes back as its replica) or a
split brain proper (the replica is promoted while the master still
takes mail, and then the master is demoted).

Invariant after every rejoin: both stores are identical, and every
message either side acknowledged is there exactly once, unless a client
expunged it.  Throughout, an IMAP observer on both nodes checks that no
UID ever names two messages.  Seeded and repeatable: SPLIT_SEED picks
the seed (printed on failure), SPLIT_ROUNDS the number of rounds (`make
split-brain` runs many; `make check` a few).
"""
import os
import random
import time

import pytest

from conftest import DOMAIN, HOST, run, run_ok
from test_hard_failover import converged, pair
from test_reconcile import inbox_subjects, wait_for_log
from test_replication import lmtp_one, message, secret, wait_same
from test_uid_reuse import Observer, strip_replicate_from

__all__ = ["secret"]

ROUNDS = int(os.environ.get("SPLIT_ROUNDS", "3"))
SEED = int(os.environ.get("SPLIT_SEED", "20261202"))


class World:
    """What the clients were told: every acknowledged delivery, and every
    message a client expunged."""

    def __init__(self, rng):
        self.rng = rng
        self.delivered = set()
        self.expunged = set()
        self.n = 0

    def deliver(self, node, k):
        for _ in range(k):
            self.n += 1
            tag = "m%04d" % self.n
            if lmtp_one(node.port, "alice@" + DOMAIN,
                        message(tag))[0].startswith("250"):
                self.delivered.add(tag)

    def meddle(self, node):
        """Random flag changes and expunges on node's INBOX."""
        have = inbox_subjects(node)
        if not have:
            return
        c = node.imap("alice")
        c.select("INBOX")
        for uid, _ in self.rng.sample(have, min(len(have), 3)):
            flag = self.rng.choice(["\\Seen", "\\Flagged", "$Work"])
            op = self.rng.choice(["+FLAGS", "-FLAGS"])
            assert c.uid("STORE", str(uid), op, "(%s)" % flag)[0] == "OK"
        gone = self.rng.sample(have, min(len(have),
                                         self.rng.randint(0, 2)))
        for uid, tag in gone:
            assert c.uid("STORE", str(uid), "+FLAGS",
                          "(\\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
        c.logout()
        self.expunged.update(tag for _, tag in gone)

    def expunge_newest(self, node):
        """A client expunges the newest message: on an old master, a UID
        the other side may have given to another message meanwhile."""
        have = inbox_subjects(node)
        if not have:
            return
        uid, tag = have[-1]
        c = node.imap("alice")
        c.select("INBOX")
        assert c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
        c.logout()
        self.expunged.add(tag)

    def check(self, a, b):
        converged(a, b)
        got = inbox_subjects(b)
        assert got == inbox_subjects(a)
        tags = [t for _, t in got]
        assert len(tags) == len(set(tags)), "a message twice: %r" % got
        assert set(tags) <= self.delivered, set(tags) - self.delivered
        lost = self.delivered - self.expunged - set(tags)
        assert not lost, "lost: %r" % sorted(lost)
        uids = [u for u, _ in got]
        assert uids == sorted(uids)


def hard_failover(world, master, rep):
    """The replica misses what the master does next; the master dies;
    the replica is promoted and takes mail; the old master rejoins."""
    rep.stop()
    world.deliver(master, world.rng.randint(0, 4))
    world.meddle(master)
    master.kill9()
    rep.start()
    p = run("promote", "--data", rep.data)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for_log(rep, "sync.promote")
    world.deliver(rep, world.rng.randint(0, 4))
    world.meddle(rep)
    master.args = strip_replicate_from(master.args) + [
        "--replicate-from", "%s:%d" % (HOST, rep.repl_port)]
    master.start()


def split_brain(world, master, rep):
    """The replica is promoted while the master still takes mail: both
    deliver, change flags and expunge; then the master is demoted."""
    run_ok("promote", "--data", rep.data)
    for node in world.rng.sample([master, rep], 2):
        world.deliver(node, world.rng.randint(1, 4))
        world.meddle(node)
    if world.rng.random() < 0.5:
        world.expunge_newest(master)
    run_ok("demote", "--data", master.data, "--replicate-from",
           "%s:%d" % (HOST, rep.repl_port))


def test_random_split_brain(server, secret):
    rng = random.Random(SEED)
    world = World(rng)
    master, rep = pair(server, secret)
    obs = Observer({"A": master, "B": rep})
    obs.start()
    try:
        for rnd in range(ROUNDS):
            world.deliver(master, rng.randint(1, 4))
            world.meddle(master)
            wait_same(master, rep)
            rng.choice([hard_failover, split_brain])(world, master, rep)
            world.check(master, rep)
            master, rep = rep, master
        obs.finish()
    except AssertionError as e:
        pytest.fail("split-brain round failed with SPLIT_SEED=%d "
                    "SPLIT_ROUNDS=%d: %s" % (SEED, ROUNDS, e))
    for node in (master, rep):
        check = run("check", "--data", node.data)
        assert check.returncode == 0, check.stdout + check.stderr
