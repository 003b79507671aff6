/*
 * imap_esearch.h — the ESEARCH response (RFC 4731) of a search whose
 * matches come in ascending order (imap_esearch.c).  For imap*.c only.
 */
#ifndef MAILREPD_IMAP_ESEARCH_H
#define MAILREPD_IMAP_ESEARCH_H

#include <stdint.h>

#include "imap_session.h"

/* RETURN options */
#define ESEARCH_MIN	0x01
#define ESEARCH_MAX	0x02
#define ESEARCH_COUNT	0x04
#define ESEARCH_ALL	0x08
#define ESEARCH_SAVE	0x10	/* SEARCHRES (RFC 5182): keep it as "$" */

/* A result being written: what ALL has written so far, and the rest. */
struct imap_esearch {
	unsigned	 ret;		/* ESEARCH_* asked for */
	uint32_t	 count;
	uint32_t	 min, max;	/* max: the last match so far */
	uint32_t	 run_lo;	/* start of the range ALL has open */
	uint64_t	 modseq_min, modseq_max, modseq_all;
};

/*
 * Parses the list of "RETURN (MIN MAX ...)" into ESEARCH_* bits; an
 * empty list means ALL.  Returns 0, or -1 for an option not known.
 */
int	imap_esearch_parse(const struct imap_arg *list, unsigned *ret);

/* Starts "* ESEARCH (TAG "t") [UID]" for the running command. */
void	imap_esearch_begin(struct session *, struct imap_esearch *,
	    unsigned ret, int uid);

/*
 * One match: n is a sequence number or UID, above every earlier one;
 * modseq its MODSEQ (0 when the search does not need it).
 */
void	imap_esearch_add(struct session *, struct imap_esearch *, uint32_t n,
	    uint64_t modseq);

/* Ends the response line: MIN, MAX, COUNT, and MODSEQ when modseq. */
void	imap_esearch_end(struct session *, const struct imap_esearch *,
	    int modseq);

/*
 * The whole ESEARCH line of SORT RETURN (...) (ESORT, RFC 5267 3): nums
 * in the order sorted; MIN and MAX are the first and the last of them,
 * ALL lists them in that order, a run of consecutive numbers, up or
 * down, written as one range.
 */
void	imap_esearch_sorted(struct session *, unsigned ret, int uid,
	    const uint32_t *nums, size_t n);

#endif /* MAILREPD_IMAP_ESEARCH_H */
