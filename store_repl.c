/*
 * store_repl.c — the store's side of replication: the log as sync.c reads
 * it, the node's role and position, each replica's acknowledged position,
 * conflicts, and the replica's GUID-checked apply of the master's records.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sqlite3.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "record.h"
#include "store.h"
#include "store_internal.h"

/* Copies text column i into dst (cap bytes), "" for NULL. */
static void
column_text(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
	const unsigned char	*t = sqlite3_column_text(s, i);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* Copies blob column i (exactly n bytes) into dst; returns 1 when there. */
static int
column_id(sqlite3_stmt *s, int i, uint8_t *dst, size_t n)
{
	if (sqlite3_column_type(s, i) != SQLITE_BLOB ||
	    (size_t)sqlite3_column_bytes(s, i) != n)
		return 0;
	memcpy(dst, sqlite3_column_blob(s, i), n);
	return 1;
}

/* Binds a message's (mailbox uniqueid, uid, guid) to ?1, ?2, ?3. */
static void
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
static enum store_err
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

enum store_err
store_replog_next(struct store *st, int64_t after,
    struct store_replog_rec *r)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	char		 name[32];

	if ((s = stmt(st, S_REPLOG_NEXT)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, after);
	if ((err = step_row(st, s, "replog next")) != STORE_OK)
		return err;
	memset(r, 0, offsetof(struct store_replog_rec, keywords));
	r->seq = sqlite3_column_int64(s, 0);
	r->time = sqlite3_column_int64(s, 1);
	column_text(s, 2, name, sizeof(name));
	if (rec_type_by_name(name, &r->type) < 0) {
		log_error("store.replog", "seq=%lld type=%s msg=\"unknown "
		    "record type\"", (long long)r->seq, log_quote(name));
		sqlite3_reset(s);
		return STORE_IO;
	}
	column_text(s, 13, name, sizeof(name));
	if (rec_reason_by_name(name, &r->reason) < 0)
		r->reason = REASON_CLIENT;	/* counted: errs on pausing */
	column_text(s, 3, r->user, sizeof(r->user));
	r->has_mailbox = column_id(s, 4, r->mailbox, MAILBOX_ID_LEN);
	r->uid = (uint32_t)sqlite3_column_int64(s, 5);
	r->has_guid = column_id(s, 6, r->guid, GUID_LEN);
	r->modseq = (uint64_t)sqlite3_column_int64(s, 7);
	r->flags = (uint32_t)sqlite3_column_int64(s, 8);
	column_text(s, 9, r->keywords, sizeof(r->keywords));
	r->internaldate = sqlite3_column_int64(s, 10);
	column_text(s, 11, r->name, sizeof(r->name));
	column_text(s, 12, r->value, sizeof(r->value));
	sqlite3_reset(s);
	return STORE_OK;
}

int64_t
store_replog_first(struct store *st)
{
	return query_int64(st, S_REPLOG_FIRST);
}

enum store_err
store_replog_hash(struct store *st, int64_t pos, uint8_t out[LOG_HASH_LEN])
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_REPLOG_HASH_AT)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, pos);
	if ((err = step_row(st, s, "log hash")) != STORE_OK)
		return err;
	column_hash(s, 0, out);
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_node_get(struct store *st, struct store_node *n)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	memset(n, 0, sizeof(*n));
	if ((s = stmt(st, S_NODE_GET)) == NULL)
		return STORE_IO;
	if ((err = step_row(st, s, "node get")) != STORE_OK)
		return err;
	column_id(s, 0, n->node_id, NODE_ID_LEN);
	column_id(s, 1, n->epoch, EPOCH_LEN);
	column_text(s, 2, n->role, sizeof(n->role));
	n->has_master = column_id(s, 3, n->master_id, NODE_ID_LEN) &&
	    column_id(s, 4, n->master_epoch, EPOCH_LEN);
	n->applied = sqlite3_column_int64(s, 5);
	column_text(s, 6, n->upstream, sizeof(n->upstream));
	column_hash(s, 7, n->applied_hash);
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_node_set_role(struct store *st, const char *role)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int		 rc;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	rc = sqlite3_prepare_v2(st->db, "UPDATE node SET role = ?1", -1, &s,
	    NULL);
	if (rc != SQLITE_OK)
		return op_end(st, db_error(st, rc, "node role"));
	sqlite3_bind_text(s, 1, role, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return op_end(st, rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "node role"));
}

