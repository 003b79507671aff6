/*
 * store_apply.c — the replica's GUID-checked apply of the master's
 * records: users, mailboxes, subscriptions, appends, flags, expunges.
 * A message is never overwritten or destroyed for one the master holds
 * under the same UID with other bytes: that is a conflict
 * (store_conflict.c).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "record.h"
#include "store.h"
#include "store_internal.h"

enum store_err
store_apply_user_add(struct store *st, const char *name, const char *pwhash,
    enum store_apply *what)
{
	enum store_err	 err;
	int64_t		 id;

	if (!store_user_name_valid(name))
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = user_lookup(st, name, &id, NULL)) == STORE_OK) {
		/* Already here: the master's password wins. */
		*what = APPLY_SAME;
		return op_end(st, store_user_set_password(st, name, pwhash));
	}
	if (err != STORE_NOTFOUND)
		return op_end(st, err);
	*what = APPLY_DONE;
	return op_end(st, user_insert(st, name, pwhash, &id));
}

/*
 * Keeps what a replica is told to delete: mailbox mbox's message uid, or
 * all of its messages (uid 0), with their blobs, for --quarantine-days.
 */
static enum store_err
quarantine(struct store *st, int64_t mbox, uint32_t uid)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_QUAR_MAILBOX)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mbox);
	if (uid != 0)
		sqlite3_bind_int64(s, 2, uid);
	else
		sqlite3_bind_null(s, 2);
	sqlite3_bind_int64(s, 3, time(NULL));
	return step_done(st, s, "quarantine");
}

static int
quarantine_mailbox(void *arg, const struct store_mailbox *m)
{
	struct store	*st = arg;

	return quarantine(st, m->id, 0) != STORE_OK;
}

enum store_err
store_apply_user_del(struct store *st, const char *name,
    enum store_apply *what)
{
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	*what = APPLY_DONE;
	if ((err = store_mailbox_foreach(st, name, quarantine_mailbox, st)) ==
	    STORE_OK)
		err = store_user_del(st, name);
	if (err == STORE_NOTFOUND) {
		*what = APPLY_ABSENT;
		err = STORE_OK;
	}
	return op_end(st, err);
}

/*
 * The master's word on a mailbox name wins: a mailbox of ours holding
 * that name under another identity (both sides created it while split)
 * steps aside to "NAME-<its id>", logged, until its own record or a
 * reconciliation names it.
 */
static enum store_err
mailbox_step_aside(struct store *st, const char *user, const char *name,
    const uint8_t *uniqueid)
{
	struct store_mailbox	 mb;
	enum store_apply	 what;
	enum store_err		 err;
	char			 hex[MAILBOX_ID_LEN * 2 + 1];
	char			 aside[MAILBOX_MAX_NAME + 1];

	/* A failed look-up is no free name: the record fails. */
	if ((err = store_mailbox_get(st, user, name, &mb)) != STORE_OK)
		return err == STORE_NOTFOUND ? STORE_OK : err;
	if (memcmp(mb.uniqueid, uniqueid, MAILBOX_ID_LEN) == 0)
		return STORE_OK;
	crypto_hex(mb.uniqueid, MAILBOX_ID_LEN, hex);
	if (snprintf(aside, sizeof(aside), "%.*s-%.8s", MAILBOX_MAX_NAME - 9,
	    mb.name, hex) < 0)
		return STORE_INVALID;
	log_warn("store.mailbox.aside", "user=%s mailbox=%s to=%s "
	    "msg=\"name taken by the master's mailbox\"", log_quote(user),
	    log_quote(mb.name), log_quote(aside));
	return store_apply_mailbox_rename(st, mb.uniqueid, aside, mb.named,
	    &what);
}

/*
 * A mailbox created under an identity this node deleted before (a
 * mailbox that took mail on the other side of a split is made again):
 * it is no longer deleted here, and its UIDs start past every UID it
 * ever gave out, so none names a second message.
 */
