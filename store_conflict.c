/*
 * store_conflict.c — conflicts (a UID that names other bytes on each
 * side) and what settles them: renumbering a replica's copy on the
 * master, relocating the master's own message, and the record of what
 * was renumbered where.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "config.h"
#include "record.h"
#include "store.h"
#include "store_internal.h"

/* Binds a message's (mailbox uniqueid, uid, guid) to ?1, ?2, ?3. */
void
bind_copy(sqlite3_stmt *s, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid)
{
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uid);
	sqlite3_bind_blob(s, 3, guid, GUID_LEN, SQLITE_STATIC);
}

/*
 * Records that (mailbox, uid, guid) now lives at new_uid (0: nowhere);
 * known already is no error (a replica hears of it again).
 */
enum store_err
renumbered_add(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, uint32_t new_uid)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_RENUMBERED_ADD)) == NULL)
		return STORE_IO;
	bind_copy(s, uniqueid, uid, guid);
	sqlite3_bind_int64(s, 4, new_uid);
	sqlite3_bind_int64(s, 5, time(NULL));
	return step_done(st, s, "renumbered add");
}

/*
 * A conflict at (mailbox, uid) is over: S_CONFLICT_RESOLVED when the
 * replica's copy (guid) left this store, S_CONFLICT_REUSED_DONE when the
 * master's message (guid) left a uid it could not take here.
 */
enum store_err
conflict_done(struct store *st, enum stmt_id id, const uint8_t *uniqueid,
    uint32_t uid, const uint8_t *guid)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, id)) == NULL)
		return STORE_IO;
	bind_copy(s, uniqueid, uid, guid);
	return step_done(st, s, "conflict resolved");
}

enum store_err
store_conflict_add(struct store *st, struct store_conflict *c)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_CONFLICT_ADD)) == NULL)
		return op_end(st, STORE_IO);
	c->time = time(NULL);
	sqlite3_bind_int64(s, 1, c->time);
	sqlite3_bind_text(s, 2, c->user, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, c->mailbox, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, c->mailbox_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, c->uid);
	sqlite3_bind_blob(s, 6, c->local_guid, GUID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 7, c->master_guid, GUID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, c->op, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 9, c->master_seq);
	if ((err = step_done(st, s, "conflict add")) == STORE_OK &&
	    sqlite3_changes(st->db) == 0)
		err = STORE_EXISTS;
	else if (err == STORE_OK)
		c->id = sqlite3_last_insert_rowid(st->db);
	return op_end(st, err);
}

int64_t
store_conflict_count(struct store *st, const uint8_t *uniqueid)
{
	sqlite3_stmt	*s;
	int64_t		 n = -1;

	if ((s = stmt(st, S_CONFLICT_COUNT)) == NULL)
		return -1;
	if (uniqueid != NULL)
		sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return n;
}

/* Fills *c from a row of S_CONFLICT_LIST or S_CONFLICT_NEXT. */
static void
conflict_from_row(sqlite3_stmt *s, struct store_conflict *c)
{
	memset(c, 0, sizeof(*c));
	c->id = sqlite3_column_int64(s, 0);
	c->time = sqlite3_column_int64(s, 1);
	column_text(s, 2, c->user, sizeof(c->user));
	column_id(s, 3, c->mailbox, MAILBOX_ID_LEN);
	column_text(s, 4, c->mailbox_name, sizeof(c->mailbox_name));
	c->uid = (uint32_t)sqlite3_column_int64(s, 5);
	column_id(s, 6, c->local_guid, GUID_LEN);
	column_id(s, 7, c->master_guid, GUID_LEN);
	column_text(s, 8, c->op, sizeof(c->op));
	c->master_seq = sqlite3_column_int64(s, 9);
	c->state = sqlite3_column_int(s, 10);
}

enum store_err
store_conflict_foreach(struct store *st,
    int (*cb)(void *, const struct store_conflict *), void *arg)
{
	struct store_conflict	 c;
	sqlite3_stmt		*s;
	int			 rc;

	if ((s = stmt(st, S_CONFLICT_LIST)) == NULL)
		return STORE_IO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		conflict_from_row(s, &c);
		if (cb(arg, &c) != 0)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "conflict list");
}

enum store_err
store_conflict_next(struct store *st, int64_t after, int open_too,
    struct store_conflict *c)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_CONFLICT_NEXT)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, after);
	sqlite3_bind_int(s, 2, open_too != 0);
	if ((err = step_row(st, s, "conflict next")) != STORE_OK)
		return err;
	conflict_from_row(s, c);
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_conflict_set_state(struct store *st, int64_t id, int state)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_CONFLICT_SET)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, state);
	if ((err = step_done(st, s, "conflict state")) == STORE_OK &&
	    sqlite3_changes(st->db) == 0)
		err = STORE_NOTFOUND;
	return op_end(st, err);
}

