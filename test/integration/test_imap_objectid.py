"""OBJECTID (RFC 8474): a mailbox's MAILBOXID comes with CREATE, SELECT
and STATUS and stays through RENAME (a mailbox made again under a name
is another); a message's EMAILID is its content's, shared by its
copies; THREADID is NIL (no thread ids are kept)."""
import re

MSG = b"From: a@b.test\r\nSubject: objectid\r\n\r\nbody\r\n"
OBJECTID = r"[A-Za-z0-9_-]{1,255}"


def mailboxid_of_create(c, name):
    typ, data = c.create(name)
    assert typ == "OK", data
    m = re.match(r"\[MAILBOXID \((%s)\)\]" % OBJECTID, data[0].decode())
    assert m, data
    return m.group(1)


def mailboxid_of_status(c, name):
    typ, data = c.status(name, "(MESSAGES MAILBOXID)")
    assert typ == "OK", data
    m = re.search(r"MAILBOXID \((%s)\)" % OBJECTID, data[0].decode())
    assert m, data
    return m.group(1)


def test_capability(imap_srv):
    c = imap_srv.imap()
    assert "OBJECTID" in c.capabilities
    c.logout()


def test_mailboxid_stays_through_rename(imap_srv):
    c = imap_srv.imap()
    made = mailboxid_of_create(c, "Obj")
    assert made.startswith("F")
    assert mailboxid_of_status(c, "Obj") == made
    assert c.rename("Obj", "Renamed")[0] == "OK"
    assert mailboxid_of_status(c, "Renamed") == made
    typ, _ = c.select("Renamed")
    assert typ == "OK"
    assert c.untagged_responses.get("MAILBOXID") == [
        ("(%s)" % made).encode()], c.untagged_responses
    c.close()
    assert c.delete("Renamed")[0] == "OK"
    again = mailboxid_of_create(c, "Renamed")
    assert again != made
    assert mailboxid_of_status(c, "INBOX") not in (made, again)
    c.logout()


def test_list_status_mailboxid(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Listed")
        got = c.ok('LIST "" "Listed" RETURN (STATUS (MAILBOXID MESSAGES))')
        assert len(got) == 2, got
        assert re.match(r"\* STATUS Listed \(MESSAGES 0 MAILBOXID "
                        r"\(F[0-9a-f]{32}\)\)$", got[1]), got
        _, done = c.cmd("STATUS Listed (MAILBOXID NOSUCH)")
        assert done.startswith("BAD"), done


def test_emailid_shared_by_copies_threadid_nil(imap_srv):
    c = imap_srv.imap()
    assert c.append("INBOX", None, None, MSG)[0] == "OK"
    assert c.append("INBOX", None, None, MSG.replace(b"body", b"other"))[
        0] == "OK"
    assert c.create("Copies")[0] == "OK"
    c.select("INBOX")
    assert c.copy("1", "Copies")[0] == "OK"
    typ, data = c.fetch("1:2", "(EMAILID THREADID)")
    assert typ == "OK", data
    ids = []
    for line in data:
        m = re.search(r"EMAILID \((M[0-9a-f]{64})\) THREADID NIL",
                      line.decode())
        assert m, data
        ids.append(m.group(1))
    assert ids[0] != ids[1]
    c.select("Copies")
    typ, data = c.uid("FETCH", "1:*", "(EMAILID)")
    assert typ == "OK" and ids[0] in data[0].decode(), data
    c.logout()


def test_search_emailid_threadid(imap_srv):
    c = imap_srv.imap()
    assert c.append("INBOX", None, None, MSG)[0] == "OK"
    assert c.append("INBOX", None, None, MSG.replace(b"body", b"two"))[
        0] == "OK"
    c.select("INBOX")
    typ, data = c.fetch("2", "(EMAILID)")
    emailid = re.search(r"EMAILID \(([^)\s]+)\)", data[0].decode()).group(1)
    assert c.search(None, "EMAILID", emailid) == ("OK", [b"2"])
    assert c.search(None, "NOT", "EMAILID", emailid) == ("OK", [b"1"])
    assert c.search(None, "EMAILID", "M" + "0" * 64) == ("OK", [b""])
    assert c.search(None, "THREADID", "T1") == ("OK", [b""])
    c.logout()
    with imap_srv.raw() as r:
        r.ok("SELECT INBOX")
        _, done = r.cmd("SEARCH EMAILID")
        assert done.startswith("BAD"), done
