/*
 * guard.h — the mass-delete guard of a replica (ARCHITECTURE.md, "Mass-delete
 * guard"): deletes need evidence and a sane size.
 *
 * A replica counts, within --guard-window, the mailbox deletes and each
 * user's expunges its master asks for -- only those a client or an
 * operator made (record.h, rec_reason_deletes()): the expunges of a
 * MOVE, of a renumbering or relayed by a reconciliation from such a
 * tombstone keep every message somewhere and are never counted.  A
 * batch that would go past --guard-max-mailbox-deletes or
 * --guard-max-expunge-percent of a user's messages pauses the users it
 * concerns (those with mailbox deletes in it, or that user), recorded in
 * the store and logged.
 *
 * A paused user's records are held, not applied: kept in the store in
 * their order, with their bodies, in the same transaction as the rest of
 * the batch, which applies as usual, so the replica's position moves on
 * and it acknowledges the batch.  Why this is correct: everything the
 * replica acknowledges is durably on it (applied, or held), so
 * synchronous mode's promise holds for every user, paused or not, and
 * other users never wait.  Every later record of a paused user (a record
 * naming the user, of a mailbox the user owns, or of a mailbox with
 * held records) is held behind the first, so the user's records apply
 * in the master's order when `mailrepd replica resume` lets them: with
 * --allow-deletes all of them, without it after counting them again.
 * An append's UID is taken when it is held, so a promoted replica never
 * gives that UID to another message; a promoted node keeps what it holds
 * until an operator resumes it.
 */
#ifndef MAILREPD_GUARD_H
#define MAILREPD_GUARD_H

#include "store.h"

struct server;

/* A batch is about to be applied: count its records one by one... */
void	guard_batch_start(struct server *);
void	guard_batch_add(struct server *, const struct store_replog_rec *);
/*
 * ...then, inside the batch's transaction, pause the users it takes past
 * a limit (recorded, logged); the rest of its counts join the window.
 * Returns 0, or -1 when the store failed or a count was lost (then the
 * batch must not apply: it errs on not deleting).
 */
int	guard_batch_check(struct server *);
/*
 * Inside the batch: whether record r must be held (its user is paused);
 * when so, keeps it, with body (or NULL), and returns 1.  -1: the store
 * failed.
 */
int	guard_hold(struct server *, const struct store_replog_rec *r,
	    const struct store_blob_in *body);
/*
 * Once a tick: applies the held records of the users an operator
 * resumed, a bounded step at a time, in their order.
 */
void	guard_replay(struct server *);
/*
 * `mailrepd status`: "paused" (every paused user and why, or null) and
 * "paused_users" as JSON members followed by a comma, or one line per
 * paused user.  Returns 0, or -1 when the paused users cannot be read
 * (what was printed is then not the whole list).
 */
int	guard_status(struct store *, int json);

/* `mailrepd replica resume [--allow-deletes] [--user NAME] --data DIR`. */
int	guard_resume_main(int argc, char **argv);

#endif /* MAILREPD_GUARD_H */
