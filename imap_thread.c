/*
 * imap_thread.c — the two threading algorithms of RFC 5256:
 * ORDEREDSUBJECT (messages grouped by base subject) and REFERENCES (the
 * parent/child links of Message-ID, References and In-Reply-To, then
 * threads of one subject merged), and the THREAD response they give.
 *
 * Both build a forest of containers: one per message, and for
 * REFERENCES one per Message-ID referred to but not held (a "dummy").
 * Links are indexes into one array, so no container is freed before the
 * end.  Every walk of the forest is iterative with an explicit stack:
 * References chains come from the messages, and a hostile sender can
 * make them as deep as the mailbox is long.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_sort.h"
#include "imap_thread.h"

#define NONE	UINT32_MAX

struct container {
	uint32_t	 msg;		/* index into the messages, or NONE */
	uint32_t	 parent;
	uint32_t	 child, last;	/* first and last children */
	uint32_t	 prev, next;	/* siblings */
	int64_t		 date;		/* the message's, or the first child's */
	uint32_t	 seq;		/* likewise, to break ties */
};

struct forest {
	struct container	*c;
	uint32_t		 n, cap;
	const struct thread_msg	*msgs;
	/* REFERENCES: Message-ID -> container, open addressing */
	const char		**ids;		/* by container */
	uint32_t		*slot;
	size_t			 nslots;
};

static const struct {
	const char		*name;
	enum thread_algorithm	 algorithm;
} algorithms[] = {
	{ "ORDEREDSUBJECT",	THREAD_ORDEREDSUBJECT },
	{ "REFERENCES",		THREAD_REFERENCES },
};

int
imap_thread_algorithm(const char *name, enum thread_algorithm *out)
{
	size_t	 i;

	for (i = 0; i < sizeof(algorithms) / sizeof(algorithms[0]); i++)
		if (strcasecmp(name, algorithms[i].name) == 0) {
			*out = algorithms[i].algorithm;
			return 0;
		}
	return -1;
}

/* --- the forest ---------------------------------------------------------- */

/* A new container for message msg (NONE: a dummy); NONE when out of memory. */
static uint32_t
container_new(struct forest *f, uint32_t msg)
{
	struct container	*c;
	uint32_t		 cap;

	if (f->n == f->cap) {
		cap = f->cap > 0 ? f->cap * 2 : 64;
		if (cap <= f->cap || (c = reallocarray(f->c, cap,
		    sizeof(*c))) == NULL)
			return NONE;
		f->c = c;
		f->cap = cap;
	}
	c = &f->c[f->n];
	c->msg = msg;
	c->parent = c->child = c->last = c->prev = c->next = NONE;
	c->date = msg != NONE ? f->msgs[msg].date : 0;
	c->seq = msg != NONE ? f->msgs[msg].seq : 0;
	return f->n++;
}

/*
 * Whether a is b or one of b's ancestors, as far as THREAD_MAX_DEPTH
 * levels up; deeper counts as yes, so that a link that cannot be
 * checked cheaply is not made.  A container without children is no
 * one's ancestor: messages in the order they were written are mostly
 * that, and so a long chain costs no walk.
 */
static int
is_ancestor(const struct forest *f, uint32_t a, uint32_t b)
{
	uint32_t	 depth;

	if (f->c[a].child == NONE)
		return a == b;
	for (depth = 0; b != NONE; b = f->c[b].parent, depth++)
		if (a == b || depth == THREAD_MAX_DEPTH)
			return 1;
	return 0;
}

/* Takes c out of its parent's children (if it has a parent). */
static void
unlink_child(struct forest *f, uint32_t c)
{
	struct container	*x = &f->c[c];

	if (x->parent == NONE)
		return;
	if (x->prev != NONE)
		f->c[x->prev].next = x->next;
	else
		f->c[x->parent].child = x->next;
	if (x->next != NONE)
		f->c[x->next].prev = x->prev;
	else
		f->c[x->parent].last = x->prev;
	x->parent = x->prev = x->next = NONE;
}

/* Makes c (which has no parent) the last child of parent. */
static void
append_child(struct forest *f, uint32_t parent, uint32_t c)
{
	struct container	*x = &f->c[c];

	x->parent = parent;
	x->next = NONE;
	x->prev = f->c[parent].last;
	if (x->prev != NONE)
		f->c[x->prev].next = c;
	else
		f->c[parent].child = c;
	f->c[parent].last = c;
}

