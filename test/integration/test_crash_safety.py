"""Crash safety: SIGKILL at random moments while several LMTP sessions
deliver.  After each restart every recipient that got 250 holds its
message exactly once, at the UID the 250 named; nothing that was never
sent is stored; `mailrepd check` passes; UIDs only grow across crashes.
With a replica attached the replica never holds a message the master
has not committed, and ends up with exactly the master's messages.

Seeded by the rng fixture (MAILREPD_SEED repeats a run); the kill
moments, message sizes and recipient sets all come from it.
"""
import json
import random
import threading
import time

from conftest import (DOMAIN, HOST, LMTPClient, LMTPError, check_store,
                      dot_stuff, free_port, make_message, run_ok)

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
USER_OF = {ALICE: "alice", BOB: "bob"}
ROUNDS = 4
THREADS = 4
ROUND_SECONDS = 20.0           # bound on one round's wait for acks


class Deliverer(threading.Thread):
    """Delivers over one LMTP session until the connection breaks.

    `attempted`: markers whose final dot was sent.  `acked`: a list of
    (recipient, marker, uid) for every 250 received, uid from the reply.
    Bounded: at most `limit` messages, and socket timeouts on every read.
    """

    def __init__(self, port, tag, seed, limit=2000):
        super().__init__(daemon=True)
        self.port, self.tag, self.limit = port, tag, limit
        self.rng = random.Random(seed)
        self.attempted = set()
        self.acked = []
        self.error = None

    def run(self):
        try:
            c = LMTPClient(self.port, timeout=15)
            c.lhlo()
        except (OSError, LMTPError):
            return
        try:
            for n in range(1, self.limit + 1):
                marker = "crash-%s-%d" % (self.tag, n)
                rcpts = [ALICE, BOB] if self.rng.random() < 0.3 else \
                    [self.rng.choice((ALICE, BOB))]
                body = make_message(marker, self.rng.randint(300, 8000),
                                    self.rng, dots=n % 2 == 0)
                c.send("MAIL FROM:<c@remote.test>\r\n"
                       + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)
                       + "DATA\r\n")
                c.expect("250 2.1.0")
                for r in rcpts:
                    c.expect("250 2.1.5")
                c.expect("354 ")
                self.attempted.add(marker)
                c.send(dot_stuff(body))
                for r in rcpts:
                    reply = c.expect("")
                    want = "250 2.0.0 <%s> Saved in INBOX as UID " % r
                    if not reply.startswith(want):
                        self.error = "unexpected reply %r" % reply
                        return
                    self.acked.append((r, marker,
                                       int(reply[len(want):].split()[0])))
        except (OSError, LMTPError):
            return                     # the server was killed
        except AssertionError as e:
            self.error = str(e)
        finally:
            c.close()


def stored_messages(data):
    """{(user, marker): [uid, ...]} from `mailrepd messages --json`, INBOX
    only, and the (user, marker) pairs of messages with no crash marker."""
    p = run_ok("messages", "--json", "--data", data)
    out, strangers = {}, []
    for m in json.loads(p.stdout):
        assert m["mailbox"] == "INBOX", m
        mid = m.get("message_id") or ""
        marker = mid.strip("<>").split("@")[0]
        if not marker.startswith("crash-"):
            strangers.append((m["user"], mid))
            continue
        out.setdefault((m["user"], marker), []).append(m["uid"])
    return out, strangers


