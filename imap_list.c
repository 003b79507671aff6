/*
 * imap_list.c — LIST and LSUB: RFC 3501 6.3.8-9 with LIST-EXTENDED
 * (RFC 5258), CHILDREN (RFC 3348), SPECIAL-USE (RFC 6154) and
 * LIST-STATUS (RFC 5819).
 *
 * The user's mailboxes are read once, in name order, together with the
 * parents that exist only as a level of the hierarchy ("a" of "a/b"),
 * which are listed \Noselect as RFC 3501 asks of "%", and, when the
 * subscriptions are asked for, the subscribed names that are no mailbox
 * (a deleted mailbox's subscription stays, RFC 3501 6.3.6), which LIST
 * shows \NonExistent (RFC 5258 3.1).  Children are found by binary
 * search on the sorted names.
 *
 * The patterns are compiled once a command and matched a word of name
 * positions at a time (list_match), and a LIST that takes longer than a
 * step goes on in the next loop iteration after the last name it
 * looked at (list_step), so that no LIST holds the loop whatever its
 * patterns and however many mailboxes the user has.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_session.h"
#include "store.h"
#include "utf8.h"

#define SEL_SUBSCRIBED	0x01	/* LIST (SUBSCRIBED), and LSUB */
#define SEL_SPECIAL_USE	0x02	/* LIST (SPECIAL-USE) */
#define RET_SUBSCRIBED	0x04	/* RETURN (SUBSCRIBED) */
#define RET_STATUS	0x08	/* RETURN (STATUS (...)) */
#define LSUB		0x10
#define SEL_RECURSIVE	0x20	/* LIST (... RECURSIVEMATCH) */

struct list_entry {
	struct store_mailbox	 mb;
	int			 exists;	/* a mailbox */
	int			 absent;	/* a subscribed name only */
	int			 phantom;	/* a level above those only */
	int			 childinfo;	/* CHILDINFO ("SUBSCRIBED") */
	int			 match;		/* the patterns: 1 match, -1
						   not, 0 not known yet */
};

struct list_ctx {
	struct list_entry	*v;
	size_t			 n, cap;
	int			 subscribed_only;
	int			 error;
};

static int
entry_cmp(const void *a, const void *b)
{
	const struct list_entry	*x = a, *y = b;

	return strcmp(x->mb.name, y->mb.name);
}

static struct list_entry *
list_add(struct list_ctx *c)
{
	struct list_entry	*grown;

	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 32;
		if ((grown = reallocarray(c->v, c->cap, sizeof(*grown))) ==
		    NULL) {
			c->error = 1;
			return NULL;
		}
		c->v = grown;
	}
	memset(&c->v[c->n], 0, sizeof(c->v[c->n]));
	return &c->v[c->n++];
}

static int
list_collect(void *arg, const struct store_mailbox *mb)
{
	struct list_ctx		*c = arg;
	struct list_entry	*e;

	if (c->subscribed_only && !mb->subscribed)
		return 0;
	if ((e = list_add(c)) == NULL)
		return 1;
	e->mb = *mb;
	e->exists = 1;
	return 0;
}

/* Adds a subscribed name that no mailbox has. */
static int
list_collect_absent(void *arg, const char *name)
{
	struct list_ctx		*c = arg;
	struct list_entry	*e;

	if ((e = list_add(c)) == NULL)
		return 1;
	snprintf(e->mb.name, sizeof(e->mb.name), "%s", name);
	e->mb.subscribed = 1;
	e->absent = 1;
	return 0;
}

/* Whether entry e is a level of the hierarchy and nothing more. */
static int
list_level(const struct list_entry *e)
{
	return !e->exists && !e->absent;
}

