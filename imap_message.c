/*
 * imap_message.c — sequence sets, flags, and the IMAP commands that
 * change messages: STORE, COPY, MOVE, EXPUNGE (and UID variants).
 *
 * STORE and EXPUNGE work in steps of bounded work (imap_step_more()),
 * so that a big mailbox never holds the loop; COPY and MOVE first pick
 * their messages from the view (imap_view_foreach), then copy a few at
 * once or many in steps that stay all or nothing (RFC 3501 6.4.7; see
 * copy_messages and store_copy.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "imap_session.h"
#include "log.h"
#include "store.h"

/* --- sequence sets ------------------------------------------------------- */

/* Parses a number of a sequence set (nz-number), or "*" as 0. */
static const char *
parse_seq_number(const char *p, uint32_t *out)
{
	uint64_t	 n = 0;

	if (*p == '*') {
		*out = 0;
		return p + 1;
	}
	if (*p < '1' || *p > '9')
		return NULL;
	for (; isdigit((unsigned char)*p); p++)
		if ((n = n * 10 + (uint64_t)(*p - '0')) > UINT32_MAX)
			return NULL;
	*out = (uint32_t)n;
	return p;
}

int
imap_seqset_parse(const char *p, struct imap_seqset *set)
{
	struct imap_range	*grown;
	size_t			 cap = 0;
	uint32_t		 lo, hi;

	set->r = NULL;
	set->n = 0;
	do {
		if ((p = parse_seq_number(p, &lo)) == NULL)
			goto bad;
		hi = lo;
		if (*p == ':' && (p = parse_seq_number(p + 1, &hi)) == NULL)
			goto bad;
		if (set->n == IMAP_MAX_RANGES)
			goto bad;
		if (set->n == cap) {
			cap = cap ? cap * 2 : 4;
			if ((grown = reallocarray(set->r, cap,
			    sizeof(*grown))) == NULL)
				goto bad;
			set->r = grown;
		}
		set->r[set->n].lo = lo;
		set->r[set->n].hi = hi;
		set->n++;
	} while (*p++ == ',');
	if (p[-1] != '\0')
		goto bad;
	return 0;
bad:
	imap_seqset_free(set);
	return -1;
}

static int
range_cmp(const void *a, const void *b)
{
	const struct imap_range	*x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void
imap_seqset_resolve(struct imap_seqset *set, uint32_t star)
{
	size_t		 i, out = 0;
	uint32_t	 t;

	for (i = 0; i < set->n; i++) {
		if (set->r[i].lo == 0)
			set->r[i].lo = star;
		if (set->r[i].hi == 0)
			set->r[i].hi = star;
		if (set->r[i].lo > set->r[i].hi) {
			t = set->r[i].lo;
			set->r[i].lo = set->r[i].hi;
			set->r[i].hi = t;
		}
	}
	if (set->n == 0)
		return;
	qsort(set->r, set->n, sizeof(*set->r), range_cmp);
	for (i = 1; i < set->n; i++) {
		if (set->r[i].lo <= set->r[out].hi ||
		    set->r[i].lo - 1 == set->r[out].hi) {
			if (set->r[i].hi > set->r[out].hi)
				set->r[out].hi = set->r[i].hi;
		} else
			set->r[++out] = set->r[i];
	}
	set->n = out + 1;
}

int
imap_seqset_has(const struct imap_seqset *set, uint32_t n)
{
	size_t	 lo = 0, hi = set->n, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (n < set->r[mid].lo)
			hi = mid;
		else if (n > set->r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	set->r = NULL;
	set->n = 0;
}

/* The view indexes [*from, *to) that one range of a resolved set names. */
static void
range_bounds(const struct imap_view *v, const struct imap_range *r, int uid,
    uint32_t *from, uint32_t *to)
{
	if (uid) {
		*from = imap_view_lower_bound(v, r->lo);
		*to = r->hi == UINT32_MAX ? v->count :
		    imap_view_lower_bound(v, r->hi + 1);
	} else {
		*from = r->lo > 0 ? r->lo - 1 : 0;
		*to = r->hi < v->count ? r->hi : v->count;
	}
	if (*to < *from)
		*to = *from;
}

int
imap_view_foreach(const struct imap_view *v, const struct imap_seqset *set,
    int uid, int (*cb)(void *, uint32_t), void *arg)
{
	struct imap_view_walk	 w;
	uint32_t		 seq;
	int			 rc;

	imap_view_walk_start(&w, set, uid);
	while ((seq = imap_view_walk_next(&w, v)) != 0)
		if ((rc = cb(arg, seq)) != 0)
			return rc;
	return 0;
}

void
imap_view_walk_start(struct imap_view_walk *w, const struct imap_seqset *set,
    int uid)
{
	memset(w, 0, sizeof(*w));
	w->set = set;
	w->uid = uid;
}

uint32_t
imap_view_walk_next(struct imap_view_walk *w, const struct imap_view *v)
{
	while (w->next >= w->end) {
		if (w->range == w->set->n)
			return 0;
		range_bounds(v, &w->set->r[w->range++], w->uid, &w->next,
		    &w->end);
	}
	return ++w->next;
}

/*
 * Parses a set argument and resolves "*" against the view: the highest
 * sequence number, or the highest UID.  A sequence number past the last
 * message is an error, as in Dovecot (RFC 9051 6.4.5 lets a server say
 * BAD); a UID past the last one simply names nothing.  Returns 0 or -1.
 */
int
imap_view_seqset(const struct imap_view *v, const struct imap_arg *a,
    int uid, struct imap_seqset *set)
{
	uint32_t	 star;

	if (a->type == IMAP_ARG_ATOM && strcmp(a->str, "$") == 0)
		return imap_view_saved(v, uid, set);
	if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->str, set) < 0)
		return -1;
	star = uid ? imap_view_last_uid(v) : v->count;
	imap_seqset_resolve(set, star);
	if (!uid && set->n > 0 && set->r[set->n - 1].hi > v->count) {
		imap_seqset_free(set);
		return -1;
	}
	return 0;
}

