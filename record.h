/*
 * record.h — the kinds of replication records in one table (enum
 * rec_type in store.h): each kind's name, as the log keeps it and the
 * channel ships it, the fields it needs, whether a body travels with
 * it, how the mass-delete guard counts it, and how a replica applies
 * it.  The store, the channel's codec, the replica's apply, the guard
 * and the reconciliation all look a kind up here; none tells kinds
 * apart by comparing names.  The reasons (enum rec_reason) have their
 * names here too.
 */
#ifndef MAILREPD_RECORD_H
#define MAILREPD_RECORD_H

#include <stdint.h>

#include "store.h"

/* The fields a kind needs (checked when a record arrives). */
#define REC_NEED_USER		0x01
#define REC_NEED_MAILBOX	0x02
#define REC_NEED_GUID		0x04
#define REC_NEED_UID		0x08
#define REC_NEED_NAME		0x10
#define REC_NEED_VALUE		0x20
#define REC_VALUE_FROM		0x40	/* its value, if any, is a UID: see
					   rec_from_value() */

/* What the mass-delete guard counts a record as. */
enum rec_guard {
	RG_NONE,		/* not a delete */
	RG_EXPUNGE,		/* one message of its mailbox's owner */
	RG_MAILBOX,		/* one mailbox */
	RG_USER,		/* every mailbox of the user */
};

/*
 * Applies one master record on a replica (store.h, store_apply_*),
 * body being the verified body of an append or NULL.  *what says what
 * happened; a conflict fills local_guid.
 */
typedef enum store_err (*rec_apply_fn)(struct store *,
    const struct store_replog_rec *, const struct store_blob_in *body,
    enum store_apply *what, uint8_t local_guid[GUID_LEN]);

struct rec_kind {
	const char	*name;
	unsigned	 needs;		/* REC_NEED_* */
	int		 body;		/* a body may travel with it */
	int		 conflicts;	/* another message at its UID is a
					   conflict to record */
	enum rec_guard	 guard;
	rec_apply_fn	 apply;
};

/* The kind of a record type (type < REC_NTYPES). */
const struct rec_kind	*rec_kind(enum rec_type);
/* The type named name: 0, or -1 when no kind has that name. */
int			 rec_type_by_name(const char *name, enum rec_type *);
/* A reason's name ("client", "move"...), and back: 0 or -1. */
const char		*rec_reason_name(enum rec_reason);
int			 rec_reason_by_name(const char *name,
			    enum rec_reason *);
/*
 * Whether the guard counts a delete made for this reason: a client's
 * or an operator's, never the expunges a MOVE, a renumbering or a
 * reconciliation makes (those keep every message somewhere).
 */
int			 rec_reason_deletes(enum rec_reason);

/*
 * A message's append record says in its value from which UID a
 * renumbering moved it (decimal; "" when none), so that every node
 * holding it knows, as the node that renumbered it does, that a copy
 * at that UID is this message and no other (store_renumbered_held()).
 * Renumbering moves up, so it is below the record's own UID.
 * rec_from_text() writes it; rec_from_value() reads it back: 0, or -1
 * when the value is not a UID.
 */
#define REC_FROM_TEXT_LEN	11
void			 rec_from_text(uint32_t from,
			    char out[REC_FROM_TEXT_LEN]);
int			 rec_from_value(const char *value, uint32_t *from);

/*
 * Applies r (of a kind that is valid) with the store's reason set to
 * r's own, so that this node's record of it says why as the master's
 * did.  Returns the store's verdict (STORE_NOTFOUND: nothing to change
 * here, not an error); when r met another message at its UID and its
 * kind records conflicts, returns 1 in *conflict and fills k.
 */
enum store_err		 rec_apply(struct store *,
			    const struct store_replog_rec *r,
			    const struct store_blob_in *body, int *conflict,
			    struct store_conflict *k);

#endif /* MAILREPD_RECORD_H */
