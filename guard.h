/*
 * guard.h — the mass-delete guard of a replica (DESIGN.md, "Mass-delete
 * guard"): deletes need evidence and a sane size.  A replica counts the
 * mailbox deletes and each user's expunges its master asks for within
 * --guard-window; a batch that would go past --guard-max-mailbox-deletes
 * or --guard-max-expunge-percent of a user's messages is not applied: the
 * replica records why in the store, logs an alert, disconnects and waits
 * for `mailrepd replica resume --allow-deletes`.  Its data stays as it is.
 */
#ifndef MAILREPD_GUARD_H
#define MAILREPD_GUARD_H

#include "store.h"

struct server;

/* A batch is about to be applied: count its records one by one... */
void	guard_batch_start(void);
void	guard_batch_add(struct server *, const struct store_replog_rec *);
/*
 * ...then ask: 1 when it may be applied (its counts join the window), 0
 * when it must not (the replica is paused now: recorded, logged).
 */
int	guard_batch_allowed(struct server *);
/* Whether applying is paused (read from the store, so resume is seen). */
int	guard_paused(struct server *);

/* `mailrepd replica resume [--allow-deletes] --data DIR`. */
int	guard_resume_main(int argc, char **argv);

#endif /* MAILREPD_GUARD_H */
