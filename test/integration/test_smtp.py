"""SMTP intake (--smtp): what an application's mail library does, into
dev mode and into serve; local delivery only, never relaying."""
import base64
import email
import imaplib
import json
import socket
import ssl
import smtplib

import pytest

from conftest import (DOMAIN, HOST, PASSWORD, export, free_port, run_ok)
from devserver import Dev


def message(subject, to="dev@example.com", body="hello from the app"):
    return ("From: App <app@example.org>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.org>\r\n\r\n%s\r\n" % (
                to, subject, subject.replace(" ", "-"), body))


def insecure_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A raw SMTP line client for exact replies."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.f = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        lines = []
        while True:
            l = self.f.readline().decode("utf-8", "replace").rstrip("\r\n")
            assert l, "connection closed after %r" % lines
            lines.append(l)
            if l[3:4] != "-":
                return lines

    def cmd(self, line):
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def close(self):
        self.f.close()
        self.sock.close()


def smtp_server(server, *args):
    port = free_port()
    s = server(args=["--smtp", "%s:%d" % (HOST, port)] + list(args))
    s.smtp_port = port
    return s


def test_application_send_read_back_over_imap_and_json(tmp_path):
    with Dev(tmp_path) as dev:
        with smtplib.SMTP(HOST, dev.ports["smtp"], timeout=10) as c:
            c.ehlo("app.example.org")
            for ext in ("pipelining", "size", "8bitmime", "smtputf8",
                        "enhancedstatuscodes", "auth"):
                assert c.has_extn(ext), (ext, c.esmtp_features)
            assert "PLAIN" in c.esmtp_features["auth"].upper()
            if c.has_extn("starttls"):
                c.starttls(context=insecure_context())
                c.ehlo("app.example.org")
                assert not c.has_extn("starttls")
            c.login("app-user", "app-password")
            refused = c.sendmail("app@example.org", ["dev@example.com"],
                                 message("welcome mail"))
            assert refused == {}
        # imaplib, as a test would read it back
        c = imaplib.IMAP4(HOST, dev.ports["imap"], timeout=10)
        c.login(dev.info["user"], dev.info["password"])
        assert c.select("INBOX") == ("OK", [b"1"])
        typ, data = c.fetch("1", "(RFC822)")
        msg = email.message_from_bytes(data[0][1])
        assert msg["Subject"] == "welcome mail"
        assert msg["Return-Path"] == "<app@example.org>"
        assert msg["Received"].startswith("from app.example.org ")
        assert "ESMTPSA" in msg["Received"] or "ESMTPA" in msg["Received"]
        c.logout()
        # and the JSON view
        p = run_ok("messages", "--json", "--user", "dev", "--data",
                   dev.data)
        got = json.loads(p.stdout)
        assert len(got) == 1
        m = got[0]
        assert (m["user"], m["mailbox"], m["uid"]) == ("dev", "INBOX", 1)
        assert m["subject"] == "welcome mail"
        assert "app@example.org" in m["from"]
        assert m["to"] == "dev@example.com"
        assert m["message_id"] == "<welcome-mail@example.org>"
        assert len(m["guid"]) == 64 and m["size"] > 0


def test_imaps_when_tls_exists(tmp_path):
    with Dev(tmp_path) as dev:
        if dev.ports["imaps"] is None:
            pytest.skip("no TLS in this build")
        with smtplib.SMTP(HOST, dev.ports["smtp"], timeout=10) as c:
            c.sendmail("a@b.c", ["dev@x.test"], message("over tls"))
        c = imaplib.IMAP4_SSL(HOST, dev.ports["imaps"],
                              ssl_context=insecure_context(), timeout=10)
        der = c.sock.getpeercert(binary_form=True)
        import hashlib
        assert hashlib.sha256(der).hexdigest() == dev.info["fingerprint"]
        c.login("dev", "x")
        assert c.select("INBOX") == ("OK", [b"1"])
        c.logout()


def test_auth_login_plain_and_errors(tmp_path):
    with Dev(tmp_path) as dev:
        r = Raw(dev.ports["smtp"])
        assert r.greeting[0].startswith("220 ") and "ESMTP" in r.greeting[0]
        assert r.cmd("AUTH PLAIN")[0].startswith("503 ")   # before EHLO
        r.cmd("EHLO app")
        assert r.cmd("AUTH CRAM-MD5")[0].startswith("504 ")
        assert r.cmd("AUTH LOGIN") == ["334 VXNlcm5hbWU6"]
        assert r.cmd(base64.b64encode(b"u").decode()) == ["334 UGFzc3dvcmQ6"]
        assert r.cmd("*")[0].startswith("501 ")
        assert r.cmd("AUTH PLAIN") == ["334 "]
        assert r.cmd("!!notbase64")[0].startswith("501 ")
        assert r.cmd("AUTH PLAIN " + base64.b64encode(b"no-nuls").decode()
                     )[0].startswith("501 ")
        ok = base64.b64encode(b"\0user\0pass").decode()
        assert r.cmd("AUTH PLAIN " + ok)[0].startswith("235 2.7.0")
        assert r.cmd("AUTH PLAIN " + ok)[0].startswith("503 ")
        r.close()
        r = Raw(dev.ports["smtp"])
        r.cmd("EHLO app")
        r.cmd("AUTH LOGIN " + base64.b64encode(b"u").decode())
        assert r.cmd(base64.b64encode(b"p").decode())[0].startswith("235 ")
        r.close()
        r = Raw(dev.ports["smtp"])
        assert r.cmd("HELO app") == ["250 " + r.greeting[0].split()[1]]
        assert r.cmd("AUTH PLAIN " + ok)[0].startswith("503 ")  # no EHLO
        assert r.cmd("LHLO app")[0] == \
            "500 5.5.1 This is SMTP: use EHLO or HELO"
        r.close()


