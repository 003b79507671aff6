/*
 * imap_context.h — updating searches (RFC 5267 4.3, CONTEXT=SEARCH and
 * CONTEXT=SORT): a SEARCH or SORT with RETURN (UPDATE) keeps its search
 * and its result with the selected mailbox's view, and tells the client
 * with ESEARCH ADDTO and REMOVEFROM how the result changes as messages
 * arrive, change flags or are expunged.  For imap*.c only.
 */
#ifndef MAILREPD_IMAP_CONTEXT_H
#define MAILREPD_IMAP_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "imap_search.h"
#include "imap_session.h"
#include "imap_sort.h"

struct imap_context;

/*
 * Whether a new updating search with this tag may be made: 1 yes; 0
 * when the tag names one already (the command is BAD, RFC 5267 4.3);
 * -1 when the view holds IMAP_MAX_UPDATES (the command goes on without
 * updates, after "* NO [NOUPDATE tag]", RFC 5267 4.3.1).
 */
int	imap_context_check(const struct imap_view *, const char *tag);

/*
 * "* NO [NOUPDATE "tag"] why" for the running command: it goes on, but
 * its result will not be updated (RFC 5267 4.3.1).
 */
void	imap_say_noupdate(struct session *, const char *why);

/*
 * Keeps an updating search: se, and the UIDs it matched (result: the
 * set's ranges move into the context).  For a SORT also its criteria
 * and those UIDs in the order sorted (order, n of them); a SEARCH has
 * NULL, NULL, 0.  Returns 0 (se and order taken over), or -1 without
 * memory (nothing taken over).
 */
int	imap_context_add(struct imap_view *, const char *tag, int uid,
	    struct search *se, struct imap_uidset *result,
	    const struct sort_criteria *, uint32_t *order, size_t n);

/* Message uid of the view is new or changed: it is tested again. */
void	imap_context_changed(struct imap_view *, uint32_t uid);

/*
 * The view's gone messages are about to leave it: REMOVEFROM for those
 * in a result, numbered as the client still knows them (RFC 5267 4.3.4:
 * before the EXPUNGE), unless silent.
 */
void	imap_context_gone(struct session *, struct imap_view *, int silent);

/*
 * Tests changed messages within one step's budget and writes ADDTO and
 * REMOVEFROM.  Returns 1 when none is left to test, 0 when more is
 * (the caller runs it again at a later step).
 */
int	imap_context_run(struct session *);

void	imap_context_free_all(struct imap_view *);

/* CANCELUPDATE "tag" ... (RFC 5267 4.3.5). */
imap_cmd_fn	imap_cmd_cancelupdate;

#endif /* MAILREPD_IMAP_CONTEXT_H */
