"""The history of a test_jepsen.py run and the invariants checked on it.

The history is what the clients were told and what the observers saw:
every operation and fault in order (one compact line each), which
messages were acknowledged (LMTP 250, APPEND OK), which a client removed
(EXPUNGE, DELETE of their mailbox), which an operator's restore from an
old backup legitimately lost, and every (uid, message) an IMAP session
was shown in each mailbox of each node.  Messages are known by a marker,
their unique Message-ID.

Invariants (each violation names one of these):
  lost          an acknowledged message that no client removed is missing
                on a node after the heal;
  refused-kept  a message whose delivery was refused (4xx/5xx, NO) is
                stored somewhere: its sender retries, so it would be twice;
  phantom       a node holds a message no client ever sent;
  duplicate     a message no client moved is twice in one mailbox;
  uid-reuse     within one node's UIDVALIDITY of a mailbox, a UID named two
                messages, or a message the node never held there appeared
                below a UIDNEXT it had announced;
  mailbox-gone  a mailbox that took acknowledged mail is missing on a node
                though no client deleted it after that mail arrived;
  drain-lied    `mailrepd drain` exited 0 while a replica it knew lacked a
                message the drained master held;
  guard         the mass-delete guard paused on more expunges or mailbox
                deletes than clients ever made;
  converge      the nodes did not reach the same state within the bound;
  check         `mailrepd check` reported a problem;
  crash         a node died on its own, exited non-zero on SIGTERM, did
                not start, or its log holds a sanitizer report.
"""
import collections
import re

MARKER = re.compile(r"<(m\d+)@jepsen\.test>", re.I)