static enum store_err
mailbox_remade(struct store *st, const uint8_t *uniqueid)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MBOX_GONE_CLEAR)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	if ((err = step_done(st, s, "mailbox gone clear")) != STORE_OK)
		return err;
	if ((s = stmt(st, S_MBOX_UIDNEXT_TOMBS)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	return step_done(st, s, "uidnext past tombstones");
}

/*
 * The master's mailbox has another UIDVALIDITY than ours (it was
 * restored from a copy and started a new UID space, store_restore.c):
 * the master's word wins, and our own log says so for our replicas.
 * Sessions bound to the old value end (they bind to uniqueid and
 * UIDVALIDITY).  Inside the caller's savepoint.
 */
static enum store_err
mailbox_revalidated(struct store *st, const struct store_mailbox *mb,
    const char *owner, uint32_t uidvalidity)
{
	sqlite3_stmt		*s;
	enum store_err		 err;
	struct replog_rec	 r = { .type = REC_MAILBOX_CREATE };

	if ((s = stmt(st, S_MBOX_SET_UIDVALIDITY)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, mb->uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uidvalidity);
	if ((err = step_done(st, s, "mailbox uidvalidity")) != STORE_OK)
		return err;
	if ((s = stmt(st, S_NODE_UIDV_MAX)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, uidvalidity);
	if ((err = step_done(st, s, "uidvalidity max")) != STORE_OK)
		return err;
	r.user = owner;
	r.flags = mb->subscribed != 0;
	r.mailbox = mb->uniqueid;
	r.name = mb->name;
	r.uid = uidvalidity;
	r.value = mb->special_use;
	return replog_append(st, &r);
}

enum store_err
store_apply_mailbox_create(struct store *st, const char *user,
    const uint8_t *uniqueid, const char *name, uint32_t uidvalidity,
    const char *special_use, int subscribed, enum store_apply *what)
{
	struct store_mailbox	 mb;
	sqlite3_stmt		*s;
	enum store_err		 err;
	int64_t			 user_id;
	char			 canon[USER_MAX_NAME + 1];
	struct replog_rec	 r = { .type = REC_MAILBOX_CREATE };

	if (!mailbox_name_valid(name) || uidvalidity == 0)
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = store_mailbox_by_uniqueid(st, uniqueid, &mb, canon)) ==
	    STORE_OK && mb.uidvalidity != uidvalidity) {
		*what = APPLY_DONE;
		return op_end(st, mailbox_revalidated(st, &mb, canon,
		    uidvalidity));
	}
	if (err != STORE_NOTFOUND) {
		*what = APPLY_SAME;
		return op_end(st, err);
	}
	if ((err = user_lookup(st, user, &user_id, canon)) != STORE_OK) {
		*what = APPLY_ABSENT;
		return op_end(st, err == STORE_NOTFOUND ? STORE_OK : err);
	}
	if ((err = mailbox_step_aside(st, canon, name, uniqueid)) != STORE_OK)
		return op_end(st, err);
	*what = APPLY_DONE;
	if ((s = stmt(st, S_MBOX_ADD_AT)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, user_id);
	sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, uidvalidity);
	sqlite3_bind_text(s, 5, special_use, -1, SQLITE_STATIC);
	if ((err = step_done(st, s, "mailbox create at")) != STORE_OK ||
	    (err = mailbox_remade(st, uniqueid)) != STORE_OK ||
	    (subscribed && (err = subscription_set(st, user_id, name, 1,
	    NULL)) != STORE_OK))
		return op_end(st, err);
	/* A promoted replica must never reuse the master's UIDVALIDITY. */
	if ((s = stmt(st, S_NODE_UIDV_MAX)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, uidvalidity);
	if ((err = step_done(st, s, "uidvalidity max")) != STORE_OK)
		return op_end(st, err);
	r.user = canon;
	r.flags = subscribed != 0;
	r.mailbox = uniqueid;
	r.name = name;
	r.uid = uidvalidity;
	r.value = special_use;
	return op_end(st, replog_append(st, &r));
}

enum store_err
store_apply_mailbox_rename(struct store *st, const uint8_t *uniqueid,
    const char *name, int64_t named, enum store_apply *what)
{
	struct store_mailbox	 mb;
	sqlite3_stmt		*s;
	enum store_err		 err;
	char			 user[USER_MAX_NAME + 1];
	struct replog_rec	 r = { .type = REC_MAILBOX_RENAME };

	if (!mailbox_name_valid(name))
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = store_mailbox_by_uniqueid(st, uniqueid, &mb, user)) !=
	    STORE_OK) {
		*what = APPLY_ABSENT;
		return op_end(st, err == STORE_NOTFOUND ? STORE_OK : err);
	}
	if (strcmp(mb.name, name) == 0) {
		*what = APPLY_SAME;
		return op_end(st, STORE_OK);
	}
	if ((err = mailbox_step_aside(st, user, name, uniqueid)) != STORE_OK)
		return op_end(st, err);
	*what = APPLY_DONE;
	if ((s = stmt(st, S_MBOX_RENAME_ONE)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, mb.id);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, named);
	if ((err = step_done(st, s, "rename")) != STORE_OK)
		return op_end(st, err);
	r.user = user;
	r.mailbox = uniqueid;
	r.name = name;
	r.internaldate = named;
	return op_end(st, replog_append(st, &r));
}