/*
 * Makes this node a master with a new epoch (promotion): what it applied
 * stays; replicas that followed the old log see the epoch change.
 */
enum store_err
store_node_promote(struct store *st)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	uint8_t		 epoch[EPOCH_LEN];
	int		 rc;

	if (crypto_random(epoch, sizeof(epoch)) < 0)
		return STORE_IO;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	rc = sqlite3_prepare_v2(st->db, "UPDATE node SET role = 'master', "
	    "epoch = ?1, upstream = NULL", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return op_end(st, db_error(st, rc, "node promote"));
	sqlite3_bind_blob(s, 1, epoch, sizeof(epoch), SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return op_end(st, db_error(st, rc, "node promote"));
	/*
	 * A "message.expunged" conflict asks a master to drop a copy this
	 * node refused and never held again: a master has no one to ask,
	 * and its store is already as the conflict wants.
	 */
	if ((s = stmt(st, S_CONFLICT_EXPUNGED_DONE)) == NULL)
		return op_end(st, STORE_IO);
	return op_end(st, step_done(st, s, "conflicts settled"));
}

enum store_err
store_node_applied(struct store *st, const uint8_t *master_id,
    const uint8_t *epoch, int64_t pos, const uint8_t hash[LOG_HASH_LEN])
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_NODE_APPLIED)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_blob(s, 1, master_id, NODE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, epoch, EPOCH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, pos);
	sqlite3_bind_blob(s, 4, hash, LOG_HASH_LEN, SQLITE_STATIC);
	return op_end(st, step_done(st, s, "node applied"));
}

enum store_err
store_mailbox_by_uniqueid(struct store *st, const uint8_t *uniqueid,
    struct store_mailbox *out, char user[USER_MAX_NAME + 1])
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MBOX_BY_UNIQUEID)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	if ((err = step_row(st, s, "mailbox by uniqueid")) != STORE_OK)
		return err;
	mailbox_from_row(s, out);
	if (user != NULL)
		column_text(s, 12, user, USER_MAX_NAME + 1);
	sqlite3_reset(s);
	return STORE_OK;
}

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
	if (user_lookup(st, name, &id, NULL) == STORE_OK) {
		/* Already here: the master's password wins. */
		*what = APPLY_SAME;
		return op_end(st, store_user_set_password(st, name, pwhash));
	}
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
	char			 hex[MAILBOX_ID_LEN * 2 + 1];
	char			 aside[MAILBOX_MAX_NAME + 1];

	if (store_mailbox_get(st, user, name, &mb) != STORE_OK ||
	    memcmp(mb.uniqueid, uniqueid, MAILBOX_ID_LEN) == 0)
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
static enum store_err
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
static enum store_err
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
 * message's, as if it had been placed there.
 */
static int
uid_reserved(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt(st, S_HELD_RESERVED)) == NULL)
		return 0;
	bind_copy(s, uniqueid, uid, guid);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW;
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
 * to expunge its copy (sync_reconcile.c, SF_EXPUNGED).
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

	if ((err = store_mailbox_by_uniqueid(st, uniqueid, &mb, owner)) !=
	    STORE_OK)
		return err;
	if (uid >= mb.uidnext)
		return STORE_OK;
	memset(gone, 0, sizeof(gone));
	err = store_tombstone_guid(st, uniqueid, uid, gone);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	if (err == STORE_NOTFOUND && uid_reserved(st, uniqueid, uid, guid))
		return STORE_OK;	/* the guard kept it for this message */
	memcpy(local_guid, gone, GUID_LEN);
	*what = err == STORE_OK && memcmp(gone, guid, GUID_LEN) == 0 ?
	    APPLY_EXPUNGED : APPLY_REUSED;
	return STORE_OK;
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
		if (renumbered_from != 0 && (err = renumbered_add(st,
		    uniqueid, renumbered_from, guid, uid)) != STORE_OK)
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
	return store_message_set_flags(st, mb.id, uid, flags, keywords,
	    &modseq);
}

/*
 * A conflict at (mailbox, uid) is over: S_CONFLICT_RESOLVED when the
 * replica's copy (guid) left this store, S_CONFLICT_REUSED_DONE when the
 * master's message (guid) left a uid it could not take here.
 */
