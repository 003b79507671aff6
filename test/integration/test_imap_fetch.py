"""FETCH: every data item and body section, partial fetches, \\Seen on
BODY[] but not on BODY.PEEK[], a multipart with a message/rfc822 part,
a large message, and the imaplib view of it all."""
import datetime
import imaplib
import re

import pytest

from conftest import parse_fetch

SIMPLE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    b"Subject: afternoon meeting\r\n"
    b"To: mooch@owatagu.example\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
SIMPLE_HEADER, SIMPLE_TEXT = SIMPLE.split(b"\r\n\r\n", 1)
SIMPLE_HEADER += b"\r\n\r\n"
FRED = [b"Fred Foobar", None, b"foobar", b"Blurdybloop.example"]
SIMPLE_ENVELOPE = [
    b"Mon, 7 Feb 1994 21:52:25 -0800", b"afternoon meeting",
    [FRED], [FRED], [FRED], [[None, None, b"mooch", b"owatagu.example"]],
    None, None, None, b"<B27397-0100000@Blurdybloop.example>"]
DATE = "17-Jul-1996 02:44:25 -0700"

# A multipart/mixed: text, quoted-printable html, a message/rfc822 that
# is itself multipart/alternative, a base64 attachment.
P1_HEAD = b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
P1_BODY = b"part one\r\nline two"
P2_HEAD = (b"Content-Type: text/html; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n"
           b"Content-Disposition: inline\r\n\r\n")
P2_BODY = b"<p>caf=C3=A9</p>"
I1_HEAD = b"Content-Type: text/plain\r\n\r\n"
I1_BODY = b"inner text"
I2_HEAD = b"Content-Type: text/html\r\n\r\n"
I2_BODY = b"<b>inner html</b>\r\n"
INNER_HEAD = (b"From: Inner <inner@example.org>\r\n"
              b"Subject: inner\r\n"
              b"Date: Wed, 3 Jan 2024 11:00:00 +0100\r\n"
              b"MIME-Version: 1.0\r\n"
              b'Content-Type: multipart/alternative; boundary="in"\r\n\r\n')
INNER_BODY = (b"--in\r\n" + I1_HEAD + I1_BODY + b"\r\n--in\r\n" + I2_HEAD
              + I2_BODY + b"\r\n--in--\r\n")
INNER = INNER_HEAD + INNER_BODY
P3_HEAD = b"Content-Type: message/rfc822\r\n\r\n"
P4_HEAD = (b'Content-Type: application/octet-stream; name="a.bin"\r\n'
           b"Content-Transfer-Encoding: base64\r\n"
           b'Content-Disposition: attachment; filename="a.bin"\r\n\r\n')
