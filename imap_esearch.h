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
/* CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 4) */
#define ESEARCH_PARTIAL	0x20	/* only the matches at positions lo:hi */
#define ESEARCH_UPDATE	0x40	/* ADDTO and REMOVEFROM as the result changes */
#define ESEARCH_CONTEXT	0x80	/* a hint that is taken and ignored */
#define ESEARCH_NOUPDATE 0x100	/* UPDATE was refused ("* NO [NOUPDATE]") */

/* What "RETURN (...)" asks for. */
struct esearch_opts {
	unsigned	 ret;		/* ESEARCH_* */
	uint32_t	 lo, hi;	/* PARTIAL's positions, lo <= hi */
};

/* The options that ask for an ESEARCH response line. */
#define ESEARCH_OUTPUT	(ESEARCH_MIN | ESEARCH_MAX | ESEARCH_COUNT | \
			 ESEARCH_ALL | ESEARCH_PARTIAL | ESEARCH_UPDATE | \
			 ESEARCH_NOUPDATE)

/* A result being written: the set ALL or PARTIAL lists so far, the rest. */
struct imap_esearch {
	struct esearch_opts opts;
	uint32_t	 count;
	uint32_t	 min, max;	/* max: the last match so far */
	uint32_t	 listed;	/* numbers in the set written */
	uint32_t	 run_lo, run_hi; /* the range the set has open */
	uint64_t	 modseq_min, modseq_max, modseq_all;
};

/*
 * Parses the list of "RETURN (MIN MAX ...)"; an empty list means ALL.
 * Returns 0, or -1 with *why saying what is wrong (an option not known,
 * PARTIAL without a range lo:hi of non-zero numbers, or beside ALL).
 */
int	imap_esearch_parse(const struct imap_arg *list, struct esearch_opts *,
	    const char **why);

/* Starts "* ESEARCH (TAG "t") [UID]" for the running command. */
void	imap_esearch_begin(struct session *, struct imap_esearch *,
	    const struct esearch_opts *, int uid);

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
 * ALL lists them in that order (PARTIAL those at its positions), a run
 * of ascending consecutive numbers written as one range (never 12:10:
 * RFC 5267 3.2).
 */
void	imap_esearch_sorted(struct session *, const struct esearch_opts *,
	    int uid, const uint32_t *nums, size_t n);

/* Writes nums[0, n) in their order, runs of +1 as ranges ("3:5,2,1"). */
void	imap_put_number_list(struct session *, const uint32_t *nums,
	    size_t n);

#endif /* MAILREPD_IMAP_ESEARCH_H */
