"""LMTP session behaviour (RFC 2033): greeting, LHLO, command sequencing,
reply codes, pipelining."""
import re
import socket

from conftest import DOMAIN, SERVER_NAME, dot_stuff, stored

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
BODY = b"Subject: hello\r\n\r\nHello, world.\r\n"


def test_greeting_and_lhlo_capabilities(srv):
    with srv.client() as c:
        assert c.greeting == ["220 %s LMTP mailrepd ready" % SERVER_NAME]
        ext = c.lhlo()
        assert ext[0] == SERVER_NAME
        assert set(ext[1:]) == {"PIPELINING", "ENHANCEDSTATUSCODES",
                                "8BITMIME", "STARTTLS", "SIZE 52428800"}


def test_lhlo_advertises_configured_size(server):
    s = server(args=["--max-message-size", "20000"])
    with s.client() as c:
        assert "SIZE 20000" in c.lhlo()


def test_lhlo_without_argument_is_501(srv):
    with srv.client() as c:
        c.cmd("LHLO", "501 5.5.4")
        c.cmd("LHLO   ", "501 5.5.4")
        c.lhlo()


def test_helo_and_ehlo_refused(srv):
    with srv.client() as c:
        c.cmd("HELO client.test", "500 5.5.1")
        c.cmd("EHLO client.test", "500 5.5.1")
        c.cmd("ehlo client.test", "500 5.5.1")
        # Still waiting for LHLO.
        c.cmd("MAIL FROM:<a@b.test>", "503 5.5.1")
        c.lhlo()
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")


def test_commands_out_of_order(srv):
    with srv.client() as c:
        c.cmd("MAIL FROM:<a@b.test>", "503 5.5.1")
        c.cmd("RCPT TO:<%s>" % ALICE, "503 5.5.1")
        c.cmd("DATA", "503 5.5.1")
        c.lhlo()
        c.cmd("RCPT TO:<%s>" % ALICE, "503 5.5.1")
        c.cmd("DATA", "503 5.5.1")
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")
        c.cmd("MAIL FROM:<a@b.test>", "503 5.5.1")
        c.cmd("RCPT TO:<%s>" % ALICE, "250 2.1.5")
        c.cmd("MAIL FROM:<a@b.test>", "503 5.5.1")
        c.cmd("RSET", "250 2.0.0")
        c.cmd("DATA", "503 5.5.1")
        c.cmd("RCPT TO:<%s>" % ALICE, "503 5.5.1")
    assert srv.export("alice") == []