P4_BODY = b"AAECAw=="
MULTI_HEAD = (b"From: Alice <alice@example.com>\r\n"
              b'To: Bob <bob@example.com>, "Carol, C." <carol@example.com>\r\n'
              b"Cc: undisclosed-recipients:;\r\n"
              b"Subject: =?UTF-8?Q?caf=C3=A9?= multipart\r\n"
              b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
              b"Message-ID: <multi@example.com>\r\n"
              b"In-Reply-To: <prev@example.com>\r\n"
              b"MIME-Version: 1.0\r\n"
              b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n')
MULTI_BODY = (b"preamble\r\n--outer\r\n" + P1_HEAD + P1_BODY
              + b"\r\n--outer\r\n" + P2_HEAD + P2_BODY
              + b"\r\n--outer\r\n" + P3_HEAD + INNER
              + b"\r\n--outer\r\n" + P4_HEAD + P4_BODY
              + b"\r\n--outer--\r\nepilogue\r\n")
MULTI = MULTI_HEAD + MULTI_BODY


def lower(x):
    """x with every string lower-cased (MIME type names and parameter
    names are case-insensitive, so servers may differ there)."""
    if isinstance(x, list):
        return [lower(v) for v in x]
    if isinstance(x, (bytes, str)):
        return x.lower()
    return x


def fetch(c, command):
    """The items of the one FETCH response a command gives."""
    untagged = c.ok(command)
    fetches = [parse_fetch(l) for l in untagged if " FETCH " in l]
    assert len(fetches) == 1, untagged
    return fetches[0][1]


@pytest.fixture
def box(imap_srv):
    """A session with INBOX selected: 1 = SIMPLE, 2 = MULTI."""
    c = imap_srv.raw()
    c.append("INBOX", SIMPLE, flags="\\Flagged", date=DATE)
    c.append("INBOX", MULTI, date=DATE)
    c.ok("SELECT INBOX")
    yield c
    c.close()


def test_uid_flags_size(box):
    f = fetch(box, "FETCH 1 (UID FLAGS RFC822.SIZE)")
    assert f == {"UID": 1, "FLAGS": ["\\Flagged", "\\Recent"],
                 "RFC822.SIZE": len(SIMPLE)}
    f = fetch(box, "UID FETCH 2 RFC822.SIZE")
    assert f == {"UID": 2, "RFC822.SIZE": len(MULTI)}


def test_internaldate(box):
    f = fetch(box, "FETCH 1 INTERNALDATE")
    got = f["INTERNALDATE"].decode()
    assert re.match(r"^[ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}$",
                    got), got
    parse = lambda s: datetime.datetime.strptime(s.strip(),
                                                 "%d-%b-%Y %H:%M:%S %z")
    assert parse(got) == parse(DATE)


def test_internaldate_of_append_without_date_is_now(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", SIMPLE)
        c.ok("SELECT INBOX")
        got = fetch(c, "FETCH 1 INTERNALDATE")["INTERNALDATE"].decode()
        t = datetime.datetime.strptime(got.strip(), "%d-%b-%Y %H:%M:%S %z")
        now = datetime.datetime.now(datetime.timezone.utc)
        assert abs((now - t).total_seconds()) < 120, got


def test_rfc822_items(box):
    assert fetch(box, "FETCH 1 RFC822.HEADER") == {
        "RFC822.HEADER": SIMPLE_HEADER}
    # RFC822.HEADER is a peek.
    assert fetch(box, "FETCH 1 FLAGS")["FLAGS"] == ["\\Flagged", "\\Recent"]
    f = fetch(box, "FETCH 1 RFC822.TEXT")
    assert f["RFC822.TEXT"] == SIMPLE_TEXT
    assert f["FLAGS"] == ["\\Seen", "\\Flagged", "\\Recent"] or \
        sorted(f["FLAGS"]) == sorted(["\\Seen", "\\Flagged", "\\Recent"])
    f = fetch(box, "FETCH 2 RFC822")
    assert f["RFC822"] == MULTI
    assert "\\Seen" in f["FLAGS"]


def test_envelope_simple(box):
    assert fetch(box, "FETCH 1 ENVELOPE") == {"ENVELOPE": SIMPLE_ENVELOPE}


def test_envelope_multi(box):
    env = fetch(box, "FETCH 2 ENVELOPE")["ENVELOPE"]
    alice = [b"Alice", None, b"alice", b"example.com"]
    assert env == [
        b"Tue, 2 Jan 2024 10:00:00 +0000",
        b"=?UTF-8?Q?caf=C3=A9?= multipart",
        [alice], [alice], [alice],
        [[b"Bob", None, b"bob", b"example.com"],
         [b"Carol, C.", None, b"carol", b"example.com"]],
        # An empty group: start and end markers (RFC 3501 7.4.2).
        [[None, None, b"undisclosed-recipients", None],
         [None, None, None, None]],
        None, b"<prev@example.com>", b"<multi@example.com>"]


def test_envelope_missing_headers(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", b"X-Nothing: here\r\n\r\nbody\r\n")
        c.ok("SELECT INBOX")
        assert fetch(c, "FETCH 1 ENVELOPE") == {
            "ENVELOPE": [None] * 10}


def test_envelope_sender_reply_to(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", b"From: a@x.test\r\nSender: s@y.test\r\n"
                 b"Reply-To: r@z.test\r\nBcc: b@w.test\r\n"
                 b'Subject: "quoted" \\ back\r\n\r\n')
        c.ok("SELECT INBOX")
        env = fetch(c, "FETCH 1 ENVELOPE")["ENVELOPE"]
        assert env == [None, b'"quoted" \\ back',
                       [[None, None, b"a", b"x.test"]],
                       [[None, None, b"s", b"y.test"]],
                       [[None, None, b"r", b"z.test"]],
                       None, None, [[None, None, b"b", b"w.test"]],
                       None, None]


def test_bodystructure_simple(box):
    bs = fetch(box, "FETCH 1 BODYSTRUCTURE")["BODYSTRUCTURE"]
    lines = SIMPLE_TEXT.count(b"\n")
    assert lower(bs[:8]) == [b"text", b"plain", [b"charset", b"us-ascii"],
                             None, None, b"7bit", len(SIMPLE_TEXT), lines]
    # Extension data: MD5, disposition, language, location; all NIL.
    assert all(v is None for v in bs[8:]), bs
    body = fetch(box, "FETCH 1 BODY")["BODY"]
    assert lower(body) == lower(bs[:8])


def test_bodystructure_multipart(box):
    bs = lower(fetch(box, "FETCH 2 BODYSTRUCTURE")["BODYSTRUCTURE"])
    p1, p2, p3, p4 = bs[:4]
    assert bs[4] == b"mixed"
    assert bs[5] == [b"boundary", b"outer"]
    assert p1[:8] == [b"text", b"plain", [b"charset", b"utf-8"], None, None,
                      b"7bit", len(P1_BODY), 1]
    assert p2[:8] == [b"text", b"html", [b"charset", b"utf-8"], None, None,
                      b"quoted-printable", len(P2_BODY), 0]
    assert p2[9] == [b"inline", None]
    # message/rfc822: envelope, body structure and lines of the inner one.
    assert p3[:7] == [b"message", b"rfc822", None, None, None, b"7bit",
                      len(INNER)]
    inner_env, inner_bs, inner_lines = p3[7], p3[8], p3[9]
    assert inner_env[1] == b"inner"
    assert inner_env[2] == [[b"inner", None, b"inner", b"example.org"]]
    assert inner_lines == INNER.count(b"\n")
    assert inner_bs[2] == b"alternative"
    assert inner_bs[0][:8] == [b"text", b"plain", [b"charset", b"us-ascii"],
                               None, None, b"7bit", len(I1_BODY), 0]
    assert inner_bs[1][:8] == [b"text", b"html", [b"charset", b"us-ascii"],
                               None, None, b"7bit", len(I2_BODY), 1]
    assert p4[:7] == [b"application", b"octet-stream", [b"name", b"a.bin"],
                      None, None, b"base64", len(P4_BODY)]
    assert p4[8] == [b"attachment", [b"filename", b"a.bin"]]
    # BODY is the same without extension data.
    body = lower(fetch(box, "FETCH 2 BODY")["BODY"])
    assert body[4] == b"mixed" and len(body) == 5
    assert body[0] == p1[:8]


SECTIONS = {
    "": MULTI,
    "HEADER": MULTI_HEAD,
    "TEXT": MULTI_BODY,
    "1": P1_BODY,
    "1.MIME": P1_HEAD,
    "2": P2_BODY,
    "2.MIME": P2_HEAD,
    "3": INNER,
    "3.MIME": P3_HEAD,
    "3.HEADER": INNER_HEAD,
    "3.TEXT": INNER_BODY,
    "3.1": I1_BODY,
    "3.1.MIME": I1_HEAD,
    "3.2": I2_BODY,
    "4": P4_BODY,
}


def test_body_sections(box):
    wrong = []
    for section, data in sorted(SECTIONS.items()):
        f = fetch(box, "FETCH 2 BODY.PEEK[%s]" % section)
        if f != {"BODY[%s]" % section: data}:
            wrong.append("BODY.PEEK[%s]: got %r, expected %r" % (
                section, f, data))
    assert not wrong, "\n".join(wrong)


def test_body_section_of_single_part(box):
    assert fetch(box, "FETCH 1 BODY.PEEK[1]") == {"BODY[1]": SIMPLE_TEXT}
    assert fetch(box, "FETCH 1 BODY.PEEK[TEXT]") == {
        "BODY[TEXT]": SIMPLE_TEXT}


def test_header_fields(box):
    f = fetch(box, "FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject FROM x-none)]")
    (key, value), = f.items()
    assert key == "BODY[HEADER.FIELDS (SUBJECT FROM X-NONE)]"
    # In the message's order, with the blank line at the end.
    assert value == (b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
                     b"Subject: afternoon meeting\r\n\r\n")
    f = fetch(box, "FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Subject From "
              "Date To Message-Id)]")
    (key, value), = f.items()
    assert key == ("BODY[HEADER.FIELDS.NOT (SUBJECT FROM DATE TO "
                   "MESSAGE-ID)]")
    assert value == (b"MIME-Version: 1.0\r\n"
                     b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n")
    f = fetch(box, "FETCH 2 BODY.PEEK[3.HEADER.FIELDS (SUBJECT)]")
    assert f == {"BODY[3.HEADER.FIELDS (SUBJECT)]": b"Subject: inner\r\n\r\n"}
    f = fetch(box, "FETCH 1 BODY.PEEK[HEADER.FIELDS (X-NONE)]")
    assert f == {"BODY[HEADER.FIELDS (X-NONE)]": b"\r\n"}


def test_folded_and_repeated_header_fields(imap_srv):
    msg = (b"Received: one\r\n\tfolded\r\nX-A: 1\r\nReceived: two\r\n"
           b"\r\nbody\r\n")
    with imap_srv.raw() as c:
        c.append("INBOX", msg)
        c.ok("SELECT INBOX")
        f = fetch(c, "FETCH 1 BODY.PEEK[HEADER.FIELDS (RECEIVED)]")
        assert list(f.values()) == [
            b"Received: one\r\n\tfolded\r\nReceived: two\r\n\r\n"]


def test_partial_fetches(box):
    assert fetch(box, "FETCH 1 BODY.PEEK[]<0.10>") == {
        "BODY[]<0>": SIMPLE[:10]}
    assert fetch(box, "FETCH 1 BODY.PEEK[]<10.20>") == {
        "BODY[]<10>": SIMPLE[10:30]}
    assert fetch(box, "FETCH 2 BODY.PEEK[1]<5.100>") == {
        "BODY[1]<5>": P1_BODY[5:105]}
    assert fetch(box, "FETCH 1 BODY.PEEK[TEXT]<6.3>") == {
        "BODY[TEXT]<6>": SIMPLE_TEXT[6:9]}
    # Past the end: an empty string (RFC 3501 6.4.5).
    assert fetch(box, "FETCH 1 BODY.PEEK[]<100000.10>") == {
        "BODY[]<100000>": b""}
    assert fetch(box, "FETCH 1 BODY.PEEK[HEADER]<0.5>") == {
        "BODY[HEADER]<0>": SIMPLE_HEADER[:5]}


def test_missing_section_is_empty(box):
    f = fetch(box, "FETCH 2 BODY.PEEK[9]")
    assert f in ({"BODY[9]": b""}, {"BODY[9]": None})


def test_body_sets_seen_peek_does_not(box):
    assert "\\Seen" not in fetch(box, "FETCH 1 FLAGS")["FLAGS"]
    f = fetch(box, "FETCH 1 BODY.PEEK[]")
    assert f == {"BODY[]": SIMPLE}
    assert "\\Seen" not in fetch(box, "FETCH 1 FLAGS")["FLAGS"]
    f = fetch(box, "FETCH 1 BODY[HEADER]")
    # The changed flags come with the data (RFC 3501 6.4.5, as Dovecot).
    assert f["BODY[HEADER]"] == SIMPLE_HEADER
    assert "\\Seen" in f["FLAGS"]
    assert "\\Seen" in fetch(box, "FETCH 1 FLAGS")["FLAGS"]
    # Already seen: no FLAGS needed, and the data is the same.
    f = fetch(box, "FETCH 2 BODY[1]")
    assert "\\Seen" in f["FLAGS"] and f["BODY[1]"] == P1_BODY
    assert box.ok("SEARCH UNSEEN") == ["* SEARCH"]


def test_uid_fetch_includes_uid(box):
    untagged = box.ok("UID FETCH 1:* FLAGS")
    got = [parse_fetch(l) for l in untagged]
    assert [(n, f["UID"]) for n, f in got] == [(1, 1), (2, 2)]


def test_macros(box):
    fast = fetch(box, "FETCH 1 FAST")
    assert set(fast) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}
    all_ = fetch(box, "FETCH 1 ALL")
    assert set(all_) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}
    assert all_["ENVELOPE"] == SIMPLE_ENVELOPE
    full = fetch(box, "FETCH 1 FULL")
    assert set(full) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                         "BODY"}


def test_many_items_one_response(box):
    f = fetch(box, "FETCH 2 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
              "(SUBJECT)] BODY.PEEK[1]<0.4> ENVELOPE MODSEQ)")
    assert f["UID"] == 2 and f["RFC822.SIZE"] == len(MULTI)
    assert f["BODY[HEADER.FIELDS (SUBJECT)]"] == (
        b"Subject: =?UTF-8?Q?caf=C3=A9?= multipart\r\n\r\n")
    assert f["BODY[1]<0>"] == b"part"
    assert isinstance(f["MODSEQ"][0], int)


def test_sequence_sets(imap_srv):
    with imap_srv.raw() as c:
        for i in range(6):
            c.append("INBOX", b"Subject: %d\r\n\r\nx\r\n" % i)
        c.ok("SELECT INBOX")

        def seqs(cmd):
            return [parse_fetch(l)[0] for l in c.ok(cmd)]
        assert seqs("FETCH 1:* UID") == [1, 2, 3, 4, 5, 6]
        assert seqs("FETCH *:4 UID") == [4, 5, 6]
        assert seqs("FETCH 2,4:5,1 UID") == [1, 2, 4, 5]
        assert seqs("FETCH * UID") == [6]
        assert seqs("FETCH 5:3,3:4 UID") == [3, 4, 5]
        assert seqs("UID FETCH 4:100 UID") == [4, 5, 6]
        # A UID range past the end still names the last message.
        assert seqs("UID FETCH 100:* UID") == [6]
        assert seqs("UID FETCH 50:60 UID") == []
        untagged, done = c.cmd("FETCH 7 UID")
        assert done.startswith(("BAD", "NO")), done
        for bad in ("FETCH 0 UID", "FETCH 1: UID", "FETCH a UID",
                    "FETCH 1 (UID", "FETCH 1 NOSUCHITEM",
                    "FETCH 1 BODY[NOSUCH]"):
            untagged, done = c.cmd(bad)
            assert done.startswith("BAD"), (bad, done)


def test_fetch_whole_mailbox_streams(imap_srv):
    n = 300
    with imap_srv.raw() as c:
        for i in range(n):
            c.append("INBOX", b"Subject: m%d\r\n\r\n" % i + b"x" * i + b"\r\n")
        c.ok("SELECT INBOX")
        untagged = c.ok("FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])",
                        timeout=60)
        got = [parse_fetch(l) for l in untagged]
        assert [s for s, _ in got] == list(range(1, n + 1))
        for i, (s, f) in enumerate(got):
            body = b"Subject: m%d\r\n\r\n" % i + b"x" * i + b"\r\n"
            assert f == {"UID": i + 1, "RFC822.SIZE": len(body),
                         "BODY[]": body}


def test_large_message(imap_srv, rng):
    big = b"Subject: big\r\n\r\n" + b"".join(
        bytes(rng.choices(b"abcdefghij ", k=998)) + b"\r\n"
        for _ in range(3 * 1024))
    c = imap_srv.imap()
    typ, data = c.append("INBOX", None, None, big)
    assert typ == "OK", data
    c.select("INBOX")
    typ, data = c.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][0] == b"1 (RFC822.SIZE %d BODY[] {%d}" % (len(big),
                                                            len(big))
    assert data[0][1] == big
    typ, data = c.fetch("1", "(BODY.PEEK[]<1000000.100>)")
    assert data[0][1] == big[1000000:1000100]
    typ, data = c.fetch("1", "(BODY.PEEK[TEXT])")
    assert data[0][1] == big[len(b"Subject: big\r\n\r\n"):]
    c.logout()


