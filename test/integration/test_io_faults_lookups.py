"""I/O faults (test/testvfs.c, as test_io_faults.py) in what a read-only
request answers from: a read that fails is never reported as a figure.
Each run first changes the store from another connection, so that the
server's page cache is stale and its reads reach the disk (the VFS),
then fails the Nth read, for every N until a run completes without
reaching it.  At the end the server exits 0 and the store is clean."""
import http.client
import json
import os
import shutil
import sqlite3
import subprocess

import pytest

from conftest import DOMAIN, HOST, LMTPClient, LMTPError, free_port, \
    lmtp_deliver
from powerloss import CRASH_BIN, store_rows
from test_alloc_faults import deliver_to
from test_io_faults import FaultServer, check_clean
from test_recon_io_faults import fault_pair


@pytest.fixture
def web_fault_server(tmp_path, template_data):
    """The test build serving HTTP (srv.http_port), bob paused by the
    mass-delete guard in its store."""
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    db = sqlite3.connect(str(data / "mailrepd.db"))
    db.execute("INSERT INTO guard_pause (user, reason, time) "
               "VALUES ('bob', 'many deletes', 1)")
    db.commit()
    db.close()
    port = free_port()
    srv = FaultServer(tmp_path, data, ["--http", "%s:%d" % (HOST, port)])
    srv.http_port = port
    srv.start()
    yield srv
    srv.disarm()
    assert srv.stop() == 0, srv.log.read_text()[-3000:]
    check_clean(data)


def stale_cache(data, n):
    """A change from another connection: the server reads again."""
    db = sqlite3.connect(str(data / "mailrepd.db"), timeout=30)
    db.execute("UPDATE guard_pause SET time = ? WHERE user = 'bob'",
               (1000 + n,))
    db.commit()
    db.close()


