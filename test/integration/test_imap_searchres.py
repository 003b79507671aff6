"""SEARCHRES (RFC 5182): SEARCH RETURN (SAVE) keeps the result as "$",
which FETCH, STORE, COPY, MOVE and SEARCH then take as a set; "$" names
the saved messages (by UID, whatever the command), forgets what was
expunged, and is empty after SELECT or a failed SEARCH."""
import re

import pytest

MSG = b"From: a@b.test\r\nSubject: s%d\r\n\r\nbody\r\n"


@pytest.fixture
def box(imap_srv):
    """INBOX with 6 messages, 2 and 5 flagged."""
    c = imap_srv.raw()
    for i in range(6):
        c.append("INBOX", MSG % i, flags="\\Flagged" if i in (1, 4) else "")
    c.ok("SELECT INBOX")
    yield c
    c.close()


def fetched(untagged):
    """The sequence numbers of the FETCH responses."""
    return [int(m.group(1)) for m in
            (re.match(r"\* (\d+) FETCH", l) for l in untagged) if m]


def search(c, command):
    """The numbers of the one SEARCH response of command."""
    lines = [l for l in c.ok(command) if l.startswith("* SEARCH")]
    assert len(lines) == 1, lines
    return [int(x) for x in lines[0].split()[2:]]


def test_capability(imap_srv):
    c = imap_srv.raw()
    caps = [l for l in c.ok("CAPABILITY") if l.startswith("* CAPABILITY")]
    assert " SEARCHRES" in caps[0], caps


def test_save_alone_sends_no_result(box):
    untagged = box.ok("SEARCH RETURN (SAVE) FLAGGED")
    assert not [l for l in untagged if "SEARCH" in l], untagged
    assert fetched(box.ok("FETCH $ (FLAGS)")) == [2, 5]


def test_save_with_all_answers_and_saves(box):
    untagged = box.ok("SEARCH RETURN (SAVE ALL) FLAGGED")
    assert any(l.endswith("ALL 2,5") for l in untagged), untagged
    assert fetched(box.ok("UID FETCH $ (FLAGS)")) == [2, 5]


def test_save_with_min_keeps_only_min(box):
    box.ok("SEARCH RETURN (SAVE MIN) FLAGGED")
    assert fetched(box.ok("FETCH $ (FLAGS)")) == [2]


def test_dollar_in_store_copy_and_search(box):
    box.ok("SEARCH RETURN (SAVE) FLAGGED")
    box.ok("STORE $ +FLAGS.SILENT (\\Seen)")
    assert search(box, "SEARCH SEEN") == [2, 5]
    assert search(box, "SEARCH $ UNSEEN") == []
    assert search(box, "SEARCH NOT $") == [1, 3, 4, 6]
    untagged, done = box.cmd("COPY $ Trash")
    assert done.startswith("OK [COPYUID"), done
    st = [l for l in box.ok("STATUS Trash (MESSAGES)")
          if l.startswith("* STATUS")]
    assert "MESSAGES 2" in st[0], st


def test_dollar_names_uids_after_expunge(box):
    """After message 1 goes, "$" still names the same messages, now
    sequence numbers 1 and 4."""
    box.ok("SEARCH RETURN (SAVE) FLAGGED")
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    assert fetched(box.ok("FETCH $ (FLAGS)")) == [1, 4]
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    assert fetched(box.ok("FETCH $ (FLAGS)")) == [3]


def test_empty_before_save_and_after_select(box):
    assert fetched(box.ok("FETCH $ (FLAGS)")) == []
    box.ok("SEARCH RETURN (SAVE) FLAGGED")
    box.ok("SELECT INBOX")
    assert fetched(box.ok("FETCH $ (FLAGS)")) == []


def test_failed_search_empties_it(box):
    box.ok("SEARCH RETURN (SAVE) FLAGGED")
    _, done = box.cmd("SEARCH RETURN (SAVE) NOSUCHKEY")
    assert done.startswith("BAD"), done
    assert fetched(box.ok("FETCH $ (FLAGS)")) == []


def test_dollar_only_alone(box):
    box.ok("SEARCH RETURN (SAVE) FLAGGED")
    _, done = box.cmd("FETCH $,1 (FLAGS)")
    assert done.startswith("BAD"), done
