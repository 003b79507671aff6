/*
 * imap_search.h — a SEARCH whose matches are kept instead of written,
 * for the commands that order them (SORT, THREAD), and a search of
 * messages named by their rows, for the web API.
 */
#ifndef MAILREPD_IMAP_SEARCH_H
#define MAILREPD_IMAP_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"
#include "mime.h"
#include "proto.h"
#include "store.h"

struct search;

/*
 * Compiles search keys (an optional CHARSET first) against the selected
 * mailbox.  Returns the search, or NULL with the tagged reply made.
 */
struct search	*imap_search_matches_new(struct session *,
		    const struct imap_arg *args, size_t nargs);

/*
 * One step of the search.  Returns 0 when it must go on in a later step,
 * 1 when done (*hits: the matches' view indexes in ascending order, *n
 * of them, owned by the search), -1 with the tagged reply made.
 */
int		 imap_search_matches(struct session *, struct search *,
		    const uint32_t **hits, size_t *n);

void		 imap_search_matches_free(struct search *);

/*
 * Tests message uid of the view against a search kept by an updating
 * search (imap_context.c), within budget b's time: 1 when it matches,
 * 0 when not, 2 when the time ran out in the middle of it (call again
 * with the same uid to go on), -1 when it could not be read (not in
 * the view, expunged, a store error).
 */
struct imap_step_budget;
int		 imap_search_try(struct session *, struct search *,
		    const struct imap_step_budget *b, uint32_t uid);

/*
 * Readies a search that has run for an updating search: its sequence
 * sets keep the meaning they have now for good (RFC 5267 4.3: no notice
 * when those messages change), as sets of the UIDs they name; the
 * matches it kept (imap_search_matches()) are let go.  Returns 0, or -1
 * without memory.
 */
struct imap_view;
int		 imap_search_pin_sets(struct search *, const struct imap_view *);

/*
 * Parses "RETURN (options)" (ESEARCH, RFC 4731; CONTEXT, RFC 5267) when
 * the arguments begin with it, into *o (zeroed when they do not), and
 * moves *args and *nargs past it.  An UPDATE over the session's limit
 * is refused with "* NO [NOUPDATE]" and becomes ESEARCH_NOUPDATE.
 * Returns 0, or -1 with the BAD reply made.
 */
struct esearch_opts;
int		 imap_search_return(struct session *,
		    const struct imap_arg **args, size_t *nargs,
		    struct esearch_opts *o);

/*
 * NULL when a charset argument names one SEARCH, SORT and THREAD search
 * in; else the reply that refuses it, "NO [BADCHARSET (...)] ...".
 */
const char	*imap_search_charset_refusal(const struct imap_arg *);

/*
 * Finds the next field called `name` in a header block of len bytes,
 * from *pos on.  Sets *val and *vlen to its value (leading blanks
 * skipped, continuation lines kept, the last line end left out) and
 * moves *pos past it.  Returns 0 when there is no further such field.
 */
int		 imap_header_next(const char *h, size_t len, size_t *pos,
		    const char *name, const char **val, size_t *vlen);

/*
 * Reads the Content-Transfer-Encoding of part p from its MIME header in
 * blob (the first `size` bytes of it, read into buf, which it changes).
 * Returns 0, or -1 when the blob could not be read.
 */
int		 imap_part_cte(struct store_blob_reader *,
		    const struct mime_part *p, char *buf, size_t size,
		    enum mime_cte *);

/*
 * A search of messages of any mailbox, which the caller names one by
 * one by their rows (the web API's, web_api.c), in the order it likes:
 * the same keys, matching and full-text index as SEARCH, but for those
 * that need a mailbox (sequence sets, "$", \Recent, keywords, MODSEQ,
 * save dates).  search_rows_new() compiles the keys (no CHARSET needed:
 * strings are UTF-8); NULL with the reason in err.
 *
 * Each step of the caller's begins with search_rows_step() and goes on
 * while search_rows_time_left(): first search_rows_ready() until it
 * says 1 (the index is read), then search_rows_try() on each message of
 * mailbox_id, `row` (uid, guid, flags, internaldate, size) and blob
 * blob_id: 1 when it matches, 0 when not (or it is gone), 2 when the
 * step's time ran out in the middle of it (try the same one again next
 * step), -1 on a store error.
 */
struct search	*search_rows_new(struct store *, const struct imap_arg *args,
		    size_t nargs, char *err, size_t errlen);
void		 search_rows_step(struct search *);
int		 search_rows_time_left(const struct search *);
int		 search_rows_ready(struct search *);
int		 search_rows_try(struct search *, int64_t mailbox_id,
		    const struct store_message *row, int64_t blob_id);
void		 search_rows_free(struct search *);

#endif /* MAILREPD_IMAP_SEARCH_H */
