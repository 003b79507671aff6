/*
 * imap_order.c — SORT and THREAD (RFC 5256), and their UID forms; SORT
 * RETURN (...) answers with ESEARCH (ESORT, RFC 5267 3).
 *
 * Both run in three phases, each in steps of bounded work so that other
 * clients are served meanwhile: the search keys select messages
 * (imap_search.h), then each selected message's keys are read from the
 * store (imap_sort_load()), then the messages are ordered and the one
 * response line written.  The ordering is done in one go: sorting or
 * threading what was read costs far less than reading it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_context.h"
#include "imap_esearch.h"
#include "imap_search.h"
#include "imap_session.h"
#include "imap_sort.h"
#include "imap_thread.h"
#include "proto.h"
#include "store.h"

enum order_phase {
	ORDER_SEARCH,		/* selecting messages */
	ORDER_KEYS,		/* reading their keys */
};

/* A running SORT or THREAD. */
struct order {
	struct search		*search;
	struct search		*updating;	/* SORT RETURN (UPDATE): the
						   search, for imap_context.c */
	int			 thread;	/* THREAD, not SORT */
	int			 uid;		/* the UID form */
	struct esearch_opts	 opts;		/* SORT RETURN (...) */
	struct sort_criteria	 criteria;	/* SORT */
	enum thread_algorithm	 algorithm;	/* THREAD */
	enum order_phase	 phase;
	struct sort_msg		*msgs;
	size_t			 n, next;
	struct imap_step_budget	 budget;
};

static void
order_free(void *arg)
{
	struct order	*o = arg;
	size_t		 i;

	for (i = 0; i < o->n; i++)
		imap_sort_msg_free(&o->msgs[i]);
	free(o->msgs);
	if (o->search != NULL)
		imap_search_matches_free(o->search);
	if (o->updating != NULL)
		imap_search_matches_free(o->updating);
	free(o);
}

static const char *
order_name(const struct order *o)
{
	if (o->thread)
		return o->uid ? "UID THREAD" : "THREAD";
	return o->uid ? "UID SORT" : "SORT";
}

/* The matches found become the messages whose keys are read. */
static int
order_take_matches(struct session *s, struct order *o, const uint32_t *hits,
    size_t n)
{
	const struct imap_view	*v = imap_of(s)->view;
	size_t			 i;

	if (n > 0 && (o->msgs = calloc(n, sizeof(*o->msgs))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		o->msgs[i].seq = hits[i] + 1;
		o->msgs[i].uid = imap_view_uid(v, hits[i] + 1);
	}
	o->n = n;
	if (o->opts.ret & ESEARCH_UPDATE)
		o->updating = o->search;
	else
		imap_search_matches_free(o->search);
	o->search = NULL;
	o->phase = ORDER_KEYS;
	return 0;
}

/*
 * Reads the keys of the messages from o->next on, as far as the step's
 * budget goes.  Returns 1 when all are read, 0 when a later step goes
 * on, -1 on a store error.  A message expunged meanwhile is left out
 * (its uid becomes 0).
 */
static int
order_read_keys(struct session *s, struct order *o, enum store_err *err)
{
	struct store	*st = s->srv->store;
	int64_t		 mbox = imap_of(s)->view->mb.id;

	imap_step_begin(&o->budget);
	for (; o->next < o->n; o->next++) {
		if (!imap_step_more(s, &o->budget))
			return 0;
		o->budget.done++;
		*err = imap_sort_load(st, mbox, o->thread ? NULL : &o->criteria,
		    &o->msgs[o->next]);
		if (*err == STORE_NOTFOUND)
			o->msgs[o->next].uid = 0;
		else if (*err != STORE_OK)
			return -1;
	}
	return 1;
}

static void
write_piece(void *arg, const char *p, size_t n)
{
	session_write(arg, p, n);
}

/*
 * SORT RETURN (UPDATE): the UIDs of the matches added to *matched
 * (empty), taken while msgs are in mailbox order.  Returns 0, or -1
 * without memory.
 */
static int
order_matched(const struct order *o, struct imap_uidset *matched)
{
	size_t	 i;

	if (o->n > IMAP_MAX_SORT_UPDATE)
		return 0;
	for (i = 0; i < o->n; i++)
		if (o->msgs[i].uid != 0 &&
		    imap_uidset_add(matched, o->msgs[i].uid) < 0)
			return -1;
	return 0;
}

/*
 * Then, msgs sorted: the search, the matched UIDs and their order become
 * an updating search of the view (imap_context.c).  Past
 * IMAP_MAX_SORT_UPDATE matches, or without memory, the client hears
 * NOUPDATE instead.
 */
static void
order_keep(struct session *s, struct order *o, struct imap_uidset *matched)
{
	struct imap_session	*ims = imap_of(s);
	uint32_t		*order;
	size_t			 i, n = 0;

	if (o->n > IMAP_MAX_SORT_UPDATE) {
		imap_say_noupdate(s, "Too many matches to keep in order");
		return;
	}
	if ((order = calloc(o->n + 1, sizeof(*order))) == NULL) {
		imap_say_noupdate(s, "Out of memory");
		return;
	}
	for (i = 0; i < o->n; i++)
		if (o->msgs[i].uid != 0)
			order[n++] = o->msgs[i].uid;
	if (imap_search_pin_sets(o->updating, ims->view) < 0 ||
	    imap_context_add(ims->view, ims->tag, o->uid, o->updating,
	    matched, &o->criteria, order, n) < 0) {
		free(order);
		imap_say_noupdate(s, "Out of memory");
		return;
	}
	o->updating = NULL;
}

/*
 * Writes the "* SORT" line, the numbers in the order sorted, or with
 * RETURN the ESEARCH line.  Returns 0, or -1 when memory ran out.
 */
static int
order_write_sort(struct session *s, struct order *o)
{
	struct imap_uidset	 matched;
	uint32_t		*nums;
	size_t			 i, n = 0;

	memset(&matched, 0, sizeof(matched));
	if (o->updating != NULL && order_matched(o, &matched) < 0) {
		imap_uidset_free(&matched);
		imap_search_matches_free(o->updating);
		o->updating = NULL;
		imap_say_noupdate(s, "Out of memory");
	}
	imap_sort_msgs(o->msgs, o->n, &o->criteria);
	if (o->updating != NULL) {
		order_keep(s, o, &matched);
		imap_uidset_free(&matched);
	}
	if ((nums = calloc(o->n + 1, sizeof(*nums))) == NULL)
		return -1;
	for (i = 0; i < o->n; i++)
		if (o->msgs[i].uid != 0)
			nums[n++] = o->uid ? o->msgs[i].uid : o->msgs[i].seq;
	if (o->opts.ret != 0)
		imap_esearch_sorted(s, &o->opts, o->uid, nums, n);
	else {
		session_printf(s, "* SORT");
		for (i = 0; i < n; i++)
			session_printf(s, " %u", nums[i]);
		session_printf(s, "\r\n");
	}
	free(nums);
	return 0;
}

/* Writes the "* THREAD" line.  Returns 0, or -1 when memory ran out. */
static int
order_write_thread(struct session *s, struct order *o)
{
	struct thread_msg	*t;
	size_t			 i, n = 0;
	int			 rc;

	if ((t = calloc(o->n + 1, sizeof(*t))) == NULL)
		return -1;
	for (i = 0; i < o->n; i++) {
		if (o->msgs[i].uid == 0)
			continue;
		t[n].num = o->uid ? o->msgs[i].uid : o->msgs[i].seq;
		t[n].seq = o->msgs[i].seq;
		t[n].date = o->msgs[i].date;
		t[n].subject = o->msgs[i].str[SORT_SUBJECT];
		t[n].reply = o->msgs[i].reply;
		t[n].message_id = o->msgs[i].message_id;
		t[n++].references = o->msgs[i].references;
	}
	session_printf(s, "* THREAD ");
	rc = imap_thread(t, (uint32_t)n, o->algorithm, write_piece, s);
	session_printf(s, "\r\n");
	free(t);
	return rc;
}

/* One step of SORT or THREAD.  Returns 1 once the reply is recorded. */
static int
order_step(struct session *s, void *arg)
{
	struct order	*o = arg;
	const uint32_t	*hits;
	size_t		 n;
	enum store_err	 err = STORE_OK;
	int		 r;

	if (o->phase == ORDER_SEARCH) {
		if ((r = imap_search_matches(s, o->search, &hits, &n)) <= 0)
			return r < 0;
		if (order_take_matches(s, o, hits, n) < 0) {
			imap_reply(s, "NO [UNAVAILABLE] Out of memory");
			return 1;
		}
	}
	if ((r = order_read_keys(s, o, &err)) == 0)
		return 0;
	if (r < 0) {
		imap_reply(s, "NO [UNAVAILABLE] %s failed: %s", order_name(o),
		    store_strerror(err));
		return 1;
	}
	if ((o->thread ? order_write_thread(s, o) :
	    order_write_sort(s, o)) < 0) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return 1;
	}
	imap_reply(s, "OK %s completed", order_name(o));
	return 1;
}