def run_round(port, rng, rnd, min_acks=3):
    """Starts THREADS deliverers; returns them once min_acks 250s came."""
    threads = [Deliverer(port, "r%dt%d" % (rnd, t), rng.random())
               for t in range(THREADS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + ROUND_SECONDS
    while sum(len(t.acked) for t in threads) < min_acks:
        assert time.monotonic() < deadline, "no delivery acknowledged"
        assert all(t.error is None for t in threads), \
            [t.error for t in threads]
        time.sleep(0.01)
    return threads


def join_all(threads):
    for t in threads:
        t.join(20)
        assert not t.is_alive(), "client thread hung"
        assert t.error is None, t.error


def verify(data, acked, attempted, max_uid_before):
    """Checks the store against what was acknowledged; returns the new
    highest UID per user."""
    got, strangers = stored_messages(data)
    assert strangers == [], strangers
    for (user, marker), uids in got.items():
        assert marker in attempted, "%s stored but never sent" % marker
        assert len(uids) == 1, "%s stored %d times for %s: %s" % (
            marker, len(uids), user, uids)
    for rcpt, marker, uid in acked:
        user = USER_OF[rcpt]
        assert (user, marker) in got, \
            "%s got 250 for %s (UID %d) but is not stored" % (rcpt, marker,
                                                              uid)
        assert got[(user, marker)] == [uid], (marker, got[(user, marker)],
                                             uid)
    top = dict(max_uid_before)
    for (user, _), uids in got.items():
        top[user] = max(top.get(user, 0), max(uids))
    for user, before in max_uid_before.items():
        assert top.get(user, 0) >= before, "UIDs went back for %s" % user
    return top


def test_sigkill_during_continuous_delivery(server, rng):
    s = server()
    acked, attempted = [], set()
    top = {"alice": 0, "bob": 0}
    t0 = time.monotonic()
    for rnd in range(ROUNDS):
        threads = run_round(s.port, rng, rnd)
        time.sleep(rng.uniform(0.0, 0.8))
        s.kill9()
        join_all(threads)
        new = [a for t in threads for a in t.acked]
        for rcpt, marker, uid in new:
            # UIDs only grow: nothing handed out after a crash reuses or
            # undercuts a UID stored before it.
            assert uid > top[USER_OF[rcpt]], (
                "round %d: UID %d for %s not above %d, the highest before "
                "the crash" % (rnd, uid, rcpt, top[USER_OF[rcpt]]))
        acked += new
        for t in threads:
            attempted |= t.attempted
        check_store(s.data)                 # on the crashed store
        top = verify(s.data, acked, attempted, top)
        s.start()
    s.stop()
    check_store(s.data)
    verify(s.data, acked, attempted, top)
    print("crash safety: %d kill rounds, %d deliveries acknowledged and "
          "checked, %d attempted, highest UIDs %s, %.1f s" % (
              ROUNDS, len(acked), len(attempted), top,
              time.monotonic() - t0))


# --- with a replica ---------------------------------------------------------

SECRET = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"


def replica_ids(data):
    """Set of (user, marker, uid, guid) in a store (read-only)."""
    p = run_ok("messages", "--json", "--data", data)
    return {(m["user"], (m.get("message_id") or "").strip("<>"), m["uid"],
             m["guid"]) for m in json.loads(p.stdout)}


def test_sigkill_master_with_replica_attached(server, rng, tmp_path):
    secret = tmp_path / "repl.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    rport = free_port()
    master = server(args=["--repl-listen", "%s:%d" % (HOST, rport),
                          "--repl-secret-file", secret])
    rep = server(users=(), args=[
        "--replicate-from", "%s:%d" % (HOST, rport),
        "--repl-secret-file", secret, "--name", "replica0"])
    acked, attempted = [], set()
    top = {"alice": 0, "bob": 0}
    samples = 0
    for rnd in range(2):
        threads = run_round(master.port, rng, rnd)
        end = time.monotonic() + rng.uniform(0.2, 1.0)
        while time.monotonic() < end:
            # Replica first, master second: the master only grows, so
            # whatever the replica holds the master must hold already.
            r = replica_ids(rep.data)
            m = replica_ids(master.data)
            ahead = r - m
            assert not ahead, "replica ahead of the master: %s" % \
                sorted(ahead)[:5]
            samples += 1
        master.kill9()
        join_all(threads)
        acked += [a for t in threads for a in t.acked]
        for t in threads:
            attempted |= t.attempted
        r = replica_ids(rep.data)
        m = replica_ids(master.data)
        assert not (r - m), "replica holds what the crashed master lost: " \
            "%s" % sorted(r - m)[:5]
        check_store(master.data)
        top = verify(master.data, acked, attempted, top)
        master.start()
    # The replica reconnects to the restarted master and catches up.
    deadline = time.monotonic() + 30
    while replica_ids(rep.data) != replica_ids(master.data):
        assert time.monotonic() < deadline, "replica never caught up; " \
            "log:\n%s" % rep.log_text()[-3000:]
        time.sleep(0.1)
    verify(rep.data, acked, attempted, {})
    master.stop()
    rep.stop()
    check_store(master.data)
    check_store(rep.data)
    print("replica: 2 master kills, %d deliveries checked on both nodes, "
          "%d replica-not-ahead samples" % (len(acked), samples))