def marker_of(text):
    """The marker in a Message-ID header (str or bytes), or None."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    m = MARKER.search(text)
    return m.group(1) if m else None


class History:
    """One cluster life: events, what clients were told, what was seen."""

    def __init__(self, seed, life):
        self.seed, self.life = seed, life
        self.round, self.step = 0, 0
        self.clock = 0                  # steps of every round so far
        self.lines = []
        self.violations = []
        self.sent = {}                  # marker -> (user, mailbox)
        self.acked = {}                 # marker -> (user, mailbox, event)
        self.refused = {}               # marker -> event
        self.removed = {}               # marker -> why (a client's act)
        self.lost_by_restore = {}       # marker -> event
        self.moved = set()
        # (user, box) -> [(clock, markers)] of acknowledged arrivals
        self.arrivals = collections.defaultdict(list)
        self.deletes = collections.defaultdict(list)   # (user, box) -> clock
        self.renames = collections.defaultdict(set)    # (user, box) -> {new}
        self.client_expunges = collections.Counter()   # user -> messages
        self.client_box_deletes = 0
        self.names = {}                 # (node, uid key) -> {marker: event}
        self.held = {}                  # (node, inc, user, box, uidv) -> set
        self.announced = {}             # same key -> highest UIDNEXT seen
        self.n = 0

    # --- the event log ----------------------------------------------------

    def event(self, who, what, result=""):
        """Appends one compact line; returns its tag (r2#07)."""
        self.step += 1
        self.clock += 1
        tag = self.tag()
        self.lines.append("%s %-4s %s%s" % (tag, who, what,
                                            " -> " + brief(result) if result
                                            else ""))
        return tag

    def tag(self):
        """The current step, as lines show it: round 2, step 7 is r2#07."""
        return "r%d#%02d" % (self.round, self.step)

    def note(self, text):
        """A line that is not a step (heal details, observations)."""
        self.lines.append("       %s" % text)

    def violation(self, kind, text):
        self.violations.append((self.round, kind, text))
        self.note("VIOLATION %s: %s" % (kind, text))

    def new_marker(self):
        self.n += 1
        return "m%05d" % self.n

    # --- what the clients were told -----------------------------------------

    def sending(self, marker, user, box):
        self.sent[marker] = (user, box)

    def acknowledged(self, marker, tag):
        user, box = self.sent[marker]
        self.acked[marker] = (user, box, tag)
        self.arrivals[(user, box)].append((self.clock, [marker]))

    def refuse(self, marker, tag):
        self.refused[marker] = tag

    def remove(self, markers, why):
        for m in markers:
            self.removed.setdefault(m, why)

    def moved_to(self, user, markers, box):
        self.moved.update(markers)
        if markers:
            self.arrivals[(user, box)].append((self.clock, list(markers)))

    def deleted_box(self, user, box):
        self.deletes[(user, box)].append(self.clock)
        self.client_box_deletes += 1

    def renamed_box(self, user, old, new):
        self.renames[(user, old)].add(new)

    def restore_lost(self, markers, tag):
        for m in markers:
            self.lost_by_restore.setdefault(m, tag)

    def must_survive(self):
        """Acknowledged markers that nothing excuses."""
        return {m: v for m, v in self.acked.items()
                if m not in self.removed and m not in self.lost_by_restore}

    # --- what sessions were shown -------------------------------------------

    def observe(self, node, inc, user, box, uidv, pairs, uidnext=None):
        """Records (uid, marker) pairs a session on `node` (incarnation
        inc) was shown in box/uidv; with uidnext, pairs is the whole
        mailbox as of the UIDNEXT that SELECT announced.  Checks that no
        UID names two messages and that nothing new appears below an
        announced UIDNEXT."""
        key = (node, inc, user, box, uidv)
        held = self.held.setdefault(key, set())
        floor = self.announced.get(key, 0)
        for uid, marker in pairs:
            if marker is None or (uid, marker) in held:
                continue
            names = self.names.setdefault(key + (uid,), {})
            others = ["%s (seen %s)" % (o, when)
                      for o, when in names.items() if o != marker]
            if others:
                self.violation("uid-reuse", "%s %s %s UIDVALIDITY %d UID "
                               "%d named %s, now %s" % (
                                   node, user, box, uidv, uid,
                                   ", ".join(others), marker))
            elif uid < floor:
                self.violation("uid-reuse", "%s %s %s UIDVALIDITY %d: %s "
                               "appeared at UID %d below the UIDNEXT %d "
                               "announced before" % (node, user, box, uidv,
                                                     marker, uid, floor))
            names.setdefault(marker, self.tag())
            held.add((uid, marker))
        if uidnext is not None and uidnext > floor:
            self.announced[key] = uidnext

    # --- reporting ----------------------------------------------------------

    def about(self, marker):
        """The event lines that name a marker (or a range m1-m2 that
        holds it)."""
        n = int(marker[1:])
        return [l for l in self.lines
                if re.search(r"\b%s\b" % marker, l) or any(
                    int(a) <= n <= int(b)
                    for a, b in re.findall(r"\bm(\d+)-m(\d+)\b", l))]

    def text(self):
        return "\n".join(self.lines)


def brief(reply):
    """A reply as short as it can be said: '250', 'OK', 'OK [APPENDUID
    1 2]', 'NO [TRYCREATE]', '451 4.3.0 This node is ...'."""
    words = reply.split()
    if words and words[0] in ("250", "OK", "NO", "BAD"):
        code = [w for w in words[1:3] if w.startswith("[") or
                w[-1:] == "]"]
        if words[0] == "OK" and code and code[0] == "[APPENDUID":
            return " ".join(words[:4])
        return " ".join(words[:1] + code[:1])
    return reply[:60]


def lineage(hist, user, box):
    """box and every name a client renamed it (or a successor) to."""
    out, todo = set(), [box]
    while todo:
        b = todo.pop()
        if b not in out:
            out.add(b)
            todo.extend(hist.renames.get((user, b), ()))
    return out


def check_final(hist, final):
    """The invariants on the healed cluster.  final: node name ->
    {"boxes": {user: set of names}, "msgs": [(user, box, uid, marker)]}."""
    survive = hist.must_survive()
    for node, view in sorted(final.items()):
        where = collections.defaultdict(list)       # (user, m) -> [box]
        doubled = []
        for user, box, uid, marker in view["msgs"]:
            where[(user, marker)].append(box)
        lost = ["%s (%s %s, acked %s)" % (m, user, box, tag)
                for m, (user, box, tag) in sorted(survive.items())
                if (user, m) not in where]
        if lost:
            hist.violation("lost", "%d acknowledged messages missing on "
                           "%s: %s" % (len(lost), node, ", ".join(lost)))
        for (user, m), boxes in sorted(where.items()):
            if m not in hist.sent:
                hist.violation("phantom", "%s %s holds %s in %s" % (
                    node, user, m, boxes))
            elif m in hist.refused:
                hist.violation("refused-kept", "%s (refused %s) stored on "
                               "%s in %s" % (m, hist.refused[m], node,
                                             boxes))
            twice = [b for b, k in collections.Counter(boxes).items()
                     if k > 1]
            if twice and m not in hist.moved:
                doubled.append("%s (%s %s)" % (m, user, "/".join(twice)))
        if doubled:
            hist.violation("duplicate", "%s holds %d messages twice in one "
                           "mailbox: %s" % (node, len(doubled),
                                            ", ".join(doubled)))
        for (user, box), arrived in sorted(hist.arrivals.items()):
            steps = [s for s, ms in arrived
                     if any(m not in hist.lost_by_restore for m in ms)]
            if not steps:
                continue
            names = lineage(hist, user, box)
            last = max(steps)
            if any(s > last for n in names
                   for s in hist.deletes.get((user, n), ())):
                continue
            if not names & view["boxes"].get(user, set()):
                renamed = sorted(names - {box})
                hist.violation("mailbox-gone", "%s %s%s (took acknowledged "
                               "mail) is gone on %s" % (
                                   user, box, " (renamed %s)" % "/".join(
                                       renamed) if renamed else "", node))