/*
 * Starts o on the search keys after the charset: args[0] is the charset,
 * the rest the keys.  Frees o and replies when it cannot start.
 */
static void
order_start(struct session *s, struct order *o, const struct imap_arg *args,
    size_t nargs)
{
	const char	*why;

	if (nargs < 2) {
		imap_reply(s, "BAD %s needs a charset and search keys",
		    order_name(o));
		free(o);
		return;
	}
	if ((why = imap_search_charset_refusal(&args[0])) != NULL) {
		imap_reply(s, "%s", why);
		free(o);
		return;
	}
	if ((o->search = imap_search_matches_new(s, args + 1,
	    nargs - 1)) == NULL) {
		free(o);
		return;
	}
	if (order_step(s, o))
		order_free(o);
	else
		imap_start_steps(s, order_step, order_free, o);
}

void
imap_cmd_sort(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	struct order	*o;
	const char	*why;

	if ((o = calloc(1, sizeof(*o))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	o->uid = uid;
	if (imap_search_return(s, &args, &nargs, &o->opts) < 0) {
		free(o);
		return;
	}
	if (o->opts.ret & ESEARCH_SAVE) {
		imap_reply(s, "BAD SORT RETURN takes no SAVE");
		free(o);
		return;
	}
	if (nargs < 1 || imap_sort_parse(&args[0], &o->criteria, &why) < 0) {
		imap_reply(s, "BAD %s", nargs < 1 ? "SORT needs sort criteria" :
		    why);
		free(o);
		return;
	}
	order_start(s, o, args + 1, nargs - 1);
}

void
imap_cmd_thread(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	struct order	*o;

	if ((o = calloc(1, sizeof(*o))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	o->uid = uid;
	o->thread = 1;
	if (nargs < 1 || args[0].type != IMAP_ARG_ATOM ||
	    imap_thread_algorithm(args[0].str, &o->algorithm) < 0) {
		imap_reply(s, "BAD THREAD needs a known algorithm "
		    "(ORDEREDSUBJECT or REFERENCES)");
		free(o);
		return;
	}
	order_start(s, o, args + 1, nargs - 1);
}
