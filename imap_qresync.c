/*
 * imap_qresync.c — QRESYNC's VANISHED (EARLIER) response (RFC 7162
 * 3.2.5.2 and 3.2.6): which UIDs of a set went from a mailbox since a
 * MODSEQ the client knew.
 *
 * From the tombstones while they reach back that far.  The purge
 * (sync.c, store_purge.c) drops old tombstones and keeps, per mailbox,
 * the highest MODSEQ it dropped; a client asking from before that is
 * answered as RFC 7162 lets a server that no longer knows: every UID of
 * its set below UIDNEXT that the mailbox does not hold, whenever it
 * went, or if it was never used (a client ignores UIDs it does not know
 * in VANISHED (EARLIER), 3.2.10).  No expunge is ever left out; some
 * the client had seen already may be told again.  Dovecot answers the
 * same way once its transaction log no longer reaches back
 * (imap-fetch.c, get_expunges_fallback()).
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "imap_session.h"
#include "store.h"

/* "* VANISHED (EARLIER) a:b,c..." written as ranges come, in UID order. */
struct vanished {
	struct session		*s;
	const struct imap_seqset *within;	/* or NULL: every UID */
	size_t			 range;		/* of within, being walked */
	uint32_t		 lo, hi;	/* the range held back, or 0 */
	int			 written;	/* the prefix went out */
};

/* Writes the range held back, if any. */
static void
vanished_flush(struct vanished *x)
{
	if (x->lo == 0)
		return;
	session_printf(x->s, "%s%u", x->written ? "," :
	    "* VANISHED (EARLIER) ", x->lo);
	if (x->hi != x->lo)
		session_printf(x->s, ":%u", x->hi);
	x->written = 1;
	x->lo = x->hi = 0;
}

/* Adds lo:hi, a range that starts above every range added before. */
static void
vanished_add(struct vanished *x, uint32_t lo, uint32_t hi)
{
	if (x->lo != 0 && lo == x->hi + 1) {
		x->hi = hi;
		return;
	}
	vanished_flush(x);
	x->lo = lo;
	x->hi = hi;
}

/*
 * Adds lo:hi as far as it lies in the set: the set's ranges are sorted
 * and disjoint (imap_seqset_resolve()), and the calls come in UID order,
 * so one cursor walks them.
 */
static void
vanished_add_within(struct vanished *x, uint32_t lo, uint32_t hi)
{
	const struct imap_range	*r;

	if (x->within == NULL) {
		vanished_add(x, lo, hi);
		return;
	}
	for (; x->range < x->within->n; x->range++) {
		r = &x->within->r[x->range];
		if (r->hi < lo)
			continue;
		if (r->lo > hi)
			return;
		vanished_add(x, lo > r->lo ? lo : r->lo, hi < r->hi ? hi :
		    r->hi);
		if (r->hi > hi)
			return;
	}
}

/* A tombstone newer than the client's MODSEQ. */
static int
vanished_tombstone(void *arg, uint32_t uid)
{
	vanished_add_within(arg, uid, uid);
	return 0;
}

/* The fallback: a walk of the mailbox, adding the UIDs between. */
struct absent {
	struct vanished	*x;
	uint32_t	 next;		/* the lowest UID not walked yet */
};

static int
absent_before(void *arg, const struct store_message *m)
{
	struct absent	*a = arg;

	if (m->uid > a->next)
		vanished_add_within(a->x, a->next, m->uid - 1);
	a->next = m->uid + 1;
	return 0;
}

int
imap_vanished_earlier(struct session *s, const struct imap_view *v,
    const struct imap_seqset *within, uint64_t since)
{
	struct store		*st = s->srv->store;
	struct vanished		 x = { s, within, 0, 0, 0, 0 };
	struct absent		 a = { &x, 1 };
	enum store_err		 err;

	if (since >= store_tombs_purged(st, v->mb.uniqueid))
		err = store_expunged_since(st, v->mb.uniqueid, since,
		    vanished_tombstone, &x);
	else {
		err = store_message_foreach(st, v->mb.id, absent_before, &a);
		if (err == STORE_OK && a.next < v->uidnext)
			vanished_add_within(&x, a.next, v->uidnext - 1);
	}
	vanished_flush(&x);
	if (x.written)
		session_printf(s, "\r\n");	/* a walk cut short too */
	return err == STORE_OK ? 0 : -1;
}