/* --- REFERENCES: the Message-ID table ------------------------------------ */

static size_t
id_hash(const char *s, size_t n)
{
	size_t	 h = 2166136261u;

	while (n-- > 0)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/*
 * The container of Message-ID id (n bytes), created as a dummy when
 * `create` and it is not known yet; NONE when unknown, or out of memory.
 * The table keeps pointers into the messages' strings.
 */
static uint32_t
id_lookup(struct forest *f, const char *id, size_t n, int create)
{
	size_t		 i;
	uint32_t	 c;

	for (i = id_hash(id, n) & (f->nslots - 1); f->slot[i] != NONE;
	    i = (i + 1) & (f->nslots - 1)) {
		c = f->slot[i];
		assert(c < f->n && f->c != NULL);
		if (strncmp(f->ids[c], id, n) == 0 && f->ids[c][n] == '>')
			return c;
	}
	if (!create || (c = container_new(f, NONE)) == NONE)
		return NONE;
	f->ids[c] = id;
	f->slot[i] = c;
	return c;
}

/*
 * The next "<...>" of a References or In-Reply-To value at *p: sets *id
 * to after the '<' and *n to the length before the '>'; 0 when none.
 */
static int
next_id(const char **p, const char **id, size_t *n)
{
	const char	*lt, *gt;

	while ((lt = strchr(*p, '<')) != NULL) {
		if ((gt = strchr(lt + 1, '>')) == NULL)
			return 0;
		*p = gt + 1;
		if (gt > lt + 1 && memchr(lt + 1, '<', gt - lt - 1) == NULL) {
			*id = lt + 1;
			*n = gt - lt - 1;
			return 1;
		}
	}
	return 0;
}

/* Links child under parent unless it has a parent or it would loop. */
static void
link_if_free(struct forest *f, uint32_t parent, uint32_t child)
{
	if (f->c[child].parent != NONE || is_ancestor(f, child, parent))
		return;
	append_child(f, parent, child);
}

/*
 * Step 1 of REFERENCES for message m (container c): each reference the
 * parent of the next, then the last one the parent of the message.  The
 * message's own References say where it belongs: a link an earlier
 * message's References made goes, even when the new one would loop and
 * is not made (step 1B).
 */
static int
link_references(struct forest *f, uint32_t m, uint32_t c)
{
	const char	*p = f->msgs[m].references, *id;
	size_t		 n;
	uint32_t	 prev = NONE, ref;

	while (p != NULL && next_id(&p, &id, &n)) {
		if ((ref = id_lookup(f, id, n, 1)) == NONE)
			return -1;
		if (ref == c)
			continue;	/* a message refers to itself */
		if (prev != NONE && prev != ref)
			link_if_free(f, prev, ref);
		prev = ref;
	}
	if (prev != NONE && f->c[c].parent == prev)
		return 0;
	unlink_child(f, c);
	if (prev != NONE && !is_ancestor(f, c, prev))
		append_child(f, prev, c);
	return 0;
}

/*
 * The container of message m: the one of its Message-ID (a dummy made by
 * an earlier reference is filled in), or one of its own when it has no
 * Message-ID or a message before it had the same.  NONE: out of memory.
 */
static uint32_t
message_container(struct forest *f, uint32_t m)
{
	const char	*p = f->msgs[m].message_id, *id;
	size_t		 n;
	uint32_t	 c;

	if (p == NULL || !next_id(&p, &id, &n))
		return container_new(f, m);
	if ((c = id_lookup(f, id, n, 1)) == NONE)
		return NONE;
	if (f->c[c].msg != NONE)
		return container_new(f, m);
	f->c[c].msg = m;
	f->c[c].date = f->msgs[m].date;
	f->c[c].seq = f->msgs[m].seq;
	return c;
}

/* Builds the containers and links of REFERENCES' step 1. */
static int
build_references(struct forest *f, uint32_t nmsgs)
{
	const char	*p, *id;
	size_t		 n, nids = 2 * (size_t)nmsgs;
	uint32_t	 i, c;

	for (i = 0; i < nmsgs; i++)
		for (p = f->msgs[i].references; p != NULL &&
		    next_id(&p, &id, &n);)
			nids++;
	for (f->nslots = 64; f->nslots < 2 * nids; f->nslots *= 2)
		;
	if ((f->slot = malloc(f->nslots * sizeof(*f->slot))) == NULL ||
	    (f->ids = calloc(nids, sizeof(*f->ids))) == NULL)
		return -1;
	memset(f->slot, 0xff, f->nslots * sizeof(*f->slot));
	for (i = 0; i < nmsgs; i++)
		if ((c = message_container(f, i)) == NONE ||
		    link_references(f, i, c) < 0)
			return -1;
	return 0;
}

/* --- walking and sorting ------------------------------------------------- */

/*
 * Every container under top, each after all of its descendants (the
 * reverse of a pre-order walk), into a malloc'd array of *n; NULL when
 * out of memory.
 */
static uint32_t *
post_order(const struct forest *f, uint32_t top, uint32_t *n)
{
	uint32_t	*order, *stack, sp = 0, i, c, k;

	order = malloc(f->n * sizeof(*order));
	stack = malloc(f->n * sizeof(*stack));
	if (order == NULL || stack == NULL) {
		free(order);
		free(stack);
		return NULL;
	}
	*n = 0;
	stack[sp++] = top;
	while (sp > 0) {
		c = stack[--sp];
		order[(*n)++] = c;
		for (k = f->c[c].child; k != NONE; k = f->c[k].next)
			stack[sp++] = k;
	}
	free(stack);
	for (i = 0; i < *n / 2; i++) {
		c = order[i];
		order[i] = order[*n - 1 - i];
		order[*n - 1 - i] = c;
	}
	return order;
}

static int
compare_dates(const void *pa, const void *pb, void *arg)
{
	const struct forest	*f = arg;
	const struct container	*a = &f->c[*(const uint32_t *)pa];
	const struct container	*b = &f->c[*(const uint32_t *)pb];

	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sorts the children of c by sent date (then sequence number). */
static void
sort_children(struct forest *f, uint32_t c, uint32_t *tmp)
{
	uint32_t	 n = 0, k, i;

	for (k = f->c[c].child; k != NONE; k = f->c[k].next)
		tmp[n++] = k;
	if (n < 2)
		return;
	qsort_r(tmp, n, sizeof(*tmp), compare_dates, f);
	f->c[c].child = tmp[0];
	f->c[c].last = tmp[n - 1];
	for (i = 0; i < n; i++) {
		f->c[tmp[i]].prev = i > 0 ? tmp[i - 1] : NONE;
		f->c[tmp[i]].next = i + 1 < n ? tmp[i + 1] : NONE;
	}
}

/*
 * Sorts every set of siblings under top by sent date, deepest first; a
 * dummy then takes the date of its first child.
 */
static int
sort_forest(struct forest *f, uint32_t top)
{
	uint32_t	*order, *tmp, n, i, c;

	if ((order = post_order(f, top, &n)) == NULL)
		return -1;
	if ((tmp = malloc(f->n * sizeof(*tmp))) == NULL) {
		free(order);
		return -1;
	}
	for (i = 0; i < n; i++) {
		c = order[i];
		sort_children(f, c, tmp);
		if (f->c[c].msg == NONE && f->c[c].child != NONE) {
			f->c[c].date = f->c[f->c[c].child].date;
			f->c[c].seq = f->c[f->c[c].child].seq;
		}
	}
	free(tmp);
	free(order);
	return 0;
}

/* --- REFERENCES: pruning and merging by subject -------------------------- */

/* Makes every child of `from` a child of `to`, in order. */
static void
move_children(struct forest *f, uint32_t from, uint32_t to)
{
	uint32_t	 k, next;

	for (k = f->c[from].child; k != NONE; k = next) {
		next = f->c[k].next;
		append_child(f, to, k);
	}
	f->c[from].child = f->c[from].last = NONE;
}

/*
 * Gives dummy d's children to its parent (the sort that follows puts
 * them in their places) and drops d.
 */
static void
splice_children(struct forest *f, uint32_t d)
{
	move_children(f, d, f->c[d].parent);
	unlink_child(f, d);
}

/*
 * Step 4: a dummy without children goes; one with children gives them
 * to its parent, unless the parent is the root and there are several.
 */
static int
prune_dummies(struct forest *f, uint32_t root)
{
	uint32_t	*order, n, i, c, kids, k;

	if ((order = post_order(f, root, &n)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		c = order[i];
		if (c == root || f->c[c].msg != NONE)
			continue;
		for (kids = 0, k = f->c[c].child; k != NONE; k = f->c[k].next)
			kids++;
		if (kids == 0)
			unlink_child(f, c);
		else if (f->c[c].parent != root || kids == 1)
			splice_children(f, c);
	}
	free(order);
	return 0;
}

/* The message a root container stands for: itself, or a dummy's first child. */
static const struct thread_msg *
root_msg(const struct forest *f, uint32_t c)
{
	if (f->c[c].msg == NONE)
		c = f->c[c].child;
	return c != NONE && f->c[c].msg != NONE ? &f->msgs[f->c[c].msg] :
	    NULL;
}

static size_t
subject_hash(const char *s)
{
	size_t	 h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 :
		    *s)) * 16777619u;
	return h;
}

/* The subject table's slot for a base subject (free, or holding it). */
static size_t
subject_slot(const struct forest *f, const uint32_t *table, size_t nslots,
    const char *subject)
{
	size_t	 i;

	for (i = subject_hash(subject) & (nslots - 1); table[i] != NONE;
	    i = (i + 1) & (nslots - 1))
		if (strcasecmp(root_msg(f, table[i])->subject, subject) == 0)
			break;
	return i;
}

/* Whether container c, in the subject table, gives way to container r. */
static int
table_yields(const struct forest *f, uint32_t c, uint32_t r)
{
	int	 dc = f->c[c].msg == NONE, dr = f->c[r].msg == NONE;

	if (dr && !dc)
		return 1;
	return !dc && !dr && f->msgs[f->c[c].msg].reply &&
	    !f->msgs[f->c[r].msg].reply;
}

/* Puts container c (without a parent) where t is; t is unlinked. */
static void
replace_root(struct forest *f, uint32_t t, uint32_t c)
{
	struct container	*x = &f->c[t], *y = &f->c[c];

	y->parent = x->parent;
	y->prev = x->prev;
	y->next = x->next;
	if (x->prev != NONE)
		f->c[x->prev].next = c;
	else
		f->c[x->parent].child = c;
	if (x->next != NONE)
		f->c[x->next].prev = c;
	else
		f->c[x->parent].last = c;
	x->parent = x->prev = x->next = NONE;
}

/* Merges root r into t, the table's container of the same subject. */
static int
merge_roots(struct forest *f, uint32_t t, uint32_t r, uint32_t *slot)
{
	uint32_t	 d;

	if (f->c[t].msg == NONE && f->c[r].msg == NONE) {
		move_children(f, r, t);
		unlink_child(f, r);
	} else if (f->c[t].msg == NONE ||
	    (!f->msgs[f->c[t].msg].reply && f->c[r].msg != NONE &&
	    f->msgs[f->c[r].msg].reply)) {
		unlink_child(f, r);
		append_child(f, t, r);
	} else {
		if ((d = container_new(f, NONE)) == NONE)
			return -1;
		unlink_child(f, r);
		replace_root(f, t, d);
		append_child(f, d, t);
		append_child(f, d, r);
		*slot = d;
	}
	return 0;
}

/* Step 6: threads whose roots have one base subject become one. */
static int
merge_by_subject(struct forest *f, uint32_t root)
{
	const struct thread_msg	*m;
	uint32_t		*table, *roots, n = 0, c, i;
	size_t			 nslots, s;
	int			 rc = -1;

	for (c = f->c[root].child; c != NONE; c = f->c[c].next)
		n++;
	for (nslots = 64; nslots < 2 * (size_t)n; nslots *= 2)
		;
	table = malloc(nslots * sizeof(*table));
	roots = malloc((n + 1) * sizeof(*roots));
	if (table == NULL || roots == NULL)
		goto out;
	memset(table, 0xff, nslots * sizeof(*table));
	for (n = 0, c = f->c[root].child; c != NONE; c = f->c[c].next)
		roots[n++] = c;
	for (i = 0; i < n; i++) {
		if ((m = root_msg(f, roots[i])) == NULL || *m->subject == '\0')
			continue;
		s = subject_slot(f, table, nslots, m->subject);
		if (table[s] == NONE || table_yields(f, table[s], roots[i]))
			table[s] = roots[i];
	}
	for (i = 0; i < n; i++) {
		if ((m = root_msg(f, roots[i])) == NULL || *m->subject == '\0')
			continue;
		s = subject_slot(f, table, nslots, m->subject);
		if (table[s] != roots[i] &&
		    merge_roots(f, table[s], roots[i], &table[s]) < 0)
			goto out;
	}
	rc = 0;
out:
	free(table);
	free(roots);
	return rc;
}

/* --- the algorithms ------------------------------------------------------ */

static int
thread_references(struct forest *f, uint32_t nmsgs, uint32_t *root)
{
	uint32_t	 c, n;

	if (build_references(f, nmsgs) < 0 ||
	    (*root = container_new(f, NONE)) == NONE)
		return -1;
	for (n = *root, c = 0; c < n; c++)
		if (f->c[c].parent == NONE)
			append_child(f, *root, c);
	return prune_dummies(f, *root) < 0 || sort_forest(f, *root) < 0 ||
	    merge_by_subject(f, *root) < 0 ? -1 : sort_forest(f, *root);
}

static int
compare_subjects(const void *pa, const void *pb, void *arg)
{
	const struct thread_msg	*msgs = arg;
	const struct thread_msg	*a = &msgs[*(const uint32_t *)pa];
	const struct thread_msg	*b = &msgs[*(const uint32_t *)pb];
	int			 r;

	if ((r = imap_casemap_cmp(a->subject, b->subject)) != 0)
		return r;
	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/*
 * ORDEREDSUBJECT: messages sorted by base subject, then sent date; the
 * first of each subject is the parent of the others.
 */
static int
thread_ordered_subject(struct forest *f, uint32_t nmsgs, uint32_t *root)
{
	uint32_t	*by, i, c, first = NONE;

	if ((by = malloc((nmsgs + 1) * sizeof(*by))) == NULL ||
	    (*root = container_new(f, NONE)) == NONE) {
		free(by);
		return -1;
	}
	for (i = 0; i < nmsgs; i++)
		by[i] = i;
	qsort_r(by, nmsgs, sizeof(*by), compare_subjects,
	    (void *)f->msgs);
	for (i = 0; i < nmsgs; i++) {
		if ((c = container_new(f, by[i])) == NONE) {
			free(by);
			return -1;
		}
		if (first != NONE && strcasecmp(f->msgs[by[i]].subject,
		    f->msgs[f->c[first].msg].subject) == 0)
			append_child(f, first, c);
		else
			append_child(f, *root, first = c);
	}
	free(by);
	return sort_forest(f, *root);
}

/* --- the response -------------------------------------------------------- */

/*
 * Writes each thread under root as "(...)": a chain of only children as
 * numbers, and where a container has several children, each of them as
 * a nested "(...)".  The stack holds containers to open, and NONE for a
 * ")" still to write.
 */
static int
write_threads(const struct forest *f, uint32_t root, thread_emit_fn emit,
    void *arg)
{
	uint32_t	*stack, sp = 0, c, k;
	char		 num[16];
	int		 wrote, len;

	if ((stack = malloc(2 * f->n * sizeof(*stack))) == NULL)
		return -1;
	/* pushed last to first, so that the first is written first */
	for (k = f->c[root].last; k != NONE; k = f->c[k].prev)
		stack[sp++] = k;
	while (sp > 0) {
		if ((c = stack[--sp]) == NONE) {
			emit(arg, ")", 1);
			continue;
		}
		emit(arg, "(", 1);
		for (wrote = 0;; c = f->c[c].child) {
			if (f->c[c].msg != NONE) {
				len = snprintf(num, sizeof(num), "%s%u",
				    wrote ? " " : "", f->msgs[f->c[c].msg].num);
				emit(arg, num, (size_t)len);
				wrote = 1;
			}
			/* an only child goes on the chain */
			if (f->c[c].child == NONE ||
			    f->c[c].child != f->c[c].last)
				break;
		}
		if (f->c[c].child == NONE) {
			emit(arg, ")", 1);
			continue;
		}
		if (wrote)
			emit(arg, " ", 1);
		stack[sp++] = NONE;
		for (k = f->c[c].last; k != NONE; k = f->c[k].prev)
			stack[sp++] = k;
	}
	free(stack);
	return 0;
}

int
imap_thread(const struct thread_msg *msgs, uint32_t n,
    enum thread_algorithm algorithm, thread_emit_fn emit, void *arg)
{
	struct forest	 f = { .msgs = msgs };
	uint32_t	 root;
	int		 rc;

	if (algorithm == THREAD_REFERENCES)
		rc = thread_references(&f, n, &root);
	else
		rc = thread_ordered_subject(&f, n, &root);
	if (rc == 0)
		rc = write_threads(&f, root, emit, arg);
	free(f.c);
	free(f.ids);
	free(f.slot);
	return rc;
}
