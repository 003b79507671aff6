/*
 * imap_context.c — updating searches (RFC 5267 4.3): what SEARCH or
 * SORT RETURN (UPDATE) leaves behind, and CANCELUPDATE.
 *
 * A context keeps its compiled search and its result: the UIDs that
 * match, as ranges.  The result is what tells, when a message changes,
 * whether the client already has it; the store keeps no old flags to
 * compare with (RFC 5267 appendix B).  Three things change a result:
 *
 * - a message arrives or its flags change (imap_sync() sees its row
 *   newer than the view, this session's own changes included): its UID
 *   goes into the context's pending set, and imap_context_run() tests it
 *   again, within a step's budget; what is left waits for a later step,
 *   and the session takes no further command until it is done (imap.c).
 *   A search with BODY keys may stop in the middle of a big message and
 *   go on there.  Only changed messages are tested, never the mailbox.
 * - a message leaves (imap_view_drop_gone()): it is taken out of the
 *   result at once, and REMOVEFROM goes out before its EXPUNGE, while
 *   its sequence number still means it (RFC 5267 4.3.4).
 * - the mailbox is no longer selected: the view and its contexts go.
 *
 * The sequence numbers in ADDTO and REMOVEFROM are worked out from the
 * UIDs when the response is written, so they are always the client's.
 * ADDTO goes out only after the EXISTS of the messages it names
 * (imap_sync() writes EXISTS before it runs the contexts).
 *
 * Sequence sets among the search keys keep the meaning they had when
 * the command came (RFC 5267 4.3): they are turned into UIDs.
 *
 * An updating SORT also keeps its result's UIDs in the order sorted,
 * and says where each change goes: "ADDTO (position n)".  The sort keys
 * never change (dates, size, addresses, subject), so a message that
 * still matches stays where it is; one that joins is placed by a binary
 * search that reads the keys of about log2(n) messages from the store,
 * none kept in memory.  One that leaves is found in the order by a
 * walk.  IMAP_MAX_SORT_UPDATE bounds the result it may start with, and
 * so the memory and the walks.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "imap_context.h"
#include "imap_esearch.h"
#include "imap_search.h"
#include "imap_session.h"
#include "imap_sort.h"
#include "proto.h"
#include "store.h"

struct imap_context {
	struct imap_context	*next;
	char			*tag;
	int			 uid;		/* UID SEARCH: UIDs, else
						   sequence numbers */
	struct search		*search;
	struct imap_uidset	 result;	/* UIDs that match */
	struct imap_uidset	 pending;	/* UIDs to test again */
	/* SORT's: the criteria, and result's UIDs in the order sorted */
	int			 sorted;
	struct sort_criteria	 criteria;
	uint32_t		*order;
	size_t			 norder, caporder;
};

/* The UIDs that joined or left one context's result in one run. */
struct context_news {
	uint32_t	 added[IMAP_STEP_MESSAGES];
	uint32_t	 removed[IMAP_STEP_MESSAGES];
	size_t		 nadded, nremoved;
};

static struct imap_context *
context_find(const struct imap_view *v, const char *tag)
{
	struct imap_context	*c;

	for (c = v->contexts; c != NULL; c = c->next)
		if (strcmp(c->tag, tag) == 0)
			return c;
	return NULL;
}

int
imap_context_check(const struct imap_view *v, const char *tag)
{
	const struct imap_context	*c;
	size_t				 n = 0;

	if (context_find(v, tag) != NULL)
		return 0;
	for (c = v->contexts; c != NULL; c = c->next)
		n++;
	return n < IMAP_MAX_UPDATES ? 1 : -1;
}

static void
context_free(struct imap_context *c)
{
	free(c->tag);
	if (c->search != NULL)
		imap_search_matches_free(c->search);
	imap_uidset_free(&c->result);
	imap_uidset_free(&c->pending);
	free(c->order);
	free(c);
}