int
imap_view_saved(const struct imap_view *v, int uid, struct imap_seqset *set)
{
	const struct imap_seqset	*saved = v->saved;
	size_t				 n = saved ? saved->n : 0;
	uint32_t			 i;

	set->n = 0;
	set->r = calloc(uid ? n + 1 : n > 0 ? v->count + 1 : 1,
	    sizeof(*set->r));
	if (set->r == NULL)
		return -1;
	for (i = 0; uid && i < n; i++)
		set->r[set->n++] = saved->r[i];
	for (i = 0; !uid && n > 0 && i < v->count; i++) {
		if (!imap_seqset_has(saved, imap_view_uid(v, i + 1)))
			continue;
		if (set->n > 0 && set->r[set->n - 1].hi == i)
			set->r[set->n - 1].hi = i + 1;	/* the run goes on */
		else {
			set->r[set->n].lo = set->r[set->n].hi = i + 1;
			set->n++;
		}
	}
	return 0;
}

void
imap_view_save(struct imap_view *v, struct imap_seqset *uids)
{
	if (v->saved != NULL)
		imap_seqset_free(v->saved);
	free(v->saved);
	v->saved = uids;
}

/* --- flags ------------------------------------------------------------- */

/* Whether kw is in the space separated list (keywords ignore case). */
static int
keyword_has(const char *list, const char *kw, size_t len)
{
	const char	*p = list;
	size_t		 n;

	while (*p != '\0') {
		n = strcspn(p, " ");
		if (n == len && strncasecmp(p, kw, len) == 0)
			return 1;
		p += n;
		p += strspn(p, " ");
	}
	return 0;
}

/* Appends kw to the list unless there; returns 0 or -1 when full. */
static int
keyword_add(char *list, size_t size, const char *kw, size_t len)
{
	size_t	 n = strlen(list);

	if (keyword_has(list, kw, len))
		return 0;
	if (n + len + 2 > size)
		return -1;
	if (n > 0)
		list[n++] = ' ';
	memcpy(list + n, kw, len);
	list[n + len] = '\0';
	return 0;
}

/* Whether an atom is a valid keyword (RFC 3501 flag-keyword). */
static int
keyword_valid(const char *kw)
{
	const char	*p;

	if (*kw == '\0' || *kw == '\\')
		return 0;
	for (p = kw; *p != '\0'; p++)
		if (!imap_is_atom_char((unsigned char)*p) || *p == ']' ||
		    *p == '%' || *p == '*')
			return 0;
	return 1;
}

int
imap_parse_flags(const struct imap_arg *list, uint32_t *flags,
    char *keywords, size_t kwlen)
{
	const struct imap_arg	*a;
	uint32_t		 bit;
	size_t			 i;

	*flags = 0;
	keywords[0] = '\0';
	for (i = 0; i < list->nlist; i++) {
		a = &list->list[i];
		if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL)
			return -1;	/* NIL is an atom, so a keyword too */
		if ((bit = imap_flag_bit(a->str)) != 0)
			*flags |= bit;
		else if (!keyword_valid(a->str) ||
		    keyword_add(keywords, kwlen, a->str, a->len) < 0)
			return -1;
	}
	return 0;
}

/* --- STORE ---------------------------------------------------------------- */

