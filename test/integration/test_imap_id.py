"""ID (RFC 2971) with the lists its limits allow: 30 field-value pairs,
fields of 30 octets, values of 1024.  At the maxima a list is ~32 KiB,
four times what a session buffers before login, so a list too long to
buffer is read as it comes; past the limits it is BAD, and the session
goes on."""
import pytest

from conftest import PASSWORD


def id_list(pairs, field_len=30, value_len=1024, value="v"):
    """'("f00..." "vvv..." ...)' with pairs pairs of the given lengths."""
    items = []
    for i in range(pairs):
        field = ("f%02d" % i).ljust(field_len, "x")[:field_len]
        items.append('"%s" "%s"' % (field, (value * value_len)[:value_len]))
    return "(" + " ".join(items) + ")"


@pytest.mark.parametrize("login", [False, True])
def test_rfc2971_maxima(imap_srv, login):
    with imap_srv.raw(login=login) as c:
        ids = id_list(30)
        assert len(ids) > 31 * 1024
        untagged, done = c.cmd("ID " + ids)
        assert done.startswith("OK"), done
        assert [l for l in untagged if l.startswith("* ID (")], untagged
        # escaped quotes and backslashes count once each; NIL values
        untagged, done = c.cmd('ID ("a" NIL "b" "%s" %s' % (
            '\\"' * 1024, id_list(28)[1:]))
        assert done.startswith("OK"), done
        c.ok("NOOP")
        if not login:
            c.login("alice", PASSWORD)


@pytest.mark.parametrize("ids", [
    id_list(31),                            # a pair too many (streamed)
    id_list(31, value_len=10),              # likewise, buffered
    id_list(2, field_len=31),               # a field too long (buffered)
    id_list(29)[:-1] + ' "%s" "v")' % ("f" * 31),  # ... streamed
    id_list(1, value_len=1025),             # a value too long
    id_list(29, value_len=1025),            # ... streamed
    id_list(30)[:-1] + ' "odd")',           # a field without a value
    id_list(30)[:-1] + ' NIL "v")',         # a NIL field
    id_list(30)[:-1] + ' ("nested" "v"))',  # a list in the list
    id_list(30)[:-1] + ' "unclosed',        # the line ends in a string
    id_list(30)[:-1] + ') extra',           # more after the list
], ids=["pairs-streamed", "pairs", "field", "field-streamed", "value",
        "value-streamed", "odd", "nil-field", "nested", "unclosed",
        "extra"])
def test_beyond_limits_is_bad(imap_srv, ids):
    with imap_srv.raw(login=False) as c:
        untagged, done = c.cmd("ID " + ids)
        assert done.startswith("BAD"), done
        c.ok("NOOP")
        c.login("alice", PASSWORD)


def test_huge_line_is_dropped_not_buffered(imap_srv):
    """A 4 MiB ID line before login: BAD once it ends, the session goes
    on, and the server answers another client meanwhile."""
    with imap_srv.raw(login=False) as c, imap_srv.raw() as other:
        c.send(b"h1 ID " + id_list(30)[:-1].encode())
        chunk = b' "field" "value"' * 4096
        for _ in range(64):
            c.send(chunk)
        other.ok("NOOP")
        c.send(b")\r\n")
        untagged, done = c.read_until("h1")
        assert done.startswith("BAD"), done
        c.ok("NOOP")


def test_literal_in_a_streamed_list_ends_the_session(imap_srv):
    """A literal in a list too long to buffer would have to be read to
    find the line's end: the session says BYE instead."""
    with imap_srv.raw(login=False) as c:
        c.send(("l1 ID " + id_list(20)[:-1] + ' "x" {3+}\r\nabc)\r\n')
               .encode())
        untagged, done = c.read_until("l1")
        assert done.startswith("BAD"), done
        assert any(l.startswith("* BYE") for l in untagged), untagged
        assert c.wait_closed() == []


def test_refused_line_tail_never_runs(imap_srv):
    """What follows the point where a long list went wrong is dropped to
    the line's end: a command inside it does not run."""
    with imap_srv.raw(login=False) as c:
        c.send(("r1 ID " + id_list(30)[:-1] + ' NIL r2 LOGIN alice %s\r\n'
                % PASSWORD).encode())
        untagged, done = c.read_until("r1")
        assert done.startswith("BAD"), done
        untagged, done = c.cmd("SELECT INBOX")
        assert done.startswith("BAD") or done.startswith("NO"), done