int
imap_context_add(struct imap_view *v, const char *tag, int uid,
    struct search *se, struct imap_uidset *result,
    const struct sort_criteria *criteria, uint32_t *order, size_t n)
{
	struct imap_context	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->tag = strdup(tag)) == NULL) {
		free(c);
		return -1;
	}
	c->uid = uid;
	c->search = se;
	if (criteria != NULL) {
		c->sorted = 1;
		c->criteria = *criteria;
		c->order = order;
		c->norder = c->caporder = n;
	}
	c->result = *result;
	memset(result, 0, sizeof(*result));
	c->next = v->contexts;
	v->contexts = c;
	return 0;
}

void
imap_say_noupdate(struct session *s, const char *why)
{
	const char	*tag = imap_of(s)->tag;

	session_printf(s, "* NO [NOUPDATE ");
	imap_put_string(s, tag, strlen(tag));
	session_printf(s, "] %s\r\n", why);
}

void
imap_context_changed(struct imap_view *v, uint32_t uid)
{
	struct imap_context	*c;

	/* Without memory the change goes untold: nothing else breaks. */
	for (c = v->contexts; c != NULL; c = c->next)
		(void)imap_uidset_add(&c->pending, uid);
}

/*
 * Writes "* ESEARCH (TAG "t") [UID] what (0 set)": n ascending UIDs of
 * the view, made sequence numbers in place unless the context is UID's
 * (they stay ascending either way).  Position 0: the client keeps a SEARCH result
 * in mailbox order (RFC 5267 4.3.3).
 */
static void
put_update(struct session *s, const struct imap_view *v,
    const struct imap_context *c, const char *what, uint32_t *uids,
    size_t n)
{
	size_t	 i;

	if (n == 0)
		return;
	if (!c->uid)
		for (i = 0; i < n; i++)
			uids[i] = imap_view_seq(v, uids[i]);
	session_printf(s, "* ESEARCH (TAG ");
	imap_put_string(s, c->tag, strlen(c->tag));
	session_printf(s, ")%s %s (0 ", c->uid ? " UID" : "", what);
	imap_put_number_list(s, uids, n);
	session_printf(s, ")\r\n");
}

/*
 * Writes "* ESEARCH (TAG "t") [UID] what (pos n)" for one message of a
 * SORT's result: n its sequence number or UID, pos its place (1-based)
 * in the order sorted.
 */
static void
put_placed(struct session *s, const struct imap_view *v,
    const struct imap_context *c, const char *what, size_t pos, uint32_t uid)
{
	session_printf(s, "* ESEARCH (TAG ");
	imap_put_string(s, c->tag, strlen(c->tag));
	session_printf(s, ")%s %s (%zu %u)\r\n", c->uid ? " UID" : "", what,
	    pos, c->uid ? uid : imap_view_seq(v, uid));
}

/*
 * A SORT's result without the view's gone messages, in one walk of its
 * order, each with its REMOVEFROM (unless silent) at the place it has
 * once those before it went.
 */
static void
sorted_gone(struct session *s, const struct imap_view *v,
    struct imap_context *c, int silent)
{
	size_t		 i, k = 0;
	uint32_t	 uid;

	for (i = 0; i < c->norder; i++) {
		uid = c->order[i];
		if (!imap_view_is_gone(v, uid)) {
			c->order[k++] = uid;
			continue;
		}
		(void)imap_uidset_del(&c->result, uid);
		if (!silent)
			put_placed(s, v, c, "REMOVEFROM", k + 1, uid);
	}
	c->norder = k;
}

/*
 * The REMOVEFROM of one context for the view's gone messages, taken out
 * of its result (and of what it was to test).  A SEARCH's goes in lines
 * of at most IMAP_STEP_MESSAGES numbers; the walk costs what the
 * EXPUNGE responses of those messages cost.
 */
