"""A message is the same message whatever pieces it arrives in: APPEND
with the literal whole or streamed in pieces cut anywhere (a CR apart
from its LF, a header line cut, a NUL), CATENATE's TEXT parts cut at
every byte, the pieces of a MULTIAPPEND, and LMTP's DATA sent in pieces
all store the same bytes, with the same EMAILID (the GUID), size,
BODYSTRUCTURE and ENVELOPE as one APPEND of the whole message."""
import random
import socket
import time

import pytest

from conftest import DOMAIN, LMTPClient, parse_fetch

# CRLF lines as LMTP keeps them (no bare LF), a dot line, a bare CR, a
# NUL, a folded header, multipart with a message/rfc822 part.
MSG = (b"From: Alice <alice@example.org>\r\n"
       b"To: bob@example.org\r\n"
       b"Subject: pieces of one message, the subject folded\r\n"
       b" over two lines\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
       b"\r\n"
       b"--b1\r\n"
       b"Content-Type: text/plain; charset=us-ascii\r\n"
       b"\r\n"
       b"a NUL \0 here, a bare CR\r there\r\n"
       b".a line that LMTP dot-stuffs\r\n"
       + b"x" * 1000 + b"\r\n"
       b"--b1\r\n"
       b"Content-Type: message/rfc822\r\n"
       b"\r\n"
       b"Subject: inner\r\n"
       b"\r\n"
       b"inner body\r\n"
       b"--b1--\r\n")
# Bare LF and a line longer than anything a session buffers whole:
# IMAP only (LMTP re-ends bare LF lines and refuses such a line).
LONG = (b"Subject: long\nX-Long: " + b"h" * 70000 + b"\r\n\r\n"
        + b"b" * 200000 + b"\rbare CR, then bare LF\nend")
ITEMS = "(EMAILID RFC822.SIZE BODYSTRUCTURE ENVELOPE BINARY.PEEK[])"


def lit(data):
    return b"{%d+}\r\n" % len(data) + data


def cuts(n, seed, most=13):
    """Seeded random offsets in (0, n), ascending."""
    r = random.Random(seed)
    out, i = [], 0
    while True:
        i += r.randint(1, most)
        if i >= n:
            return out
        out.append(i)