enum store_op {
	OP_REPLACE,
	OP_ADD,
	OP_REMOVE,
};

struct store_job {
	struct session	*s;
	int		 uid;
	enum store_op	 op;
	int		 silent;
	int		 conditional;		/* UNCHANGEDSINCE given */
	uint64_t	 unchangedsince;
	uint32_t	 flags;
	char		 keywords[STORE_MAX_KEYWORDS];
	struct imap_seqset modified;		/* failed UNCHANGEDSINCE */
	size_t		 modcap;
	int		 error;
	struct imap_seqset set;			/* owns the ranges */
	struct imap_view_walk walk;		/* how far the steps got */
	struct imap_rows rows;			/* the step's, read ahead */
};

/* The flags and keywords a message gets from the operation. */
static void
store_apply(const struct store_job *j, uint32_t *flags, char *kw, size_t kwlen)
{
	const char	*p = j->keywords;
	char		 out[STORE_MAX_KEYWORDS];
	size_t		 n;

	switch (j->op) {
	case OP_REPLACE:
		*flags = j->flags;
		snprintf(kw, kwlen, "%s", j->keywords);
		return;
	case OP_ADD:
		*flags |= j->flags;
		while (*p != '\0') {
			n = strcspn(p, " ");
			(void)keyword_add(kw, kwlen, p, n);
			p += n;
			p += strspn(p, " ");
		}
		return;
	case OP_REMOVE:
		*flags &= ~j->flags;
		out[0] = '\0';
		for (p = kw; *p != '\0'; p += strspn(p, " ")) {
			n = strcspn(p, " ");
			if (!keyword_has(j->keywords, p, n))
				(void)keyword_add(out, sizeof(out), p, n);
			p += n;
		}
		snprintf(kw, kwlen, "%s", out);
		return;
	}
}

/* Remembers a message that failed UNCHANGEDSINCE, for [MODIFIED]. */
static void
store_note_modified(struct store_job *j, uint32_t n)
{
	struct imap_range	*grown;

	if (j->modified.n == j->modcap) {
		j->modcap = j->modcap ? j->modcap * 2 : 8;
		if ((grown = reallocarray(j->modified.r, j->modcap,
		    sizeof(*grown))) == NULL) {
			j->error = 1;
			return;
		}
		j->modified.r = grown;
	}
	j->modified.r[j->modified.n].lo = j->modified.r[j->modified.n].hi = n;
	j->modified.n++;
}

/* Writes "* n FETCH (FLAGS ... [UID u] [MODSEQ (m)])" for one message. */
static void
store_respond(struct store_job *j, uint32_t seq, const struct store_message *m,
    uint32_t flags, const char *kw)
{
	struct imap_session	*ims = imap_of(j->s);

	/* its keywords may include one set elsewhere, not yet announced */
	imap_view_keywords(j->s, ims->view, kw);
	session_printf(j->s, "* %u FETCH (FLAGS ", seq);
	imap_put_flags(j->s, flags, kw, imap_view_is_recent(ims->view, m->uid));
	if (j->uid)
		session_printf(j->s, " UID %u", m->uid);
	if (ims->condstore)
		session_printf(j->s, " MODSEQ (%llu)",
		    (unsigned long long)m->modseq);
	session_printf(j->s, ")\r\n");
}

/*
 * STORE for one message.  Returns 1 when it changed the message or
 * answered for it, 0 when it had nothing to do or failed (j->error).
 */
static int
store_one(struct store_job *j, uint32_t seq)
{
	struct imap_view	*v = imap_of(j->s)->view;
	struct store		*st = j->s->srv->store;
	struct store_message	 m;
	uint32_t		 flags, uid = imap_view_uid(v, seq);
	char			 kw[STORE_MAX_KEYWORDS];
	enum store_err		 err = STORE_OK;
	int			 found;

	/* the rows up to the end of the set's range, a batch at a time */
	if ((found = imap_rows_find(st, v, &j->rows, uid,
	    imap_view_uid(v, j->walk.end), &m)) == 0)
		return 0;
	if (found < 0 && (err = store_message_get(st, v->mb.id, uid, &m)) ==
	    STORE_NOTFOUND)
		return 0;
	if (err != STORE_OK) {
		j->error = 1;
		return 0;
	}
	if (j->conditional && m.modseq > j->unchangedsince) {
		store_note_modified(j, j->uid ? m.uid : seq);
		return 1;
	}
	flags = m.flags;
	snprintf(kw, sizeof(kw), "%s", m.keywords);
	store_apply(j, &flags, kw, sizeof(kw));
	if (flags != m.flags || strcmp(kw, m.keywords) != 0) {
		if (store_message_set_flags(st, v->mb.id, m.uid, flags, kw,
		    &m.modseq) != STORE_OK) {
			j->error = 1;
			return 0;
		}
		imap_view_own_change(v, m.modseq, m.uid);
	} else if (j->silent)
		return 0;
	if (!j->silent)
		store_respond(j, seq, &m, flags, kw);
	return 1;
}

