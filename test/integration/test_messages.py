"""`mailrepd messages` and `mailrepd wait`: the read-only view a test
asserts on, while the server runs."""
import json
import smtplib
import subprocess
import time

from conftest import HOST, MAILREPD, run, run_ok
from devserver import Dev


def send(dev, rcpt, subject, body="body\r\n"):
    with smtplib.SMTP(HOST, dev.ports["smtp"], timeout=10) as c:
        c.sendmail("app@example.org", [rcpt], (
                   "From: App <app@example.org>\r\nTo: %s\r\nSubject: %s\r\n"
                   "Date: Tue, 02 Jan 2024 03:04:05 +0000\r\n\r\n%s" % (
                       rcpt, subject, body)).encode())


def listing(dev, *args):
    return json.loads(run_ok("messages", "--json", "--data", dev.data,
                             *args).stdout)


def test_list_filters_and_fields(tmp_path):
    with Dev(tmp_path) as dev:
        assert listing(dev) == []
        send(dev, "dev@x.test", "one")
        send(dev, "dev@x.test", "two")
        send(dev, "ann+Sent@x.test", "to ann")
        send(dev, "ann@x.test", "=?utf-8?q?Gr=C3=BC=C3=9Fe_caf=C3=A9?=")
        all_ = listing(dev)
        assert [(m["user"], m["mailbox"], m["uid"]) for m in all_] == [
            ("ann", "INBOX", 1), ("ann", "Sent", 1), ("dev", "INBOX", 1),
            ("dev", "INBOX", 2)]
        assert [m["subject"] for m in listing(dev, "--mailbox", "Sent")
                ] == ["to ann"]
        m = listing(dev, "--user", "dev")[1]
        assert m["subject"] == "two"
        assert m["date"] == "2024-01-02T03:04:05Z"
        assert m["flags"] == [] and m["received"].endswith("Z")
        assert listing(dev, "--user", "ann")[0]["subject"] == \
            "Grüße café"
        assert [m["uid"] for m in listing(dev, "--user", "dev", "--since",
                                          "1")] == [2]
        assert listing(dev, "--user", "nobody") == []
        assert listing(dev, "--mailbox", "nosuch") == []
        # text: user, mailbox, uid, date, size, from, subject
        lines = run_ok("messages", "--data", dev.data, "--user",
                       "dev").stdout.splitlines()
        f = lines[0].split("\t")
        assert f[:4] == ["dev", "INBOX", "1", "2024-01-02T03:04:05Z"]
        assert f[6] == "one"


def test_show_by_uid_and_guid(tmp_path):
    with Dev(tmp_path) as dev:
        send(dev, "dev@x.test", "shown", body="line 1\r\nline 2\r\n")
        raw = subprocess.run([MAILREPD, "messages", "show", "1", "--user",
                              "dev", "--data", dev.data],
                             stdout=subprocess.PIPE, check=True).stdout
        assert raw.startswith(b"Return-Path: <app@example.org>\r\n")
        assert raw.endswith(b"\r\n\r\nline 1\r\nline 2\r\n")
        m = json.loads(run_ok("messages", "show", "1", "--json", "--user",
                              "dev", "--data", dev.data).stdout)
        assert m["subject"] == "shown" and m["raw"].encode() == raw
        g = json.loads(run_ok("messages", "show", m["guid"], "--json",
                              "--data", dev.data).stdout)
        assert g["raw"] == m["raw"] and g["uid"] is None
        p = run("messages", "show", "7", "--user", "dev", "--data",
                dev.data)
        assert p.returncode == 1 and "no message 7" in p.stderr
        p = run("messages", "show", "1", "--data", dev.data)
        assert p.returncode == 2 and "needs --user" in p.stderr


def test_wait_returns_as_soon_as_mail_arrives(tmp_path):
    with Dev(tmp_path) as dev:
        w = subprocess.Popen([MAILREPD, "wait", "--user", "late", "--count",
                              "2", "--timeout", "30", "--data", dev.data],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)
        assert w.poll() is None         # no user, no mail yet: waiting
        send(dev, "late@x.test", "a")
        time.sleep(0.3)
        assert w.poll() is None         # one of two
        t0 = time.monotonic()
        send(dev, "late@x.test", "b")
        out, err = w.communicate(timeout=10)
        assert time.monotonic() - t0 < 5
        assert w.returncode == 0, err
        assert out.startswith(b"2 messages after ")
        p = run_ok("wait", "--user", "late", "--count", "2", "--json",
                   "--data", dev.data)
        assert [m["subject"] for m in json.loads(p.stdout)] == ["a", "b"]


def test_wait_times_out_with_a_clear_message(tmp_path):
    with Dev(tmp_path) as dev:
        send(dev, "dev@x.test", "only one")
        t0 = time.monotonic()
        p = run("wait", "--user", "dev", "--count", "3", "--timeout", "0.5",
                "--data", dev.data)
        assert 0.5 <= time.monotonic() - t0 < 5
        assert p.returncode == 1
        assert p.stderr.strip() == (
            "mailrepd: wait: timed out after 0.5 s: 1 of 3 messages for "
            "user 'dev' in '%s'" % dev.data)
    p = run("wait", "--timeout", "0.2", "--data", tmp_path / "none")
    assert p.returncode == 1 and "no store in" in p.stderr


def test_wait_and_messages_bad_arguments(tmp_path):
    for args in (["--count", "0"], ["--count", "x"], ["--timeout", "-1"],
                 ["--timeout", "soon"]):
        p = run("wait", "--data", tmp_path, *args)
        assert p.returncode == 2, args
        assert args[0] in p.stderr
    p = run("messages", "--since", "x", "--data", tmp_path)
    assert p.returncode == 2
    p = run("messages", "--data", tmp_path / "none")
    assert p.returncode == 2 and "no store" in p.stderr


def test_view_of_a_serve_store_while_it_runs(server):
    s = server()
    from conftest import lmtp_deliver
    lmtp_deliver(s.port, "a@b.c", ["alice"], b"Subject: lmtp\r\n\r\nx\r\n")
    p = run_ok("wait", "--user", "alice", "--timeout", "5", "--data", s.data)
    got = json.loads(run_ok("messages", "--json", "--data", s.data).stdout)
    assert [(m["user"], m["subject"]) for m in got] == [("alice", "lmtp")]
