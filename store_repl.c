/*
 * store_repl.c — the store's side of replication: the log as sync.c reads
 * it, the node's role and position, each replica's acknowledged position,
 * what a full reconciliation compares, the mass-delete guard's pauses and
 * held records, the quarantine and the shutdown marker.  The replica's
 * apply of the master's records is store_apply.c; conflicts and
 * renumbering, store_conflict.c.
 */
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
	 * A master has no one to ask, and keeps nothing out of anyone's
	 * numbering: what a conflict kept out of its master's is its own
	 * message now (a "message.expunged" one, a copy it refused, is
	 * already as the conflict wants).  Should it follow a master again,
	 * demotion starts a reconciliation, which finds every difference
	 * anew; left open, nothing would ever close it.
	 */
	if ((s = stmt(st, S_CONFLICT_ALL_DONE)) == NULL)
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

/*
 * Statement `which` (S_MSG_RANGE, S_MSG_ROWS, S_MSG_UIDS_RANGE,
 * S_MSG_KEYWORDS_RANGE) bound to
 * a mailbox's UIDs in (after, upto], at most limit; NULL on error.
 */
static sqlite3_stmt *
range_stmt(struct store *st, enum stmt_id which, int64_t mailbox_id,
    uint32_t after, uint32_t upto, int limit)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, which)) == NULL)
		return NULL;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int64(s, 3, upto);
	sqlite3_bind_int(s, 4, limit);
	return s;
}

/* store_message_range() with statement `which` (S_MSG_RANGE, S_MSG_ROWS). */
static enum store_err
range_walk(struct store *st, enum stmt_id which, int64_t mailbox_id,
    uint32_t after, uint32_t upto, int limit,
    int (*cb)(void *, const struct store_message *), void *arg)
{
	sqlite3_stmt	*s;

	if ((s = range_stmt(st, which, mailbox_id, after, upto, limit)) ==
	    NULL)
		return STORE_IO;
	return message_walk(st, s, cb, arg, "message range");
}

enum store_err
store_message_range(struct store *st, int64_t mailbox_id, uint32_t after,
    uint32_t upto, int limit, int (*cb)(void *, const struct store_message *),
    void *arg)
{
	return range_walk(st, S_MSG_RANGE, mailbox_id, after, upto, limit, cb,
	    arg);
}

enum store_err
store_message_rows(struct store *st, int64_t mailbox_id, uint32_t after,
    uint32_t upto, int limit, int (*cb)(void *, const struct store_message *),
    void *arg)
{
	return range_walk(st, S_MSG_ROWS, mailbox_id, after, upto, limit, cb,
	    arg);
}

enum store_err
store_message_uids(struct store *st, int64_t mailbox_id, uint32_t after,
    uint32_t upto, uint32_t *uids, size_t max, size_t *n)
{
	sqlite3_stmt	*s;
	int		 rc;

	*n = 0;
	if ((s = range_stmt(st, S_MSG_UIDS_RANGE, mailbox_id, after, upto,
	    (int)max)) == NULL)
		return STORE_IO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		uids[(*n)++] = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, "message uids");
}

enum store_err
store_message_keywords(struct store *st, int64_t mailbox_id, uint32_t after,
    uint32_t upto, int limit, int (*cb)(void *, const struct store_message *),
    void *arg)
{
	struct store_message	 m;
	sqlite3_stmt		*s;
	int			 rc;

	if ((s = range_stmt(st, S_MSG_KEYWORDS_RANGE, mailbox_id, after, upto,
	    limit)) == NULL)
		return STORE_IO;
	memset(&m, 0, sizeof(m));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		m.uid = (uint32_t)sqlite3_column_int64(s, 0);
		m.keywords = (const char *)sqlite3_column_text(s, 1);
		if (cb(arg, &m) != 0)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "message keywords");
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
	enum rec_reason		 was, reason;
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
	if ((err = store_tombstone_reason(st, uniqueid, uid, &reason)) !=
	    STORE_OK)
		return op_end(st, err);
	was = store_set_reason(st, reason);
	err = replog_append(st, &r);
	(void)store_set_reason(st, was);
	return op_end(st, err);
}

enum store_err
store_mailbox_holds(struct store *st, const uint8_t *uniqueid,
    const uint8_t guid[GUID_LEN], int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MSG_GUID_HELD)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, guid, GUID_LEN, SQLITE_STATIC);
	err = step_exists(st, s, "mailbox holds", yes);
	sqlite3_reset(s);
	return err;
}

enum store_err
store_mailbox_was_deleted(struct store *st, const uint8_t *uniqueid,
    int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MBOX_GONE_GET)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	err = step_exists(st, s, "mailbox gone", yes);
	sqlite3_reset(s);
	return err;
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

enum store_err
store_held_mailbox(struct store *st, const uint8_t *uniqueid,
    char user[USER_MAX_NAME + 1], int *yes)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_HELD_MAILBOX)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	if ((err = step_exists(st, s, "held mailbox", yes)) == STORE_OK &&
	    *yes)
		column_text(s, 0, user, USER_MAX_NAME + 1);
	sqlite3_reset(s);
	return err;
}

enum store_err
store_tombstone_reason(struct store *st, const uint8_t *uniqueid,
    uint32_t uid, enum rec_reason *reason)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	char		 name[32];
	int		 found = 0;

	if ((s = stmt(st, S_EXPUNGED_REASON)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uid);
	*reason = REASON_CLIENT;
	if ((err = step_exists(st, s, "tombstone reason", &found)) ==
	    STORE_OK && found) {
		column_text(s, 0, name, sizeof(name));
		if (rec_reason_by_name(name, reason) < 0)
			*reason = REASON_CLIENT;
	}
	sqlite3_reset(s);
	return err;
}

enum store_err
store_user_message_count(struct store *st, const char *user, int64_t *n)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_USER_MESSAGES)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	if ((err = step_row(st, s, "user messages")) != STORE_OK)
		return err == STORE_NOTFOUND ? STORE_IO : err;
	*n = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return STORE_OK;
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
 * the owner's of that name, else one created with that name.  A look-up
 * that fails fails the restore: it is no mailbox missing.
 */
static enum store_err
restore_target(struct store *st, const struct store_quarantined *q,
    struct store_mailbox *mb)
{
	char		 owner[USER_MAX_NAME + 1];
	enum store_err	 err;

	if ((err = store_mailbox_by_uniqueid(st, q->mailbox, mb, owner)) ==
	    STORE_OK && strcasecmp(owner, q->user) == 0)
		return STORE_OK;
	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	if ((err = store_mailbox_get(st, q->user, q->mailbox_name, mb)) !=
	    STORE_NOTFOUND)
		return err;
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
