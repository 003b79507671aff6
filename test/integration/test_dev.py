"""`mailrepd dev`: the JSON line, the ports, the ready user, catch-all,
failure injection, and the temporary directory removed on exit."""
import imaplib
import os
import re
import signal
import smtplib
import socket
import time

import pytest

from conftest import HOST, MAILREPD, free_port, run, run_ok, user_add
from devserver import Dev

SLOW_SECONDS = 2        # DEV_SLOW_SECONDS in config.h


def users(data):
    return {l.split("\t")[0] for l in
            run_ok("user", "list", "--data", data).stdout.splitlines()}


def send(dev, rcpts, subject="hi", sender="app@example.org"):
    with smtplib.SMTP(HOST, dev.ports["smtp"], timeout=10) as c:
        return c.sendmail(sender, rcpts, "From: %s\r\nTo: %s\r\nSubject: "
                          "%s\r\n\r\nbody\r\n" % (sender, rcpts[0], subject))


def test_json_line_ports_and_user(tmp_path):
    with Dev(tmp_path) as dev:
        info = dev.info
        assert set(info) == {"host", "ports", "user", "password",
                             "fingerprint", "data_dir"}
        assert info["host"] == "127.0.0.1"
        assert set(info["ports"]) == {"smtp", "imap", "imaps", "lmtp", "http"}
        for name, port in info["ports"].items():
            if port is None:
                assert name == "imaps"      # only before TLS exists
                continue
            socket.create_connection((HOST, port), timeout=5).close()
        fp = info["fingerprint"]
        assert fp is None or re.fullmatch(r"[0-9a-f]{64}", fp), fp
        assert (fp is None) == (info["ports"]["imaps"] is None)
        assert info["user"] == "dev" and info["password"]
        assert info["data_dir"].startswith(str(tmp_path) + "/")
        assert os.path.isdir(info["data_dir"])
        # The how-to-connect block goes to stderr beside the JSON.
        log = dev.log_text()
        assert "mailrepd dev is ready" in log
        assert "SMTP   127.0.0.1:%d" % info["ports"]["smtp"] in log
        assert users(info["data_dir"]) == {"dev"}


def test_ready_user_logs_in_with_any_password(tmp_path):
    with Dev(tmp_path) as dev:
        for pw in (dev.info["password"], "anything at all"):
            c = imaplib.IMAP4(HOST, dev.ports["imap"], timeout=10)
            assert c.login(dev.info["user"], pw)[0] == "OK"
            assert c.select("INBOX")[0] == "OK"
            c.logout()
        c = imaplib.IMAP4(HOST, dev.ports["imap"], timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            c.login("nobody", "x")      # an unknown user stays unknown
        c.logout()


def test_user_with_a_password_still_needs_it(tmp_path):
    data = tmp_path / "data"
    user_add(data, "carol", "s3cret")
    with Dev(tmp_path, ["--data", data]) as dev:
        assert dev.data == str(data)
        c = imaplib.IMAP4(HOST, dev.ports["imap"], timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            c.login("carol", "wrong")
        c.logout()
        c = imaplib.IMAP4(HOST, dev.ports["imap"], timeout=10)
        assert c.login("carol", "s3cret")[0] == "OK"
        c.logout()
    assert data.is_dir()            # --data is never removed
    assert users(data) == {"carol", "dev"}


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGTERM,
                                 signal.SIGINT])
def test_temporary_dir_removed_on_exit(tmp_path, sig):
    dev = Dev(tmp_path)
    send(dev, ["dev@example.com"])
    assert os.path.exists(os.path.join(dev.data, "mailrepd.db"))
    assert dev.stop(sig) == 0
    assert not os.path.exists(dev.data)
    assert [p for p in os.listdir(tmp_path) if p != "dev.log"] == []


def test_keep_leaves_the_store(tmp_path):
    dev = Dev(tmp_path, ["--keep"])
    send(dev, ["dev@example.com"])
    assert dev.stop() == 0
    assert os.path.isdir(dev.data)
    p = run_ok("messages", "--data", dev.data, "--user", "dev")
    assert p.stdout.count("\n") == 1


def test_catch_all_creates_users(tmp_path):
    with Dev(tmp_path) as dev:
        send(dev, ["newbie@any.domain", "Other.Person+lists@x.test"])
        assert users(dev.data) == {"dev", "newbie", "Other.Person"}
        c = imaplib.IMAP4(HOST, dev.ports["imap"], timeout=10)
        c.login("NEWBIE", "whatever")
        typ, data = c.select("INBOX")
        assert data == [b"1"]
        c.logout()
        # Over LMTP too: the same session code.
        with smtplib.LMTP(HOST, dev.ports["lmtp"], timeout=10) as c:
            c.sendmail("a@b.c", ["lmtpuser@x.test"], "Subject: l\r\n\r\nx\r\n")
        assert "lmtpuser" in users(dev.data)


def test_invalid_catch_all_name_is_refused(tmp_path):
    with Dev(tmp_path) as dev:
        with smtplib.SMTP(HOST, dev.ports["smtp"], timeout=10) as c:
            c.ehlo("app")
            c.mail("a@b.c")
            code, msg = c.rcpt('<"two words"@x.test>')
            assert code == 550 and msg.startswith(b"5.1.3"), (code, msg)


def test_tempfail_and_permfail(tmp_path):
    with Dev(tmp_path) as dev:
        with smtplib.SMTP(HOST, dev.ports["smtp"], timeout=10) as c:
            c.ehlo("app")
            c.mail("a@b.c")
            code, msg = c.rcpt("dev+tempfail@x.test")
            assert code == 451 and b"+tempfail" in msg, msg
            code, msg = c.rcpt("dev+permfail@x.test")
            assert code == 550 and msg.startswith(b"5.1.1"), msg
            code, msg = c.rcpt("Dev+TempFail@x.test")
            assert code == 451
            assert c.rcpt("dev@x.test")[0] == 250
            c.data("Subject: t\r\n\r\nx\r\n")
        # smtplib's own view, as an application sees it:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            send(dev, ["someone+tempfail@x.test"])
        assert e.value.recipients["someone+tempfail@x.test"][0] == 451
        # The fault makes no user.
        assert "someone" not in users(dev.data)


def test_slow_reply_is_late_but_delivered(tmp_path):
    with Dev(tmp_path) as dev:
        t0 = time.monotonic()
        send(dev, ["dev+slow@x.test"])
        took = time.monotonic() - t0
        assert took >= SLOW_SECONDS - 0.1, took
        assert took < SLOW_SECONDS + 5, took
        p = run_ok("messages", "--data", dev.data, "--user", "dev")
        assert p.stdout.count("\n") == 1


def test_explicit_listener_wins_over_auto(tmp_path):
    port = free_port()
    with Dev(tmp_path, ["--smtp", "%s:%d" % (HOST, port)]) as dev:
        assert dev.ports["smtp"] == port


def test_bad_ports_value(tmp_path):
    p = run("dev", "--ports", "fixed")
    assert p.returncode == 2
    assert "--ports wants 'auto'" in p.stderr


def test_help():
    p = run_ok("dev", "--help")
    assert "--ports" in p.stdout and "--keep" in p.stdout