static void
context_gone(struct session *s, struct imap_view *v, struct imap_context *c,
    int silent)
{
	uint32_t	 took[IMAP_STEP_MESSAGES];
	size_t		 n = 0, g;
	uint32_t	 uid;

	if (c->sorted)
		sorted_gone(s, v, c, silent);
	for (g = 0; g < v->gone_uids.n; g++)
		for (uid = v->gone_uids.r[g].lo;; uid++) {
			(void)imap_uidset_del(&c->pending, uid);
			if (!c->sorted &&
			    imap_uidset_del(&c->result, uid) > 0)
				took[n++] = uid;
			if (n == IMAP_STEP_MESSAGES) {
				if (!silent)
					put_update(s, v, c, "REMOVEFROM", took,
					    n);
				n = 0;
			}
			if (uid == v->gone_uids.r[g].hi)
				break;
		}
	if (!silent)
		put_update(s, v, c, "REMOVEFROM", took, n);
}

void
imap_context_gone(struct session *s, struct imap_view *v, int silent)
{
	struct imap_context	*c;

	for (c = v->contexts; c != NULL; c = c->next)
		context_gone(s, v, c, silent);
}

/*
 * Where a message with keys m goes in a SORT's order: a binary search
 * reading the keys of the messages it compares with.  A message gone
 * from the store meanwhile cannot be read; the next one is read in its
 * place (where the new one goes among gone ones does not matter: they
 * leave before the client sees another change).  Returns 0 with *pos
 * (0-based), or -1 on a store error.
 */
static int
sorted_place(struct session *s, const struct imap_context *c,
    const struct sort_msg *m, size_t *pos)
{
	struct sort_msg	 probe;
	size_t		 lo = 0, hi = c->norder, mid, k;
	enum store_err	 err = STORE_NOTFOUND;
	int		 cmp;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		for (k = mid; k < hi; k++) {
			memset(&probe, 0, sizeof(probe));
			probe.seq = probe.uid = c->order[k];
			err = imap_sort_load(s->srv->store,
			    imap_of(s)->view->mb.id, &c->criteria, &probe);
			if (err == STORE_OK)
				break;
			imap_sort_msg_free(&probe);
			if (err != STORE_NOTFOUND)
				return -1;
		}
		if (k == hi) {
			hi = mid;	/* [mid, hi) are all gone */
			continue;
		}
		cmp = imap_sort_cmp(m, &probe, &c->criteria);
		imap_sort_msg_free(&probe);
		if (cmp < 0)
			hi = mid;
		else
			lo = k + 1;
	}
	*pos = lo;
	return 0;
}

/*
 * A message joins a SORT's order at its place, with its ADDTO.  Returns
 * 0, or -1 (memory, a store error) with nothing changed.
 */
static int
sorted_add(struct session *s, struct imap_context *c, uint32_t uid)
{
	struct sort_msg	 m;
	uint32_t	*grown;
	size_t		 pos, cap;
	int		 rc;

	if (c->norder == c->caporder) {
		cap = c->caporder ? c->caporder * 2 : 16;
		if ((grown = reallocarray(c->order, cap, sizeof(*grown))) ==
		    NULL)
			return -1;
		c->order = grown;
		c->caporder = cap;
	}
	memset(&m, 0, sizeof(m));
	m.seq = m.uid = uid;	/* UIDs order as sequence numbers do */
	rc = imap_sort_load(s->srv->store, imap_of(s)->view->mb.id,
	    &c->criteria, &m) == STORE_OK ? sorted_place(s, c, &m, &pos) : -1;
	imap_sort_msg_free(&m);
	if (rc < 0)
		return -1;
	memmove(&c->order[pos + 1], &c->order[pos], (c->norder - pos) *
	    sizeof(*c->order));
	c->order[pos] = uid;
	c->norder++;
	put_placed(s, imap_of(s)->view, c, "ADDTO", pos + 1, uid);
	return 0;
}

/* A message leaves a SORT's order, with its REMOVEFROM. */
static void
sorted_remove(struct session *s, struct imap_context *c, uint32_t uid)
{
	size_t	 i;

	for (i = 0; i < c->norder && c->order[i] != uid; i++)
		;
	if (i == c->norder)
		return;
	put_placed(s, imap_of(s)->view, c, "REMOVEFROM", i + 1, uid);
	memmove(&c->order[i], &c->order[i + 1], (c->norder - i - 1) *
	    sizeof(*c->order));
	c->norder--;
}

