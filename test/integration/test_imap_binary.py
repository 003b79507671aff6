"""BINARY (RFC 3516): FETCH BINARY[part], BINARY.PEEK and BINARY.SIZE
give a part's body with its Content-Transfer-Encoding undone, partials
count decoded bytes, a NUL travels in a literal8 "~{n}", an encoding the
server cannot undo is NO [UNKNOWN-CTE], and what is not a part number is
BAD.  The messages and the bytes expected are those of imaptest's
fetch-binary-mime groups, which Dovecot 2.3 passes; a message of 3 MiB
of random bytes checks that decoding in chunks loses nothing."""
import base64
import imaplib
import os
import random

import pytest

from conftest import PASSWORD, parse_fetch

B64_PARTS = [
    b"\r\naGVs\r\nbG8gd29y\r\nbGQ=\r\n",
    b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n\r\n",
    b"aGVsbG8g\r\ndG8geW91IHRv\r\nbw==\r\n",
    b"aGVsbG8gdG8gZXZlcnlvbmUh",
    b"YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6\r\n",
]
B64_DECODED = [b"hello world", b"hello world", b"hello to you too",
               b"hello to everyone!", b"abcdefg\rhijkl\r\nmno\npqrstuvqxyz"]
QP_BODY = (b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\n"
           b"foo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\n"
           b"foo_bar\r\n")
QP_DECODED = (b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\n"
              b"foo b\r\nfoo\r\nbar\r\nfoo_bar\r\n")


def multipart(parts, boundary=b"foo bar"):
    """A multipart/mixed of (header, body) parts."""
    out = (b"From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 "
           b"+0200\r\nMime-Version: 1.0\r\nContent-Type: multipart/mixed;"
           b' boundary="' + boundary + b'"\r\n\r\nRoot MIME prologue\r\n')
    for head, body in parts:
        out += b"\r\n--" + boundary + b"\r\n" + head + b"\r\n" + body
    return out + b"\r\n--" + boundary + b"--\r\nRoot MIME epilogue\r\n"


def cte(name):
    return (b"Content-Type: text/x-myown; charset=us-ascii\r\n"
            b"Content-Transfer-Encoding: " + name + b"\r\n")


B64_MSG = multipart([(cte(b"base64"), b) for b in B64_PARTS])
QP_MSG = multipart([(cte(b"quoted-printable"), QP_BODY)])
INNER = (b"From: sub@domain.org\r\nSubject: submsg\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n")
MIXED_MSG = multipart([
    (b"Content-Type: text/plain\r\n", b"plain 8bit \xe9t\xe9"),
    (b"Content-Type: message/rfc822\r\n", INNER),
    (cte(b"x-uuencode"), b"begin 644 x\r\nend"),
    (cte(b"BASE64") + b"Content-Type: application/octet-stream\r\n",
     base64.encodebytes(b"a\0b\r\n\0")),
])


def items(c, command):
    """The items of the one FETCH response, and the raw line."""
    untagged = c.ok(command)
    lines = [l for l in untagged if " FETCH " in l]
    assert len(lines) == 1, untagged
    return parse_fetch(lines[0])[1], lines[0]


@pytest.fixture
def box(imap_srv):
    """INBOX: 1 = the base64 parts, 2 = quoted-printable, 3 = mixed."""
    c = imap_srv.raw()
    for m in (B64_MSG, QP_MSG, MIXED_MSG):
        c.append("INBOX", m)
    c.ok("SELECT INBOX")
    yield c
    c.close()


def test_capability(imap_srv):
    c = imap_srv.raw()
    caps = " ".join(c.ok("CAPABILITY")).split()
    assert "BINARY" in caps
    c.close()


def test_base64_parts_and_sizes(box):
    want = {}
    for i, d in enumerate(B64_DECODED, 1):
        want["BINARY[%d]" % i] = d
        want["BINARY.SIZE[%d]" % i] = len(d)
    got, _ = items(box, "FETCH 1 (" + " ".join(
        "BINARY.SIZE[%d] BINARY.PEEK[%d]" % (i, i) for i in range(1, 6)) +
        ")")
    assert got == want