enum store_err
store_apply_mailbox_delete(struct store *st, const uint8_t *uniqueid,
    enum store_apply *what)
{
	struct store_mailbox	 mb;
	sqlite3_stmt		*s;
	enum store_err		 err;
	char			 user[USER_MAX_NAME + 1];

	if ((err = store_mailbox_by_uniqueid(st, uniqueid, &mb, user)) !=
	    STORE_OK) {
		*what = APPLY_ABSENT;
		return err == STORE_NOTFOUND ? STORE_OK : err;
	}
	*what = APPLY_DONE;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = quarantine(st, mb.id, 0)) == STORE_OK)
		err = store_mailbox_delete(st, user, mb.name);
	/*
	 * Its conflicts that keep no copy are over: what they asked of the
	 * master is moot with the mailbox gone on both sides (the others
	 * make apply_mailbox_delete() wait).
	 */
	if (err == STORE_OK && (s = stmt(st, S_CONFLICT_MAILBOX_DONE)) ==
	    NULL)
		err = STORE_IO;
	else if (err == STORE_OK) {
		sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
		err = step_done(st, s, "mailbox conflicts done");
	}
	return op_end(st, err);
}

enum store_err
store_apply_subscribe(struct store *st, const char *user, const char *name,
    int subscribed, enum store_apply *what)
{
	enum store_err	 err;
	int		 changed = 0;

	if (!mailbox_name_valid(name))
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	err = subscription_write(st, user, name, subscribed, &changed);
	*what = err == STORE_NOTFOUND ? APPLY_ABSENT : changed ? APPLY_DONE :
	    APPLY_SAME;
	return op_end(st, err == STORE_NOTFOUND ? STORE_OK : err);
}

/* A mailbox's local id by uniqueid: the apply path's cheap look-up. */
enum store_err
mailbox_local_id(struct store *st, const uint8_t *uniqueid, int64_t *id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MBOX_ID_BY_UNIQUEID)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	if ((err = step_row(st, s, "mailbox id")) != STORE_OK)
		return err;
	*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return STORE_OK;
}

/* Moves a mailbox's uidnext past uid (UIDs only grow). */
enum store_err
uidnext_past(struct store *st, int64_t mbox_id, uint32_t uid)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_MBOX_UIDNEXT_MAX)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mbox_id);
	sqlite3_bind_int64(s, 2, uid);
	return step_done(st, s, "uidnext max");
}

/*
 * The GUID check shared by append, flags and expunge: looks uid up in
 * the mailbox.  *what is APPLY_ABSENT, APPLY_SAME (same guid) or
 * APPLY_CONFLICT (local_guid filled).
 */
static enum store_err
guid_check(struct store *st, int64_t mbox_id, uint32_t uid,
    const uint8_t *guid, struct store_message *m, enum store_apply *what,
    uint8_t local_guid[GUID_LEN])
{
	enum store_err	 err;

	err = message_row(st, mbox_id, uid, m, NULL);
	if (err == STORE_NOTFOUND) {
		*what = APPLY_ABSENT;
		return STORE_OK;
	}
	if (err != STORE_OK)
		return err;
	if (memcmp(m->guid, guid, GUID_LEN) == 0) {
		*what = APPLY_SAME;
		return STORE_OK;
	}
	memcpy(local_guid, m->guid, GUID_LEN);
	*what = APPLY_CONFLICT;
	return STORE_OK;
}

/*
 * Whether a record the mass-delete guard holds took uid for the message
 * guid (store_held_add() moved UIDNEXT past it): the UID is that
 * message's, as if it had been placed there.  *yes, or the error.
 */
static enum store_err
uid_reserved(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_HELD_RESERVED)) == NULL)
		return STORE_IO;
	bind_copy(s, uniqueid, uid, guid);
	err = step_exists(st, s, "uid reserved", yes);
	sqlite3_reset(s);
	return err;
}