enum store_err
store_conflict_never_held(struct store *st, const uint8_t *uniqueid,
    uint32_t uid, const uint8_t *guid)
{
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = conflict_done(st, S_CONFLICT_REUSED_DONE, uniqueid, uid,
	    guid)) == STORE_OK && sqlite3_changes(st->db) == 0)
		err = STORE_NOTFOUND;
	return op_end(st, err);
}

enum store_err
store_was_renumbered(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_RENUMBERED_GET)) == NULL)
		return STORE_IO;
	bind_copy(s, uniqueid, uid, guid);
	err = step_exists(st, s, "renumbered", yes);
	sqlite3_reset(s);
	return err;
}

enum store_err
store_renumbered_held(struct store *st, const uint8_t *uniqueid,
    const uint8_t *guid, int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_RENUMBERED_HELD)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, guid, GUID_LEN, SQLITE_STATIC);
	err = step_exists(st, s, "renumbered held", yes);
	sqlite3_reset(s);
	return err;
}

enum store_err
store_renumbered_from(struct store *st, const uint8_t *uniqueid,
    uint32_t uid, const uint8_t *guid, uint32_t *from)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_RENUMBERED_FROM)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, guid, GUID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, uid);
	if ((err = step_row(st, s, "renumbered from")) == STORE_NOTFOUND) {
		*from = 0;
		return STORE_OK;
	}
	if (err == STORE_OK)
		*from = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return err;
}

/*
 * Whether the copy (uid, guid) of mailbox uniqueid was renumbered, or
 * the mailbox holds guid at a UID a renumbering gave it: *yes.
 */
static enum store_err
renumbered_before(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, int *yes)
{
	enum store_err	 err;

	if ((err = store_was_renumbered(st, uniqueid, uid, guid, yes)) !=
	    STORE_OK || *yes)
		return err;
	return store_renumbered_held(st, uniqueid, guid, yes);
}

/*
 * The log record that removes (uid, guid) from every replica holding it
 * there: a copy renumbered here, or a message of this master's that a
 * replica could not take at uid.  Nothing here changes.
 */
static enum store_err
copy_leaves(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid)
{
	struct replog_rec	 r = { .type = REC_MESSAGE_EXPUNGE };
	enum rec_reason		 was;
	enum store_err		 err;

	r.mailbox = uniqueid;
	r.uid = uid;
	r.guid = guid;
	/* Renumbering's own expunge: no delete for the guard to count. */
	was = store_set_reason(st, REASON_RENUMBER);
	err = replog_append(st, &r);
	(void)store_set_reason(st, was);
	return err;
}

/*
 * This master's message m at uid, logged again as it stands (a flags
 * record; nothing here changes): a replica that keeps the very message
 * there out of a conflict (its master before lacked it) learns that its
 * master holds it, which settles that conflict (store_apply_flags()).
 */
static enum store_err
held_relog(struct store *st, const uint8_t *uniqueid,
    const struct store_message *m)
{
	struct replog_rec	 r = { .type = REC_MESSAGE_FLAGS };

	r.mailbox = uniqueid;
	r.uid = m->uid;
	r.guid = m->guid;
	r.modseq = m->modseq;
	r.flags = m->flags;
	r.keywords = m->keywords;
	return replog_append(st, &r);
}

/*
 * The body of store_renumber() once the mailbox and blob are known: the
 * master's own message at uid (when another) leaves uid, both are
 * appended in GUID order, and the replica's copy at uid is expunged by a
 * record of its own.
 */