/*
 * What the test said of uid (r: 1 matches, 0 not) changes the result:
 * a SORT's at once, with its ADDTO or REMOVEFROM; a SEARCH's is noted
 * in news, to be told in one line.
 */
static void
context_apply(struct session *s, struct imap_context *c, uint32_t uid,
    int r, struct context_news *news)
{
	int	 was = imap_uidset_has(&c->result, uid);

	if (r == 1 && !was) {
		if (imap_uidset_add(&c->result, uid) <= 0)
			return;
		if (!c->sorted)
			news->added[news->nadded++] = uid;
		else if (sorted_add(s, c, uid) < 0)
			(void)imap_uidset_del(&c->result, uid);
	} else if (r == 0 && was) {
		if (imap_uidset_del(&c->result, uid) <= 0)
			return;
		if (!c->sorted)
			news->removed[news->nremoved++] = uid;
		else
			sorted_remove(s, c, uid);
	}
}

/*
 * Tests one context's pending messages, lowest UID first, while the
 * budget lasts, noting in news what joined or left the result.
 * Returns 1 when none is left, 0 when the budget ran out.
 */
static int
context_test(struct session *s, struct imap_view *v, struct imap_context *c,
    struct imap_step_budget *b, struct context_news *news)
{
	uint32_t	 uid;
	int		 r;

	while (c->pending.n > 0) {
		if (!imap_step_more(s, b))
			return 0;
		uid = c->pending.r[0].lo;
		/* a gone message leaves the result when it leaves the view */
		r = imap_view_is_gone(v, uid) ? -1 :
		    imap_search_try(s, c->search, b, uid);
		if (r == 2)
			return 0;	/* in the middle of it: go on later */
		b->done++;
		(void)imap_uidset_del(&c->pending, uid);	/* the lowest */
		/* -1: not read (gone, a store error): as it was */
		if (r >= 0)
			context_apply(s, c, uid, r, news);
	}
	return 1;
}

int
imap_context_run(struct session *s)
{
	struct imap_view	*v = imap_of(s)->view;
	struct imap_context	*c;
	struct imap_step_budget	 b;
	struct context_news	*news;
	int			 done = 1;

	for (c = v != NULL ? v->contexts : NULL; c != NULL; c = c->next)
		if (c->pending.n > 0)
			break;
	if (c == NULL)
		return 1;
	if ((news = malloc(sizeof(*news))) == NULL)
		return 0;
	imap_step_begin(&b);
	for (; c != NULL && done; c = c->next) {
		news->nadded = news->nremoved = 0;
		done = context_test(s, v, c, &b, news);
		put_update(s, v, c, "REMOVEFROM", news->removed,
		    news->nremoved);
		put_update(s, v, c, "ADDTO", news->added, news->nadded);
	}
	free(news);
	return done && c == NULL;
}

void
imap_context_free_all(struct imap_view *v)
{
	struct imap_context	*c;

	while ((c = v->contexts) != NULL) {
		v->contexts = c->next;
		context_free(c);
	}
}

void
imap_cmd_cancelupdate(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	struct imap_view	*v = imap_of(s)->view;
	struct imap_context	**pp, *c;
	size_t			 i;

	(void)variant;
	if (nargs == 0) {
		imap_reply(s, "BAD CANCELUPDATE wants the tags of updating "
		    "searches");
		return;
	}
	for (i = 0; i < nargs; i++)
		if ((args[i].type != IMAP_ARG_STRING &&
		    args[i].type != IMAP_ARG_ATOM) ||
		    memchr(args[i].str, '\0', args[i].len) != NULL ||
		    context_find(v, args[i].str) == NULL) {
			imap_reply(s, "BAD CANCELUPDATE: no updating search "
			    "has the tag of argument %zu", i + 1);
			return;
		}
	for (i = 0; i < nargs; i++)
		for (pp = &v->contexts; (c = *pp) != NULL; pp = &c->next)
			if (strcmp(c->tag, args[i].str) == 0) {
				*pp = c->next;
				context_free(c);
				break;
			}
	imap_reply(s, "OK No further updates");
}
