"""LIST's pattern matching against a model written from RFC 3501 6.3.8
alone: "*" matches anything, "%" anything but the delimiter, a level of
the hierarchy that is no mailbox is listed only by a pattern ending in
"%", the reference is put before each pattern, and a name matched by
several patterns is listed once, the lines in name order.  Random
patterns, many of them full of wildcards, over names full of the bytes
those patterns hold."""
import functools
import random

from test_imap_mailboxes import LIST_RE, unquote

NAMES = ["a", "a/b", "a/b/a", "a/ba", "ab", "ab/b", "b", "b/a/b/a",
         "ba/ab/ba", "aa/aa/aa/a", "a%b", "a*b/a"]


def model_match(pattern, name):
    """Whether name matches pattern, as RFC 3501 6.3.8 says: the rest of
    the pattern from i matches the rest of the name from j."""
    @functools.lru_cache(maxsize=None)
    def rest(i, j):
        if i == len(pattern):
            return j == len(name)
        ch = pattern[i]
        if ch in "*%":
            return rest(i + 1, j) or (j < len(name) and (
                ch == "*" or name[j] != "/") and rest(i, j + 1))
        return j < len(name) and name[j] == ch and rest(i + 1, j + 1)
    return rest(0, 0)


def lines_of(c, command):
    """[(name, attributes)] of a LIST answer, in the order sent."""
    out = []
    for line in c.ok(command):
        m = LIST_RE.match(line)
        assert m, line
        out.append((unquote(m.group(4)), m.group(2).lower().split()))
    return out


def quoted(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def random_pattern(rnd):
    return "".join(rnd.choice("ab/*%%**") for _ in range(rnd.randrange(9)))


def test_list_patterns_match_the_model(imap_srv):
    rnd = random.Random(17)
    with imap_srv.raw() as c:
        for name in NAMES:
            c.ok("CREATE %s" % quoted(name))
        c.ok('DELETE "b/a/b"')	# may leave a level, or not
        everything = lines_of(c, 'LIST "" "*%"')
        levels = {n for n, attrs in everything if "\\noselect" in attrs}
        names = [n for n, _ in everything]
        assert names == sorted(names, key=lambda n: n.encode())
        for _ in range(300):
            ref = rnd.choice(["", "", "", "a", "a/", "b/"])
            pats = [random_pattern(rnd)
                    for _ in range(rnd.choice([1, 1, 2, 3, 6]))]
            if pats == [""]:
                continue
            want = [n for n in names if any(
                model_match(ref + p, n) and (n not in levels or
                                             (ref + p).endswith("%"))
                for p in pats)]
            command = 'LIST %s (%s)' % (quoted(ref),
                                        " ".join(quoted(p) for p in pats))
            got = [n for n, _ in lines_of(c, command)]
            assert got == want, command


def test_long_patterns_match_the_model(imap_srv):
    """Names and patterns past 64 bytes (more than one word of bits)."""
    rnd = random.Random(5)
    long_names = ["%s/%s" % ("ab" * 40, "ba" * i) for i in range(1, 40, 7)]
    long_names += ["b" * 100 + "/a" * 30]
    with imap_srv.raw() as c:
        for name in long_names:
            c.ok("CREATE %s" % quoted(name))
        names = [n for n, _ in lines_of(c, 'LIST "" "*"')]
        for _ in range(100):
            pat = "".join(rnd.choice(["ab", "ba", "a", "b", "/", "*", "%",
                                      "ab" * 12]) for _ in range(
                                          rnd.randrange(1, 30)))
            want = [n for n in names if model_match(pat, n)]
            got = [n for n, _ in lines_of(c, 'LIST "" %s' % quoted(pat))]
            assert got == want, pat