def pieces(data, at):
    edges = [0] + list(at) + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def trickle(sock, parts):
    """Sends each part alone: TCP_NODELAY and a pause, so that the
    server reads them apart."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for p in parts:
        sock.sendall(p)
        time.sleep(0.002)


def fetched(c, mailbox):
    """[{item: value}] of every message in mailbox, in UID order."""
    c.ok("SELECT %s" % mailbox)
    return [parse_fetch(l)[1] for l in c.ok("UID FETCH 1:* " + ITEMS)
            if " FETCH " in l]


def assert_all_same(got, want):
    for i, g in enumerate(got):
        g = {k: v for k, v in g.items() if k != "UID"}
        assert g == want, "message %d of %d differs" % (i + 1, len(got))


def reference(c, msg):
    """APPEND of msg whole, to mailbox Ref: what every way must give."""
    c.ok("CREATE Ref")
    c.append("Ref", msg)
    (want,) = fetched(c, "Ref")
    want.pop("UID", None)
    assert want["BINARY[]"] == msg
    assert want["RFC822.SIZE"] == len(msg)
    return want


def streamed_append(c, mailbox, msg, at):
    """APPEND with a synchronizing literal sent in the pieces at cuts."""
    tag = c.tag()
    c.send(b"%s APPEND %s {%d}\r\n" % (tag.encode(), mailbox.encode(),
                                       len(msg)))
    assert c.line().startswith("+")
    trickle(c.sock, pieces(msg, at) + [b"\r\n"])
    _, done = c.read_until(tag)
    assert done.startswith("OK [APPENDUID"), done


@pytest.mark.parametrize("msg", [MSG, LONG], ids=["crlf", "long"])
def test_append_in_pieces(imap_srv, msg):
    c = imap_srv.raw()
    want = reference(c, msg)
    c.ok("CREATE Got")
    n = 0
    for seed in range(4):
        streamed_append(c, "Got", msg,
                        cuts(len(msg), seed, max(13, len(msg) // 200)))
        n += 1
    if len(msg) < 8000:
        streamed_append(c, "Got", msg, range(1, len(msg)))  # bytewise
        n += 1
    got = fetched(c, "Got")
    assert len(got) == n
    assert_all_same(got, want)
    c.close()


def test_catenate_cut_at_every_byte(imap_srv):
    """Two TEXT parts, cut at each offset (a header line across the
    literals' edge, a CR in one and its LF in the next; a stride through
    the long line), then many parts; MULTIAPPENDs of 16 at a time."""
    c = imap_srv.raw()
    want = reference(c, MSG)
    c.ok("CREATE Got")
    run = MSG.index(b"x" * 1000)
    at = [i for i in range(1, len(MSG)) if not run < i < run + 995 or
          i % 97 == 0]
    msgs = [[MSG[:i], MSG[i:]] for i in at]
    msgs.append(pieces(MSG, cuts(len(MSG), 9, 40)))
    for k in range(0, len(msgs), 16):
        tag = c.tag()
        c.send(tag.encode() + b" APPEND Got" + b"".join(
            b" CATENATE (" + b" ".join(b"TEXT " + lit(p) for p in parts) +
            b")" for parts in msgs[k:k + 16]) + b"\r\n")
        _, done = c.read_until(tag)
        assert done.startswith("OK [APPENDUID"), (k, done)
    got = fetched(c, "Got")
    assert len(got) == len(msgs)
    assert_all_same(got, want)
    c.close()


def test_catenate_long(imap_srv):
    """A long message put together from URLs of pieces of itself and
    TEXT parts, cut inside its long lines and between a CR and its LF
    (a command holds at most 64 KiB of TEXT: URLs carry the rest)."""
    c = imap_srv.raw()
    want = reference(c, LONG)
    c.ok("CREATE Got")
    cr = LONG.index(b"\r\n")
    at = [20, 30, 65535, 65540, cr + 1, cr + 3, 131073, 131080,
          len(LONG) - 30]
    parts = pieces(LONG, at)
    edges = [0] + at
    tail = b""
    for k, p in enumerate(parts):
        if k % 2 == 0:
            tail += b' URL "/Ref/;UID=1/;PARTIAL=%d.%d"' % (edges[k],
                                                           len(p))
        else:
            tail += b" TEXT " + lit(p)
    tag = c.tag()
    c.send(tag.encode() + b" APPEND Got CATENATE (" + tail[1:] + b")\r\n")
    _, done = c.read_until(tag)
    assert done.startswith("OK [APPENDUID"), done
    assert_all_same(fetched(c, "Got"), want)
    c.close()


def test_multiappend_of_pieces(imap_srv):
    """One MULTIAPPEND: the message as a LITERAL+ literal, as CATENATE
    parts, and streamed in pieces last, all one message each."""
    c = imap_srv.raw()
    want = reference(c, MSG)
    c.ok("CREATE Got")
    tag = c.tag()
    parts = pieces(MSG, cuts(len(MSG), 3, 60))
    c.send(tag.encode() + b" APPEND Got " + lit(MSG) +
           b" CATENATE (" + b" ".join(b"TEXT " + lit(p) for p in parts) +
           b") (\\Seen) {%d}\r\n" % len(MSG))
    assert c.line().startswith("+")
    trickle(c.sock, pieces(MSG, cuts(len(MSG), 5)) + [b"\r\n"])
    _, done = c.read_until(tag)
    assert done.startswith("OK [APPENDUID"), done
    got = fetched(c, "Got")
    assert len(got) == 3
    assert_all_same(got, want)
    c.close()


def test_lmtp_in_pieces(imap_srv):
    """LMTP's DATA sent whole and in pieces (a CR apart from its LF, the
    final dot's line cut) stores what an APPEND of the same bytes does:
    the message after the headers LMTP adds."""
    added = (b"Return-Path: <s@remote.test>\r\n"
             b"Delivered-To: alice@%s\r\n" % DOMAIN.encode())
    c = imap_srv.raw()
    want = reference(c, added + MSG)
    stuffed = MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    ways = [[stuffed]] + [pieces(stuffed, cuts(len(stuffed), seed))
                          for seed in range(3)]
    for parts in ways:
        with LMTPClient(imap_srv.port) as l:
            l.lhlo()
            l.cmd("MAIL FROM:<s@remote.test>", "250")
            l.cmd("RCPT TO:<alice@%s>" % DOMAIN, "250")
            l.cmd("DATA", "354")
            trickle(l.sock, parts)
            assert l.reply()[-1].startswith("250")
    got = fetched(c, "INBOX")
    assert len(got) == len(ways)
    assert_all_same(got, want)
    c.close()
