"""Mailboxes over IMAP: the default set, CREATE, DELETE, RENAME (INBOX
too), SUBSCRIBE and LSUB, LIST patterns and LIST-EXTENDED, CHILDREN,
modified UTF-7 names, INBOX's case, STATUS."""
import re

DEFAULT = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
           "Junk": "\\Junk", "Archive": "\\Archive"}
LIST_RE = re.compile(r'^\* (LIST|LSUB) \(([^)]*)\) (NIL|"(?:[^"\\]|\\.)"|\S+) '
                     r'(.+)$')
MSG = b"From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n"


def unquote(s):
    if s.startswith('"'):
        assert s.endswith('"'), s
        return re.sub(r'\\(.)', r'\1', s[1:-1])
    return s


def listing(c, command):
    """{name: set of attributes} of a LIST or LSUB command's answer;
    asserts every line is a well-formed LIST/LSUB with "/" as delimiter."""
    out = {}
    for line in c.ok(command):
        m = LIST_RE.match(line)
        assert m, "not a LIST response: %r" % line
        assert m.group(3) == '"/"', line
        name = unquote(m.group(4))
        assert name not in out, "listed twice: %r" % line
        out[name] = {a.lower() for a in m.group(2).split()}
    return out


def status(c, mailbox, items="MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN"):
    return c.status(mailbox, items)


def select_uidvalidity(c, mailbox):
    for l in c.ok("SELECT " + mailbox):
        m = re.match(r"\* OK \[UIDVALIDITY (\d+)\]", l)
        if m:
            return int(m.group(1))
    raise AssertionError("no UIDVALIDITY")


def test_default_mailboxes(imap_srv):
    with imap_srv.raw() as c:
        mbs = listing(c, 'LIST "" "*"')
        assert set(mbs) == DEFAULT
        for name, attrs in mbs.items():
            assert "\\hasnochildren" in attrs, (name, attrs)
            assert "\\noselect" not in attrs, (name, attrs)
        for name in DEFAULT:
            c.ok("SELECT " + name)