/* Parses "[+-]FLAGS[.SILENT]" into the job. */
static int
store_parse_item(struct store_job *j, const char *item)
{
	j->op = *item == '+' ? OP_ADD : *item == '-' ? OP_REMOVE : OP_REPLACE;
	if (j->op != OP_REPLACE)
		item++;
	if (strcasecmp(item, "FLAGS.SILENT") == 0)
		j->silent = 1;
	else if (strcasecmp(item, "FLAGS") != 0)
		return -1;
	return 0;
}

/* Parses the optional "(UNCHANGEDSINCE n)" modifier (RFC 7162). */
static int
store_parse_modifier(struct store_job *j, const struct imap_arg *a)
{
	char	*end;

	if (a->nlist != 2 || a->list[0].type != IMAP_ARG_ATOM ||
	    strcasecmp(a->list[0].str, "UNCHANGEDSINCE") != 0 ||
	    a->list[1].type != IMAP_ARG_ATOM)
		return -1;
	j->unchangedsince = strtoull(a->list[1].str, &end, 10);
	if (*end != '\0' || !isdigit((unsigned char)a->list[1].str[0]))
		return -1;
	j->conditional = 1;
	return 0;
}

/*
 * A resolved set as text, "1:3,7", for a response code; malloc'd, or
 * NULL without memory.
 */
static char *
seqset_text(const struct imap_seqset *set)
{
	struct buf	 b;
	size_t		 i;
	char		*out;

	buf_init(&b, set->n * 22 + 1);
	for (i = 0; i < set->n; i++) {
		if (set->r[i].lo == set->r[i].hi)
			buf_printf(&b, "%s%u", i ? "," : "", set->r[i].lo);
		else
			buf_printf(&b, "%s%u:%u", i ? "," : "", set->r[i].lo,
			    set->r[i].hi);
	}
	if (buf_append(&b, "", 1) < 0 || (out = strdup(buf_ptr(&b))) == NULL)
		out = NULL;
	buf_free(&b);
	return out;
}

/* Frees a STORE job: the step_free of imap_start_steps(). */
static void
store_free(void *arg)
{
	struct store_job	*j = arg;

	free(j->modified.r);
	free(j->rows.kwbuf);
	imap_seqset_free(&j->set);
	free(j);
}

/*
 * One step of STORE: changes messages until the set is done or the
 * step's budget (imap_step_more()) is used up, so that a
 * STORE 1:* of a big mailbox streams its untagged FETCH responses as the
 * client reads them and never holds the loop.  The budget counts the
 * messages changed or answered for: one that already has its flags
 * (a silent +FLAGS (\Seen) on a mailbox read but 1%) costs one read,
 * and only the step's time bounds those, instead of a step and a
 * commit (a sync) for every IMAP_STEP_MESSAGES of them.  Each step's changes are
 * committed with the group; STORE is not atomic (RFC 3501 6.4.6), and
 * the tagged OK still waits for the last commit.  Returns 1 once the
 * reply is recorded, else 0.
 */
static int
store_step(struct session *s, void *arg)
{
	struct store_job	*j = arg;
	struct imap_step_budget	 b;
	uint32_t		 seq;
	int			 more;
	char			*text;

	imap_step_begin(&b);
	j->rows.valid = 0;	/* others may have changed them meanwhile */
	while (!j->error && (more = imap_step_next(s, &b, &j->walk,
	    &seq)) >= 0) {
		if (more == 0)
			return 0;
		b.done += (unsigned)store_one(j, seq);
	}
	if (j->error)
		imap_reply(s, "NO [UNAVAILABLE] STORE failed");
	else if (j->modified.n > 0) {
		imap_seqset_resolve(&j->modified, 0);
		text = seqset_text(&j->modified);
		imap_reply(s, "OK [MODIFIED %s] Conditional STORE failed",
		    text ? text : "");
		free(text);
	} else
		imap_reply(s, "OK %sSTORE completed", j->uid ? "UID " : "");
	return 1;
}

