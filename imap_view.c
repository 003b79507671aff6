/*
 * imap_view.c — the selected mailbox as one session knows it, kept
 * compact: its messages' UIDs as ranges of UIDs that follow each other,
 * not one entry per message.
 *
 * Why.  Every session that selects a mailbox holds its own view (the
 * sequence numbers are the session's: RFC 3501 7.4.1 lets an EXPUNGE
 * renumber them only where that session may be told).  An array of
 * UIDs costs 4 to 8 bytes a message: 40 sessions on a two-million
 * message mailbox held hundreds of MiB.  A mailbox's UIDs are nearly
 * always long runs (delivery and COPY give consecutive UIDs, expunges
 * are few), so a view costs 8 bytes a run plus a sparse index of
 * sequence numbers; the worst case, every other UID expunged, is 8.25
 * bytes a message, about what the array cost.  The messages expunged
 * elsewhere but not yet announced (gone) and those \Recent for this
 * session are UID range sets too.
 *
 * Sequence numbers.  Message n (1-based) is the n-th UID of msgs.
 * index[b] is the number of messages before range b * VIEW_INDEX_EVERY,
 * so that finding message n is a binary search of index and a walk of
 * at most VIEW_INDEX_EVERY ranges.  UIDs only grow, so messages are
 * only appended, and only imap_view_drop_gone() takes some out.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "imap_context.h"
#include "imap_session.h"

/* Messages in range r. */
static uint32_t
range_size(const struct imap_range *r)
{
	return r->hi - r->lo + 1;
}