static enum store_err
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

enum store_err
store_replica_update(struct store *st, const struct store_replica *r)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_REPLICA_PUT)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_text(s, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, r->node_id, NODE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, r->acked);
	sqlite3_bind_int64(s, 4, r->last_seen);
	sqlite3_bind_int(s, 5, r->connected);
	sqlite3_bind_int(s, 6, r->reconciling);
	return op_end(st, step_done(st, s, "replica update"));
}

enum store_err
store_replica_forget(struct store *st, const uint8_t node_id[NODE_ID_LEN])
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_REPLICA_FORGET)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_blob(s, 1, node_id, NODE_ID_LEN, SQLITE_STATIC);
	if ((err = step_done(st, s, "replica forget")) == STORE_OK &&
	    sqlite3_changes(st->db) == 0)
		err = STORE_NOTFOUND;
	return op_end(st, err);
}

/*
 * Runs cb over the rows of a replica listing (id: name, node_id, acked,
 * last_seen, connected, reconciling), until it returns non-zero.
 */
static enum store_err
replica_rows(struct store *st, enum stmt_id id,
    int (*cb)(void *, const struct store_replica *), void *arg)
{
	struct store_replica	 r;
	sqlite3_stmt		*s;
	int			 rc;

	if ((s = stmt(st, id)) == NULL)
		return STORE_IO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		column_text(s, 0, r.name, sizeof(r.name));
		column_id(s, 1, r.node_id, NODE_ID_LEN);
		r.acked = sqlite3_column_int64(s, 2);
		r.last_seen = sqlite3_column_int64(s, 3);
		r.connected = sqlite3_column_int(s, 4);
		r.reconciling = sqlite3_column_int(s, 5);
		if (cb(arg, &r) != 0)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "replica list");
}

enum store_err
store_replica_foreach(struct store *st,
    int (*cb)(void *, const struct store_replica *), void *arg)
{
	return replica_rows(st, S_REPLICA_LIST, cb, arg);
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

int
store_was_renumbered(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_RENUMBERED_GET)) == NULL)
		return 0;
	bind_copy(s, uniqueid, uid, guid);
	if (step_row(st, s, "renumbered") != STORE_OK)
		return 0;
	sqlite3_reset(s);
	return 1;
}

int
store_renumbered_held(struct store *st, const uint8_t *uniqueid,
    const uint8_t *guid)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_RENUMBERED_HELD)) == NULL)
		return 0;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, guid, GUID_LEN, SQLITE_STATIC);
	if (step_row(st, s, "renumbered held") != STORE_OK)
		return 0;
	sqlite3_reset(s);
	return 1;
}

uint32_t
store_renumbered_from(struct store *st, const uint8_t *uniqueid,
    uint32_t uid, const uint8_t *guid)
{
	sqlite3_stmt	*s;
	uint32_t	 from;

	if ((s = stmt(st, S_RENUMBERED_FROM)) == NULL)
		return 0;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, guid, GUID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, uid);
	if (step_row(st, s, "renumbered from") != STORE_OK)
		return 0;
	from = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return from;
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
	if (err == STORE_OK && memcmp(m.guid, guid, GUID_LEN) == 0)
		return STORE_EXISTS;		/* the same message */
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
	if (store_was_renumbered(st, uniqueid, uid, guid) ||
	    store_renumbered_held(st, uniqueid, guid))
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
	if (err == STORE_OK && *new_uid == 0)
		err = blob_drop_unused(st, blob_id);
	if (err == STORE_OK)
		err = renumbered_add(st, uniqueid, uid, guid, *new_uid);
	return op_end(st, err);
}