/* Parses "[(UNCHANGEDSINCE n)] item flags" into j, or replies BAD/NO. */
static void
store_parse(struct session *s, struct store_job *j,
    const struct imap_arg *args, size_t nargs)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_arg		 loose;
	size_t			 i = 1;

	if (args[i].type == IMAP_ARG_LIST && store_parse_modifier(j,
	    &args[i++]) < 0)
		imap_reply(s, "BAD Invalid STORE modifier");
	else if (args[i].type != IMAP_ARG_ATOM ||
	    store_parse_item(j, args[i].str) < 0)
		imap_reply(s, "BAD Invalid STORE item");
	else if (++i >= nargs)
		imap_reply(s, "BAD STORE wants flags");
	else {
		/* "+FLAGS \Seen \Draft" without parentheses is allowed too. */
		if (args[i].type == IMAP_ARG_LIST && i + 1 == nargs)
			loose = args[i];
		else {
			memset(&loose, 0, sizeof(loose));
			loose.list = (struct imap_arg *)&args[i];
			loose.nlist = nargs - i;
		}
		if (imap_parse_flags(&loose, &j->flags, j->keywords,
		    sizeof(j->keywords)) < 0)
			imap_reply(s, "BAD Invalid flags");
		else if (ims->view->readonly)
			imap_reply(s, "NO Mailbox is read-only");
	}
}

void
imap_cmd_store(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	struct imap_session	*ims = imap_of(s);
	struct store_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	j->s = s;
	j->uid = uid;
	if (nargs < 3 || imap_view_seqset(ims->view, &args[0], uid,
	    &j->set) < 0) {
		imap_reply(s, "BAD STORE wants a sequence set, an item and "
		    "flags");
		free(j);
		return;
	}
	store_parse(s, j, args, nargs);
	if (ims->reply != NULL || ims->reply_lost != NULL) {
		store_free(j);
		return;
	}
	if (j->conditional)
		imap_condstore_enable(s);
	/* the keywords it sets are announced even when .SILENT */
	if (j->op != OP_REMOVE)
		imap_view_keywords(s, ims->view, j->keywords);
	imap_view_walk_start(&j->walk, &j->set, uid);
	/* A small set is done at once, without waiting for the loop. */
	if (store_step(s, j))
		store_free(j);
	else
		imap_start_steps(s, store_step, store_free, j);
}

/* --- COPY and MOVE -------------------------------------------------------- */

/*
 * Messages picked from the view for COPY or MOVE: UIDs, ascending;
 * `over` when the set names more than IMAP_MAX_COPY.
 */
struct picked {
	struct session	*s;
	uint32_t	*uid;
	size_t		 n, cap;
	int		 over;
	int		 error;
};

/* Adds one message of the view (an imap_view_foreach callback). */
static int
pick_one(void *arg, uint32_t seq)
{
	struct picked		*p = arg;
	struct imap_view	*v = imap_of(p->s)->view;
	uint32_t		*u, uid = imap_view_uid(v, seq);

	if (imap_view_is_gone(v, uid))
		return 0;
	if (p->n == IMAP_MAX_COPY)
		return p->over = 1;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		if ((u = reallocarray(p->uid, p->cap, sizeof(*u))) == NULL)
			return p->error = 1;
		p->uid = u;
	}
	p->uid[p->n++] = uid;
	return 0;
}