def test_serve_refuses_relaying(server):
    s = smtp_server(server, "--domains", DOMAIN)
    with smtplib.SMTP(HOST, s.smtp_port, timeout=10) as c:
        c.ehlo("app")
        assert not c.has_extn("auth")       # AUTH is dev mode's
        c.mail("app@example.org")
        code, msg = c.rcpt("someone@elsewhere.test")
        assert code == 550 and msg.startswith(b"5.7.1 <someone@elsewhere"
                                              b".test> Relaying denied"), msg
        code, msg = c.rcpt("nobody@" + DOMAIN)
        assert code == 550 and msg.startswith(b"5.1.1"), msg
        assert c.rcpt("alice@" + DOMAIN)[0] == 250
        code, msg = c.data(message("to alice"))
        assert code == 250, msg
        code, msg = c.docmd("AUTH", "PLAIN AGFAYg==")
        assert code == 502
    got = export(s.data, "alice")
    assert len(got) == 1 and b"Subject: to alice" in got[0].data
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        with smtplib.SMTP(HOST, s.smtp_port, timeout=10) as c:
            c.sendmail("a@b.c", ["x@relay.test"], message("relay"))


def test_serve_without_domains_still_only_delivers_locally(server):
    s = smtp_server(server)
    with smtplib.SMTP(HOST, s.smtp_port, timeout=10) as c:
        c.ehlo("app")
        c.mail("a@b.c")
        # Any domain names a local user; an unknown user is refused.
        code, msg = c.rcpt("bob@gmail.com")
        assert code == 250, msg
        code, msg = c.rcpt("stranger@gmail.com")
        assert code == 550 and msg.startswith(b"5.1.1"), msg


def test_serve_catch_all(server):
    s = smtp_server(server, "--catch-all", "yes", "--domains", DOMAIN)
    with smtplib.SMTP(HOST, s.smtp_port, timeout=10) as c:
        assert c.sendmail("a@b.c", ["fresh@" + DOMAIN],
                          message("first")) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            c.sendmail("a@b.c", ["fresh@other.test"], message("relay"))
    names = run_ok("user", "list", "--data", s.data).stdout
    assert "fresh\t" in names
    assert b"Subject: first" in export(s.data, "fresh")[0].data


def test_one_reply_after_data_and_pipelining(server):
    s = smtp_server(server)
    r = Raw(s.smtp_port)
    r.cmd("EHLO app")
    r.sock.sendall(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<alice>\r\n"
                   b"RCPT TO:<bob>\r\nDATA\r\n")
    assert r.reply()[0].startswith("250 2.1.0")
    assert r.reply()[0].startswith("250 2.1.5")
    assert r.reply()[0].startswith("250 2.1.5")
    assert r.reply()[0].startswith("354 ")
    r.sock.sendall(b"Subject: two\r\n\r\nx\r\n.\r\nNOOP\r\n")
    assert r.reply() == ["250 2.0.0 Saved for 2 recipients"]
    assert r.reply()[0].startswith("250 2.0.0 OK")     # NOOP: no 2nd reply
    # A data error is answered once too.
    r.cmd("MAIL FROM:<a@b.c>")
    r.cmd("RCPT TO:<alice>")
    r.cmd("RCPT TO:<bob>")
    r.cmd("DATA")
    r.sock.sendall(b"x" * 70000 + b"\r\n.\r\nNOOP\r\n")
    assert r.reply()[0].startswith("554 5.6.0")
    assert r.reply()[0].startswith("250 2.0.0 OK")
    r.close()


def test_size_smtputf8_and_8bitmime(server):
    s = smtp_server(server, "--max-message-size", "10000")
    r = Raw(s.smtp_port)
    ehlo = r.cmd("EHLO app")
    assert "250 SIZE 10000" in ehlo and "250-SMTPUTF8" in ehlo
    assert r.cmd("MAIL FROM:<a@b.c> SIZE=20000")[0].startswith("552 5.3.4")
    assert r.cmd("MAIL FROM:<ü@bücher.example> SMTPUTF8 BODY=8BITMIME"
                 )[0].startswith("250 ")
    assert r.cmd("RCPT TO:<alice@example.com>")[0].startswith("250 ")
    assert r.cmd("DATA")[0].startswith("354 ")
    r.sock.sendall("Subject: grüße\r\n\r\nÄÖÜ\r\n.\r\n".encode())
    assert r.reply()[0].startswith("250 2.0.0 <alice@example.com> Saved")
    r.close()
    got = export(s.data, "alice")
    assert "ÄÖÜ".encode() in got[0].data
    assert "Return-Path: <ü@bücher.example>".encode() in got[0].data


def test_lmtp_keeps_refusing_smtp_greetings(server):
    s = smtp_server(server)
    with smtplib.LMTP(HOST, s.port, timeout=10) as c:
        code, msg = c.docmd("EHLO", "x")
        assert code == 500 and b"use LHLO" in msg
        c.ehlo("x")         # smtplib.LMTP sends LHLO
        assert not c.has_extn("auth") and not c.has_extn("smtputf8")