def get(srv, path):
    """GET path (the admin's view, from loopback): (status, body), or
    (None, "") when cut off."""
    c = http.client.HTTPConnection(HOST, srv.http_port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    except (OSError, http.client.HTTPException):
        return None, ""
    finally:
        c.close()


def test_io_faults_never_report_an_unread_figure(web_fault_server):
    """/metrics with the Nth read failing: the figures read, or a server
    error; never 200 with what could not be read left out or taken as
    0.  The list of paused users unread was reported as none paused
    (mailrepd_guard_paused_users 0), the conflicts unread as -1, the
    replicas unread as none."""
    srv = web_fault_server
    status, body = get(srv, "/metrics")
    assert status == 200 and "mailrepd_guard_paused_users 1\n" in body, \
        body
    n = 0
    while True:
        n += 1
        stale_cache(srv.data, n)
        srv.arm("read", n, "ioerr")
        status, body = get(srv, "/metrics")
        hit = srv.injected()
        srv.disarm()
        assert status != 200 or (
            "mailrepd_guard_paused_users 1\n" in body and
            "mailrepd_conflicts 0\n" in body), \
            "/metrics with read #%d failing: %s" % (n, body)
        if not hit:
            break
    print("metrics: read faults up to #%d" % (n - 1))


def test_io_faults_never_answer_no_such(web_fault_server):
    """The API's look-ups of a user, a mailbox and a message that exist,
    with the Nth read failing: found, or a server error; never 404.  A
    failed look-up was answered "no such user", "no such mailbox" or
    "no such message"."""
    srv = web_fault_server
    lmtp_deliver(srv.port, "s@remote.test", ["alice@%s" % DOMAIN],
                 b"Subject: here\r\n\r\nbody\r\n")
    status, body = get(srv, "/api/v1/messages?user=alice&mailbox=INBOX")
    assert status == 200, body
    paths = ["/api/v1/messages?user=alice&mailbox=INBOX",
             "/api/v1/message/" + json.loads(body)["messages"][0]["ID"]]
    runs = 0
    for path in paths:
        n = 0
        while True:
            n += 1
            stale_cache(srv.data, runs)
            runs += 1
            srv.arm("read", n, "ioerr")
            status, body = get(srv, path)
            hit = srv.injected()
            srv.disarm()
            assert status != 404, "%s with read #%d failing: %s" % (
                path, n, body)
            if not hit:
                break
    print("API look-ups: %d runs" % runs)


def cli_reading(tmp_path, args, n):
    """`mailrepd args` (the test build) with its Nth read failing: the
    completed process, and whether the fault was injected."""
    faults = tmp_path / "cli-faults"
    faults.write_text("1 read %d ioerr off\n" % n)
    env = dict(os.environ, MAILREPD_VFS_FAULTS=str(faults))
    p = subprocess.run([CRASH_BIN] + args, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return p, b"testvfs: failing" in p.stderr


@pytest.mark.parametrize("by", ["uid", "guid"])
def test_io_faults_never_say_no_message(web_fault_server, tmp_path, by):
    """`mailrepd messages show` of a message that is there, with the Nth
    read failing: the message, or an error that says the store could
    not be read; never "no message" (it said so for any store error)."""
    srv = web_fault_server
    lmtp_deliver(srv.port, "s@remote.test", ["alice@%s" % DOMAIN],
                 b"Subject: here\r\n\r\nbody\r\n")
    uid, guid = store_rows(srv.data, "SELECT m.uid, hex(b.guid) FROM "
                           "message m JOIN blob b ON b.id = m.blob_id "
                           "WHERE b.subject = 'here'")[0]
    args = ["messages", "show", str(uid) if by == "uid" else guid.lower(),
            "--data", str(srv.data)] + (["--user", "alice"] if by == "uid"
                                        else [])
    clean, hit = cli_reading(tmp_path, args, 10 ** 9)
    assert clean.returncode == 0 and b"body" in clean.stdout and not hit, \
        clean.stderr
    n = 0
    while hit or n == 0:
        n += 1
        p, hit = cli_reading(tmp_path, args, n)
        what = "show by %s with read #%d failing: %d %r" % (
            by, n, p.returncode, p.stderr[-300:])
        assert (p.returncode, p.stdout) == (0, clean.stdout) or (
            p.returncode != 0 and b"no message" not in p.stderr), what
    print("messages show by %s: read faults up to #%d" % (by, n - 1))


def test_io_faults_never_print_an_unread_status(tmp_path, template_data):
    """`mailrepd status` (and --json) with the Nth read failing: the
    status the clean run printed, or exit 1; never exit 0 with a figure
    it could not read.  The sync counters unread were printed as 0 (the
    acknowledgements of synchronous replication, its timeouts), the log
    head as -1, the paused users and the replicas unread as none."""
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    db = sqlite3.connect(str(data / "mailrepd.db"))
    db.executemany("INSERT INTO counter (name, value) VALUES (?, ?)",
                   [("sync_acked", 7), ("sync_timeouts", 2),
                    ("sync_unreplicated", 3)])
    db.execute("INSERT INTO guard_pause (user, reason, time) "
               "VALUES ('bob', 'many deletes', 1)")
    db.commit()
    db.close()
    for args in (["status"], ["status", "--json"]):
        args = args + ["--data", str(data)]
        clean, hit = cli_reading(tmp_path, args, 10 ** 9)
        assert clean.returncode == 0 and not hit, clean.stderr
        assert b"7" in clean.stdout and b"bob" in clean.stdout, clean.stdout
        n = 0
        while hit or n == 0:
            n += 1
            p, hit = cli_reading(tmp_path, args, n)
            assert p.returncode != 0 or p.stdout == clean.stdout, \
                "%s with read #%d failing:\n%s\n%s" % (
                    " ".join(args[:2]), n, p.stdout.decode(),
                    clean.stdout.decode())
        print("%s: read faults up to #%d" % (" ".join(args[:2]), n - 1))


def test_io_faults_never_release_an_unreplicated_reply(tmp_path,
                                                       template_data):
    """With --repl-sync-timeout a delivery's 250 waits until a replica
    has it.  The master's Nth read failing (its page caches capped, so
    that the read of the log head after the group commit reaches the
    disk), while the replica's link is stalled: no 250 comes (a refusal
    may); once the link heals, 250 or a refusal.  An unread head was
    taken for position -1, which any replica has: the 250 went at once,
    though no replica had the message."""
    master, replica, net, link = fault_pair(tmp_path, template_data)
    master.args += ["--repl-sync-timeout", "60000"]
    master.env["MAILREPD_VFS_PCACHE"] = "1"	# 4 kept the head cached
    master.start()
    replica.start()
    n = 0
    try:
        deliver_to(master, "warm")
        hit = True
        while hit:
            n += 1
            net.set(link, "stall")
            try:
                c = LMTPClient(master.port, timeout=60)
                c.lhlo()
                c.cmd("MAIL FROM:<s@remote.test>", "250")
                c.cmd("RCPT TO:<alice@%s>" % DOMAIN, "250")
                c.cmd("DATA", "354")
            except (OSError, LMTPError) as e:
                raise AssertionError("run %d: %r\n%s" % (
                    n, e, master.log.read_text()[-3000:]))
            master.arm("read", n, "ioerr")
            c.send(b"Subject: r%d\r\n\r\nbody\r\n.\r\n" % n)
            try:
                early = c.reply(timeout=1.0)[-1]
            except (OSError, LMTPError):
                early = None
            hit = master.injected()
            master.disarm()
            net.heal(link)
            what = "delivery with read #%d failing: %r" % (n, early)
            assert early is None or not early.startswith("250"), \
                what + " while no replica could have it"
            final = early or c.reply()[-1]
            assert final[:1] in "24", what + ", then %r" % final
            c.close()
    finally:
        master.disarm()
        net.close()
        replica.stop()
        master.stop()
    print("held replies: read faults up to #%d" % (n - 1))



def test_io_faults_never_start_a_demoted_node_as_master(tmp_path,
                                                        template_data):
    """A node `mailrepd demote` made a replica (its store records the
    upstream), started without --replicate-from and with its Nth read
    failing: it follows its upstream (LMTP refuses mail with 451), or it
    does not start; it never takes mail as a master beside the one it
    follows.  A failed read of its node row was taken for "no upstream
    recorded": it started as a master."""
    data = tmp_path / "data"
    shutil.copytree(template_data, data)
    secret = tmp_path / "repl.secret"
    secret.write_text("d7" * 32 + "\n")
    secret.chmod(0o600)
    db = sqlite3.connect(str(data / "mailrepd.db"))
    db.execute("UPDATE node SET role = 'replica', upstream = ?",
               ("%s:%d" % (HOST, free_port()),))
    db.commit()
    db.close()
    srv = FaultServer(tmp_path, data, ["--repl-secret-file", str(secret)])
    srv.env["MAILREPD_VFS_PCACHE"] = "1"	# the node row read again
    n, hit = 0, True
    while hit:
        n += 1
        srv.arm("read", n, "ioerr")
        try:
            srv.start()
        except AssertionError:		# it did not start
            hit = srv.injected()
            assert srv.stop() not in (None, 0), "read #%d" % n
            continue
        hit = srv.injected()
        srv.disarm()
        with LMTPClient(srv.port) as c:
            c.lhlo()
            got = c.cmd("MAIL FROM:<s@remote.test>")[-1]
            if got.startswith("250"):
                got = c.cmd("RCPT TO:<alice@%s>" % DOMAIN)[-1]
        assert got.startswith("4"), \
            "start with read #%d failing: %r" % (n, got)
        assert srv.stop() == 0, srv.log.read_text()[-3000:]
    srv.disarm()
    print("demoted start: read faults up to #%d" % (n - 1))
