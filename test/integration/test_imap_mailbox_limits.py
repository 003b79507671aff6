"""Limits on what one user's IMAP commands can make the server hold or
do: mailboxes per user (--max-mailboxes), levels in a mailbox name, and
patterns in one LIST.  Each gets NO [LIMIT]; nothing half-made stays."""


def test_deep_name_refused_whole(imap_srv):
    with imap_srv.raw() as c:
        deep = "/".join(["d"] * 256)     # 511 bytes: a valid name
        _, done = c.cmd("CREATE " + deep)
        assert done.startswith("NO [LIMIT]"), done
        assert c.ok('LIST "" "d*"') == []
        c.ok("CREATE " + "/".join("l%d" % i for i in range(32)))
        _, done = c.cmd("RENAME l0 " + "/".join("m%d" % i
                                                for i in range(33)))
        assert done.startswith("NO [LIMIT]"), done


def test_mailboxes_per_user(server):
    srv = server(imap=True, args=["--max-mailboxes", "10"])
    with srv.raw() as c:
        # The six default mailboxes count.
        for i in range(4):
            c.ok("CREATE box%d" % i)
        _, done = c.cmd("CREATE box4")
        assert done.startswith("NO [LIMIT]"), done
        _, done = c.cmd("CREATE a/b")
        assert done.startswith("NO [LIMIT]"), done
        c.ok("RENAME box0 renamed")     # renaming makes nothing new
        c.ok("DELETE box1")
        c.ok("CREATE box4")


def test_list_patterns_bounded(imap_srv):
    with imap_srv.raw() as c:
        pats = " ".join('"%s*"' % ("x%d" % i) for i in range(33))
        _, done = c.cmd('LIST "" (%s)' % pats)
        assert done.startswith("NO [LIMIT]"), done
        pats = " ".join('"%s*"' % ("x%d" % i) for i in range(32))
        c.ok('LIST "" (%s)' % pats)