def test_quoted_printable_drops_padding_and_soft_breaks(box):
    got, _ = items(box, "FETCH 2 (BINARY.SIZE[1] BINARY.PEEK[1])")
    assert got == {"BINARY.SIZE[1]": 65, "BINARY[1]": QP_DECODED}


@pytest.mark.parametrize("start,length", [(0, 10), (10, 10), (15, 10),
                                          (20, 10), (40, 100), (65, 5),
                                          (99, 3), (0, 0)])
def test_partials_count_decoded_bytes(box, start, length):
    got, _ = items(box, "FETCH 2 (BINARY.PEEK[1]<%d.%d>)" % (start, length))
    assert got == {"BINARY[1]<%d>" % start:
                   QP_DECODED[start:start + length]}


def test_whole_message_and_message_parts_are_as_stored(box):
    got, _ = items(box, "FETCH 3 (BINARY.PEEK[] BINARY.SIZE[] "
                   "BINARY.PEEK[2] BINARY.PEEK[1] BINARY.SIZE[9])")
    assert got["BINARY[]"] == MIXED_MSG
    assert got["BINARY.SIZE[]"] == len(MIXED_MSG)
    # A message/rfc822 part has no encoding of its own: as it is.
    assert got["BINARY[2]"] == INNER
    assert got["BINARY[1]"] == b"plain 8bit \xe9t\xe9"
    # A part that does not exist is empty, as its BODY[] is.
    assert got["BINARY.SIZE[9]"] == 0
    got, _ = items(box, "FETCH 3 (BINARY.PEEK[2.1])")
    assert got == {"BINARY[2.1]": b"hello"}


def test_nul_needs_a_literal8(box):
    got, line = items(box, "FETCH 3 (BINARY.PEEK[4] BINARY.PEEK[1])")
    assert got["BINARY[4]"] == b"a\0b\r\n\0"
    assert "BINARY[4] ~{6}\r\n" in line
    # No NUL: a plain literal, and BODY[] still turns NUL into 0x80.
    assert "BINARY[1] {" in line
    got, _ = items(box, "FETCH 3 (BODY.PEEK[4])")
    assert got["BODY[4]"] == base64.encodebytes(b"a\0b\r\n\0")


def test_unknown_encoding_is_refused(box):
    tag = box.tag()
    box.send("%s FETCH 3 (BINARY.PEEK[3])\r\n" % tag)
    untagged, reply = box.read_until(tag)
    assert reply.startswith("NO [UNKNOWN-CTE]"), reply
    # The session goes on.
    got, _ = items(box, "FETCH 3 (BINARY.SIZE[1])")
    assert got == {"BINARY.SIZE[1]": 14}


@pytest.mark.parametrize("item", [
    "BINARY[1.HEADER]", "BINARY[TEXT]", "BINARY[0]", "BINARY[1.]",
    "BINARY[.1]", "BINARY[1..2]", "BINARY.SIZE[1]<0.5>", "BINARY[1]<x>",
    "BINARY.PEEK[1", "BINARY.SIZES[1]", "BINARY[1.2.MIME]"])
def test_bad_binary_items(box, item):
    tag = box.tag()
    box.send("%s FETCH 1 (%s)\r\n" % (tag, item))
    _, reply = box.read_until(tag)
    assert reply.startswith("BAD"), (item, reply)


def test_binary_sets_seen_peek_and_size_do_not(box):
    for item in ("BINARY.PEEK[1]", "BINARY.SIZE[1]"):
        items(box, "FETCH 2 (%s)" % item)
        got, _ = items(box, "FETCH 2 (FLAGS)")
        assert "\\Seen" not in got["FLAGS"], item
    got, _ = items(box, "FETCH 2 (BINARY[1])")
    assert "\\Seen" in got["FLAGS"]