def test_eight_bit_and_nul_free_binary_bytes(imap_srv):
    msg = (b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"Gr\xfc\xdfe \"quoted\" \\ back\r\n")
    with imap_srv.raw() as c:
        c.append("INBOX", msg)
        c.ok("SELECT INBOX")
        assert fetch(c, "FETCH 1 BODY.PEEK[]") == {"BODY[]": msg}
        assert fetch(c, "FETCH 1 BODY.PEEK[1]") == {
            "BODY[1]": b"Gr\xfc\xdfe \"quoted\" \\ back\r\n"}


def test_imaplib_fetch(imap_srv):
    c = imap_srv.imap()
    c.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(0), SIMPLE)
    c.select("INBOX")
    typ, data = c.fetch("1", "(UID FLAGS RFC822.SIZE)")
    assert typ == "OK"
    assert data == [b"1 (UID 1 FLAGS (\\Seen \\Recent) RFC822.SIZE %d)"
                    % len(SIMPLE)] or re.match(
        rb"^1 \((?=.*UID 1)(?=.*FLAGS \(\\Seen \\Recent\))"
        rb"(?=.*RFC822.SIZE %d).*\)$" % len(SIMPLE), data[0]), data
    typ, data = c.uid("FETCH", "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: afternoon meeting\r\n\r\n"
    typ, data = c.fetch("1", "(INTERNALDATE)")
    t = imaplib.Internaldate2tuple(data[0])
    assert t is not None
    c.logout()



def test_fetch_survives_delete_of_its_mailbox(imap_srv):
    """A FETCH streaming a big message keeps its bytes when another
    session deletes the mailbox meanwhile; the blob is collected once no
    reader has it open (it was left in the store for good before)."""
    import socket
    import sqlite3
    import time
    body = b"From: a@b.test\r\nSubject: big\r\n\r\n" + b"".join(
        b"%07d %s\r\n" % (i, b"y" * 90) for i in range(60000))
    with imap_srv.raw() as c:
        c.ok("CREATE big")
        c.append("big", body)
    with imap_srv.raw() as a:
        a.ok("SELECT big")
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        a.send("f1 FETCH 1 BODY.PEEK[]\r\n")
        got = [a.sock.recv(4096)]
        assert got[0].startswith(b"* 1 FETCH"), got[0][:80]
        with imap_srv.raw() as b:
            b.ok("DELETE big")
            b.ok("NOOP")
        a.sock.settimeout(30)
        while b"\r\nf1 " not in b"".join(got[-2:]):
            chunk = a.sock.recv(1 << 16)
            assert chunk, "connection closed"
            got.append(chunk)
    reply = b"".join(got)
    head = b"* 1 FETCH (BODY[] {%d}\r\n" % len(body)
    assert reply.startswith(head), reply[:80]
    assert reply[len(head):len(head) + len(body)] == body
    db = sqlite3.connect("file:%s/mailrepd.db?mode=ro" % imap_srv.data,
                         uri=True)
    try:
        for _ in range(100):
            left = db.execute("SELECT count(*) FROM blob WHERE size = ?",
                              (len(body),)).fetchone()[0]
            if left == 0:
                break
            time.sleep(0.1)
        assert left == 0, "the deleted mailbox's blob was never collected"
    finally:
        db.close()
