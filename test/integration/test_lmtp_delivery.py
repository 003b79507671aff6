"""Where delivered mail lands and exactly which bytes are stored:
per-recipient replies, addressing, dot-unstuffing, SMTP smuggling,
line endings."""
from conftest import DOMAIN, dot_stuff, stored

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
BODY = b"Subject: hello\r\n\r\nHello, world.\r\n"


def folders(srv, user):
    """{mailbox: [bytes]} of the user's messages, INBOX included."""
    out = {}
    for m in srv.export(user):
        out.setdefault(m.mailbox, []).append(m.data)
    return out


def test_per_recipient_replies_in_rcpt_order(srv):
    rcpts = [BOB, "nobody@" + DOMAIN, ALICE, "ghost@" + DOMAIN, BOB]
    with srv.client() as c:
        c.lhlo()
        rr, dr = c.transaction("s@remote.test", rcpts, BODY)
        assert [r[:9] for r in rr] == ["250 2.1.5", "550 5.1.1", "250 2.1.5",
                                       "550 5.1.1", "250 2.1.5"]
        assert rr[1] == "550 5.1.1 <nobody@%s> User unknown" % DOMAIN
        # One reply per accepted recipient, after the dot, in RCPT order.
        assert len(dr) == 3
        assert dr[0].startswith("250 2.0.0 <%s>" % BOB)
        assert dr[1].startswith("250 2.0.0 <%s>" % ALICE)
        assert dr[2].startswith("250 2.0.0 <%s>" % BOB)
        c.cmd("NOOP", "250 2.0.0")
    # Three accepted recipients: no Delivered-To; bob got two copies.
    assert folders(srv, "alice") == {"INBOX": [stored("s@remote.test",
                                                      BODY)]}
    assert folders(srv, "bob") == {"INBOX": [stored("s@remote.test", BODY)]
                                   * 2}


def test_delivered_to_only_with_one_recipient(srv):
    with srv.client() as c:
        c.lhlo()
        # Two recipients given, one refused: one accepted recipient.
        rr, dr = c.transaction("s@remote.test", ["nobody@" + DOMAIN, ALICE],
                               BODY)
        assert [r[:3] for r in rr] == ["550", "250"] and len(dr) == 1
        assert dr[0].startswith("250 2.0.0")
    assert folders(srv, "alice") == {
        "INBOX": [stored("s@remote.test", BODY, ALICE)]}


def test_uids_grow_per_mailbox(srv):
    with srv.client() as c:
        c.lhlo()
        uids = []
        for i in range(3):
            _, dr = c.transaction("s@remote.test", [ALICE],
                                  b"Subject: %d\r\n\r\nx\r\n" % i)
            assert dr[0].startswith("250 2.0.0 <%s> Saved in INBOX as UID "
                                    % ALICE), dr
            uids.append(int(dr[0].rsplit(" ", 1)[1]))
        assert uids == [1, 2, 3]


def test_plus_folder_addressing(srv):
    with srv.client() as c:
        c.lhlo()
        for rcpt, subj in [("alice+Archive@" + DOMAIN, b"archive"),
                           ("alice+Sent@" + DOMAIN, b"sent"),
                           ("alice+nosuchfolder@" + DOMAIN, b"missing"),
                           ("alice+@" + DOMAIN, b"empty")]:
            rr, dr = c.transaction("s@remote.test", [rcpt],
                                   b"Subject: " + subj + b"\r\n\r\nx\r\n")
            assert rr[0].startswith("250 2.1.5"), rr
            assert dr[0].startswith("250 2.0.0"), dr
    f = folders(srv, "alice")
    assert f == {
        "Archive": [stored("s@remote.test", b"Subject: archive\r\n\r\nx\r\n",
                           "alice+Archive@" + DOMAIN)],
        "Sent": [stored("s@remote.test", b"Subject: sent\r\n\r\nx\r\n",
                        "alice+Sent@" + DOMAIN)],
        "INBOX": [
            stored("s@remote.test", b"Subject: missing\r\n\r\nx\r\n",
                   "alice+nosuchfolder@" + DOMAIN),
            stored("s@remote.test", b"Subject: empty\r\n\r\nx\r\n",
                   "alice+@" + DOMAIN)],
    }
    # Export of one mailbox shows the same.
    assert [m.data for m in srv.export("alice", "Archive")] == f["Archive"]