/*
 * The rule behind APPLY_REUSED (ARCHITECTURE.md: a UID names one message for
 * ever): the master's message (uid, guid), absent here, may take uid
 * only when uid is new here (at or past uidnext).  When a tombstone
 * names another message, *what becomes APPLY_REUSED and local_guid the
 * guid the tombstone names (zeros when none).
 *
 * When the tombstone names this very message, the expunge wins
 * (APPLY_EXPUNGED): the master offers a message this node saw and
 * removed, so the master's copy is the older word -- a master restored
 * from a copy taken before the expunge (or MOVE), or an old master that
 * never heard of an expunge made here while split off.  An expunge
 * always follows the append it removes, so remove-wins is the order the
 * clients saw; putting it back would show a client a message it
 * expunged, and beside its moved copy, a duplicate.  The master is told
 * to expunge its copy (sync_renumber.c, SF_EXPUNGED).
 */
static enum store_err
uid_taken_before(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, enum store_apply *what,
    uint8_t local_guid[GUID_LEN])
{
	struct store_mailbox	 mb;
	char			 owner[USER_MAX_NAME + 1];
	enum store_err		 err;
	uint8_t			 gone[GUID_LEN];
	int			 reserved;

	if ((err = store_mailbox_by_uniqueid(st, uniqueid, &mb, owner)) !=
	    STORE_OK)
		return err;
	if (uid >= mb.uidnext)
		return STORE_OK;
	memset(gone, 0, sizeof(gone));
	err = store_tombstone_guid(st, uniqueid, uid, gone);
	if (err == STORE_NOTFOUND) {
		/* The guard may have kept uid for this very message. */
		if ((err = uid_reserved(st, uniqueid, uid, guid, &reserved)) !=
		    STORE_OK || reserved)
			return err;
		memcpy(local_guid, gone, GUID_LEN);
		*what = APPLY_REUSED;
		return STORE_OK;
	}
	if (err != STORE_OK)
		return err;
	memcpy(local_guid, gone, GUID_LEN);
	*what = memcmp(gone, guid, GUID_LEN) == 0 ? APPLY_EXPUNGED :
	    APPLY_REUSED;
	return STORE_OK;
}

/*
 * The master's record names the very message (uid, guid) held here: a
 * conflict kept on it (its master before lacked it, or held another
 * message at uid) is over, as the master holds it there too.
 */
static enum store_err
held_by_master(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid)
{
	return conflict_done(st, S_CONFLICT_RESOLVED, uniqueid, uid, guid);
}

