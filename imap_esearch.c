/*
 * imap_esearch.c — the ESEARCH result of SEARCH RETURN (...) (RFC 4731):
 * MIN, MAX, COUNT and ALL, with the MODSEQ of CONDSTORE (RFC 7162 3.1.5
 * as RFC 4731 3.2 narrows it), and PARTIAL (RFC 5267 4.4); and of SORT
 * RETURN (...) (ESORT, RFC 5267).
 *
 * The matches arrive in ascending order, one at a time, as the search
 * steps through the mailbox.  ALL is written as it grows, a range at a
 * time, so that a result of a million messages costs no memory; MIN,
 * MAX and COUNT follow it at the end.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imap_esearch.h"

static const struct {
	const char	*name;
	unsigned	 bit;
} return_options[] = {
	{ "MIN",	ESEARCH_MIN },
	{ "MAX",	ESEARCH_MAX },
	{ "COUNT",	ESEARCH_COUNT },
	{ "ALL",	ESEARCH_ALL },
	{ "SAVE",	ESEARCH_SAVE },
	{ "PARTIAL",	ESEARCH_PARTIAL },
	{ "UPDATE",	ESEARCH_UPDATE },
	{ "CONTEXT",	ESEARCH_CONTEXT },
};

/*
 * A non-zero number of at most 32 bits at *p, moving *p past it.
 * Returns it, or 0 when there is none.
 */
static uint32_t
nz_number(const char **p)
{
	uint64_t	 n = 0;
	const char	*q = *p;

	if (*q < '1' || *q > '9')
		return 0;
	for (; *q >= '0' && *q <= '9'; q++)
		if ((n = n * 10 + (uint64_t)(*q - '0')) > UINT32_MAX)
			return 0;
	*p = q;
	return (uint32_t)n;
}

/*
 * PARTIAL's range, "lo:hi" of non-zero numbers in either order (RFC
 * 5267 5: no "*").  Returns 0, or -1 when a is not one.
 */
static int
partial_range(const struct imap_arg *a, struct esearch_opts *o)
{
	const char	*p;
	uint32_t	 x, y;

	if (a->type != IMAP_ARG_ATOM)
		return -1;
	p = a->str;
	if ((x = nz_number(&p)) == 0 || *p++ != ':' ||
	    (y = nz_number(&p)) == 0 || *p != '\0')
		return -1;
	o->lo = x < y ? x : y;
	o->hi = x < y ? y : x;
	return 0;
}

int
imap_esearch_parse(const struct imap_arg *list, struct esearch_opts *o,
    const char **why)
{
	size_t	 i, k;

	memset(o, 0, sizeof(*o));
	*why = "Unknown RETURN option";
	for (i = 0; i < list->nlist; i++) {
		if (list->list[i].type != IMAP_ARG_ATOM)
			return -1;
		for (k = 0; k < sizeof(return_options) /
		    sizeof(return_options[0]); k++)
			if (strcasecmp(list->list[i].str,
			    return_options[k].name) == 0)
				break;
		if (k == sizeof(return_options) / sizeof(return_options[0]))
			return -1;
		if (return_options[k].bit == ESEARCH_PARTIAL) {
			*why = "PARTIAL wants one range lo:hi of non-zero "
			    "numbers";
			if ((o->ret & ESEARCH_PARTIAL) ||
			    i + 1 == list->nlist ||
			    partial_range(&list->list[++i], o) < 0)
				return -1;
		}
		o->ret |= return_options[k].bit;
	}
	if ((o->ret & (ESEARCH_PARTIAL | ESEARCH_ALL)) ==
	    (ESEARCH_PARTIAL | ESEARCH_ALL)) {
		*why = "PARTIAL and ALL exclude each other";
		return -1;
	}
	/* "RETURN ()" (RFC 4731 3.1), and one with only the hint */
	if ((o->ret & ~ESEARCH_CONTEXT) == 0)
		o->ret |= ESEARCH_ALL;
	return 0;
}

void
imap_esearch_begin(struct session *s, struct imap_esearch *e,
    const struct esearch_opts *o, int uid)
{
	memset(e, 0, sizeof(*e));
	e->opts = *o;
	session_printf(s, "* ESEARCH (TAG ");
	imap_put_string(s, imap_of(s)->tag, strlen(imap_of(s)->tag));
	session_printf(s, ")%s", uid ? " UID" : "");
}

/* Whether the match at position pos (1-based) is listed by ALL or PARTIAL. */
static int
listed_at(const struct esearch_opts *o, uint32_t pos)
{
	return (o->ret & ESEARCH_ALL) || ((o->ret & ESEARCH_PARTIAL) &&
	    pos >= o->lo && pos <= o->hi);
}

