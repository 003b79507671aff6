"""Per-user quota (RFC 9208): --quota-storage and --quota-messages limit
what one user keeps in all their mailboxes together.  GETQUOTAROOT and
GETQUOTA report it; APPEND (MULTIAPPEND, CATENATE), COPY and MOVE past it
get NO [OVERQUOTA] and store nothing; a MOVE between the user's own
mailboxes grows nothing and is never refused; LMTP refuses only the
recipient over quota (552 5.2.2, or 452 4.2.2 with
--quota-lmtp-temporary); expunging frees the quota; a replica applies
what its master sends whatever its own quota says.
"""
import re

import pytest

from conftest import DOMAIN, LMTPClient
from test_replication import (make_cluster, lmtp_one, message,  # noqa: F401
                              secret, wait_same)


def msg(i, size=0):
    pad = b"x" * 70 + b"\r\n"
    return (b"From: a@b.test\r\nSubject: q%d\r\n\r\nbody %d\r\n" % (i, i)
            + pad * (size // len(pad)))


def count(c, mailbox="INBOX"):
    return c.status(mailbox, "MESSAGES")["MESSAGES"]


def append_no(c, mailbox, message):
    """An APPEND that must be refused; returns the tagged reply."""
    t = c.tag()
    c.send(b"%s APPEND %s {%d+}\r\n" % (t.encode(), mailbox.encode(),
                                        len(message)) + message + b"\r\n")
    return c.read_until(t)[1]


@pytest.fixture
def limited(server):
    """A server whose users may keep 3 messages each."""
    return server(imap=True, args=["--quota-messages", "3"])


def test_capability_only_with_a_limit(server):
    plain = server(imap=True)
    caps = plain.raw().ok("CAPABILITY")[0]
    assert " QUOTA" not in caps, caps
    both = server(imap=True, args=["--quota-messages", "3",
                                   "--quota-storage", "10240"])
    caps = both.raw().ok("CAPABILITY")[0].split()
    for c in ("QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"):
        assert c in caps, caps
    assert "QUOTASET" not in caps


def test_getquotaroot_with_imaplib(server):
    srv = server(imap=True, args=["--quota-messages", "5",
                                  "--quota-storage", str(100 * 1024)])
    c = srv.imap()
    c.append("INBOX", None, None, msg(1, 3000))
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK", data
    roots, quotas = data
    assert roots[0] == b'INBOX ""', roots
    m = re.match(rb'"" \(STORAGE (\d+) 100 MESSAGE 1 5\)', quotas[0])
    assert m, quotas
    assert 2 <= int(m.group(1)) <= 3, quotas
    typ, data = c.getquota('""')
    assert typ == "OK" and data[0] == quotas[0], data
    typ, data = c.getquota('"other"')
    assert typ == "NO", data
    typ, data = c.setquota('""', "(STORAGE 1000000)")
    assert typ == "NO", data
    typ, data = c.getquotaroot("Nonexistent")
    assert typ == "NO", data
    c.logout()


def test_append_over_the_limit_is_refused(limited):
    c = limited.raw()
    for i in range(3):
        c.append("INBOX", msg(i))
    done = append_no(c, "INBOX", msg(3))
    assert done.startswith("NO [OVERQUOTA]"), done
    assert count(c) == 3
    # Another mailbox of the same user counts too.
    c.ok("CREATE Other")
    done = append_no(c, "Other", msg(4))
    assert done.startswith("NO [OVERQUOTA]"), done
    assert count(c, "Other") == 0
    # Another user has their own quota.
    b = limited.raw("bob")
    b.append("INBOX", msg(5))


def test_storage_limit_counts_bytes(server):
    srv = server(imap=True, args=["--quota-storage", "10000"])
    c = srv.raw()
    c.append("INBOX", msg(1, 6000))
    done = append_no(c, "INBOX", msg(2, 6000))
    assert done.startswith("NO [OVERQUOTA]"), done
    c.append("INBOX", msg(3, 1000))
    assert count(c) == 2


def multiappend(c, messages):
    """One APPEND of several LITERAL+ messages; returns the tagged reply."""
    t = c.tag()
    data = b"%s APPEND INBOX" % t.encode()
    for m in messages:
        data += b" {%d+}\r\n" % len(m) + m
    c.send(data + b"\r\n")
    return c.read_until(t)[1]


def test_multiappend_crossing_the_limit_stores_none(limited):
    c = limited.raw()
    c.append("INBOX", msg(0))
    done = multiappend(c, [msg(i) for i in range(1, 4)])  # 1 + 3 > 3
    assert done.startswith("NO [OVERQUOTA]"), done
    assert count(c) == 1
    done = multiappend(c, [msg(i) for i in range(4, 6)])  # fits exactly
    assert done.startswith("OK"), done
    assert count(c) == 3


def test_catenate_over_the_limit_is_refused(limited):
    c = limited.raw()
    for i in range(3):
        c.append("INBOX", msg(i))
    text = msg(9)
    t = c.tag()
    c.send(b"%s APPEND INBOX CATENATE (TEXT {%d+}\r\n%s)\r\n" % (
        t.encode(), len(text), text))
    done = c.read_until(t)[1]
    assert done.startswith("NO [OVERQUOTA]"), done
    assert count(c) == 3


def filled(srv, n):
    """A session of alice's with n messages in INBOX, selected, and an
    empty mailbox Other."""
    c = srv.raw()
    c.ok("CREATE Other")
    for i in range(n):
        c.append("INBOX", msg(i))
    c.ok("SELECT INBOX")
    return c


def test_copy_over_the_limit_copies_none(limited):
    c = filled(limited, 2)
    _, done = c.cmd("COPY 1:2 Other")
    assert done.startswith("NO [OVERQUOTA]"), done
    assert count(c, "Other") == 0
    c.ok("COPY 1 Other")
    assert count(c, "Other") == 1
    _, done = c.cmd("UID COPY 1 Other")
    assert done.startswith("NO [OVERQUOTA]"), done


def test_move_at_the_limit_is_allowed(limited):
    c = filled(limited, 3)
    c.ok("MOVE 1:2 Other")
    assert count(c, "Other") == 2
    assert count(c, "INBOX") == 1
    c.ok("SELECT Other")
    c.ok("UID MOVE 1:* INBOX")
    assert count(c, "INBOX") == 3


def test_move_after_the_limit_was_lowered(server):
    srv = server(imap=True)
    c = srv.raw()
    c.ok("CREATE Other")
    for i in range(4):
        c.append("INBOX", msg(i))
    c.close()
    srv.stop()
    srv.args = list(srv.args) + ["--quota-messages", "2"]
    srv.start()
    c = srv.raw()
    c.ok("SELECT INBOX")
    c.ok("MOVE 1 Other")        # over already, but grows nothing
    _, done = c.cmd("COPY 1 Other")
    assert done.startswith("NO [OVERQUOTA]"), done


def test_expunge_frees_quota(limited):
    c = limited.raw()
    for i in range(3):
        c.append("INBOX", msg(i))
    assert append_no(c, "INBOX", msg(3)).startswith("NO [OVERQUOTA]")
    c.ok("SELECT INBOX")
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.append("INBOX", msg(4))
    roots = c.ok("GETQUOTAROOT INBOX")
    assert '* QUOTA "" (MESSAGE 3 3)' in roots, roots


def lmtp_two(port, rcpts, body):
    """One transaction to several recipients: (RCPT replies, DATA's)."""
    with LMTPClient(port) as c:
        c.lhlo()
        return c.transaction("s@remote.test", rcpts, body)


@pytest.mark.parametrize("temporary,want", [(False, "552 5.2.2"),
                                            (True, "452 4.2.2")])
def test_lmtp_refuses_only_the_recipient_over_quota(server, temporary,
                                                    want):
    args = ["--quota-messages", "1"]
    if temporary:
        args += ["--quota-lmtp-temporary", "yes"]
    srv = server(imap=True, args=args)
    alice, bob = "alice@" + DOMAIN, "bob@" + DOMAIN
    _, data = lmtp_two(srv.port, [alice], message("first"))
    assert data[0].startswith("250"), data
    _, data = lmtp_two(srv.port, [alice, bob], message("second"))
    assert data[0].startswith(want), data
    assert "<%s>" % alice in data[0], data
    assert data[1].startswith("250"), data
    assert count(srv.raw("alice")) == 1
    assert count(srv.raw("bob")) == 1


def test_replica_applies_whatever_its_quota(server, secret):  # noqa: F811
    master, (rep,) = make_cluster(server, secret)(
        1, replica_args=["--quota-messages", "1"])
    for i in range(3):
        assert lmtp_one(master.port, "alice@" + DOMAIN,
                        message("r%d" % i))[0].startswith("250")
    wait_same(master, rep)
    assert count(rep.raw("alice")) == 3
    roots = rep.raw("alice").ok("GETQUOTAROOT INBOX")
    assert '* QUOTA "" (MESSAGE 3 1)' in roots, roots
