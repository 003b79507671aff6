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
 */
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
};

struct list_ctx {
	struct list_entry	*v;
	size_t			 n, cap;
	int			 subscribed_only;
	int			 utf8;		/* patterns in UTF-8 (RFC 6855) */
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
 * Whether name matches pattern, "*" matching anything and "%" anything
 * but the delimiter.  Dynamic programming over both strings, so that a
 * pattern full of wildcards costs len(pattern) * len(name), never more.
 */
static int
list_match(const char *pat, const char *name)
{
	char	 rows[2][MAILBOX_MAX_NAME + 2], *cur, *next;
	size_t	 plen = strlen(pat), nlen = strlen(name), i, j;

	if (nlen > MAILBOX_MAX_NAME)
		return 0;
	next = rows[0];
	cur = rows[1];
	for (j = 0; j <= nlen; j++)
		next[j] = j == nlen;
	for (i = plen; i-- > 0;) {
		for (j = nlen + 1; j-- > 0;) {
			if (pat[i] == '*')
				cur[j] = next[j] || (j < nlen && cur[j + 1]);
			else if (pat[i] == '%')
				cur[j] = next[j] || (j < nlen &&
				    name[j] != '/' && cur[j + 1]);
			else
				cur[j] = j < nlen && name[j] == pat[i] &&
				    next[j + 1];
		}
		next = cur;
		cur = cur == rows[0] ? rows[1] : rows[0];
	}
	return next[0];
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
 * Whether entry i matches one of the patterns.  A level that is no
 * mailbox matches only where "%" stops at it (RFC 3501 6.3.8-9) unless
 * any_level.
 */
static int
list_matches(const struct list_ctx *c, size_t i, const char *ref,
    const struct imap_arg *pats, size_t npats, int any_level)
{
	char		 pat[2 * MAILBOX_MAX_NAME + 2];
	char		 utf8[2 * MAILBOX_MAX_NAME + 1];
	const char	*p, *name = c->v[i].mb.name;
	size_t		 k;

	if (c->utf8 && mutf7_to_utf8(name, utf8, sizeof(utf8)) == 0)
		name = utf8;

	for (k = 0; k < npats; k++) {
		if ((p = imap_arg_astring(&pats[k])) == NULL ||
		    list_pattern(ref, p, pat, sizeof(pat)) < 0)
			continue;
		if (!any_level && list_level(&c->v[i]) && (*pat == '\0' ||
		    pat[strlen(pat) - 1] != '%'))
			continue;
		if (list_match(pat, name))
			return 1;
	}
	return 0;
}

/*
 * RECURSIVEMATCH (RFC 5258 3.5): whether entry i has a subscribed
 * descendant that the patterns do not list themselves, which CHILDINFO
 * then reports on i.  The descendants follow i in name order.
 */
static int
list_childinfo(const struct list_ctx *c, size_t i, const char *ref,
    const struct imap_arg *pats, size_t npats)
{
	size_t	 n = strlen(c->v[i].mb.name), j;

	for (j = i + 1; j < c->n && strncmp(c->v[j].mb.name,
	    c->v[i].mb.name, n) == 0; j++) {
		if (c->v[j].mb.name[n] != '/')
			continue;
		if (c->v[j].mb.subscribed && !list_matches(c, j, ref, pats,
		    npats, 1))
			return 1;
	}
	return 0;
}

/*
 * Lists the entries that match any of the patterns.  With the SUBSCRIBED
 * selection (not LSUB) every mailbox was collected: only the subscribed
 * ones are listed, and with RECURSIVEMATCH their parents with CHILDINFO.
 */
static void
list_run(struct session *s, struct list_ctx *c, const char *ref,
    const struct imap_arg *pats, size_t npats, unsigned opts,
    unsigned status)
{
	int	 select_subscribed = (opts & SEL_SUBSCRIBED) && !(opts & LSUB);
	size_t	 i;

	for (i = 0; i < c->n; i++) {
		if ((opts & SEL_SPECIAL_USE) && c->v[i].mb.special_use[0] ==
		    '\0')
			continue;
		if (!list_matches(c, i, ref, pats, npats, select_subscribed))
			continue;
		if (select_subscribed && !c->v[i].mb.subscribed) {
			if (!(opts & SEL_RECURSIVE) ||
			    !list_childinfo(c, i, ref, pats, npats))
				continue;
			c->v[i].childinfo = 1;
		}
		list_respond(s, c, &c->v[i], opts, status);
	}
}

/*
 * Reads the user's mailboxes and the levels above them into c, sorted.
 * Returns 0, or -1 (c freed) when they could not be read.
 */
static int
list_load(struct session *s, struct list_ctx *c)
{
	memset(c, 0, sizeof(*c));
	if (store_mailbox_foreach(s->srv->store, imap_of(s)->user,
	    list_collect, c) != STORE_OK || c->error) {
		free(c->v);
		return -1;
	}
	list_add_parents(c);
	return 0;
}

int
imap_list_mailbox(struct session *s, const char *name)
{
	struct list_ctx		 c;
	struct list_entry	 key;
	const struct list_entry	*e;

	if (list_load(s, &c) < 0)
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

	if (list_load(s, &c) < 0)
		return -1;
	r = list_has_children(&c, name);
	free(c.v);
	return r;
}

void
imap_cmd_list(struct session *s, const struct imap_arg *args, size_t nargs,
    int lsub)
{
	struct list_ctx		 c;
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
	memset(&c, 0, sizeof(c));
	c.subscribed_only = lsub;
	c.utf8 = imap_names_utf8(imap_of(s));
	if (store_mailbox_foreach(s->srv->store, imap_of(s)->user,
	    list_collect, &c) != STORE_OK || c.error ||
	    ((opts & SEL_SUBSCRIBED) && (store_subscribed_absent(
	    s->srv->store, imap_of(s)->user, list_collect_absent, &c) !=
	    STORE_OK || c.error))) {
		free(c.v);
		imap_reply(s, "NO [UNAVAILABLE] Cannot list mailboxes");
		return;
	}
	list_add_parents(&c);
	list_run(s, &c, ref, pats, npats, opts, status);
	free(c.v);
	imap_reply(s, "OK %s completed", lsub ? "LSUB" : "LIST");
}