def test_big_attachment_decodes_whole_with_imaplib(imap_srv):
    """3 MiB of random bytes (NULs among them) as base64 lines, fetched
    whole, in ranges and by size through Python's imaplib."""
    data = random.Random(3516).randbytes(3 * 1024 * 1024 + 7)
    msg = multipart([
        (b"Content-Type: text/plain\r\n", b"see attached"),
        (b"Content-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: base64\r\n",
         base64.encodebytes(data).replace(b"\n", b"\r\n"))])
    c = imaplib.IMAP4("127.0.0.1", imap_srv.imap_port)
    c.login("alice", PASSWORD)
    assert c.append("INBOX", None, None, msg)[0] == "OK"
    c.select("INBOX")
    typ, resp = c.fetch("1", "(BINARY.SIZE[2] BINARY.PEEK[2])")
    assert typ == "OK"
    assert resp[0][0].endswith(b"BINARY[2] ~{%d}" % len(data))
    assert b"BINARY.SIZE[2] %d " % len(data) in resp[0][0]
    assert resp[0][1] == data
    off = 1024 * 1024 - 3
    typ, resp = c.fetch("1", "(BINARY.PEEK[2]<%d.100000>)" % off)
    assert resp[0][1] == data[off:off + 100000]
    c.logout()


def test_random_encodings_round_trip(imap_srv):
    """Random bytes through base64 and quoted-printable, as encoders
    write them, come back byte for byte."""
    import quopri
    rng = random.Random(2045)
    c = imap_srv.raw()
    bodies = []
    for _ in range(20):
        raw = bytes(rng.choice(b"ab \t=\r\n\0\xff.") for _ in
                    range(rng.randrange(0, 3000)))
        raw = raw.replace(b"\r", b"")
        enc = rng.choice([b"base64", b"quoted-printable"])
        if enc == b"base64":
            body = base64.encodebytes(raw)
        else:
            body = quopri.encodestring(raw)
        body = body.replace(b"\n", b"\r\n")
        if enc == b"quoted-printable":
            raw = raw.replace(b"\n", b"\r\n")
        bodies.append(raw)
        c.append("INBOX", multipart([(cte(enc), body)]))
    c.ok("SELECT INBOX")
    for i, raw in enumerate(bodies, 1):
        got, _ = items(c, "FETCH %d (BINARY.PEEK[1])" % i)
        assert got["BINARY[1]"] == raw, i
    c.close()


BINARY_MSG = (b"From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 "
              b"+0200\r\nMime-Version: 1.0\r\nContent-Type: application/"
              b"octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
              b"\x01-\0\xff\r\n\r\n")


def append8(c, mailbox, messages, plus=False):
    """APPEND (MULTIAPPEND when several) with each message a literal8;
    returns the tagged reply."""
    tag = c.tag()
    head = "%s APPEND %s" % (tag, mailbox)
    for i, m in enumerate(messages):
        c.send("%s ~{%d%s}\r\n" % (head, len(m), "+" if plus else ""))
        if not plus:
            assert c.line().startswith("+"), "no continuation"
        c.send(m)
        head = ""
    c.send("\r\n")
    return c.read_until(tag)[1]


@pytest.mark.parametrize("plus", [False, True])
def test_append_takes_a_literal8_with_nuls(imap_srv, plus):
    """imaptest's append-binary: the message is stored byte for byte;
    BINARY gives its NUL back, BODY[] shows it as 0x80."""
    c = imap_srv.raw()
    reply = append8(c, "INBOX", [BINARY_MSG, B64_MSG], plus)
    assert reply.startswith("OK"), reply
    c.ok("SELECT INBOX")
    got, line = items(c, "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] "
                      "BINARY.PEEK[])")
    assert got == {"BINARY.SIZE[1]": 8, "BINARY[1]": b"\x01-\0\xff\r\n\r\n",
                   "BINARY[]": BINARY_MSG}
    assert "BINARY[1] ~{8}" in line
    got, _ = items(c, "FETCH 1 (BODY.PEEK[1])")
    assert got["BODY[1]"] == b"\x01-\x80\xff\r\n\r\n"
    got, _ = items(c, "FETCH 2 (BINARY.PEEK[5])")
    assert got["BINARY[5]"] == B64_DECODED[4]
    c.close()


@pytest.mark.parametrize("command", ["SELECT ~{5}", "LOGIN alice ~{5}",
                                     "FETCH 1 (~{5}"])
def test_literal8_outside_append_is_bad(imap_srv, command):
    c = imap_srv.raw()
    c.ok("SELECT INBOX")
    tag = c.tag()
    c.send("%s %s\r\n" % (tag, command))
    assert c.line().startswith("+")
    c.send("INBOX" + (")" if "(" in command else "") + "\r\n")
    _, reply = c.read_until(tag)
    assert reply.startswith("BAD"), reply
    c.ok("NOOP")
    c.close()
