/*
 * imap_esearch.c — the ESEARCH result of SEARCH RETURN (...) (RFC 4731):
 * MIN, MAX, COUNT and ALL, with the MODSEQ of CONDSTORE (RFC 7162 3.1.5
 * as RFC 4731 3.2 narrows it); and of SORT RETURN (...) (ESORT, RFC 5267).
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
};

int
imap_esearch_parse(const struct imap_arg *list, unsigned *ret)
{
	size_t	 i, k;

	*ret = 0;
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
		*ret |= return_options[k].bit;
	}
	if (*ret == 0)
		*ret = ESEARCH_ALL;	/* "RETURN ()" (RFC 4731 3.1) */
	return 0;
}

void
imap_esearch_begin(struct session *s, struct imap_esearch *e, unsigned ret,
    int uid)
{
	memset(e, 0, sizeof(*e));
	e->ret = ret;
	session_printf(s, "* ESEARCH (TAG ");
	imap_put_string(s, imap_of(s)->tag, strlen(imap_of(s)->tag));
	session_printf(s, ")%s", uid ? " UID" : "");
}

void
imap_esearch_add(struct session *s, struct imap_esearch *e, uint32_t n,
    uint64_t modseq)
{
	if (e->count == 0) {
		e->min = n;
		e->modseq_min = modseq;
		if (e->ret & ESEARCH_ALL)
			session_printf(s, " ALL %u", n);
		e->run_lo = n;
	} else if (n != e->max + 1) {
		/* the run ended: close it and start the next */
		if ((e->ret & ESEARCH_ALL) && e->max > e->run_lo)
			session_printf(s, ":%u", e->max);
		if (e->ret & ESEARCH_ALL)
			session_printf(s, ",%u", n);
		e->run_lo = n;
	}
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
	unsigned	 ret = e->ret & (ESEARCH_MIN | ESEARCH_MAX |
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
	if ((e->ret & ESEARCH_ALL) && e->count > 0 && e->max > e->run_lo)
		session_printf(s, ":%u", e->max);
	if ((e->ret & ESEARCH_MIN) && e->count > 0)
		session_printf(s, " MIN %u", e->min);
	if ((e->ret & ESEARCH_MAX) && e->count > 0)
		session_printf(s, " MAX %u", e->max);
	if (e->ret & ESEARCH_COUNT)
		session_printf(s, " COUNT %u", e->count);
	if (modseq && e->count > 0)
		session_printf(s, " MODSEQ %llu",
		    (unsigned long long)result_modseq(e));
	session_printf(s, "\r\n");
}

/* Writes nums[0, n) in their order, runs of +1 or -1 as ranges. */
static void
put_sorted_set(struct session *s, const uint32_t *nums, size_t n)
{
	size_t	 i, j;
	int	 step;

	for (i = 0; i < n; i = j) {
		session_printf(s, "%s%u", i > 0 ? "," : "", nums[i]);
		j = i + 1;
		step = j < n && nums[j] == nums[i] + 1 ? 1 :
		    j < n && nums[j] + 1 == nums[i] ? -1 : 0;
		while (step != 0 && j < n &&
		    nums[j] == nums[j - 1] + (uint32_t)step)
			j++;
		if (j > i + 1)
			session_printf(s, ":%u", nums[j - 1]);
	}
}

void
imap_esearch_sorted(struct session *s, unsigned ret, int uid,
    const uint32_t *nums, size_t n)
{
	struct imap_esearch	 e;

	imap_esearch_begin(s, &e, ret, uid);
	if ((ret & ESEARCH_MIN) && n > 0)
		session_printf(s, " MIN %u", nums[0]);
	if ((ret & ESEARCH_MAX) && n > 0)
		session_printf(s, " MAX %u", nums[n - 1]);
	if ((ret & ESEARCH_ALL) && n > 0) {
		session_printf(s, " ALL ");
		put_sorted_set(s, nums, n);
	}
	if (ret & ESEARCH_COUNT)
		session_printf(s, " COUNT %zu", n);
	session_printf(s, "\r\n");
}