/* store_relocate() with the reason of its records set. */
static enum store_err
relocate(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid, uint32_t above, uint32_t *new_uid)
{
	struct store_message	 m;
	struct msg_attrs	 a;
	char			 kw[STORE_MAX_KEYWORDS];
	enum store_err		 err;
	int64_t			 mbox = 0, blob_id = 0;

	*new_uid = 0;
	if (uid == 0 || uid == UINT32_MAX || above == UINT32_MAX)
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if (store_was_renumbered(st, uniqueid, uid, guid))
		return renumbered_again(st, uniqueid, uid, guid);
	if ((err = mailbox_local_id(st, uniqueid, &mbox)) == STORE_OK)
		err = message_row(st, mbox, uid, &m, &blob_id);
	if (err == STORE_NOTFOUND || (err == STORE_OK &&
	    memcmp(m.guid, guid, GUID_LEN) != 0)) {
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
		err = uidnext_past(st, mbox, above - 1);
	if (err == STORE_OK)
		err = message_expunge(st, mbox, uid, NULL);
	if (err == STORE_OK)
		err = message_insert(st, mbox, blob_id, guid, &a, new_uid);
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

/* --- Full reconciliation: what the two sides compare ------------------- */

/* Adds one message to a mailbox digest; stops nothing. */
static int
digest_one(void *arg, const struct store_message *m)
{
	struct sha256	*h = arg;
	uint8_t		 b[8];

	b[0] = m->uid >> 24;
	b[1] = m->uid >> 16;
	b[2] = m->uid >> 8;
	b[3] = m->uid;
	b[4] = m->flags >> 24;
	b[5] = m->flags >> 16;
	b[6] = m->flags >> 8;
	b[7] = m->flags;
	crypto_sha256_update(h, b, 8);
	crypto_sha256_update(h, m->guid, GUID_LEN);
	crypto_sha256_update(h, m->keywords ? m->keywords : "",
	    strlen(m->keywords ? m->keywords : "") + 1);
	return 0;
}

enum store_err
store_mailbox_digest(struct store *st, int64_t mailbox_id,
    uint8_t digest[GUID_LEN])
{
	struct sha256	*h;
	enum store_err	 err;

	if ((h = crypto_sha256_new()) == NULL)
		return STORE_IO;
	err = store_message_foreach(st, mailbox_id, digest_one, h);
	crypto_sha256_finish(h, digest);
	return err;
}

enum store_err
store_message_range(struct store *st, int64_t mailbox_id, uint32_t after,
    uint32_t upto, int limit, int (*cb)(void *, const struct store_message *),
    void *arg)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_MSG_RANGE)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int64(s, 3, upto);
	sqlite3_bind_int(s, 4, limit);
	return message_walk(st, s, cb, arg, "message range");
}

enum store_err
store_tombstone_guid(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    uint8_t guid[GUID_LEN])
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_EXPUNGED_GUID)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uid);
	if ((err = step_row(st, s, "tombstone")) != STORE_OK)
		return err;
	err = column_id(s, 0, guid, GUID_LEN) ? STORE_OK : STORE_NOTFOUND;
	sqlite3_reset(s);
	return err;
}

enum store_err
store_expunge_relog(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t guid[GUID_LEN])
{
	struct replog_rec	 r = { .type = REC_MESSAGE_EXPUNGE };
	uint8_t			 gone[GUID_LEN];
	enum rec_reason		 was;
	enum store_err		 err;

	if ((err = store_tombstone_guid(st, uniqueid, uid, gone)) !=
	    STORE_OK)
		return err;
	if (memcmp(gone, guid, GUID_LEN) != 0)
		return STORE_NOTFOUND;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	r.mailbox = uniqueid;
	r.uid = uid;
	r.guid = guid;
	was = store_set_reason(st, store_tombstone_reason(st, uniqueid, uid));
	err = replog_append(st, &r);
	(void)store_set_reason(st, was);
	return op_end(st, err);
}

int
store_mailbox_holds(struct store *st, const uint8_t *uniqueid,
    const uint8_t guid[GUID_LEN])
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt(st, S_MSG_GUID_HELD)) == NULL)
		return 0;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, guid, GUID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW;
}

int
store_mailbox_was_deleted(struct store *st, const uint8_t *uniqueid)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_MBOX_GONE_GET)) == NULL)
		return 0;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	if (step_row(st, s, "mailbox gone") != STORE_OK)
		return 0;
	sqlite3_reset(s);
	return 1;
}

/*
 * The purge returns what it deleted; the hash of the last record purged
 * becomes the log's base, so that a replica that applied up to there can
 * still be checked (store_replog_hash).
 */
