/*
 * imap_search_index.h — SEARCH's full-text index: the server keeps it
 * behind delivery (search_index_step()), `mailrepd index` rebuilds and
 * shows it, and a SEARCH asks it which messages may match a string
 * before reading them (struct search_fts).
 */
#ifndef MAILREPD_IMAP_SEARCH_INDEX_H
#define MAILREPD_IMAP_SEARCH_INDEX_H

#include <stdint.h>

#include "imap_search_prog.h"
#include "store.h"

/*
 * Indexes the blobs delivered or applied since the last step, in a
 * transaction of its own (the loop commits it): a batch of FTS_STEP_BLOBS at most
 * FTS_STEP_USEC long, once that many wait or the first waited
 * FTS_DELAY_MS (one FTS5 segment per blob would cost four times as
 * much).  Returns when it wants to run again (ms, the clock of now_ms),
 * or 0 when nothing waits.
 */
int64_t	search_index_step(struct store *, int64_t now_ms);

/* `mailrepd index rebuild|status`. */
int	search_index_main(int argc, char **argv);

/*
 * A SEARCH's use of the index: each BODY, TEXT or header key whose
 * string the index can look for gets a prefilter, the blobs that may
 * hold it.  NULL when no key can, or the index is off or being rebuilt:
 * then every message is read, as it is when anything here fails.
 * mailbox_id is the mailbox searched, `messages` how many it holds;
 * mailbox_id 0 searches messages of any mailbox whose blobs the caller
 * gives search_fts_excludes(), one by one, and never walks candidates.
 * An OR whose keys all look for one string has one prefilter, the
 * union of what they read.
 */
struct search_fts;
struct search_fts	*search_fts_new(struct store *, struct search_prog *,
			    int64_t mailbox_id, uint32_t messages);
void			 search_fts_free(struct search_fts *);

/*
 * Reads the prefilters' blobs from the index, a bounded batch a call,
 * until the step's time is up; then, when every match must have a blob
 * they name (the program's shape says so: an AND with such a key, an
 * OR of such keys, no NOT above them), the mailbox's messages of those
 * blobs and of the blobs the index cannot tell of (never indexed, or
 * since the search began), unless they are too many.  Returns 1 when
 * it is all done.
 */
int	search_fts_gather(struct search_fts *, const struct imap_step_budget *);

/*
 * Whether the messages that may match are known (search_fts_gather()
 * done): then only they need be tried, up to max of their UIDs above
 * `after` a call, ascending (*n of them).
 */
int	search_fts_walks(const struct search_fts *);
void	search_fts_candidates(const struct search_fts *, uint32_t after,
	    uint32_t *uids, size_t max, size_t *n);

/*
 * Whether the index shows that message uid of the mailbox (blob `blob`,
 * or 0 when the caller does not know it) cannot match node n (n->fts
 * set): its blob was indexed and is not among the prefilter's.  0 when
 * it may, or the index cannot tell.
 */
int	search_fts_excludes(struct search_fts *, const struct node *n,
	    uint32_t uid, int64_t blob);

#endif /* MAILREPD_IMAP_SEARCH_INDEX_H */