char *
imap_numbers_text(const uint32_t *v, size_t n)
{
	struct imap_seqset	 set;
	char			*text;
	size_t			 i;

	if ((set.r = calloc(n ? n : 1, sizeof(*set.r))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		set.r[i].lo = set.r[i].hi = v[i];
	set.n = n;
	imap_seqset_resolve(&set, 0);
	text = seqset_text(&set);
	imap_seqset_free(&set);
	return text;
}

/* A COPY or MOVE under way: what it copies and how it answers. */
struct copying {
	struct store_copy_job	 job;
	struct store		*st;
	struct picked		 p;
	uint32_t		*new_uid;	/* a COPY made at once */
	uint32_t		 uidvalidity;	/* the target's */
	int			 uid;		/* UID COPY, UID MOVE */
};

static void
copying_free(void *arg)
{
	struct copying	*c = arg;

	/* Cut off (a disconnect, an error): swept, undone or ended. */
	if (c->job.id != 0)
		store_copy_abandon(c->st, &c->job);
	free(c->p.uid);
	free(c->new_uid);
	free(c);
}

/*
 * The OK with COPYUID (RFC 4315): the copies of uids[i] are new_uid[i],
 * or, copied in steps, first + i.  A MOVE says it in an untagged OK.
 */
static void
copy_done(struct session *s, const struct copying *c, uint32_t first)
{
	char	*src, *dst = NULL;
	char	 range[32];

	src = imap_numbers_text(c->p.uid, c->p.n);
	if (c->new_uid != NULL)
		dst = imap_numbers_text(c->new_uid, c->p.n);
	else
		(void)snprintf(range, sizeof(range), "%u:%u", first,
		    first + (uint32_t)c->p.n - 1);
	if (!c->job.move)
		imap_reply(s, "OK [COPYUID %u %s %s] COPY completed",
		    c->uidvalidity, src ? src : "", dst ? dst : range);
	else {
		session_printf(s, "* OK [COPYUID %u %s %s] Moved\r\n",
		    c->uidvalidity, src ? src : "", dst ? dst : range);
		imap_reply(s, "OK %sMOVE completed", c->uid ? "UID " : "");
	}
	free(src);
	free(dst);
}

/*
 * One step of a COPY or MOVE in steps (store_copy.c).  A step whose
 * commit failed (s->lost), a drain, or the client's end of the
 * connection closing (FIN: no one would hear the answer) ends it with
 * NO before its copies show: they are then undone, never shown.  A
 * source held by another COPY makes a MOVE's expunges wait for a later
 * step.
 */
static int
copy_step(struct session *s, void *arg)
{
	struct copying	*c = arg;
	const char	*verb = c->job.move ? "MOVE" : "COPY";
	enum store_err	 err;

	if (s->lost != STORE_OK)
		return 1;		/* the reply says what undid it */
	if ((s->srv->draining || s->in_eof) && !c->job.shown) {
		imap_reply(s, "NO [UNAVAILABLE] %s cut off (the server is "
		    "shutting down, or the client left); nothing was copied",
		    verb);
		return 1;
	}
	err = store_copy_step(c->st, &c->job, log_clock_us() +
	    IMAP_STEP_USEC);
	if (err == STORE_BUSY && c->job.shown)
		return 0;
	if (err != STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_MESSAGE, verb);
		return 1;
	}
	if (!c->job.finished)
		return 0;
	copy_done(s, c, c->job.uid_lo);
	return 1;
}

/* Copies (moves) c's messages in one store step. */
static void
copy_at_once(struct session *s, struct copying *c, int64_t from)
{
	enum store_err	 err;

	if ((c->new_uid = calloc(c->p.n, sizeof(*c->new_uid))) == NULL)
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
	else if ((err = store_message_copy_many(c->st, from, c->p.uid,
	    c->p.n, c->job.to, c->new_uid, c->job.move)) != STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_MESSAGE,
		    c->job.move ? "MOVE" : "COPY");
	else
		copy_done(s, c, 0);
}

/* Journals a COPY (MOVE) in steps and runs its first step now. */
static void
copy_in_steps(struct session *s, struct copying *c, int64_t from)
{
	enum store_err	 err;

	c->job.from = from;
	c->job.uids = c->p.uid;
	c->job.n = c->p.n;
	if ((err = store_copy_begin(c->st, &c->job)) != STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_MESSAGE,
		    c->job.move ? "MOVE" : "COPY");
		copying_free(c);
	} else if (copy_step(s, c))
		copying_free(c);
	else
		imap_start_steps(s, copy_step, copying_free, c);
}

/*
 * COPY and MOVE (RFC 6851), with COPYUID (RFC 4315), all or nothing
 * (RFC 3501 6.4.7, RFC 6851 3.3).  Up to IMAP_STEP_MESSAGES messages
 * are copied in one store step; more in steps, one a loop iteration,
 * whose copies no one sees until the last (store_copy.c).  A set naming
 * more than IMAP_MAX_COPY is refused with NO [LIMIT] before anything is
 * copied; a client copies a bigger set in parts (a UID range each).
 */
static void
copy_messages(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid, int move)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_view	*v = ims->view;
	struct store_mailbox	 to;
	struct imap_seqset	 set;
	struct copying		*c;
	const char		*name, *verb = move ? "MOVE" : "COPY";
	enum store_err		 err;

	if (nargs != 2 || (name = imap_arg_mailbox(s, &args[1])) == NULL ||
	    imap_view_seqset(v, &args[0], uid, &set) < 0) {
		imap_reply(s, "BAD %s wants a sequence set and a mailbox", verb);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_seqset_free(&set);
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	c->p.s = s;
	c->st = s->srv->store;
	c->uid = uid;
	c->job.move = move;
	imap_view_foreach(v, &set, uid, pick_one, &c->p);
	imap_seqset_free(&set);
	if (c->p.over)
		imap_reply(s, "NO [LIMIT] %s takes at most %u messages at once",
		    verb, IMAP_MAX_COPY);
	else if ((err = store_mailbox_get(c->st, ims->user, name, &to)) !=
	    STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_TARGET, verb);
	else if (c->p.error)
		imap_reply(s, "NO [UNAVAILABLE] %s failed", verb);
	else if (move && v->readonly)
		imap_reply(s, "NO Mailbox is read-only");
	else if (c->p.n == 0)
		imap_reply(s, "OK No messages to %s", verb);
	else {
		c->job.to = to.id;
		c->uidvalidity = to.uidvalidity;
		if (c->p.n > IMAP_STEP_MESSAGES) {
			copy_in_steps(s, c, v->mb.id);
			return;
		}
		copy_at_once(s, c, v->mb.id);
	}
	copying_free(c);
}