def test_list_return_special_use_subscribed(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Lists")
        c.ok("SUBSCRIBE Lists")
        c.ok("CREATE Unsubscribed")
        mbs = listing(c, 'LIST "" "*" RETURN (SPECIAL-USE SUBSCRIBED)')
        assert set(mbs) == DEFAULT | {"Lists", "Unsubscribed"}
        for name, use in SPECIAL.items():
            assert use.lower() in mbs[name], (name, mbs[name])
        specials = {a for a in ("\\sent", "\\drafts", "\\trash", "\\junk",
                                "\\archive", "\\all", "\\flagged")}
        assert not mbs["INBOX"] & specials
        assert not mbs["Lists"] & specials
        assert "\\subscribed" in mbs["Lists"]
        assert "\\subscribed" not in mbs["Unsubscribed"]


def test_list_selection_special_use(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Other")
        mbs = listing(c, 'LIST (SPECIAL-USE) "" "*"')
        assert set(mbs) == set(SPECIAL)
        for name, use in SPECIAL.items():
            assert use.lower() in mbs[name]


def test_list_selection_subscribed(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE a")
        c.ok("CREATE a/b")
        c.ok("SUBSCRIBE a/b")
        mbs = listing(c, 'LIST (SUBSCRIBED) "" "a*"')
        assert mbs == {"a/b": {"\\subscribed", "\\hasnochildren"}} or \
            mbs == {"a/b": {"\\subscribed"}}


def test_list_return_children(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE p")
        c.ok("CREATE p/q")
        mbs = listing(c, 'LIST "" "p*" RETURN (CHILDREN)')
        assert mbs == {"p": {"\\haschildren"}, "p/q": {"\\hasnochildren"}}


def test_imaplib_list(imap_srv):
    c = imap_srv.imap()
    typ, data = c.list()
    assert typ == "OK"
    names = set()
    for d in data:
        m = re.match(rb'^\(([^)]*)\) "/" (.+)$', d)
        assert m, d
        names.add(unquote(m.group(2).decode()))
    assert names == DEFAULT
    c.logout()


def test_create_delete(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Work")
        assert "Work" in listing(c, 'LIST "" "*"')
        untagged, done = c.cmd("CREATE Work")
        assert done.startswith("NO"), done
        c.ok("SELECT Work")
        c.ok("UNSELECT")
        c.ok("DELETE Work")
        assert set(listing(c, 'LIST "" "*"')) == DEFAULT
        untagged, done = c.cmd("DELETE Work")
        assert done.startswith("NO"), done
        untagged, done = c.cmd("SELECT Work")
        assert done.startswith("NO"), done


def test_create_inbox_refused_delete_inbox_refused(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        for cmd in ("CREATE INBOX", "CREATE inbox", "DELETE INBOX",
                    "DELETE Inbox"):
            untagged, done = c.cmd(cmd)
            assert done.startswith("NO"), (cmd, done)
        assert set(listing(c, 'LIST "" "*"')) == DEFAULT
        assert status(c, "INBOX")["MESSAGES"] == 1


def test_delete_removes_messages(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Tmp")
        c.append("Tmp", MSG)
        c.append("Tmp", MSG)
        c.ok("DELETE Tmp")
        c.ok("CREATE Tmp")
        st = status(c, "Tmp")
        assert st["MESSAGES"] == 0


def test_recreated_mailbox_gets_new_uidvalidity(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Again")
        c.append("Again", MSG)
        before = status(c, "Again")
        c.ok("DELETE Again")
        c.ok("CREATE Again")
        after = status(c, "Again")
        assert after["MESSAGES"] == 0
        # New UIDs may start over only under a new UIDVALIDITY (3501 2.3.1.1).
        assert after["UIDVALIDITY"] != before["UIDVALIDITY"] or \
            after["UIDNEXT"] >= before["UIDNEXT"]


def test_create_hierarchy_and_children(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Projects")
        c.ok("CREATE Projects/2024")
        c.ok("CREATE Projects/2024/Q1")
        mbs = listing(c, 'LIST "" "Projects*"')
        assert set(mbs) == {"Projects", "Projects/2024", "Projects/2024/Q1"}
        assert "\\haschildren" in mbs["Projects"]
        assert "\\haschildren" in mbs["Projects/2024"]
        assert "\\hasnochildren" in mbs["Projects/2024/Q1"]
        c.ok("DELETE Projects/2024/Q1")
        mbs = listing(c, 'LIST "" "Projects*"')
        assert "\\hasnochildren" in mbs["Projects/2024"]


def test_create_parent_on_the_way(imap_srv):
    # RFC 3501 6.3.3: the server SHOULD create the superior names needed.
    with imap_srv.raw() as c:
        c.ok("CREATE deep/er/est")
        mbs = listing(c, 'LIST "" "deep*"')
        assert set(mbs) == {"deep", "deep/er", "deep/er/est"}
        assert "\\haschildren" in mbs["deep"]
        c.ok("SELECT deep/er/est")


def test_list_wildcards(imap_srv):
    with imap_srv.raw() as c:
        for m in ("a", "a/b", "a/b/c", "ab", "x/y"):
            c.ok("CREATE " + m)
        assert set(listing(c, 'LIST "" "a/%"')) == {"a/b"}
        assert set(listing(c, 'LIST "" "a/*"')) == {"a/b", "a/b/c"}
        assert set(listing(c, 'LIST "" "a%"')) == {"a", "ab"}
        assert set(listing(c, 'LIST "" "a*"')) == {"a", "a/b", "a/b/c", "ab"}
        assert set(listing(c, 'LIST "" "%"')) == DEFAULT | {"a", "ab", "x"}
        assert set(listing(c, 'LIST "" "%/%"')) == {"a/b", "x/y"}
        assert set(listing(c, 'LIST "" "*/c"')) == {"a/b/c"}
        assert set(listing(c, 'LIST "" "%b"')) == {"ab"}
        # The reference is prefixed to the pattern (RFC 3501 6.3.8).
        assert set(listing(c, 'LIST "a/" "%"')) == {"a/b"}
        assert set(listing(c, 'LIST a/ "*"')) == {"a/b", "a/b/c"}
        assert listing(c, 'LIST "" "nothing*"') == {}


def test_list_empty_pattern_gives_delimiter(imap_srv):
    with imap_srv.raw() as c:
        assert c.ok('LIST "" ""') == ['* LIST (\\Noselect) "/" ""']


def test_list_quoted_and_atom_names(imap_srv):
    with imap_srv.raw() as c:
        c.ok('CREATE "My Folder"')
        c.ok('CREATE "quo\\"te"')
        mbs = listing(c, 'LIST "" "*"')
        assert {"My Folder", 'quo"te'} <= set(mbs)
        st = status(c, '"My Folder"')
        assert st["MESSAGES"] == 0
        c.ok('SELECT "quo\\"te"')


def test_rename(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Old")
        c.append("Old", MSG)
        c.append("Old", MSG)
        before = status(c, "Old")
        c.ok("RENAME Old New")
        mbs = listing(c, 'LIST "" "*"')
        assert "Old" not in mbs and "New" in mbs
        after = status(c, "New")
        # Messages, UIDs and UIDVALIDITY move with the mailbox.
        assert after == before
        untagged, done = c.cmd("STATUS Old (MESSAGES)")
        assert done.startswith("NO"), done


def test_rename_refusals(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        c.ok("CREATE One")
        c.ok("CREATE Two")
        untagged, done = c.cmd("RENAME One Two")
        assert done.startswith("NO"), done
        untagged, done = c.cmd("RENAME Missing Three")
        assert done.startswith("NO"), done
        untagged, done = c.cmd("RENAME One INBOX")
        assert done.startswith("NO"), done
        assert {"One", "Two"} <= set(listing(c, 'LIST "" "*"'))


def test_rename_moves_children(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Top")
        c.ok("CREATE Top/Sub")
        c.append("Top/Sub", MSG)
        c.ok("RENAME Top Peak")
        mbs = listing(c, 'LIST "" "*"')
        assert "Top" not in mbs and "Top/Sub" not in mbs
        assert {"Peak", "Peak/Sub"} <= set(mbs)
        assert status(c, "Peak/Sub")["MESSAGES"] == 1


# config.h MAILBOX_MAX_NAME: bytes in a mailbox name.
MAILBOX_MAX_NAME = 512


def test_rename_that_would_make_a_child_too_long(imap_srv):
    """A rename whose new name would push a child's name past the limit
    is refused whole: neither the parent nor any child is renamed."""
    child = "p/" + "c" * (MAILBOX_MAX_NAME - 2)
    with imap_srv.raw() as c:
        c.ok("CREATE p")
        c.ok('CREATE "%s"' % child)
        untagged, done = c.cmd("RENAME p pq")
        assert done.startswith("NO"), done
        mbs = set(listing(c, 'LIST "" "*"'))
        assert {"p", child} <= mbs and "pq" not in mbs, mbs
        c.ok("RENAME p q")
        assert {"q", "q/" + child[2:]} <= set(listing(c, 'LIST "" "*"'))


def test_rename_inbox(imap_srv):
    # RFC 3501 6.3.5: the messages move to the new name, INBOX stays,
    # empty; INBOX's children do not move.
    with imap_srv.raw() as c:
        for i in range(3):
            c.append("INBOX", MSG)
        c.ok("RENAME INBOX Saved")
        mbs = listing(c, 'LIST "" "*"')
        assert "INBOX" in mbs and "Saved" in mbs
        assert status(c, "Saved")["MESSAGES"] == 3
        st = status(c, "INBOX")
        assert st["MESSAGES"] == 0
        c.append("INBOX", MSG)
        assert status(c, "INBOX")["MESSAGES"] == 1
        c.ok("SELECT INBOX")


def test_inbox_is_case_insensitive(imap_srv):
    with imap_srv.raw() as c:
        c.append("inbox", MSG)
        assert status(c, "iNbOx")["MESSAGES"] == 1
        assert listing(c, 'LIST "" "inbox"').keys() == {"INBOX"}
        assert listing(c, 'LIST "" "InBoX"').keys() == {"INBOX"}
        untagged = c.ok("SELECT Inbox")
        assert "* 1 EXISTS" in untagged
        # Other names keep their case.
        c.ok("CREATE Case")
        untagged, done = c.cmd("SELECT CASE")
        assert done.startswith("NO"), done


def test_inbox_children(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE inbox/sub")
        mbs = listing(c, 'LIST "" "*"')
        assert "INBOX/sub" in mbs
        assert "\\haschildren" in mbs["INBOX"]
        c.ok("SELECT INBOX/sub")


def test_modified_utf7_round_trip(imap_srv):
    names = ["Entw&APw-rfe", "&ZeVnLIqe-", "A&-B", "Caf&AOk-/Cr&AOg-me"]
    with imap_srv.raw() as c:
        for n in names:
            c.ok('CREATE "%s"' % n)
        mbs = listing(c, 'LIST "" "*"')
        assert set(names) <= set(mbs)
        assert "Caf&AOk-" in mbs
        for n in names:
            c.append('"%s"' % n, MSG)
            assert status(c, '"%s"' % n)["MESSAGES"] == 1
        c.ok('RENAME "Entw&APw-rfe" "Entw&APw-rfe-alt"')
        assert "Entw&APw-rfe-alt" in listing(c, 'LIST "" "Entw*"')


def test_imaplib_utf7_name(imap_srv):
    c = imap_srv.imap()
    assert c.create('"Entw&APw-rfe"')[0] == "OK"
    typ, data = c.list('""', '"Entw*"')
    assert typ == "OK" and data == [b'(\\HasNoChildren) "/" Entw&APw-rfe']
    assert c.select('"Entw&APw-rfe"')[0] == "OK"
    c.logout()


def test_invalid_modified_utf7_refused(imap_srv):
    with imap_srv.raw() as c:
        for bad in ("Entw&APw", "x&Jjo!", "raw\xfcname"):
            untagged, done = c.cmd('CREATE "%s"' % bad)
            assert done.startswith(("NO", "BAD")), (bad, done)
        assert set(listing(c, 'LIST "" "*"')) == DEFAULT


def test_subscribe_lsub(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE News")
        c.ok("CREATE News/Tech")
        c.ok("SUBSCRIBE News/Tech")
        lsub = listing(c, 'LSUB "" "News*"')
        assert set(lsub) == {"News/Tech"}
        # With %, a subscribed child makes its unsubscribed parent show
        # up as \Noselect in LSUB (RFC 3501 6.3.9).
        lsub = listing(c, 'LSUB "" "%"')
        assert "News" in lsub and "\\noselect" in lsub["News"]
        c.ok("UNSUBSCRIBE News/Tech")
        assert listing(c, 'LSUB "" "News*"') == {}


def test_subscription_survives_restart_and_rename(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Keep")
        c.ok("SUBSCRIBE Keep")
    imap_srv.restart()
    with imap_srv.raw() as c:
        assert "Keep" in listing(c, 'LSUB "" "*"')


def test_status_counts(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE St")
        st = status(c, "St")
        assert st["MESSAGES"] == 0 and st["RECENT"] == 0
        assert st["UNSEEN"] == 0 and st["UIDNEXT"] == 1
        assert st["UIDVALIDITY"] > 0
        c.append("St", MSG)
        c.append("St", MSG, flags="\\Seen")
        c.append("St", MSG, flags="\\Flagged")
        st2 = status(c, "St")
        assert st2 == {"MESSAGES": 3, "RECENT": 3, "UIDNEXT": 4,
                       "UIDVALIDITY": st["UIDVALIDITY"], "UNSEEN": 2}
        assert select_uidvalidity(c, "St") == st["UIDVALIDITY"]
        # The SELECT took \Recent; expunging the last keeps UIDNEXT.
        c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        c.ok("CLOSE")
        assert status(c, "St") == {"MESSAGES": 2, "RECENT": 0, "UIDNEXT": 4,
                                   "UIDVALIDITY": st["UIDVALIDITY"],
                                   "UNSEEN": 1}


def test_status_some_items(imap_srv):
    with imap_srv.raw() as c:
        c.append("INBOX", MSG)
        assert status(c, "INBOX", "UIDNEXT MESSAGES") == {"UIDNEXT": 2,
                                                          "MESSAGES": 1}
        # The name as given or as INBOX (Dovecot echoes it).
        assert status(c, "inbox", "MESSAGES") == {"MESSAGES": 1}


def test_status_highestmodseq(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE Ms")
        c.append("Ms", MSG)
        h1 = status(c, "Ms", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        assert h1 >= 1
        c.ok("SELECT Ms")
        untagged = c.ok("FETCH 1 (MODSEQ)")
        m = re.match(r"\* 1 FETCH \(MODSEQ \((\d+)\)\)$", untagged[0])
        assert m and int(m.group(1)) == h1, untagged
        c.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
        c.ok("UNSELECT")
        h2 = status(c, "Ms", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        assert h2 > h1


def test_status_refusals(imap_srv):
    with imap_srv.raw() as c:
        untagged, done = c.cmd("STATUS Nope (MESSAGES)")
        assert done.startswith("NO"), done
        untagged, done = c.cmd("STATUS INBOX (BOGUS)")
        assert done.startswith("BAD"), done
        untagged, done = c.cmd("STATUS INBOX")
        assert done.startswith("BAD"), done


def test_imaplib_status(imap_srv):
    c = imap_srv.imap()
    typ, data = c.status("Sent", "(MESSAGES UIDNEXT UNSEEN)")
    assert typ == "OK"
    assert data in ([b'Sent (MESSAGES 0 UIDNEXT 1 UNSEEN 0)'],
                    [b'"Sent" (MESSAGES 0 UIDNEXT 1 UNSEEN 0)'])
    c.logout()


def test_mailboxes_are_per_user(imap_srv):
    with imap_srv.raw() as c:
        c.ok("CREATE AliceOnly")
        c.append("INBOX", MSG)
    with imap_srv.raw(user="bob") as c:
        assert set(listing(c, 'LIST "" "*"')) == DEFAULT
        assert status(c, "INBOX")["MESSAGES"] == 0