/* The index of the first entry not below name. */
static size_t
list_lower_bound(const struct list_ctx *c, const char *name)
{
	size_t	 lo = 0, hi = c->n, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (strcmp(c->v[mid].mb.name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Whether some entry's name begins with name + "/", a subscribed name
 * without a mailbox (or a level above only such names) not counted.
 */
static int
list_has_children(const struct list_ctx *c, const char *name)
{
	char	 prefix[MAILBOX_MAX_NAME + 2];
	size_t	 i, n = strlen(name);

	memcpy(prefix, name, n);
	memcpy(prefix + n, "/", 2);
	for (i = list_lower_bound(c, prefix); i < c->n &&
	    strncmp(c->v[i].mb.name, prefix, n + 1) == 0; i++)
		if (!c->v[i].absent && !c->v[i].phantom)
			return 1;
	return 0;
}

/*
 * Adds the hierarchy levels that are no mailbox of their own, and sorts.
 * A level above subscribed names only is a phantom: no child of its
 * parent for \HasChildren.
 */
static void
list_add_parents(struct list_ctx *c)
{
	size_t			 i, real = c->n;
	char			*slash, name[MAILBOX_MAX_NAME + 1];
	struct list_entry	*e, key;

	qsort(c->v, c->n, sizeof(*c->v), entry_cmp);
	memset(&key, 0, sizeof(key));
	for (i = 0; i < real && !c->error; i++) {
		snprintf(name, sizeof(name), "%s", c->v[i].mb.name);
		while ((slash = strrchr(name, '/')) != NULL) {
			*slash = '\0';
			snprintf(key.mb.name, sizeof(key.mb.name), "%s", name);
			if (bsearch(&key, c->v, real, sizeof(*c->v),
			    entry_cmp) != NULL)
				break;
			if ((e = list_add(c)) == NULL)
				break;
			snprintf(e->mb.name, sizeof(e->mb.name), "%s", name);
			e->phantom = c->v[i].absent;
		}
	}
	qsort(c->v, c->n, sizeof(*c->v), entry_cmp);
	for (i = 1, real = c->n ? 1 : 0; i < c->n; i++)
		if (strcmp(c->v[i].mb.name, c->v[real - 1].mb.name) != 0)
			c->v[real++] = c->v[i];
		else
			c->v[real - 1].phantom &= c->v[i].phantom;
	c->n = real;
}

/*
 * Matching a name against the patterns.  A name is made ready once
 * (list_name_ready) for all of them: for every byte value that occurs,
 * the set of its positions, a bit each.  A pattern is then walked from
 * its end, the set of name positions from which the rest of the pattern
 * matches the rest of the name kept as bits: a literal shifts the set by
 * one and keeps the positions holding that byte, "*" spreads the set
 * down to the name's start and "%" down to the previous "/".  A
 * pattern costs len(pattern) * len(name) / 64 word operations at most,
 * and stops as soon as no position is left, which is at once for most
 * names a pattern does not match.
 */
#define LIST_NAME_MAX	(2 * MAILBOX_MAX_NAME)	/* bytes matched: a name in UTF-8 (RFC 6855) */
#define LIST_WORDS	(LIST_NAME_MAX / 64 + 1)	/* positions 0..length */

struct list_name {
	size_t		 n, words;
	uint64_t	 present[256 / 64];	/* byte values in the name */
	uint64_t	 at[256][LIST_WORDS];	/* positions of each */
	size_t		 nslash;
	uint16_t	 slash[LIST_NAME_MAX];	/* positions of the "/" */
};

/* A pattern compiled once a command (list_compile). */
struct list_pat {
	char		*p;	/* reference and pattern joined, each run
				   of wildcards made one */
	size_t		 len;
	int		 levels;	/* ends in "%": matches a level too */
};

/* The bits from lo to hi of a word whose first bit is word_lo. */
static uint64_t
bits_mask(size_t word_lo, size_t lo, size_t hi)
{
	uint64_t	 m = ~0ULL;

	if (lo > word_lo)
		m &= ~0ULL << (lo - word_lo);
	if (hi < word_lo + 63)
		m &= (2ULL << (hi - word_lo)) - 1;
	return m;
}

/*
 * Sets in cur the positions lo..h, h being the highest position from
 * lo to hi set in next.  Returns whether there was one.
 */
static int
bits_spread(uint64_t *cur, const uint64_t *next, size_t lo, size_t hi)
{
	size_t		 w = hi / 64, h;
	uint64_t	 x;

	for (;;) {
		x = next[w] & bits_mask(w * 64, lo, hi);
		if (x != 0)
			break;
		if (w-- == lo / 64)
			return 0;
	}
	h = w * 64 + 63 - (size_t)__builtin_clzll(x);
	for (w = lo / 64; w <= h / 64; w++)
		cur[w] |= bits_mask(w * 64, lo, h);
	return 1;
}

/* Makes name (n bytes, n <= LIST_NAME_MAX) ready for list_match(). */
static void
list_name_ready(struct list_name *nm, const char *name, size_t n)
{
	size_t		 j;
	unsigned char	 b;

	nm->n = n;
	nm->words = n / 64 + 1;
	nm->nslash = 0;
	memset(nm->present, 0, sizeof(nm->present));
	for (j = 0; j < n; j++) {
		b = (unsigned char)name[j];
		if ((nm->present[b / 64] & 1ULL << (b % 64)) == 0) {
			nm->present[b / 64] |= 1ULL << (b % 64);
			memset(nm->at[b], 0, nm->words * sizeof(uint64_t));
		}
		nm->at[b][j / 64] |= 1ULL << (j % 64);
		if (b == '/')
			nm->slash[nm->nslash++] = (uint16_t)j;
	}
}

/*
 * Whether the name matches the pattern, "*" matching anything and "%"
 * anything but the delimiter (RFC 3501 6.3.8).
 */
static int
list_match(const struct list_pat *pat, const struct list_name *nm)
{
	uint64_t	 rows[2][LIST_WORDS], *next = rows[0], *cur = rows[1];
	uint64_t	 any, *t;
	const uint64_t	*eq;
	size_t		 i, w, k, lo, words = nm->words;
	unsigned char	 b;

	memset(next, 0, words * sizeof(uint64_t));
	next[nm->n / 64] = 1ULL << (nm->n % 64);
	for (i = pat->len; i-- > 0;) {
		b = (unsigned char)pat->p[i];
		memset(cur, 0, words * sizeof(uint64_t));
		any = 0;
		if (b == '*')
			any = (uint64_t)bits_spread(cur, next, 0, nm->n);
		else if (b == '%') {
			for (k = lo = 0; k < nm->nslash; lo = nm->slash[k++] + 1)
				any |= (uint64_t)bits_spread(cur, next, lo,
				    nm->slash[k]);
			any |= (uint64_t)bits_spread(cur, next, lo, nm->n);
		} else if (nm->present[b / 64] & 1ULL << (b % 64)) {
			eq = nm->at[b];
			for (w = 0; w < words; w++) {
				cur[w] = (next[w] >> 1 | (w + 1 < words ?
				    next[w + 1] << 63 : 0)) & eq[w];
				any |= cur[w];
			}
		}
		if (any == 0)
			return 0;
		t = next;
		next = cur;
		cur = t;
	}
	return (int)(next[0] & 1);
}

/*
 * Writes one LIST or LSUB line, and its STATUS when asked.  A subscribed
 * name without a mailbox is \\NonExistent to LIST (which implies
 * \\Noselect, RFC 5258 3) and plain to LSUB; a level is \\Noselect.
 */
static void
list_respond(struct session *s, const struct list_ctx *c,
    const struct list_entry *e, unsigned opts, unsigned status)
{
	const char	*sep = "";

	session_printf(s, "* %s (", opts & LSUB ? "LSUB" : "LIST");
	if (e->absent && (opts & LSUB) == 0) {
		session_printf(s, "\\NonExistent");
		sep = " ";
	} else if (list_level(e)) {
		session_printf(s, "\\Noselect");
		sep = " ";
	}
	if ((opts & LSUB) == 0 && !e->absent) {
		session_printf(s, "%s%s", sep, list_has_children(c,
		    e->mb.name) ? "\\HasChildren" : "\\HasNoChildren");
		sep = " ";
	}
	if (e->mb.special_use[0] != '\0' && (opts & LSUB) == 0) {
		session_printf(s, "%s%s", sep, e->mb.special_use);
		sep = " ";
	}
	if ((opts & (SEL_SUBSCRIBED | RET_SUBSCRIBED)) && e->mb.subscribed &&
	    (opts & LSUB) == 0)
		session_printf(s, "%s\\Subscribed", sep);
	session_printf(s, ") \"/\" ");
	imap_put_mailbox(s, e->mb.name);
	if (e->childinfo)
		session_printf(s, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	session_printf(s, "\r\n");
	if ((opts & RET_STATUS) && e->exists)
		(void)imap_status_respond(s, &e->mb, status);
}

/*
 * Parses LIST-EXTENDED's selection options "(SUBSCRIBED ...)".
 * RECURSIVEMATCH needs an option it can apply to (RFC 5258 3.1): of
 * ours, SUBSCRIBED.
 */
static int
list_selection(const struct imap_arg *a, unsigned *opts)
{
	size_t	 i;

	for (i = 0; i < a->nlist; i++) {
		if (a->list[i].type != IMAP_ARG_ATOM)
			return -1;
		if (strcasecmp(a->list[i].str, "SUBSCRIBED") == 0)
			*opts |= SEL_SUBSCRIBED;
		else if (strcasecmp(a->list[i].str, "SPECIAL-USE") == 0)
			*opts |= SEL_SPECIAL_USE;
		else if (strcasecmp(a->list[i].str, "RECURSIVEMATCH") == 0)
			*opts |= SEL_RECURSIVE;
		else if (strcasecmp(a->list[i].str, "REMOTE") != 0)
			return -1;
	}
	return (*opts & SEL_RECURSIVE) && !(*opts & SEL_SUBSCRIBED) ? -1 : 0;
}

/*
 * Parses "RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (...))"; rev2:
 * the session is IMAP4rev2's (imap_status_items()).
 */
static int
list_return(const struct imap_arg *a, int rev2, unsigned *opts,
    unsigned *status)
{
	size_t	 i;

	for (i = 0; i < a->nlist; i++) {
		if (a->list[i].type != IMAP_ARG_ATOM)
			return -1;
		if (strcasecmp(a->list[i].str, "SUBSCRIBED") == 0)
			*opts |= RET_SUBSCRIBED;
		else if (strcasecmp(a->list[i].str, "STATUS") == 0) {
			if (++i == a->nlist ||
			    imap_status_items(&a->list[i], rev2, status) < 0)
				return -1;
			*opts |= RET_STATUS;
		} else if (strcasecmp(a->list[i].str, "CHILDREN") != 0 &&
		    strcasecmp(a->list[i].str, "SPECIAL-USE") != 0)
			return -1;
	}
	return 0;
}

/*
 * The pattern the names are matched against: reference and pattern
 * joined, with a leading "INBOX" in any case made "INBOX" (RFC 3501 5.1).
 */
static int
list_pattern(const char *ref, const char *pat, char *out, size_t size)
{
	if ((size_t)snprintf(out, size, "%s%s", ref, pat) >= size)
		return -1;
	if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' ||
	    out[5] == '/' || out[5] == '*' || out[5] == '%'))
		memcpy(out, "INBOX", 5);
	return 0;
}

/*
 * A LIST or LSUB in progress.  Between steps it keeps only its patterns
 * and where it is, by name: each step reads the mailboxes again
 * (list_load) and goes on after the last name it looked at, so that a
 * command in steps holds a few KiB, not its copy of every mailbox (a
 * thousand long names: 1.2 MiB a session), and its lines come in name
 * order, each once.  A mailbox created or deleted meanwhile is listed
 * or not as it is when its turn comes.
 */
struct list_job {
	unsigned		 opts, status;
	int			 utf8;		/* patterns in UTF-8 (RFC 6855) */
	int			 any_level;	/* every level may match */
	struct list_pat		 pats[IMAP_MAX_LIST_PATTERNS];
	size_t			 npats;
	char			 after[MAILBOX_MAX_NAME + 1]; /* names up to it done */
	/* RECURSIVEMATCH: the entry whose descendants are being looked
	   at over several steps ("" when none), and the last one seen */
	char			 parent[MAILBOX_MAX_NAME + 1];
	char			 below[MAILBOX_MAX_NAME + 1];
};

/* Frees a job: the step_free of imap_start_steps(). */
static void
list_free(void *arg)
{
	struct list_job	*j = arg;
	size_t		 k;

	for (k = 0; k < j->npats; k++)
		free(j->pats[k].p);
	free(j);
}

/*
 * Compiles the patterns into j: reference and pattern joined
 * (list_pattern), whether a level may match (before the wildcards are
 * folded), each run of wildcards made one ("*" if it holds one, else
 * "%": the same names match).  A pattern that is no string, or too
 * long, matches nothing and is left out.  Returns 0, or -1 without
 * memory.
 */
static int
list_compile(struct list_job *j, const char *ref, const struct imap_arg *pats,
    size_t npats)
{
	char		 pat[2 * MAILBOX_MAX_NAME + 2], *out;
	const char	*p;
	size_t		 k, i, n, len;

	for (k = 0; k < npats; k++) {
		if ((p = imap_arg_astring(&pats[k])) == NULL ||
		    list_pattern(ref, p, pat, sizeof(pat)) < 0)
			continue;
		len = strlen(pat);
		if ((out = malloc(len + 1)) == NULL)
			return -1;
		for (i = n = 0; i < len; i++) {
			if ((pat[i] == '*' || pat[i] == '%') && n > 0 &&
			    (out[n - 1] == '*' || out[n - 1] == '%')) {
				if (pat[i] == '*')
					out[n - 1] = '*';
				continue;
			}
			out[n++] = pat[i];
		}
		out[n] = '\0';
		j->pats[j->npats].p = out;
		j->pats[j->npats].len = n;
		j->pats[j->npats++].levels = len > 0 && pat[len - 1] == '%';
	}
	return 0;
}

/*
 * Whether entry i matches one of the patterns, worked out once a load.
 * A level that is no mailbox matches only where "%" stops at it
 * (RFC 3501 6.3.8-9) unless any level may.
 */
static int
list_matches(struct list_ctx *c, const struct list_job *j, size_t i)
{
	static struct list_name	 nm;	/* 35 KiB: not on the stack */
	struct list_entry	*e = &c->v[i];
	char			 utf8[LIST_NAME_MAX + 1];
	const char		*name = e->mb.name;
	size_t			 k;

	if (e->match != 0)
		return e->match > 0;
	if (j->utf8 && mutf7_to_utf8(name, utf8, sizeof(utf8)) == 0)
		name = utf8;
	list_name_ready(&nm, name, strlen(name));
	e->match = -1;
	for (k = 0; k < j->npats && e->match < 0; k++)
		if ((j->any_level || !list_level(e) || j->pats[k].levels) &&
		    list_match(&j->pats[k], &nm))
			e->match = 1;
	return e->match > 0;
}

/* The index of the first entry after name. */
static size_t
list_upper_bound(const struct list_ctx *c, const char *name)
{
	size_t	 i = list_lower_bound(c, name);

	return i < c->n && strcmp(c->v[i].mb.name, name) == 0 ? i + 1 : i;
}

/*
 * RECURSIVEMATCH (RFC 5258 3.5): whether entry i has a subscribed
 * descendant that the patterns do not list themselves, which CHILDINFO
 * then reports on i.  The descendants follow i in name order; a search
 * the step's time cut short goes on after j->below.  Returns 1 or 0, or
 * -1 when the time ran out (at least one descendant looked at).
 */
static int
list_childinfo(struct list_ctx *c, struct list_job *j, size_t i,
    const struct imap_step_budget *b)
{
	const char	*name = c->v[i].mb.name;
	size_t		 n = strlen(name), k = i + 1;

	if (strcmp(j->parent, name) == 0)
		k = list_upper_bound(c, j->below);
	j->parent[0] = '\0';
	for (; k < c->n && strncmp(c->v[k].mb.name, name, n) == 0; k++) {
		if (c->v[k].mb.name[n] != '/' || !c->v[k].mb.subscribed)
			continue;
		if (!list_matches(c, j, k))
			return 1;
		if (!imap_step_time_left(b)) {
			snprintf(j->parent, sizeof(j->parent), "%s", name);
			snprintf(j->below, sizeof(j->below), "%s",
			    c->v[k].mb.name);
			return -1;
		}
	}
	return 0;
}

/*
 * Lists entry i if it matches.  With the SUBSCRIBED selection (not
 * LSUB) every mailbox was loaded: only the subscribed ones are listed,
 * and with RECURSIVEMATCH their parents with CHILDINFO.  Returns 1 when
 * done with it, 0 when the step's time ran out first.
 */
static int
list_one(struct session *s, struct list_ctx *c, struct list_job *j,
    size_t i, const struct imap_step_budget *b)
{
	struct list_entry	*e = &c->v[i];
	int			 r;

	if (((j->opts & SEL_SPECIAL_USE) && e->mb.special_use[0] == '\0') ||
	    !list_matches(c, j, i))
		return 1;
	if (j->any_level && !e->mb.subscribed) {
		if (!(j->opts & SEL_RECURSIVE))
			return 1;
		if ((r = list_childinfo(c, j, i, b)) <= 0)
			return r == 0;
		e->childinfo = 1;
	}
	list_respond(s, c, e, j->opts, j->status);
	return 1;
}

/*
 * Reads the user's mailboxes into c, with the subscribed names that are
 * no mailbox when absent, and the levels above them, sorted.  Returns 0,
 * or -1 (c freed) when they could not be read.
 */
static int
list_load(struct session *s, struct list_ctx *c, int subscribed_only,
    int absent)
{
	struct store	*st = s->srv->store;
	const char	*user = imap_of(s)->user;

	memset(c, 0, sizeof(*c));
	c->subscribed_only = subscribed_only;
	if (store_mailbox_foreach(st, user, list_collect, c) != STORE_OK ||
	    c->error || (absent && (store_subscribed_absent(st, user,
	    list_collect_absent, c) != STORE_OK || c->error))) {
		free(c->v);
		return -1;
	}
	list_add_parents(c);
	return 0;
}

/*
 * One step of a LIST: the entries after j->after, at least one, until
 * the step's time is up or the output is over the high-water mark, all
 * in one read snapshot.  Returns 1 when the command is done (replied).
 */
static int
list_step(struct session *s, void *arg)
{
	struct list_job		*j = arg;
	struct list_ctx		 c;
	struct imap_step_budget	 b;
	size_t			 i, first;
	int			 lsub = (j->opts & LSUB) != 0;

	imap_step_begin(&b);
	store_read_begin(s->srv->store);
	if (list_load(s, &c, lsub, (j->opts & SEL_SUBSCRIBED) != 0) < 0) {
		store_read_end(s->srv->store);
		imap_reply(s, "NO [UNAVAILABLE] Cannot list mailboxes");
		return 1;
	}
	for (i = first = list_upper_bound(&c, j->after); i < c.n; i++) {
		if (i > first && (session_output_high(s) ||
		    !imap_step_time_left(&b)))
			break;
		if (!list_one(s, &c, j, i, &b))
			break;
		snprintf(j->after, sizeof(j->after), "%s", c.v[i].mb.name);
	}
	free(c.v);
	store_read_end(s->srv->store);
	if (i < c.n)
		return 0;
	imap_reply(s, "OK %s completed", lsub ? "LSUB" : "LIST");
	return 1;
}

int
imap_list_mailbox(struct session *s, const char *name)
{
	struct list_ctx		 c;
	struct list_entry	 key;
	const struct list_entry	*e;

	if (list_load(s, &c, 0, 0) < 0)
		return -1;
	memset(&key, 0, sizeof(key));
	snprintf(key.mb.name, sizeof(key.mb.name), "%s", name);
	if ((e = bsearch(&key, c.v, c.n, sizeof(*c.v), entry_cmp)) != NULL)
		list_respond(s, &c, e, 0, 0);
	free(c.v);
	return 0;
}

int
imap_list_has_children(struct session *s, const char *name)
{
	struct list_ctx	 c;
	int		 r;

	if (list_load(s, &c, 0, 0) < 0)
		return -1;
	r = list_has_children(&c, name);
	free(c.v);
	return r;
}

/*
 * Parses LIST or LSUB, compiles its patterns and runs its first step;
 * one that does not finish there goes on in the next loop iterations.
 */
void
imap_cmd_list(struct session *s, const struct imap_arg *args, size_t nargs,
    int lsub)
{
	struct list_job		*j;
	const struct imap_arg	*pats;
	const char		*ref;
	unsigned		 opts = lsub ? LSUB | SEL_SUBSCRIBED : 0;
	unsigned		 status = 0;
	size_t			 i = 0, npats;

	if (!lsub && nargs > 0 && args[0].type == IMAP_ARG_LIST &&
	    list_selection(&args[i++], &opts) < 0) {
		imap_reply(s, "BAD Invalid LIST selection options");
		return;
	}
	if (i + 2 > nargs || (ref = imap_arg_astring(&args[i])) == NULL) {
		imap_reply(s, "BAD %s wants a reference and a mailbox pattern",
		    lsub ? "LSUB" : "LIST");
		return;
	}
	pats = &args[i + 1];
	npats = 1;
	if (!lsub && pats->type == IMAP_ARG_LIST) {
		npats = pats->nlist;
		pats = pats->list;
	}
	if (npats > IMAP_MAX_LIST_PATTERNS) {
		imap_reply(s, "NO [LIMIT] At most %d patterns in one LIST",
		    IMAP_MAX_LIST_PATTERNS);
		return;
	}
	i += 2;
	if (i < nargs && (lsub || i + 2 != nargs ||
	    args[i].type != IMAP_ARG_ATOM ||
	    strcasecmp(args[i].str, "RETURN") != 0 ||
	    args[i + 1].type != IMAP_ARG_LIST ||
	    list_return(&args[i + 1], imap_of(s)->rev2, &opts, &status) <
	    0)) {
		imap_reply(s, "BAD Invalid LIST return options");
		return;
	}
	if (npats == 1 && imap_arg_astring(pats) != NULL &&
	    *imap_arg_astring(pats) == '\0') {
		/* LIST "" "": the delimiter and the root (RFC 3501 6.3.8). */
		session_printf(s, "* %s (\\Noselect) \"/\" \"\"\r\n",
		    lsub ? "LSUB" : "LIST");
		imap_reply(s, "OK %s completed", lsub ? "LSUB" : "LIST");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    list_compile(j, ref, pats, npats) < 0) {
		if (j != NULL)
			list_free(j);
		imap_reply(s, "NO [UNAVAILABLE] Cannot list mailboxes");
		return;
	}
	j->opts = opts;
	j->status = status;
	j->utf8 = imap_names_utf8(imap_of(s));
	j->any_level = (opts & SEL_SUBSCRIBED) && !lsub;
	if (list_step(s, j))
		list_free(j);
	else
		imap_start_steps(s, list_step, list_free, j);
}