void
imap_cmd_copy(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	copy_messages(s, args, nargs, uid, 0);
}

void
imap_cmd_move(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	copy_messages(s, args, nargs, uid, 1);
}

/* --- EXPUNGE, CLOSE, DELETE: expunges in steps ---------------------------- */

/*
 * A running expunge: of the view's messages flagged \Deleted (EXPUNGE,
 * UID EXPUNGE, CLOSE), or of every message of a mailbox about to be
 * deleted (DELETE; `view` NULL).  Each expunge stands alone (RFC 3501
 * does not make EXPUNGE atomic), so the messages go a few at a time,
 * as many as a step's budget allows, each step's made durable by its
 * loop iteration's group commit.  Their EXPUNGE responses go out at the
 * next step, once that commit is done (RFC 3501 7.4.1 lets them come
 * during the command): what a failed commit left in the store stays in
 * the view.  The store is walked by UID, not the view by index, since
 * the view shrinks as the steps go.
 */
struct expunge_job {
	struct imap_view	*view;
	struct store_mailbox	 mb;		/* the mailbox expunged from */
	struct imap_seqset	 uids;		/* UID EXPUNGE's set, owned */
	int			 some;		/* only the UIDs in uids */
	int			 silent;	/* CLOSE: no EXPUNGE responses */
	void			(*done)(struct session *,
				    const struct store_mailbox *);
	uint32_t		 after;		/* UIDs up to here looked at */
	uint32_t		 last;		/* the highest UID to look at */
	int			 walked;	/* every UID looked at */
	uint32_t		 todo[IMAP_STEP_MESSAGES]; /* to expunge */
	size_t			 ntodo, itodo;	/* todo[itodo..ntodo) left */
	uint32_t		 gone[IMAP_STEP_MESSAGES]; /* expunged in the
						   last step, not yet said */
	size_t			 ngone;
	enum store_err		 failed;	/* why the last step stopped */
};

/* Takes one message as to be expunged (a store_message_range callback). */
static int
expunge_pick(void *arg, const struct store_message *m)
{
	struct expunge_job	*j = arg;
	const struct imap_view	*v = j->view;

	j->after = m->uid;
	if (v != NULL) {
		if ((m->flags & FLAG_DELETED) == 0 ||
		    (j->some && !imap_seqset_has(&j->uids, m->uid)))
			return 0;
		/* Only what the client knows: not mail newer than its view. */
		if (imap_view_seq(v, m->uid) == 0 ||
		    imap_view_is_gone(v, m->uid))
			return 0;
	}
	j->todo[j->ntodo++] = m->uid;
	return 0;
}

/* The next messages in UID order into todo (none left: walked). */
static enum store_err
expunge_refill(struct session *s, struct expunge_job *j)
{
	uint32_t	 from = j->after;
	enum store_err	 err;

	j->ntodo = j->itodo = 0;
	err = store_message_range(s->srv->store, j->mb.id, j->after, j->last,
	    IMAP_STEP_MESSAGES, expunge_pick, j);
	if (err == STORE_OK && j->ntodo == 0 && j->after == from)
		j->walked = 1;
	return err;
}

/*
 * Marks the messages of gone[] gone in the view, or not.  Without
 * memory a mark is missing: the message is then reported when the next
 * update looks at the store.
 */
static void
expunge_mark(struct expunge_job *j, int gone)
{
	size_t	 k;

	for (k = 0; k < j->ngone; k++)
		(void)imap_view_mark_gone(j->view, j->gone[k], gone);
}

/*
 * What the last step expunged, after its group commit: gone from the
 * store, it leaves the view with its EXPUNGE responses.  Still there,
 * the commit failed: it stays in the view, and -1 says so.
 */
static int
expunge_settle(struct session *s, struct expunge_job *j)
{
	struct store_message	 m;
	int			 kept;

	kept = store_message_get(s->srv->store, j->mb.id, j->gone[0], &m) !=
	    STORE_NOTFOUND;
	if (j->view != NULL && kept)
		expunge_mark(j, 0);
	else if (j->view != NULL)
		imap_view_drop_gone(s, j->view, j->silent);
	j->ngone = 0;
	return kept ? -1 : 0;
}