enum store_err
store_apply_append(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, uint32_t flags, const char *keywords,
    int64_t internaldate, int64_t savedate, uint32_t renumbered_from,
    const struct store_blob_in *b, enum store_apply *what,
    uint8_t local_guid[GUID_LEN])
{
	struct store_mailbox	 mb;
	struct store_message	 m;
	sqlite3_stmt		*s;
	enum store_err		 err;
	int64_t			 blob_id = 0;
	uint64_t		 modseq;
	char			 from[REC_FROM_TEXT_LEN];
	struct replog_rec	 r = { .type = REC_MESSAGE_APPEND };

	if (uid == 0 || uid == UINT32_MAX ||
	    (keywords != NULL && strlen(keywords) >= STORE_MAX_KEYWORDS))
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = mailbox_local_id(st, uniqueid, &mb.id)) != STORE_OK) {
		*what = APPLY_ABSENT;
		return op_end(st, err == STORE_NOTFOUND ? STORE_OK : err);
	}
	if ((err = guid_check(st, mb.id, uid, guid, &m, what, local_guid)) !=
	    STORE_OK || *what == APPLY_CONFLICT)
		return op_end(st, err);
	if (*what == APPLY_ABSENT && ((err = uid_taken_before(st, uniqueid,
	    uid, guid, what, local_guid)) != STORE_OK ||
	    *what == APPLY_REUSED || *what == APPLY_EXPUNGED))
		return op_end(st, err);
	if (*what == APPLY_SAME) {
		if ((renumbered_from != 0 && (err = renumbered_add(st,
		    uniqueid, renumbered_from, guid, uid)) != STORE_OK) ||
		    (err = held_by_master(st, uniqueid, uid, guid)) !=
		    STORE_OK)
			return op_end(st, err);
		/* Flags merge: the master's record is the newer word. */
		if (m.flags == flags && strcmp(m.keywords, keywords ?
		    keywords : "") == 0)
			return op_end(st, STORE_OK);
		return op_end(st, store_message_set_flags(st, mb.id, uid,
		    flags, keywords, &modseq));
	}
	if (b != NULL)
		err = blob_put(st, b, &blob_id);
	else {
		/* No body sent: usable only when the bytes are here already. */
		if ((err = blob_find(st, guid, &blob_id)) == STORE_NOTFOUND) {
			*what = APPLY_ABSENT;
			return op_end(st, uidnext_past(st, mb.id, uid));
		}
	}
	if (err != STORE_OK)
		return op_end(st, err);
	*what = APPLY_DONE;
	if ((s = stmt(st, S_MBOX_BUMP_TO)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, mb.id);
	sqlite3_bind_int64(s, 2, uid);
	sqlite3_bind_int(s, 3, (flags & FLAG_SEEN) == 0);
	sqlite3_bind_int64(s, 4, blob_id);
	if ((err = step_row(st, s, "uidnext to")) != STORE_OK)
		return op_end(st, err);
	modseq = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if ((s = stmt(st, S_MSG_ADD)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, mb.id);
	sqlite3_bind_int64(s, 2, uid);
	sqlite3_bind_int64(s, 3, blob_id);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)modseq);
	sqlite3_bind_int64(s, 5, flags);
	sqlite3_bind_text(s, 6, keywords ? keywords : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, internaldate);
	sqlite3_bind_int64(s, 8, savedate);
	if ((err = step_done(st, s, "message add at")) != STORE_OK ||
	    (renumbered_from != 0 && (err = renumbered_add(st, uniqueid,
	    renumbered_from, guid, uid)) != STORE_OK))
		return op_end(st, err);
	rec_from_text(renumbered_from, from);
	r.value = from;
	r.mailbox = uniqueid;
	r.uid = uid;
	r.guid = guid;
	r.modseq = modseq;
	r.flags = flags;
	r.keywords = keywords;
	r.internaldate = internaldate;
	return op_end(st, replog_append(st, &r));
}

enum store_err
store_apply_flags(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, uint32_t flags, const char *keywords,
    enum store_apply *what, uint8_t local_guid[GUID_LEN])
{
	struct store_mailbox	 mb;
	struct store_message	 m;
	enum store_err		 err;
	uint64_t		 modseq;

	if ((err = mailbox_local_id(st, uniqueid, &mb.id)) != STORE_OK) {
		*what = APPLY_ABSENT;
		return err == STORE_NOTFOUND ? STORE_OK : err;
	}
	if ((err = guid_check(st, mb.id, uid, guid, &m, what, local_guid)) !=
	    STORE_OK || *what != APPLY_SAME)
		return err;
	*what = APPLY_DONE;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = store_message_set_flags(st, mb.id, uid, flags, keywords,
	    &modseq)) == STORE_OK)
		err = held_by_master(st, uniqueid, uid, guid);
	return op_end(st, err);
}

enum store_err
store_apply_expunge(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, enum store_apply *what,
    uint8_t local_guid[GUID_LEN])
{
	struct store_mailbox	 mb;
	struct store_message	 m;
	enum store_err		 err;

	if ((err = mailbox_local_id(st, uniqueid, &mb.id)) != STORE_OK) {
		*what = APPLY_ABSENT;
		return err == STORE_NOTFOUND ? STORE_OK : err;
	}
	if ((err = guid_check(st, mb.id, uid, guid, &m, what, local_guid)) !=
	    STORE_OK || *what == APPLY_CONFLICT)
		return err;
	if (*what == APPLY_ABSENT) {
		if ((err = op_begin(st)) != STORE_OK)
			return err;
		/* The master's message left a uid it could not take here. */
		if ((err = uidnext_past(st, mb.id, uid)) == STORE_OK)
			err = conflict_done(st, S_CONFLICT_REUSED_DONE, uniqueid,
			    uid, guid);
		return op_end(st, err);
	}
	*what = APPLY_DONE;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	/* A renumbered conflict copy leaving: its conflict is resolved. */
	if ((err = quarantine(st, mb.id, uid)) == STORE_OK &&
	    (err = store_message_expunge(st, mb.id, uid)) == STORE_OK)
		err = conflict_done(st, S_CONFLICT_RESOLVED, uniqueid, uid,
		    guid);
	return op_end(st, err);
}