enum store_err
store_replog_purge(struct store *st, int64_t upto, int64_t before,
    int64_t *purged)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	uint8_t		 hash[LOG_HASH_LEN];
	int64_t		 last = 0;
	int		 rc;

	*purged = 0;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_REPLOG_PURGE)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, upto);
	sqlite3_bind_int64(s, 2, before);
	sqlite3_bind_int(s, 3, SYNC_PURGE_BATCH);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		(*purged)++;
		if (sqlite3_column_int64(s, 0) > last) {
			last = sqlite3_column_int64(s, 0);
			column_hash(s, 1, hash);
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return op_end(st, db_error(st, rc, "log purge"));
	if (last == 0 || (s = stmt(st, S_NODE_LOG_BASE)) == NULL)
		return op_end(st, last == 0 ? STORE_OK : STORE_IO);
	sqlite3_bind_int64(s, 1, last);
	sqlite3_bind_blob(s, 2, hash, LOG_HASH_LEN, SQLITE_STATIC);
	return op_end(st, step_done(st, s, "log base"));
}

enum store_err
store_mailbox_ids(struct store *st, int (*cb)(void *, const uint8_t *),
    void *arg)
{
	sqlite3_stmt	*s;
	uint8_t		 id[MAILBOX_ID_LEN];
	int		 rc;

	if ((s = stmt(st, S_MBOX_ALL)) == NULL)
		return STORE_IO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (column_id(s, 0, id, MAILBOX_ID_LEN) && cb(arg, id) != 0)
			break;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "mailbox ids");
}

enum store_err
store_mailbox_raise_uidnext(struct store *st, const uint8_t *uniqueid,
    uint32_t uidnext)
{
	enum store_err	 err;
	int64_t		 mbox;

	if (uidnext <= 1)
		return STORE_OK;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = mailbox_local_id(st, uniqueid, &mbox)) == STORE_OK)
		err = uidnext_past(st, mbox, uidnext - 1);
	return op_end(st, err);
}

enum store_err
store_pause_set(struct store *st, const char *user, const char *reason)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_PAUSE_SET)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, time(NULL));
	return op_end(st, step_done(st, s, "pause set"));
}

enum store_err
store_pause_resume(struct store *st, const char *user, int state,
    int64_t *n)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	*n = 0;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_PAUSE_RESUME)) == NULL)
		return op_end(st, STORE_IO);
	bind_text_or_null(s, 1, user);
	sqlite3_bind_int(s, 2, state);
	if ((err = step_done(st, s, "pause resume")) == STORE_OK)
		*n = sqlite3_changes(st->db);
	return op_end(st, err);
}

enum store_err
store_pause_clear(struct store *st, const char *user)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_PAUSE_CLEAR)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	return op_end(st, step_done(st, s, "pause clear"));
}

enum store_err
store_pause_foreach(struct store *st,
    int (*cb)(void *, const struct store_pause *), void *arg)
{
	struct store_pause	 p;
	sqlite3_stmt		*s;
	int			 rc;

	if ((s = stmt(st, S_PAUSE_LIST)) == NULL)
		return STORE_IO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&p, 0, sizeof(p));
		column_text(s, 0, p.user, sizeof(p.user));
		column_text(s, 1, p.reason, sizeof(p.reason));
		p.time = sqlite3_column_int64(s, 2);
		p.state = sqlite3_column_int(s, 3);
		p.held = sqlite3_column_int64(s, 4);
		if (cb(arg, &p) != 0)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "pause list");
}

