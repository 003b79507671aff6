"""SEARCH RETURN (...) of ESEARCH (RFC 4731), with CONDSTORE's MODSEQ,
and the HIGHESTMODSEQ a command that turns CONDSTORE on sends."""
import re

import pytest

MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.fixture
def box(imap_srv):
    """INBOX with 7 messages, the 4th expunged: UIDs 1 2 3 5 6 7."""
    c = imap_srv.raw()
    for i in range(7):
        c.append("INBOX", MSG)
    c.ok("SELECT INBOX")
    c.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    yield c
    c.close()


def esearch(c, command):
    """(the tag, the rest) of the one ESEARCH response of command."""
    t = c.tag()
    c.send("%s %s\r\n" % (t, command))
    untagged, done = c.read_until(t)
    assert done.startswith("OK"), (command, done)
    lines = [l for l in untagged if l.startswith("* ESEARCH")]
    assert len(lines) == 1, untagged
    m = re.match(r'^\* ESEARCH \(TAG "([^"]*)"\)(.*)$', lines[0])
    assert m and m.group(1) == t, lines
    return m.group(2).strip()


@pytest.mark.parametrize("command,want", [
    ("SEARCH RETURN (ALL) ALL", "ALL 1:6"),
    ("SEARCH RETURN () ALL", "ALL 1:6"),
    ("SEARCH RETURN (MIN MAX COUNT) ALL", "MIN 1 MAX 6 COUNT 6"),
    ("UID SEARCH RETURN (ALL) ALL", "UID ALL 1:3,5:7"),
    ("UID SEARCH RETURN (ALL) UID 1,3,5:6", "UID ALL 1,3,5:6"),
    ("UID SEARCH RETURN (MIN MAX) UID 2:6", "UID MIN 2 MAX 6"),
    ("SEARCH RETURN (COUNT) 1000", "COUNT 0"),
    ("SEARCH RETURN (MIN MAX ALL) 1000", ""),
    ("UID SEARCH RETURN () 1000", "UID"),
])
def test_return_options(box, command, want):
    assert esearch(box, command) == want


def test_plain_search_unchanged(box):
    assert box.ok("SEARCH 2:3") == ["* SEARCH 2 3"]


@pytest.mark.parametrize("bad", [
    "SEARCH RETURN (BOGUS) ALL", "SEARCH RETURN ALL", "SEARCH RETURN",
    "SEARCH RETURN (MIN (MAX)) ALL"])
def test_bad_return_options(box, bad):
    untagged, done = box.cmd(bad)
    assert done.startswith("BAD"), (bad, done)


def test_modseq_of_min_max_and_all(box):
    mod = {}
    box.ok("FETCH 1 (MODSEQ)")          # CONDSTORE on
    for seq in (1, 3, 2):
        l = [x for x in box.ok("STORE %d +FLAGS (\\Seen)" % seq)
             if "MODSEQ" in x]
        mod[seq] = int(re.search(r"MODSEQ \((\d+)\)", l[0]).group(1))
    crit = '1:3 MODSEQ "/flags/\\\\seen" all 1'
    assert esearch(box, "SEARCH RETURN (MIN) " + crit) == \
        "MIN 1 MODSEQ %d" % mod[1]
    assert esearch(box, "SEARCH RETURN (MAX) " + crit) == \
        "MAX 3 MODSEQ %d" % mod[3]
    assert esearch(box, "SEARCH RETURN () " + crit) == \
        "ALL 1:3 MODSEQ %d" % mod[2]


def test_condstore_enabling_command_sends_highestmodseq(imap_srv):
    c = imap_srv.raw()
    c.append("INBOX", MSG)
    c.ok("SELECT INBOX")
    untagged = c.ok("FETCH 1 (MODSEQ)")
    assert any(re.match(r"^\* OK \[HIGHESTMODSEQ \d+\]", l)
               for l in untagged), untagged
    untagged = c.ok("FETCH 1 (MODSEQ)")
    assert not any("HIGHESTMODSEQ" in l for l in untagged), untagged


def test_within_older_younger(imap_srv):
    """WITHIN (RFC 5032): OLDER and YOUNGER count seconds back from now
    to the internal date."""
    c = imap_srv.raw()
    assert "WITHIN" in c.ok("CAPABILITY")[0].split()
    c.append("INBOX", MSG, date="01-Jan-2020 12:00:00 +0000")
    c.append("INBOX", MSG)
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH OLDER 86400") == ["* SEARCH 1"]
    assert c.ok("SEARCH YOUNGER 86400") == ["* SEARCH 2"]
    assert c.ok("SEARCH NOT YOUNGER 86400") == ["* SEARCH 1"]
    assert esearch(c, "SEARCH RETURN (COUNT) OLDER 1000000000") == "COUNT 0"
    untagged, done = c.cmd("SEARCH OLDER x")
    assert done.startswith("BAD"), done
