"""A FETCH of items the message row alone answers (FLAGS, UID, MODSEQ,
INTERNALDATE, SAVEDATE) reads the rows of many messages at once; it
answers exactly what one look-up per message answers (as a FETCH that
also asks RFC822.SIZE does): for sets in any order and shape, across
the batches it reads, with keywords long enough to outgrow its buffer,
with CHANGEDSINCE, and with messages another session expunged that this
one has not been told of yet."""
import re

LONG_KEYWORD = "kw" + "x" * 200


def fill(c, n):
    """n messages: flags and keywords vary, some carry long keywords."""
    for i in range(n):
        flags = ["\\Seen"] if i % 3 else []
        if i % 5 == 0:
            flags.append("\\Flagged")
        if i % 7 == 0:
            flags.append("$Label%d" % (i % 4))
        if i % 11 == 0:
            flags += ["%s%d" % (LONG_KEYWORD, k) for k in range(4)]
        c.append("INBOX", b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i),
                 flags=" ".join(flags) or None)


def responses(c, command):
    """The FETCH responses of a command, as {seq: item text}, RFC822.SIZE
    left out; and their order."""
    out, order = {}, []
    for l in c.ok(command):
        m = re.match(r"^\* (\d+) FETCH \((.*)\)$", l)
        if not m:
            continue
        items = re.sub(r" ?RFC822\.SIZE \d+", "", m.group(2)).strip()
        out[int(m.group(1))] = items
        order.append(int(m.group(1)))
    return out, order


def same(c, cmd, items):
    """cmd with items (the read-ahead) answers as with RFC822.SIZE too
    (a look-up per message); returns the answer."""
    fast = responses(c, "%s (%s)" % (cmd, items))
    slow = responses(c, "%s (%s RFC822.SIZE)" % (cmd, items))
    assert fast == slow, cmd
    return fast[0]


def test_row_items_answer_as_one_lookup_each(server):
    s = server(imap=True)
    n = 700     # past two batches of rows
    with s.raw() as c:
        fill(c, n)
    with s.raw() as c, s.raw() as other:
        c.ok("ENABLE CONDSTORE")
        c.ok("SELECT INBOX")
        other.ok("SELECT INBOX")
        got = same(c, "FETCH 1:*", "FLAGS")
        assert len(got) == n
        assert "\\Flagged" in got[1] and "\\Seen" not in got[1]
        assert "%s3" % LONG_KEYWORD in got[12]
        assert "$Label0" in got[29] or "$label0" in got[29].lower()
        for items in ("FLAGS UID", "UID MODSEQ INTERNALDATE",
                      "FLAGS INTERNALDATE SAVEDATE", "MODSEQ"):
            assert len(same(c, "FETCH 1:*", items)) == n
        for cmd in ("FETCH 700,1,350:340,699", "FETCH 256:258,513",
                    "FETCH *", "FETCH 5", "UID FETCH 1:*",
                    "UID FETCH 250:260,600:*", "UID FETCH 9000:*",
                    "FETCH 1:* (CHANGEDSINCE 1)"):
            if "CHANGEDSINCE" in cmd:
                fast = responses(c, "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
                slow = responses(c, "FETCH 1:* (FLAGS RFC822.SIZE) "
                                 "(CHANGEDSINCE 1)")
                assert fast == slow and len(fast[0]) == n
            else:
                same(c, cmd, "FLAGS")
        assert sorted(same(c, "FETCH 700,1,350:340", "FLAGS")) == \
            [1] + list(range(340, 351)) + [700]

        # a flag changed elsewhere shows in the next FETCH
        other.ok("UID STORE 4 +FLAGS.SILENT (\\Answered)")
        c.ok("NOOP")
        assert "\\Answered" in same(c, "FETCH 1:*", "FLAGS")[4]

        # Expunged in another session: this one still has their
        # sequence numbers, and both ways leave them out alike.
        gone = [2, 3, 255, 256, 257, 258, 512, 513, 699]
        other.ok("UID STORE %s +FLAGS.SILENT (\\Deleted)" %
                 ",".join(map(str, gone)))
        other.ok("UID EXPUNGE %s" % ",".join(map(str, gone)))
        got = same(c, "FETCH 1:*", "UID FLAGS")
        assert not set(got) & set(gone)
        assert len(got) == n - len(gone)
        c.ok("NOOP")
        got = same(c, "UID FETCH 1:*", "FLAGS")
        assert len(got) == n - len(gone)