/* Expunges messages of todo (refilled as it empties) within the budget. */
static enum store_err
expunge_some(struct session *s, struct expunge_job *j)
{
	struct imap_step_budget	 b;
	enum store_err		 err = STORE_OK;
	uint32_t		 uid;

	imap_step_begin(&b);
	while (err == STORE_OK && j->ngone < IMAP_STEP_MESSAGES &&
	    !j->walked && imap_step_more(s, &b)) {
		b.done++;
		if (j->itodo == j->ntodo) {
			err = expunge_refill(s, j);
			continue;
		}
		uid = j->todo[j->itodo++];
		if ((err = store_message_expunge(s->srv->store, j->mb.id,
		    uid)) == STORE_OK)
			j->gone[j->ngone++] = uid;
		else if (err == STORE_NOTFOUND)
			err = STORE_OK;		/* expunged elsewhere */
	}
	if (j->view != NULL)
		expunge_mark(j, 1);
	return err;
}

/* Records the reply to an expunge that the store refused; returns 1. */
static int
expunge_failed(struct session *s, enum store_err err)
{
	imap_reply_store_error(s, err, IMAP_MISSING_MESSAGE, "EXPUNGE");
	return 1;
}

/*
 * One step: settles the last step's expunges, then expunges the next
 * ones, or, when every message has been looked at and the last ones are
 * durable, lets done() record the reply.  Returns 1 once the reply is
 * recorded.
 */
static int
expunge_step(struct session *s, void *arg)
{
	struct expunge_job	*j = arg;
	enum store_err		 err;

	if (j->ngone > 0 && expunge_settle(s, j) < 0) {
		imap_reply(s, "NO [UNAVAILABLE] The change could not be saved");
		return 1;
	}
	if (j->failed != STORE_OK)
		return expunge_failed(s, j->failed);
	if (j->view == NULL && (err = store_mailbox_state(s->srv->store,
	    &j->mb, &j->last, &j->mb.highestmodseq)) != STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_MAILBOX,
		    "EXPUNGE");
		return 1;
	}
	/*
	 * A failure after some expunges of this step: they stand or fall
	 * with the group commit, which the next step settles before it
	 * replies (the view must not keep them as gone if they are not).
	 */
	if ((j->failed = expunge_some(s, j)) != STORE_OK && j->ngone == 0)
		return expunge_failed(s, j->failed);
	if (j->ngone > 0 || !j->walked)
		return 0;
	j->done(s, &j->mb);
	return 1;
}

static void
expunge_free(void *arg)
{
	struct expunge_job	*j = arg;

	imap_seqset_free(&j->uids);
	free(j);
}

/* Runs the first step now (a small job ends there), the rest later. */
static void
expunge_start(struct session *s, struct expunge_job *j)
{
	if (expunge_step(s, j))
		expunge_free(j);
	else
		imap_start_steps(s, expunge_step, expunge_free, j);
}

void
imap_expunge_deleted(struct session *s, struct imap_seqset *uidset,
    int silent, void (*done)(struct session *, const struct store_mailbox *))
{
	struct imap_view	*v = imap_of(s)->view;
	struct expunge_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		if (uidset != NULL)
			imap_seqset_free(uidset);
		return;
	}
	j->view = v;
	j->mb = v->mb;
	j->silent = silent;
	j->done = done;
	j->last = imap_view_last_uid(v);
	if (uidset != NULL) {
		j->uids = *uidset;
		j->some = 1;
	}
	expunge_start(s, j);
}

void
imap_expunge_mailbox(struct session *s, const struct store_mailbox *mb,
    void (*done)(struct session *, const struct store_mailbox *))
{
	struct expunge_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	j->mb = *mb;
	j->done = done;
	expunge_start(s, j);
}

/* EXPUNGE and UID EXPUNGE are done. */
static void
expunge_done(struct session *s, const struct store_mailbox *mb)
{
	(void)mb;
	imap_reply(s, "OK EXPUNGE completed");
}

static void
uid_expunge_done(struct session *s, const struct store_mailbox *mb)
{
	(void)mb;
	imap_reply(s, "OK UID EXPUNGE completed");
}

void
imap_cmd_expunge(struct session *s, const struct imap_arg *args,
    size_t nargs, int uid)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_seqset	 set;

	if (nargs != (uid ? 1u : 0u) || (uid && imap_view_seqset(ims->view,
	    &args[0], 1, &set) < 0)) {
		imap_reply(s, "BAD %s", uid ? "UID EXPUNGE wants a UID set" :
		    "EXPUNGE takes no arguments");
		return;
	}
	if (ims->view->readonly) {
		imap_reply(s, "NO Mailbox is read-only");
		if (uid)
			imap_seqset_free(&set);
	} else
		imap_expunge_deleted(s, uid ? &set : NULL, 0,
		    uid ? uid_expunge_done : expunge_done);
}