def test_plus_of_unknown_user_is_550(srv):
    with srv.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<s@remote.test>", "250")
        c.cmd("RCPT TO:<carol+Sent@%s>" % DOMAIN, "550 5.1.1")


def test_bare_user_recipient(srv):
    with srv.client() as c:
        c.lhlo()
        rr, dr = c.transaction("s@remote.test", ["alice"], BODY)
        assert rr[0].startswith("250 2.1.5") and dr[0].startswith("250 2.0.0")
        c.cmd("MAIL FROM:<s@remote.test>", "250")
        c.cmd("RCPT TO:<nobody>", "550 5.1.1")
        # Without brackets too (a sloppy client).
        c.cmd("RCPT TO:bob", "250 2.1.5")
    assert folders(srv, "alice") == {"INBOX": [stored("s@remote.test", BODY,
                                                      "alice")]}


def test_user_names_are_case_insensitive(srv):
    with srv.client() as c:
        c.lhlo()
        rr, dr = c.transaction("s@remote.test", ["ALICE@" + DOMAIN],
                               BODY)
        assert rr[0].startswith("250 2.1.5") and dr[0].startswith("250 2.0.0")
        rr, dr = c.transaction("s@remote.test", ["AliCe+Sent@Example.COM"],
                               BODY)
        assert dr[0].startswith("250 2.0.0")
    assert folders(srv, "alice") == {
        "INBOX": [stored("s@remote.test", BODY, "ALICE@" + DOMAIN)],
        "Sent": [stored("s@remote.test", BODY, "AliCe+Sent@Example.COM")]}
    assert folders(srv, "ALICE") == folders(srv, "alice")


def test_domains_restrict_recipients(server):
    s = server(args=["--domains", "example.com,example.org"])
    with s.client() as c:
        c.lhlo()
        c.cmd("MAIL FROM:<s@remote.test>", "250")
        c.cmd("RCPT TO:<alice@example.net>", "550 5.1.2")
        c.cmd("RCPT TO:<alice@sub.example.com>", "550 5.1.2")
        c.cmd("RCPT TO:<alice@example.com>", "250 2.1.5")
        c.cmd("RCPT TO:<bob@EXAMPLE.ORG>", "250 2.1.5")
        c.cmd("RCPT TO:<nobody@example.org>", "550 5.1.1")
        c.cmd("DATA", "354")
        c.send(dot_stuff(BODY))
        c.expect("250 2.0.0 <alice@example.com>")
        c.expect("250 2.0.0 <bob@EXAMPLE.ORG>")
    assert folders(s, "alice") == {"INBOX": [stored("s@remote.test", BODY)]}


# --- dot-unstuffing and the end of data ---------------------------------------

def deliver_raw(srv, data, rcpt=ALICE, sender="s@remote.test"):
    """Sends raw DATA bytes (already stuffed, terminator included) and
    returns the reply after them, then checks the session still works."""
    with srv.client() as c:
        c.lhlo()
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender, rcpt))
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect("354 ")
        c.send(data)
        reply = c.expect("")
        c.cmd("NOOP", "250 2.0.0")
        return reply


def test_dot_unstuffing(srv):
    data = (b"Subject: dots\r\n\r\n..x\r\n...\r\n..\r\n. y\r\n.\x85\r\n"
            b"a.b\r\n..\r\n.\r\n")
    assert deliver_raw(srv, data).startswith("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [stored(
        "s@remote.test",
        b"Subject: dots\r\n\r\n.x\r\n..\r\n.\r\n y\r\n\x85\r\na.b\r\n.\r\n",
        ALICE)]


def test_empty_message(srv):
    assert deliver_raw(srv, b".\r\n").startswith("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [
        stored("s@remote.test", b"", ALICE)]


SMUGGLED = (b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.com>\r\n"
            b"DATA\r\nSubject: smuggled\r\n\r\nowned\r\n")


def smuggle(srv, fake_end):
    """Sends a message with `fake_end` followed by a smuggled transaction,
    then the real end.  Only one message may come of it, holding all."""
    data = b"Subject: carrier\r\n\r\nhello\r\n" + fake_end + SMUGGLED + \
        b".\r\n"
    with srv.client() as c:
        c.lhlo()
        c.send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
               % ALICE)
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect("354 ")
        c.send(data + b"QUIT\r\n")
        assert c.expect("250 2.0.0").startswith("250 2.0.0 <%s>" % ALICE)
        c.expect("221 ")  # and nothing in between
        assert c.wait_closed() == []
    assert srv.export("bob") == []
    msgs = [m.data for m in srv.export("alice")]
    assert len(msgs) == 1
    return msgs[0]