static enum store_err
renumber_pair(struct store *st, int64_t mbox, const uint8_t *uniqueid,
    uint32_t uid, const uint8_t *guid, const struct msg_attrs *theirs,
    int64_t blob_id, uint32_t *new_uid)
{
	struct store_message	 m;
	struct msg_attrs	 ours;
	char			 kw[STORE_MAX_KEYWORDS];
	uint8_t			 gone[GUID_LEN], mguid[GUID_LEN];
	int64_t			 mblob = 0;
	uint32_t		 u = 0;
	enum store_err		 err;

	*new_uid = 0;
	err = message_row(st, mbox, uid, &m, &mblob);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	if (err == STORE_OK && memcmp(m.guid, guid, GUID_LEN) == 0) {
		/* The same message: the replica's conflict on it is over. */
		err = held_relog(st, uniqueid, &m);
		return err == STORE_OK ? STORE_EXISTS : err;
	}
	if (err == STORE_OK) {
		snprintf(kw, sizeof(kw), "%s", m.keywords ? m.keywords : "");
		ours = (struct msg_attrs){ m.flags, kw, m.internaldate, uid };
		memcpy(mguid, m.guid, GUID_LEN);
		if ((err = message_expunge(st, mbox, uid, NULL)) != STORE_OK)
			return err;
		/* Lower GUID first: every node computes the same UIDs. */
		if (memcmp(mguid, guid, GUID_LEN) < 0 &&
		    (err = message_insert(st, mbox, mblob, mguid, &ours,
		    &u)) != STORE_OK)
			return err;
		if ((err = message_insert(st, mbox, blob_id, guid, theirs,
		    new_uid)) != STORE_OK)
			return err;
		if (memcmp(mguid, guid, GUID_LEN) > 0 &&
		    (err = message_insert(st, mbox, mblob, mguid, &ours,
		    &u)) != STORE_OK)
			return err;
		/* Ours was renumbered too: at uid, it is the one at u. */
		if ((err = renumbered_add(st, uniqueid, uid, mguid, u)) !=
		    STORE_OK)
			return err;
	} else if (store_tombstone_guid(st, uniqueid, uid, gone) !=
	    STORE_OK || memcmp(gone, guid, GUID_LEN) != 0) {
		/* Never here: it joins at uidnext. */
		if ((err = message_insert(st, mbox, blob_id, guid, theirs,
		    new_uid)) != STORE_OK)
			return err;
	}
	/* Expunged here meanwhile: the copy goes too, nothing joins. */
	return copy_leaves(st, uniqueid, uid, guid);
}

/*
 * A copy renumbered before arrives again (from another replica, or one
 * that missed the record): it only has to leave its old uid there, so
 * that record is logged again.  Ends the operation; STORE_EXISTS.
 */
static enum store_err
renumbered_again(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid)
{
	enum store_err	 err;

	err = op_end(st, copy_leaves(st, uniqueid, uid, guid));
	return err == STORE_OK ? STORE_EXISTS : err;
}

enum store_err
store_renumber(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, uint32_t flags, const char *keywords,
    int64_t internaldate, const struct store_blob_in *b, uint32_t above,
    uint32_t *new_uid)
{
	struct msg_attrs	 theirs = { flags, keywords, internaldate, uid };
	enum store_err		 err;
	enum rec_reason		 was;
	int64_t			 mbox, blob_id;
	int			 again;

	*new_uid = 0;
	if (uid == 0 || uid == UINT32_MAX || (keywords != NULL &&
	    strlen(keywords) >= STORE_MAX_KEYWORDS))
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = mailbox_local_id(st, uniqueid, &mbox)) != STORE_OK)
		return op_end(st, err);
	/*
	 * A copy of a message held here at the UID a renumbering gave it
	 * is that message (as in a reconciliation, sync_reconcile.c), even
	 * when this master forgot renumbering it from this very uid (it
	 * came back from an older copy): it leaves uid, nothing joins.
	 */
	if ((err = renumbered_before(st, uniqueid, uid, guid, &again)) !=
	    STORE_OK)
		return op_end(st, err);
	if (again)
		return renumbered_again(st, uniqueid, uid, guid);
	/* New UIDs above every UID the replica has given out. */
	if (above > 1 && (err = uidnext_past(st, mbox, above - 1)) !=
	    STORE_OK)
		return op_end(st, err);
	err = b != NULL ? blob_put(st, b, &blob_id) :
	    blob_find(st, guid, &blob_id);
	if (err == STORE_OK) {
		/* Its records say why: no delete for the guard to count. */
		was = store_set_reason(st, REASON_RENUMBER);
		err = renumber_pair(st, mbox, uniqueid, uid, guid, &theirs,
		    blob_id, new_uid);
		(void)store_set_reason(st, was);
	}
	if (err == STORE_EXISTS) {
		/* The same message at uid: only its record, kept. */
		err = op_end(st, STORE_OK);
		return err == STORE_OK ? STORE_EXISTS : err;
	}
	if (err == STORE_OK && *new_uid == 0)
		err = blob_drop_unused(st, blob_id);
	if (err == STORE_OK)
		err = renumbered_add(st, uniqueid, uid, guid, *new_uid);
	return op_end(st, err);
}

/*
 * Whether (uid, guid), not in mailbox mb, can have been there: uid
 * named a message here once, and its tombstone (when still kept) names
 * guid.  Below UIDNEXT is not enough: a reconciliation raises UIDNEXT
 * past UIDs a replica gave out, which no message here ever had, so a
 * uid with no tombstone was held only if its tombstone was purged
 * (uid_purged()).  STORE_OK, or STORE_INVALID when never.
 */