/* The index of the first range whose hi is at least uid (n: none). */
static size_t
uidset_find(const struct imap_uidset *set, uint32_t uid)
{
	size_t	 lo = 0, hi = set->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (set->r[mid].hi < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
imap_uidset_has(const struct imap_uidset *set, uint32_t uid)
{
	size_t	 i = uidset_find(set, uid);

	return i < set->n && set->r[i].lo <= uid;
}

/* Makes room for one more range; returns 0 or -1 without memory. */
static int
uidset_grow(struct imap_uidset *set)
{
	struct imap_range	*grown;
	size_t			 cap;

	if (set->n < set->cap)
		return 0;
	cap = set->cap ? set->cap * 2 : 4;
	if ((grown = reallocarray(set->r, cap, sizeof(*grown))) == NULL)
		return -1;
	set->r = grown;
	set->cap = cap;
	return 0;
}

int
imap_uidset_add(struct imap_uidset *set, uint32_t uid)
{
	size_t	 i = uidset_find(set, uid);

	if (i < set->n && set->r[i].lo <= uid)
		return 0;
	if (i > 0 && set->r[i - 1].hi + 1 == uid) {
		set->r[i - 1].hi = uid;
		if (i < set->n && set->r[i].lo == uid + 1) {
			set->r[i - 1].hi = set->r[i].hi;
			memmove(&set->r[i], &set->r[i + 1], (set->n - i - 1) *
			    sizeof(*set->r));
			set->n--;
		}
		return 1;
	}
	if (i < set->n && set->r[i].lo == uid + 1) {
		set->r[i].lo = uid;
		return 1;
	}
	if (uidset_grow(set) < 0)
		return -1;
	memmove(&set->r[i + 1], &set->r[i], (set->n - i) * sizeof(*set->r));
	set->r[i].lo = set->r[i].hi = uid;
	set->n++;
	return 1;
}

int
imap_uidset_del(struct imap_uidset *set, uint32_t uid)
{
	size_t			 i = uidset_find(set, uid);
	struct imap_range	*r;

	if (i == set->n || set->r[i].lo > uid)
		return 0;
	r = &set->r[i];
	if (r->lo == r->hi) {
		memmove(r, r + 1, (set->n - i - 1) * sizeof(*r));
		set->n--;
	} else if (r->lo == uid)
		r->lo++;
	else if (r->hi == uid)
		r->hi--;
	else {
		if (uidset_grow(set) < 0)
			return -1;
		r = &set->r[i];
		memmove(r + 1, r, (set->n - i) * sizeof(*r));
		set->n++;
		r[0].hi = uid - 1;
		r[1].lo = uid + 1;
	}
	return 1;
}

/*
 * a without the UIDs of b, into *out (malloc'd; a is left as it is),
 * and in *went how many UIDs that took out.  Each range of b splits at
 * most one of a in two, so a.n + b.n ranges hold the result.  Returns 0,
 * or -1 without memory (*out then holds nothing).
 */
static int
uidset_minus(const struct imap_uidset *a, const struct imap_uidset *b,
    struct imap_uidset *out, uint32_t *went)
{
	const struct imap_range	*cur, *cut;
	size_t			 i, k = 0;
	uint32_t		 lo;
	int			 rest;

	*went = 0;
	memset(out, 0, sizeof(*out));
	out->cap = a->n + b->n + 1;	/* never 0: calloc(0) may be NULL */
	if ((out->r = calloc(out->cap, sizeof(*out->r))) == NULL)
		return -1;
	for (i = 0; i < a->n; i++) {
		cur = &a->r[i];
		while (k < b->n && b->r[k].hi < cur->lo)
			k++;
		lo = cur->lo;
		rest = 1;
		for (; k < b->n && b->r[k].lo <= cur->hi; k++) {
			cut = &b->r[k];
			if (cut->lo > lo) {
				out->r[out->n].lo = lo;
				out->r[out->n++].hi = cut->lo - 1;
			}
			*went += (cut->hi < cur->hi ? cut->hi : cur->hi) -
			    (cut->lo > lo ? cut->lo : lo) + 1;
			if (cut->hi >= cur->hi) {
				rest = 0;	/* cut may cut the next too */
				break;
			}
			lo = cut->hi + 1;
		}
		if (rest) {
			out->r[out->n].lo = lo;
			out->r[out->n++].hi = cur->hi;
		}
	}
	return 0;
}

void
imap_uidset_free(struct imap_uidset *set)
{
	free(set->r);
	memset(set, 0, sizeof(*set));
}

/* --- the view ------------------------------------------------------------ */

/*
 * Makes the index hold the entries of nranges ranges; returns 0 or -1
 * without memory.
 */
static int
view_index_reserve(struct imap_view *v, size_t nranges)
{
	uint32_t	*grown;
	size_t		 need = (nranges + VIEW_INDEX_EVERY - 1) /
			    VIEW_INDEX_EVERY;

	if (need <= v->capindex)
		return 0;
	need += need / 2 + 4;
	if ((grown = reallocarray(v->index, need, sizeof(*grown))) == NULL)
		return -1;
	v->index = grown;
	v->capindex = need;
	return 0;
}

/* Fills the index from the ranges (view_index_reserve() made room). */
static void
view_index_fill(struct imap_view *v)
{
	uint32_t	 before = 0;
	size_t		 i;

	for (i = 0; i < v->msgs.n; i++) {
		if (i % VIEW_INDEX_EVERY == 0)
			v->index[i / VIEW_INDEX_EVERY] = before;
		before += range_size(&v->msgs.r[i]);
	}
	v->nindex = (v->msgs.n + VIEW_INDEX_EVERY - 1) / VIEW_INDEX_EVERY;
}

/* Messages before range k of the view. */
static uint32_t
view_before(const struct imap_view *v, size_t k)
{
	uint32_t	 before = v->index[k / VIEW_INDEX_EVERY];
	size_t		 i;

	for (i = k - k % VIEW_INDEX_EVERY; i < k; i++)
		before += range_size(&v->msgs.r[i]);
	return before;
}

uint32_t
imap_view_uid(const struct imap_view *v, uint32_t seq)
{
	size_t		 lo = 0, hi = v->nindex, mid, k;
	uint32_t	 before, i = seq - 1;

	if (seq == 0 || seq > v->count)
		return 0;
	while (hi - lo > 1) {		/* the last block starting <= i */
		mid = lo + (hi - lo) / 2;
		if (v->index[mid] <= i)
			lo = mid;
		else
			hi = mid;
	}
	before = v->index[lo];
	for (k = lo * VIEW_INDEX_EVERY; i - before >= range_size(&v->msgs.r[k]);
	    k++)
		before += range_size(&v->msgs.r[k]);
	return v->msgs.r[k].lo + (i - before);
}

uint32_t
imap_view_lower_bound(const struct imap_view *v, uint32_t uid)
{
	size_t	 k = uidset_find(&v->msgs, uid);

	if (k == v->msgs.n)
		return v->count;
	return view_before(v, k) + (uid > v->msgs.r[k].lo ?
	    uid - v->msgs.r[k].lo : 0);
}

uint32_t
imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	if (!imap_uidset_has(&v->msgs, uid))
		return 0;
	return imap_view_lower_bound(v, uid) + 1;
}

uint32_t
imap_view_last_uid(const struct imap_view *v)
{
	return v->msgs.n > 0 ? v->msgs.r[v->msgs.n - 1].hi : 0;
}

int
imap_view_append(struct imap_view *v, uint32_t uid, int recent)
{
	struct imap_uidset	*m = &v->msgs;

	if (uid <= imap_view_last_uid(v))
		return 0;	/* known already: UIDs only grow */
	if (recent && imap_uidset_add(&v->recent_uids, uid) < 0)
		return -1;
	if (m->n > 0 && m->r[m->n - 1].hi + 1 == uid)
		m->r[m->n - 1].hi = uid;
	else if (uidset_grow(m) < 0 || view_index_reserve(v, m->n + 1) < 0) {
		if (recent)	/* the highest UID: taking it splits nothing */
			(void)imap_uidset_del(&v->recent_uids, uid);
		return -1;
	} else {
		if (m->n % VIEW_INDEX_EVERY == 0)
			v->index[v->nindex++] = v->count;
		m->r[m->n].lo = m->r[m->n].hi = uid;
		m->n++;
	}
	v->recent += recent != 0;
	v->count++;
	return 0;
}

int
imap_view_seqs_to_uids(const struct imap_view *v, struct imap_seqset *set)
{
	struct imap_range	*out, *vr;
	size_t			 i, k = 0, n = 0;
	uint32_t		 base = 0, from, to, hi;

	if ((out = calloc(set->n + v->msgs.n + 1, sizeof(*out))) == NULL)
		return -1;
	for (i = 0; i < set->n && k < v->msgs.n; i++) {
		hi = set->r[i].hi < v->count ? set->r[i].hi : v->count;
		for (; k < v->msgs.n && set->r[i].lo <= hi; k++) {
			vr = &v->msgs.r[k];
			if (base + range_size(vr) >= set->r[i].lo) {
				from = set->r[i].lo > base ? set->r[i].lo :
				    base + 1;
				to = hi < base + range_size(vr) ? hi :
				    base + range_size(vr);
				out[n].lo = vr->lo + (from - base - 1);
				out[n++].hi = vr->lo + (to - base - 1);
				if (to == hi)
					break;	/* the next may start here */
			}
			base += range_size(vr);
		}
	}
	free(set->r);
	set->r = out;
	set->n = n;
	return 0;
}

int
imap_view_mark_gone(struct imap_view *v, uint32_t uid, int gone)
{
	int	 r;

	if (!imap_uidset_has(&v->msgs, uid))
		return 0;
	r = gone ? imap_uidset_add(&v->gone_uids, uid) :
	    imap_uidset_del(&v->gone_uids, uid);
	if (r > 0 && gone)
		v->gone++;
	else if (r > 0)
		v->gone--;
	return r < 0 ? -1 : 0;
}

int
imap_view_is_gone(const struct imap_view *v, uint32_t uid)
{
	return v->gone > 0 && imap_uidset_has(&v->gone_uids, uid);
}

int
imap_view_is_recent(const struct imap_view *v, uint32_t uid)
{
	return v->recent > 0 && imap_uidset_has(&v->recent_uids, uid);
}

/*
 * Tells the client which messages went: "* VANISHED uids" for a QRESYNC
 * client (RFC 7162 3.2.10), every UID in it one the client knows, else
 * "* n EXPUNGE" for each, numbered as the client renumbers after each.
 */
static void
view_say_gone(struct session *s, const struct imap_view *v)
{
	const struct imap_uidset *gone = &v->gone_uids;
	const struct imap_range	*r;
	uint32_t		 seq, removed = 0, k;
	size_t			 i;

	if (imap_of(s)->qresync) {
		for (i = 0; i < gone->n; i++) {
			r = &gone->r[i];
			session_printf(s, r->lo == r->hi ? "%s%u" : "%s%u:%u",
			    i ? "," : "* VANISHED ", r->lo, r->hi);
		}
		session_printf(s, "\r\n");
		return;
	}
	for (i = 0; i < gone->n; i++) {
		r = &gone->r[i];
		/* gone's UIDs are the view's: a range is consecutive numbers */
		seq = imap_view_lower_bound(v, r->lo) + 1 - removed;
		for (k = 0; k < range_size(r); k++)
			session_printf(s, "* %u EXPUNGE\r\n", seq);
		removed += range_size(r);
	}
}

void
imap_view_drop_gone(struct session *s, struct imap_view *v, int silent)
{
	struct imap_uidset	 msgs, recent;
	uint32_t		 gone, went;

	if (v->gone == 0)
		return;
	if (uidset_minus(&v->msgs, &v->gone_uids, &msgs, &gone) < 0)
		return;		/* without memory: at the next point */
	if (uidset_minus(&v->recent_uids, &v->gone_uids, &recent,
	    &went) < 0 || view_index_reserve(v, msgs.n) < 0) {
		imap_uidset_free(&msgs);
		imap_uidset_free(&recent);
		return;
	}
	imap_context_gone(s, v, silent);
	if (!silent)
		view_say_gone(s, v);
	imap_uidset_free(&v->msgs);
	imap_uidset_free(&v->recent_uids);
	imap_uidset_free(&v->gone_uids);
	v->msgs = msgs;
	v->recent_uids = recent;
	v->recent -= went;
	v->count -= gone;
	v->gone = 0;
	view_index_fill(v);
}

void
imap_view_free(struct imap_view *v)
{
	if (v == NULL)
		return;
	imap_uidset_free(&v->msgs);
	imap_uidset_free(&v->gone_uids);
	imap_uidset_free(&v->recent_uids);
	imap_uidset_free(&v->reread);
	free(v->index);
	free(v->own);
	imap_view_save(v, NULL);
	imap_context_free_all(v);
	free(v);
}