enum store_err
store_held_add(struct store *st, const char *user,
    const struct store_replog_rec *r, const void *rec, size_t len,
    const struct store_blob_in *b)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 blob_id = 0, mbox;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if (b != NULL && (err = blob_put(st, b, &blob_id)) != STORE_OK)
		return op_end(st, err);
	/* The UID is taken here already: nothing else may get it. */
	if (r->type == REC_MESSAGE_APPEND && mailbox_local_id(st, r->mailbox,
	    &mbox) == STORE_OK && (err = uidnext_past(st, mbox, r->uid)) !=
	    STORE_OK)
		return op_end(st, err);
	if ((s = stmt(st, S_HELD_ADD)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	if (r->has_mailbox)
		sqlite3_bind_blob(s, 2, r->mailbox, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, rec, (int)len, SQLITE_STATIC);
	if (b != NULL)
		sqlite3_bind_int64(s, 4, blob_id);
	if (r->type == REC_MESSAGE_APPEND && r->has_guid) {
		sqlite3_bind_int64(s, 5, r->uid);
		sqlite3_bind_blob(s, 6, r->guid, GUID_LEN, SQLITE_STATIC);
	}
	return op_end(st, step_done(st, s, "held add"));
}

enum store_err
store_held_next(struct store *st, const char *user, int64_t after,
    int64_t *id, void *buf, size_t cap, size_t *len)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	size_t		 n;

	if ((s = stmt(st, S_HELD_NEXT)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, after);
	if ((err = step_row(st, s, "held next")) != STORE_OK)
		return err;
	*id = sqlite3_column_int64(s, 0);
	n = (size_t)sqlite3_column_bytes(s, 1);
	if (n <= cap) {
		if (n > 0)
			memcpy(buf, sqlite3_column_blob(s, 1), n);
		*len = n;
	} else
		err = STORE_INVALID;
	sqlite3_reset(s);
	return err;
}

enum store_err
store_held_drop(struct store *st, int64_t id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 blob_id = 0;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_HELD_DROP)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, id);
	if ((err = step_row(st, s, "held drop")) != STORE_OK)
		return op_end(st, err);
	blob_id = sqlite3_column_int64(s, 0);
	(void)sqlite3_step(s);
	sqlite3_reset(s);
	return op_end(st, blob_id > 0 ? blob_drop_unused(st, blob_id) :
	    STORE_OK);
}

int
store_held_mailbox(struct store *st, const uint8_t *uniqueid,
    char user[USER_MAX_NAME + 1])
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_HELD_MAILBOX)) == NULL)
		return 0;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	if (step_row(st, s, "held mailbox") != STORE_OK)
		return 0;
	column_text(s, 0, user, USER_MAX_NAME + 1);
	sqlite3_reset(s);
	return 1;
}

enum rec_reason
store_tombstone_reason(struct store *st, const uint8_t *uniqueid,
    uint32_t uid)
{
	sqlite3_stmt	*s;
	enum rec_reason	 reason = REASON_CLIENT;
	char		 name[32];

	if ((s = stmt(st, S_EXPUNGED_REASON)) == NULL)
		return reason;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uid);
	if (step_row(st, s, "tombstone reason") == STORE_OK) {
		column_text(s, 0, name, sizeof(name));
		if (rec_reason_by_name(name, &reason) < 0)
			reason = REASON_CLIENT;
		sqlite3_reset(s);
	}
	return reason;
}

int64_t
store_user_message_count(struct store *st, const char *user)
{
	sqlite3_stmt	*s;
	int64_t		 n = 0;

	if ((s = stmt(st, S_USER_MESSAGES)) == NULL)
		return 0;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return n;
}

/* Fills *q from a row of S_QUAR_LIST; its blob id to *blob_id. */
static void
quarantined_from_row(sqlite3_stmt *s, struct store_quarantined *q,
    int64_t *blob_id)
{
	memset(q, 0, offsetof(struct store_quarantined, keywords));
	q->id = sqlite3_column_int64(s, 0);
	q->time = sqlite3_column_int64(s, 1);
	column_text(s, 2, q->user, sizeof(q->user));
	column_id(s, 3, q->mailbox, MAILBOX_ID_LEN);
	column_text(s, 4, q->mailbox_name, sizeof(q->mailbox_name));
	q->uid = (uint32_t)sqlite3_column_int64(s, 5);
	column_id(s, 6, q->guid, GUID_LEN);
	q->size = (uint64_t)sqlite3_column_int64(s, 7);
	q->flags = (uint32_t)sqlite3_column_int64(s, 8);
	column_text(s, 9, q->keywords, sizeof(q->keywords));
	q->internaldate = sqlite3_column_int64(s, 10);
	*blob_id = sqlite3_column_int64(s, 11);
}

enum store_err
store_quarantine_foreach(struct store *st, int64_t id,
    int (*cb)(void *, const struct store_quarantined *), void *arg)
{
	struct store_quarantined	 q;
	sqlite3_stmt			*s;
	int64_t				 blob_id;
	int				 rc;

	if ((s = stmt(st, S_QUAR_LIST)) == NULL)
		return STORE_IO;
	if (id > 0)
		sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		quarantined_from_row(s, &q, &blob_id);
		if (cb(arg, &q) != 0)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "quarantine list");
}