static enum store_err
held_once(struct store *st, const struct store_mailbox *mb, uint32_t uid,
    const uint8_t *guid)
{
	uint8_t		 gone[GUID_LEN];
	enum store_err	 err;
	int		 purged;

	if (uid >= mb->uidnext)
		return STORE_INVALID;
	err = store_tombstone_guid(st, mb->uniqueid, uid, gone);
	if (err == STORE_OK && memcmp(gone, guid, GUID_LEN) != 0)
		return STORE_INVALID;
	if (err != STORE_NOTFOUND)
		return err;
	if ((err = uid_purged(st, mb->uniqueid, uid, &purged)) != STORE_OK)
		return err;
	return purged ? STORE_OK : STORE_INVALID;
}

/* store_relocate() with the reason of its records set. */
static enum store_err
relocate(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, uint32_t above, uint32_t *new_uid)
{
	struct store_mailbox	 mb;
	struct store_message	 m;
	struct msg_attrs	 a;
	char			 kw[STORE_MAX_KEYWORDS];
	enum store_err		 err;
	int64_t			 blob_id = 0;
	int			 again;

	*new_uid = 0;
	if (uid == 0 || uid == UINT32_MAX || above == UINT32_MAX)
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = store_was_renumbered(st, uniqueid, uid, guid, &again)) !=
	    STORE_OK)
		return op_end(st, err);
	if (again)
		return renumbered_again(st, uniqueid, uid, guid);
	/* A mailbox not here holds no message of this node's. */
	if ((err = store_mailbox_by_uniqueid(st, uniqueid, &mb, NULL)) ==
	    STORE_NOTFOUND)
		err = STORE_INVALID;
	else if (err == STORE_OK && (err = message_row(st, mb.id, uid, &m,
	    &blob_id)) == STORE_NOTFOUND && (err = held_once(st, &mb, uid,
	    guid)) == STORE_OK)
		err = STORE_NOTFOUND;
	/* Another message at uid, or one never here: nothing to move. */
	if (err == STORE_INVALID || (err == STORE_OK &&
	    memcmp(m.guid, guid, GUID_LEN) != 0))
		return op_end(st, STORE_INVALID);
	if (err == STORE_NOTFOUND) {
		/* Not here at uid (expunged since): the replica's is over. */
		err = op_end(st, copy_leaves(st, uniqueid, uid, guid));
		return err == STORE_OK ? STORE_NOTFOUND : err;
	}
	if (err != STORE_OK)
		return op_end(st, err);
	snprintf(kw, sizeof(kw), "%s", m.keywords ? m.keywords : "");
	a = (struct msg_attrs){ m.flags, kw, m.internaldate, uid };
	/* Leaves uid, and comes back above every UID the replica used. */
	if (above > 1)
		err = uidnext_past(st, mb.id, above - 1);
	if (err == STORE_OK)
		err = message_expunge(st, mb.id, uid, NULL);
	if (err == STORE_OK)
		err = message_insert(st, mb.id, blob_id, guid, &a, new_uid);
	if (err == STORE_OK)
		err = renumbered_add(st, uniqueid, uid, guid, *new_uid);
	/*
	 * A conflict this node opened on that copy while it was a replica
	 * (its master lacked it; then it was promoted before the answer
	 * came) is over too: the copy left uid here.
	 */
	if (err == STORE_OK)
		err = conflict_done(st, S_CONFLICT_RESOLVED, uniqueid, uid,
		    guid);
	return op_end(st, err);
}

enum store_err
store_drop_copy(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, enum rec_reason why)
{
	struct store_message	 m;
	enum rec_reason		 was;
	enum store_err		 err;
	int64_t			 mbox = 0, blob_id = 0;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = mailbox_local_id(st, uniqueid, &mbox)) == STORE_OK)
		err = message_row(st, mbox, uid, &m, NULL);
	if (err == STORE_OK && memcmp(m.guid, guid, GUID_LEN) != 0)
		err = STORE_NOTFOUND;
	if (err != STORE_OK)
		return op_end(st, err);
	was = store_set_reason(st, why);
	err = message_expunge(st, mbox, uid, &blob_id);
	(void)store_set_reason(st, was);
	if (err == STORE_OK)
		err = blob_drop_unused(st, blob_id);
	/*
	 * A conflict this node opened on that copy while it was a replica
	 * (then it was promoted before its master answered) is over: the
	 * copy left uid here, as in relocate().
	 */
	if (err == STORE_OK)
		err = conflict_done(st, S_CONFLICT_RESOLVED, uniqueid, uid,
		    guid);
	return op_end(st, err);
}

enum store_err
store_relocate(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, uint32_t above, uint32_t *new_uid)
{
	enum rec_reason	 was;
	enum store_err	 err;

	/* Its expunge and append say why: no delete for the guard. */
	was = store_set_reason(st, REASON_RENUMBER);
	err = relocate(st, uniqueid, uid, guid, above, new_uid);
	(void)store_set_reason(st, was);
	return err;
}