def test_data_without_accepted_recipient_is_503(srv):
    with srv.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")
        c.cmd("RCPT TO:<nobody@%s>" % DOMAIN, "550 5.1.1")
        c.cmd("DATA", "503 5.5.1")
        # The transaction is still open: a good recipient makes DATA work.
        c.cmd("RCPT TO:<%s>" % ALICE, "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(dot_stuff(BODY))
        c.expect("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [
        stored("a@b.test", BODY, ALICE)]


def test_unknown_command_is_500_5_5_2(srv):
    with srv.client() as c:
        c.cmd("FROB", "500 5.5.2")
        c.cmd("MAILFROM:<a@b.test>", "500 5.5.2")
        c.cmd("", "500 5.5.2")
        c.lhlo()
        c.cmd("XYZZY plugh", "500 5.5.2")
        c.cmd("NOOP", "250 2.0.0")


def test_vrfy_noop_rset_quit(srv):
    with srv.client() as c:
        c.cmd("VRFY alice", "252 2.5.2")
        c.cmd("NOOP", "250 2.0.0")
        c.cmd("RSET", "250 2.0.0")
        c.lhlo()
        c.cmd("noop", "250 2.0.0")
        c.cmd("vrfy nobody", "252 2.5.2")
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")
        c.cmd("RSET", "250 2.0.0")
        # RSET ended the transaction: a new MAIL is accepted.
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")
        c.cmd("QUIT", "221 2.0.0")
        assert c.wait_closed() == []


def test_commands_are_case_insensitive(srv):
    with srv.client() as c:
        c.cmd("lhlo client.test", "250 ")
        c.cmd("mail from:<a@b.test>", "250 2.1.0")
        c.cmd("rcpt to:<%s>" % ALICE, "250 2.1.5")
        c.cmd("data", "354")
        c.send(dot_stuff(BODY))
        c.expect("250 2.0.0")
        c.cmd("quit", "221")


def test_sloppy_mail_from_spacing_accepted(srv):
    with srv.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM: <sloppy@remote.test>", "250 2.1.0")
        c.cmd("RCPT TO: <%s>" % ALICE, "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(dot_stuff(BODY))
        c.expect("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [
        stored("sloppy@remote.test", BODY, ALICE)]


def test_mail_parameters(srv):
    with srv.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@b.test> FROB=1", "555 5.5.4")
        c.cmd("MAIL FROM:<a@b.test> SIZE=abc", "501 5.5.4")
        c.cmd("MAIL FROM:<a@b.test> SIZE=52428801", "552 5.3.4")
        c.cmd("MAIL FROM:<a@b.test> SIZE=1000 BODY=8BITMIME", "250 2.1.0")
        c.cmd("RSET", "250")
        c.cmd("MAIL FROM:<a@b.test> BODY=7BIT", "250 2.1.0")
        c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % ALICE, "555 5.5.4")
        c.cmd("RCPT TO:<%s>" % ALICE, "250 2.1.5")


def test_size_over_limit_refused_at_mail(server):
    s = server(args=["--max-message-size", "20000"])
    with s.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@b.test> SIZE=20001", "552 5.3.4")
        # No transaction was opened.
        c.cmd("RCPT TO:<%s>" % ALICE, "503 5.5.1")
        c.cmd("MAIL FROM:<a@b.test> SIZE=20000", "250 2.1.0")


def test_null_sender(srv):
    with srv.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<>", "250 2.1.0")
        c.cmd("RCPT TO:<%s>" % ALICE, "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(dot_stuff(BODY))
        c.expect("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [stored("", BODY, ALICE)]


def test_bad_paths(srv):
    with srv.client() as c:
        c.lhlo()
        c.cmd("MAIL <a@b.test>", "501 5.5.4")
        c.cmd("MAIL FROM:<a@b.test", "501 5.1.7")
        c.cmd("MAIL FROM:<%s@b.test>" % ("x" * 600), "501 5.1.7")
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")
        c.cmd("RCPT TO:<>", "501 5.1.3")
        c.cmd("RCPT <%s>" % ALICE, "501 5.5.4")
        c.cmd("DATA extra", "501 5.5.4")


def test_too_many_errors_closes_with_421(srv):
    with srv.client() as c:
        c.lhlo()
        c.send("BOGUS\r\n" * 25)
        replies = [c.expect("500 5.5.2") for _ in range(20)]
        assert len(replies) == 20
        c.expect("421 4.7.0")
        assert c.wait_closed() == []
    # The server itself carries on.
    with srv.client() as c:
        c.lhlo()


def test_pipelined_transaction(srv):
    """LHLO, MAIL, three RCPTs and DATA in one write; the message and QUIT
    in a second write.  Every reply arrives, in order."""
    with srv.client() as c:
        c.send("LHLO client.test\r\nMAIL FROM:<p@remote.test>\r\n"
               "RCPT TO:<%s>\r\nRCPT TO:<nobody@%s>\r\nRCPT TO:<%s>\r\n"
               "DATA\r\n" % (ALICE, DOMAIN, BOB))
        lhlo = c.reply()
        assert lhlo[0] == "250-" + SERVER_NAME and len(lhlo) == 6
        c.expect("250 2.1.0")
        assert c.expect("250 2.1.5") == \
            "250 2.1.5 <%s> Recipient OK" % ALICE
        c.expect("550 5.1.1 <nobody@%s>" % DOMAIN)
        c.expect("250 2.1.5 <%s>" % BOB)
        c.expect("354 ")
        c.send(dot_stuff(BODY) + b"QUIT\r\n")
        assert c.expect("250 2.0.0").startswith("250 2.0.0 <%s>" % ALICE)
        assert c.expect("250 2.0.0").startswith("250 2.0.0 <%s>" % BOB)
        c.expect("221 2.0.0")
        assert c.wait_closed() == []
    # Two recipients: one blob, no Delivered-To.
    assert [m.data for m in srv.export("alice")] == [stored("p@remote.test",
                                                           BODY)]
    assert [m.data for m in srv.export("bob")] == [stored("p@remote.test",
                                                         BODY)]


def test_two_transactions_in_one_write(srv):
    b1 = b"Subject: one\r\n\r\nfirst\r\n.dot\r\n"
    b2 = b"Subject: two\r\n\r\nsecond\r\n"
    with srv.client() as c:
        c.lhlo()
        c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n%s"
               b"MAIL FROM:<y@remote.test>\r\nRCPT TO:<%s>\r\n"
               b"RCPT TO:<%s>\r\nDATA\r\n%sQUIT\r\n" % (
                   ALICE.encode(), dot_stuff(b1), ALICE.encode(),
                   BOB.encode(), dot_stuff(b2)))
        for prefix in ("250 2.1.0", "250 2.1.5", "354 ",
                       "250 2.0.0 <%s>" % ALICE,
                       "250 2.1.0", "250 2.1.5", "250 2.1.5", "354 ",
                       "250 2.0.0 <%s>" % ALICE, "250 2.0.0 <%s>" % BOB,
                       "221 "):
            c.expect(prefix)
        assert c.wait_closed() == []
    assert sorted(m.data for m in srv.export("alice")) == sorted([
        stored("x@remote.test", b1, ALICE),
        stored("y@remote.test", b2)])
    assert [m.data for m in srv.export("bob")] == [
        stored("y@remote.test", b2)]


def test_half_closed_client_still_gets_replies(srv):
    """A client that sends everything and shuts down its sending side
    still gets every reply."""
    with srv.client() as c:
        c.send(b"LHLO c\r\nMAIL FROM:<h@remote.test>\r\nRCPT TO:<%s>\r\n"
               b"DATA\r\n%sQUIT\r\n" % (ALICE.encode(), dot_stuff(BODY)))
        c.sock.shutdown(socket.SHUT_WR)
        c.reply()
        for prefix in ("250 2.1.0", "250 2.1.5", "354", "250 2.0.0",
                       "221 "):
            c.expect(prefix)
    assert [m.data for m in srv.export("alice")] == [
        stored("h@remote.test", BODY, ALICE)]


def test_unix_socket_listener(server):
    s = server(unix=True)
    with s.unix_client() as c:
        assert c.greeting[0].startswith("220 ")
        c.lhlo()
        rr, dr = c.transaction("u@remote.test", [ALICE], BODY)
        assert rr[0].startswith("250 2.1.5") and dr[0].startswith(
            "250 2.0.0")
    assert [m.data for m in s.export("alice")] == [
        stored("u@remote.test", BODY, ALICE)]


def test_smtplib_lmtp_client(srv):
    """Python's own LMTP client, dot-stuffing and all."""
    body = b"Subject: smtplib\r\n\r\n.starts with a dot\r\n.\r\nend\r\n"
    code, msg = srv.deliver("py@remote.test", [ALICE], body)
    assert code == 250, msg
    assert [m.data for m in srv.export("alice")] == [
        stored("py@remote.test", body, ALICE)]


def test_lhlo_mid_transaction_resets_it(srv):
    with srv.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")
        c.cmd("RCPT TO:<%s>" % ALICE, "250 2.1.5")
        c.lhlo()
        c.cmd("DATA", "503 5.5.1")
        c.cmd("RCPT TO:<%s>" % ALICE, "503 5.5.1")
        c.cmd("MAIL FROM:<a@b.test>", "250 2.1.0")
    assert srv.export("alice") == []


def test_one_greppable_log_line_per_delivery(srv):
    with srv.client() as c:
        c.lhlo()
        c.transaction("log@remote.test", [ALICE, BOB], BODY)
        c.cmd("NOOP", "250")
    lines = [l for l in srv.log_text().splitlines() if " lmtp.deliver " in l]
    assert len(lines) == 2
    for l, rcpt, user in zip(lines, (ALICE, BOB), ("alice", "bob")):
        assert re.match(r"\S+ info lmtp\.deliver ", l), l
        assert " from=log@remote.test " in l and " to=%s " % rcpt in l
        assert " user=%s " % user in l and " mailbox=INBOX " in l
        assert " uid=1 " in l and l.endswith(" status=ok")