/*
 * The mailbox a restored message goes to: its own (same owner), else
 * the owner's of that name, else one created with that name.
 */
static enum store_err
restore_target(struct store *st, const struct store_quarantined *q,
    struct store_mailbox *mb)
{
	char	 owner[USER_MAX_NAME + 1];

	if (store_mailbox_by_uniqueid(st, q->mailbox, mb, owner) == STORE_OK &&
	    strcasecmp(owner, q->user) == 0)
		return STORE_OK;
	if (store_mailbox_get(st, q->user, q->mailbox_name, mb) == STORE_OK)
		return STORE_OK;
	return store_mailbox_create(st, q->user, q->mailbox_name, NULL, mb);
}

enum store_err
store_quarantine_restore(struct store *st, int64_t id, uint32_t *uid,
    char mailbox[MAILBOX_MAX_NAME + 1])
{
	struct store_quarantined	 q;
	struct store_mailbox		 mb;
	struct msg_attrs		 a;
	sqlite3_stmt			*s;
	enum store_err			 err;
	int64_t				 blob_id;

	if ((s = stmt(st, S_QUAR_LIST)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, id);
	if ((err = step_row(st, s, "quarantine get")) != STORE_OK)
		return err;
	quarantined_from_row(s, &q, &blob_id);
	sqlite3_reset(s);
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = restore_target(st, &q, &mb)) != STORE_OK)
		return op_end(st, err);
	a = (struct msg_attrs){ q.flags, q.keywords, q.internaldate, 0 };
	if ((err = message_insert(st, mb.id, blob_id, q.guid, &a, uid)) !=
	    STORE_OK || (s = stmt(st, S_QUAR_DEL)) == NULL)
		return op_end(st, err != STORE_OK ? err : STORE_IO);
	sqlite3_bind_int64(s, 1, id);
	snprintf(mailbox, MAILBOX_MAX_NAME + 1, "%s", mb.name);
	return op_end(st, step_done(st, s, "quarantine restore"));
}

enum store_err
store_node_demote(struct store *st, const char *upstream)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if (strlen(upstream) > SYNC_UPSTREAM_MAX)
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_NODE_DEMOTE)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_text(s, 1, upstream, -1, SQLITE_STATIC);
	return op_end(st, step_done(st, s, "node demote"));
}

/*
 * The marker in one operation: the node's role and epoch and the log
 * head from the node row and the log, the replicas from `replica` (which
 * sync_drain_report() has just brought up to date).
 */
enum store_err
store_shutdown_record(struct store *st, int64_t now, int status)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_SHUTDOWN_SET)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int(s, 2, status);
	if ((err = step_done(st, s, "shutdown marker")) == STORE_OK)
		err = (s = stmt(st, S_SHUTDOWN_CLEAR_REPLICAS)) == NULL ?
		    STORE_IO : step_done(st, s, "shutdown replicas");
	if (err == STORE_OK)
		err = (s = stmt(st, S_SHUTDOWN_COPY_REPLICAS)) == NULL ?
		    STORE_IO : step_done(st, s, "shutdown replicas");
	return op_end(st, err);
}

enum store_err
store_shutdown_get(struct store *st, struct store_shutdown *out)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	memset(out, 0, sizeof(*out));
	if ((s = stmt(st, S_SHUTDOWN_GET)) == NULL)
		return STORE_IO;
	if ((err = step_row(st, s, "shutdown marker")) != STORE_OK)
		return err;
	out->time = sqlite3_column_int64(s, 0);
	column_text(s, 1, out->role, sizeof(out->role));
	column_id(s, 2, out->epoch, EPOCH_LEN);
	out->head = sqlite3_column_int64(s, 3);
	out->status = sqlite3_column_int(s, 4);
	out->stale = sqlite3_column_int64(s, 5);
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_shutdown_stale(struct store *st, int64_t now)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_SHUTDOWN_STALE)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, now);
	return op_end(st, step_done(st, s, "shutdown stale"));
}

enum store_err
store_shutdown_replica_foreach(struct store *st,
    int (*cb)(void *, const struct store_replica *), void *arg)
{
	return replica_rows(st, S_SHUTDOWN_REPLICA_LIST, cb, arg);
}