/* Lists n, above every number listed so far, in the set being written. */
static void
list_number(struct session *s, struct imap_esearch *e, uint32_t n)
{
	if (e->listed == 0) {
		if (e->opts.ret & ESEARCH_ALL)
			session_printf(s, " ALL %u", n);
		else
			session_printf(s, " PARTIAL (%u:%u %u", e->opts.lo,
			    e->opts.hi, n);
		e->run_lo = n;
	} else if (n != e->run_hi + 1) {
		/* the run ended: close it and start the next */
		if (e->run_hi > e->run_lo)
			session_printf(s, ":%u", e->run_hi);
		session_printf(s, ",%u", n);
		e->run_lo = n;
	}
	e->run_hi = n;
	e->listed++;
}

void
imap_esearch_add(struct session *s, struct imap_esearch *e, uint32_t n,
    uint64_t modseq)
{
	if (e->count == 0) {
		e->min = n;
		e->modseq_min = modseq;
	}
	if (listed_at(&e->opts, e->count + 1))
		list_number(s, e, n);
	e->max = n;
	e->modseq_max = modseq;
	if (modseq > e->modseq_all)
		e->modseq_all = modseq;
	e->count++;
}

/*
 * The MODSEQ RFC 4731 3.2 asks for: of the MIN or MAX message when only
 * one of them was asked, the higher of the two for both, else of all.
 */
static uint64_t
result_modseq(const struct imap_esearch *e)
{
	unsigned	 ret = e->opts.ret & (ESEARCH_MIN | ESEARCH_MAX |
			    ESEARCH_COUNT | ESEARCH_ALL);

	if (ret == ESEARCH_MIN)
		return e->modseq_min;
	if (ret == ESEARCH_MAX)
		return e->modseq_max;
	if (ret == (ESEARCH_MIN | ESEARCH_MAX))
		return e->modseq_min > e->modseq_max ? e->modseq_min :
		    e->modseq_max;
	return e->modseq_all;
}

void
imap_esearch_end(struct session *s, const struct imap_esearch *e,
    int modseq)
{
	unsigned	 ret = e->opts.ret;

	if (e->listed > 0 && e->run_hi > e->run_lo)
		session_printf(s, ":%u", e->run_hi);
	if ((ret & ESEARCH_PARTIAL) && e->listed == 0)
		session_printf(s, " PARTIAL (%u:%u NIL)", e->opts.lo,
		    e->opts.hi);
	else if (ret & ESEARCH_PARTIAL)
		session_printf(s, ")");
	if ((ret & ESEARCH_MIN) && e->count > 0)
		session_printf(s, " MIN %u", e->min);
	if ((ret & ESEARCH_MAX) && e->count > 0)
		session_printf(s, " MAX %u", e->max);
	if (ret & ESEARCH_COUNT)
		session_printf(s, " COUNT %u", e->count);
	if (modseq && e->count > 0)
		session_printf(s, " MODSEQ %llu",
		    (unsigned long long)result_modseq(e));
	session_printf(s, "\r\n");
}

void
imap_put_number_list(struct session *s, const uint32_t *nums, size_t n)
{
	size_t	 i, j;

	for (i = 0; i < n; i = j) {
		session_printf(s, "%s%u", i > 0 ? "," : "", nums[i]);
		for (j = i + 1; j < n && nums[j] == nums[j - 1] + 1; j++)
			;
		if (j > i + 1)
			session_printf(s, ":%u", nums[j - 1]);
	}
}

void
imap_esearch_sorted(struct session *s, const struct esearch_opts *o, int uid,
    const uint32_t *nums, size_t n)
{
	struct imap_esearch	 e;
	size_t			 lo, hi;

	imap_esearch_begin(s, &e, o, uid);
	if ((o->ret & ESEARCH_MIN) && n > 0)
		session_printf(s, " MIN %u", nums[0]);
	if ((o->ret & ESEARCH_MAX) && n > 0)
		session_printf(s, " MAX %u", nums[n - 1]);
	if ((o->ret & ESEARCH_ALL) && n > 0) {
		session_printf(s, " ALL ");
		imap_put_number_list(s, nums, n);
	}
	if (o->ret & ESEARCH_PARTIAL) {
		session_printf(s, " PARTIAL (%u:%u ", o->lo, o->hi);
		lo = o->lo - 1;
		hi = o->hi < n ? o->hi : n;
		if (lo < hi)
			imap_put_number_list(s, nums + lo, hi - lo);
		else
			session_printf(s, "NIL");
		session_printf(s, ")");
	}
	if (o->ret & ESEARCH_COUNT)
		session_printf(s, " COUNT %zu", n);
	session_printf(s, "\r\n");
}