def test_bare_lf_dot_does_not_end_data(srv):
    msg = smuggle(srv, b"\n.\n")
    assert msg == stored("s@remote.test",
                         b"Subject: carrier\r\n\r\nhello\r\n\r\n.\r\n"
                         + SMUGGLED, ALICE)


def test_lf_dot_crlf_does_not_end_data(srv):
    msg = smuggle(srv, b"\n.\r\n")
    assert msg == stored("s@remote.test",
                         b"Subject: carrier\r\n\r\nhello\r\n\r\n.\r\n"
                         + SMUGGLED, ALICE)


def test_crlf_dot_lf_does_not_end_data(srv):
    msg = smuggle(srv, b".\n")
    assert msg == stored("s@remote.test",
                         b"Subject: carrier\r\n\r\nhello\r\n.\r\n"
                         + SMUGGLED, ALICE)


def test_bare_cr_dot_does_not_end_data(srv):
    msg = smuggle(srv, b"x\r.\r\n")
    assert msg == stored("s@remote.test",
                         b"Subject: carrier\r\n\r\nhello\r\nx\r.\r\n"
                         + SMUGGLED, ALICE)


def test_crlf_dot_crlf_ends_data(srv):
    """The control: a real <CRLF>.<CRLF> ends the data, and what follows
    is read as commands."""
    with srv.client() as c:
        c.lhlo()
        c.send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
               % ALICE)
        for p in ("250 2.1.0", "250 2.1.5", "354 "):
            c.expect(p)
        c.send(b"Subject: one\r\n\r\nhello\r\n.\r\n" + SMUGGLED + b".\r\n")
        c.expect("250 2.0.0 <%s>" % ALICE)
        c.expect("250 2.1.0")
        c.expect("250 2.1.5 <bob@example.com>")
        c.expect("354 ")
        c.expect("250 2.0.0 <bob@example.com>")
    assert [m.data for m in srv.export("bob")] == [stored(
        "evil@remote.test", b"Subject: smuggled\r\n\r\nowned\r\n",
        "bob@example.com")]


def test_bare_lf_lines_stored_as_crlf(srv):
    data = b"Subject: lf\n\nline one\nline two\r\nline three\n..dot\n.\r\n"
    # "..dot\n" then ".\r\n": the dot line follows a bare LF, so it does
    # not end the data; the real end comes next.
    data += b"tail\r\n.\r\n"
    assert deliver_raw(srv, data).startswith("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [stored(
        "s@remote.test",
        b"Subject: lf\r\n\r\nline one\r\nline two\r\nline three\r\n.dot\r\n"
        b".\r\ntail\r\n", ALICE)]


def test_eight_bit_and_binaryish_bytes_kept(srv):
    body = (b"Subject: =?utf-8?q?h=C3=A9?=\r\n\r\n"
            + bytes(range(0x20, 0x7f)) + b"\r\n" + bytes(range(0x80, 0x100))
            + b"\r\n\ttab \x01\x1b ctl  \r\n")
    assert deliver_raw(srv, dot_stuff(body)).startswith("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [
        stored("s@remote.test", body, ALICE)]


def test_message_split_in_tiny_writes(srv):
    """Bytes trickling in one at a time, CR and LF split apart."""
    import time
    body = b"Subject: slow\r\n\r\n..dots\r\nbare\nend\r\n"
    with srv.client() as c:
        c.lhlo()
        wire = ("MAIL FROM:<s@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                % ALICE).encode()
        for i in range(len(wire)):
            c.send(wire[i:i + 1])
        for p in ("250 2.1.0", "250 2.1.5", "354 "):
            c.expect(p)
        data = body + b".\r\n"
        for i in range(len(data)):
            c.send(data[i:i + 1])
            if data[i:i + 1] in (b"\r", b"."):
                time.sleep(0.01)
        c.expect("250 2.0.0")
    assert [m.data for m in srv.export("alice")] == [stored(
        "s@remote.test", b"Subject: slow\r\n\r\n.dots\r\nbare\r\nend\r\n",
        ALICE)]
