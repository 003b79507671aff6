/*
 * store_mailbox.c — mailboxes and the messages in them (store.h): get,
 * create, delete, rename and subscribe; deliver, flag, copy and expunge,
 * each with its replication log record.  The invariants of store.c's
 * head hold after every function here: uidnext only grows, every uid is
 * below it, a message's modseq is at most its mailbox's highestmodseq.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
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
#include "utf8.h"

/* Whether mailbox mbox_id has room for n more messages (max-messages). */
enum store_err
mailbox_room(struct store *st, int64_t mbox_id, size_t n)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 have;

	if (st->max_messages == 0)
		return STORE_OK;
	if ((s = stmt(st, S_MBOX_COUNT)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mbox_id);
	if ((err = step_row(st, s, "mailbox count")) != STORE_OK)
		return err;
	have = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return have + (int64_t)n > st->max_messages ? STORE_LIMIT : STORE_OK;
}

enum store_err
store_user_usage(struct store *st, int64_t mailbox_id,
    struct store_usage *out)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_USER_USAGE)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	if ((err = step_row(st, s, "user usage")) != STORE_OK)
		return err;
	out->messages = (uint64_t)sqlite3_column_int64(s, 0);
	out->bytes = (uint64_t)sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	return STORE_OK;
}

/* Whether a quota is set: without one, nothing is read for it. */
static int
quota_set(const struct store *st)
{
	return st->quota.messages != 0 || st->quota.bytes != 0;
}

/*
 * What the owner of mbox_id uses before a write that may grow it, for
 * quota_kept() after the write.
 */
enum store_err
quota_before(struct store *st, int64_t mbox_id, struct store_usage *before)
{
	*before = (struct store_usage){ 0, 0 };
	return quota_set(st) ? store_user_usage(st, mbox_id, before) :
	    STORE_OK;
}

/* Whether a use went past its limit (0: none) by growing. */
static int
passed(uint64_t limit, uint64_t before, uint64_t after)
{
	return limit != 0 && after > limit && after > before;
}

/*
 * After a write, inside its savepoint: STORE_QUOTA, for the caller to
 * undo the write, when it took the owner of mbox_id past a limit by
 * growing what they use.  A user already past a lowered limit may still
 * move and delete: that grows nothing.
 */
enum store_err
quota_kept(struct store *st, int64_t mbox_id,
    const struct store_usage *before)
{
	struct store_usage	 after;
	enum store_err		 err;

	if (!quota_set(st))
		return STORE_OK;
	if ((err = store_user_usage(st, mbox_id, &after)) != STORE_OK)
		return err;
	if (passed(st->quota.messages, before->messages, after.messages) ||
	    passed(st->quota.bytes, before->bytes, after.bytes))
		return STORE_QUOTA;
	return STORE_OK;
}

/*
 * Creates a mailbox for user_id inside the caller's savepoint.  Only a
 * new user's standard mailboxes start subscribed: IMAP CREATE does not
 * subscribe (RFC 3501 6.3.3), as in Dovecot and Cyrus.
 */
enum store_err
mailbox_insert(struct store *st, int64_t user_id, const char *user,
    const char *name, const char *special_use, int subscribed)
{
	uint8_t		 uniqueid[MAILBOX_ID_LEN];
	uint32_t	 uidvalidity = 0;
	sqlite3_stmt	*s;
	enum store_err	 err;
	struct replog_rec r = { .type = REC_MAILBOX_CREATE };

	if (crypto_random(uniqueid, sizeof(uniqueid)) < 0)
		return STORE_IO;
	if ((err = next_uidvalidity(st, &uidvalidity)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_MBOX_ADD)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, sizeof(uniqueid), SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, user_id);
	sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, uidvalidity);
	sqlite3_bind_text(s, 5, special_use, -1, SQLITE_STATIC);
	if ((err = step_done(st, s, "mailbox create")) != STORE_OK ||
	    (subscribed && (err = subscription_set(st, user_id, name, 1,
	    NULL)) != STORE_OK))
		return err;
	r.user = user;
	r.flags = (uint32_t)subscribed;
	r.mailbox = uniqueid;
	r.name = name;
	r.uid = uidvalidity;
	r.value = special_use;
	return replog_append(st, &r);
}

/*
 * Fills *m from the current row of an S_MBOX_GET, S_MBOX_LIST or
 * S_MBOX_BY_UNIQUEID walk (their first 12 columns are the same).
 */
void
mailbox_from_row(sqlite3_stmt *s, struct store_mailbox *m)
{
	memset(m, 0, sizeof(*m));
	m->id = sqlite3_column_int64(s, 0);
	if (sqlite3_column_bytes(s, 1) == MAILBOX_ID_LEN)
		memcpy(m->uniqueid, sqlite3_column_blob(s, 1), MAILBOX_ID_LEN);
	snprintf(m->name, sizeof(m->name), "%s", sqlite3_column_text(s, 2));
	m->uidvalidity = (uint32_t)sqlite3_column_int64(s, 3);
	m->uidnext = (uint32_t)sqlite3_column_int64(s, 4);
	m->highestmodseq = (uint64_t)sqlite3_column_int64(s, 5);
	m->subscribed = sqlite3_column_int(s, 6);
	snprintf(m->special_use, sizeof(m->special_use), "%s",
	    sqlite3_column_text(s, 7));
	m->messages = (uint32_t)sqlite3_column_int64(s, 8);
	m->named = sqlite3_column_int64(s, 9);
	m->unseen = (uint32_t)sqlite3_column_int64(s, 10);
	m->bytes = (uint64_t)sqlite3_column_int64(s, 11);
}

enum store_err
store_mailbox_get(struct store *st, const char *user, const char *name,
    struct store_mailbox *out)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MBOX_GET)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if ((err = step_row(st, s, "mailbox get")) != STORE_OK)
		return err;
	mailbox_from_row(s, out);
	sqlite3_reset(s);
	return STORE_OK;
}

/*
 * A mailbox name is 1..MAILBOX_MAX_NAME bytes, no control bytes, no
 * empty hierarchy level ("a//b", "/a", "a/"), and not a second INBOX.
 */
int
mailbox_name_valid(const char *name)
{
	size_t	 n = strlen(name), i;

	if (n == 0 || n > MAILBOX_MAX_NAME || name[0] == '/' ||
	    name[n - 1] == '/' || strstr(name, "//") != NULL)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] < ' ' || name[i] == 0x7f)
			return 0;
	return strcasecmp(name, "INBOX") != 0 || strcmp(name, "INBOX") == 0;
}

enum store_err
store_mailbox_create(struct store *st, const char *user, const char *name,
    const char *special_use, struct store_mailbox *out)
{
	enum store_err	 err;
	int64_t		 uid;
	char		 canon[USER_MAX_NAME + 1];

	if (!mailbox_name_valid(name))
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = user_lookup(st, user, &uid, canon)) == STORE_OK)
		err = mailbox_insert(st, uid, canon, name,
		    special_use ? special_use : "", 0);
	if ((err = op_end(st, err)) != STORE_OK)
		return err;
	return out ? store_mailbox_get(st, canon, name, out) : STORE_OK;
}

enum store_err
store_mailbox_foreach(struct store *st, const char *user,
    int (*cb)(void *, const struct store_mailbox *), void *arg)
{
	struct store_mailbox	 m;
	sqlite3_stmt		*s;
	int			 rc;

	if ((s = stmt(st, S_MBOX_LIST)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		mailbox_from_row(s, &m);
		if (cb(arg, &m) != 0)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "mailbox list");
}

/* Binds text or NULL. */
void
bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* A message's stored attributes, as message_insert() takes them. */

enum store_err
mailbox_unlocked(struct store *st, int64_t mbox_id)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt(st, S_COPY_TARGET)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mbox_id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return STORE_BUSY;
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, "copy target");
}

enum store_err
message_put(struct store *st, const struct msg_place *at, int64_t blob_id,
    const uint8_t *guid, const struct msg_attrs *a)
{
	sqlite3_stmt		*s;
	enum store_err		 err;
	char			 from[REC_FROM_TEXT_LEN];
	struct replog_rec	 r = { .type = REC_MESSAGE_APPEND,
				    .time = time(NULL) };

	if ((s = stmt(st, S_MSG_ADD)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, at->mbox_id);
	sqlite3_bind_int64(s, 2, at->uid);
	sqlite3_bind_int64(s, 3, blob_id);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)at->modseq);
	sqlite3_bind_int64(s, 5, a->flags);
	sqlite3_bind_text(s, 6, a->keywords ? a->keywords : "", -1,
	    SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, a->internaldate);
	sqlite3_bind_int64(s, 8, r.time);
	if ((err = step_done(st, s, "message add")) != STORE_OK)
		return err;
	r.mailbox = at->uniqueid;
	r.uid = at->uid;
	r.guid = guid;
	r.modseq = at->modseq;
	r.flags = a->flags;
	r.keywords = a->keywords;
	r.internaldate = a->internaldate;
	rec_from_text(a->renumbered_from, from);
	r.value = from;
	return replog_append(st, &r);
}

/*
 * Inserts a message referring to blob_id into mailbox mbox_id under the
 * mailbox's next UID, written to *uid.  The one place UIDs are assigned
 * (but for the copies of a COPY in steps, store_copy.c, which holds the
 * mailbox meanwhile: STORE_BUSY).  Its record names the UID a
 * renumbering moved it from (a->renumbered_from).
 * Its save date is now, the record's time, which a replica takes as its
 * save date too.
 */
enum store_err
message_insert(struct store *st, int64_t mbox_id, int64_t blob_id,
    const uint8_t *guid, const struct msg_attrs *a, uint32_t *uid)
{
	sqlite3_stmt		*s;
	enum store_err		 err;
	struct msg_place	 at = { .mbox_id = mbox_id };

	if ((err = mailbox_unlocked(st, mbox_id)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_MBOX_BUMP)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mbox_id);
	sqlite3_bind_int(s, 2, (a->flags & FLAG_SEEN) == 0);
	sqlite3_bind_int64(s, 3, blob_id);
	if ((err = step_row(st, s, "uidnext")) != STORE_OK)
		return err;
	*uid = at.uid = (uint32_t)sqlite3_column_int64(s, 0);
	at.modseq = (uint64_t)sqlite3_column_int64(s, 1);
	memcpy(at.uniqueid, sqlite3_column_blob(s, 2), MAILBOX_ID_LEN);
	sqlite3_reset(s);
	/* UIDs only grow; 2^32-1 is the last one IMAP allows. */
	assert(*uid > 0);
	if (*uid == UINT32_MAX)
		return STORE_FULL;
	return message_put(st, &at, blob_id, guid, a);
}

/* Finds a mailbox's local id by user and name. */
static enum store_err
mailbox_id(struct store *st, const char *user, const char *name,
    int64_t *id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MBOX_TARGET)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if ((err = step_row(st, s, "mailbox find")) != STORE_OK)
		return err;
	*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return STORE_OK;
}

/* Appends one message for target t (inside its own savepoint). */
static enum store_err
message_append(struct store *st, int64_t blob_id, const uint8_t *guid,
    struct store_target *t)
{
	struct msg_attrs	 a = { t->flags, t->keywords, t->internaldate,
				    0 };
	struct store_usage	 before;
	enum store_err		 err;
	int64_t			 mbox_id = 0;

	if ((err = mailbox_id(st, t->user, t->mailbox, &mbox_id)) != STORE_OK ||
	    (err = mailbox_room(st, mbox_id, 1)) != STORE_OK ||
	    (err = quota_before(st, mbox_id, &before)) != STORE_OK ||
	    (err = message_insert(st, mbox_id, blob_id, guid, &a,
	    &t->uid)) != STORE_OK)
		return err;
	return quota_kept(st, mbox_id, &before);
}

enum store_err
store_deliver(struct store *st, const struct store_blob_in *b,
    struct store_target *targets, size_t n)
{
	enum store_err	 err;
	int64_t		 blob_id = 0;
	size_t		 i, delivered = 0;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = blob_put(st, b, &blob_id)) != STORE_OK)
		return op_end(st, err);
	for (i = 0; i < n; i++) {
		targets[i].uid = 0;
		if (txn_lost(st)) {
			targets[i].result = st->fault;
			continue;
		}
		targets[i].result = savepoint_begin(st, SP_TARGET);
		if (targets[i].result != STORE_OK)
			continue;
		targets[i].result = savepoint_end(st, SP_TARGET,
		    message_append(st, blob_id, b->guid, &targets[i]));
		if (targets[i].result == STORE_OK)
			delivered++;
	}
	/* A blob no message refers to is not kept. */
	if (delivered == 0)
		return op_end(st, n > 0 ? targets[0].result : STORE_INVALID);
	return op_end(st, STORE_OK);
}

enum store_err
store_deliver_all(struct store *st, const struct store_blob_in *blobs,
    struct store_target *targets, size_t n)
{
	enum store_err	 err = n > 0 ? STORE_OK : STORE_INVALID;
	int64_t		 blob_id = 0;
	size_t		 i;

	if (err != STORE_OK || (err = op_begin(st)) != STORE_OK)
		return err;
	for (i = 0; i < n && err == STORE_OK; i++) {
		targets[i].uid = 0;
		if ((err = blob_put(st, &blobs[i], &blob_id)) == STORE_OK)
			err = message_append(st, blob_id, blobs[i].guid,
			    &targets[i]);
		targets[i].result = err;
	}
	return op_end(st, err);
}

/*
 * Steps a bound statement whose columns are those of S_MSG_LIST (uid,
 * guid, modseq, flags, keywords, internaldate, size, savedate), calling
 * cb per row.  A NULL guid (S_MSG_ROWS) is all zeroes.
 */
enum store_err
message_walk(struct store *st, sqlite3_stmt *s,
    int (*cb)(void *, const struct store_message *), void *arg,
    const char *what)
{
	struct store_message	 m;
	int			 rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		m.uid = (uint32_t)sqlite3_column_int64(s, 0);
		if (sqlite3_column_type(s, 1) == SQLITE_NULL)
			memset(m.guid, 0, GUID_LEN);
		else
			memcpy(m.guid, sqlite3_column_blob(s, 1), GUID_LEN);
		m.modseq = (uint64_t)sqlite3_column_int64(s, 2);
		m.flags = (uint32_t)sqlite3_column_int64(s, 3);
		m.keywords = (const char *)sqlite3_column_text(s, 4);
		m.internaldate = sqlite3_column_int64(s, 5);
		m.size = (uint64_t)sqlite3_column_int64(s, 6);
		m.savedate = sqlite3_column_int64(s, 7);
		if (cb(arg, &m) != 0)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, what);
}

enum store_err
store_message_foreach(struct store *st, int64_t mailbox_id,
    int (*cb)(void *, const struct store_message *), void *arg)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_MSG_LIST)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	return message_walk(st, s, cb, arg, "message list");
}

enum store_err
store_unseen_uids(struct store *st, int64_t mailbox_id, uint32_t after,
    uint32_t *uids, size_t max, size_t *n)
{
	sqlite3_stmt	*s;
	int		 rc;

	*n = 0;
	if ((s = stmt(st, S_MSG_UNSEEN)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int64(s, 3, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		uids[(*n)++] = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, "unseen uids");
}

/*
 * Runs a count of the mailbox's messages, statement id with the mailbox
 * as ?1 and uid as ?2 (when it has one), into *n.
 */
static enum store_err
message_count(struct store *st, enum stmt_id id, int64_t mailbox_id,
    uint32_t uid, uint32_t *n)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	*n = 0;
	if ((s = stmt(st, id)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	if (sqlite3_bind_parameter_count(s) > 1)
		sqlite3_bind_int64(s, 2, uid);
	if ((err = step_row(st, s, "count")) != STORE_OK)
		return err;
	*n = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_message_count_above(struct store *st, int64_t mailbox_id,
    uint32_t uid, uint32_t *n)
{
	return message_count(st, S_MSG_COUNT_ABOVE, mailbox_id, uid, n);
}

enum store_err
store_message_count_deleted(struct store *st, int64_t mailbox_id,
    uint32_t *n)
{
	return message_count(st, S_MSG_COUNT_DELETED, mailbox_id, 0, n);
}

/*
 * Bumps a mailbox's HIGHESTMODSEQ for one change that adds `unseen`
 * unseen messages (-1, 0 or 1: the counter of v17 in the same
 * statement); returns the new one.  STORE_BUSY while a COPY in steps
 * fills it (its copies took the next).
 */
static enum store_err
mailbox_next_modseq(struct store *st, int64_t mbox_id, int unseen,
    uint64_t *modseq, uint8_t uniqueid[MAILBOX_ID_LEN])
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = mailbox_unlocked(st, mbox_id)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_MBOX_MODSEQ)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mbox_id);
	sqlite3_bind_int(s, 2, unseen);
	if ((err = step_row(st, s, "modseq")) != STORE_OK)
		return err;
	*modseq = (uint64_t)sqlite3_column_int64(s, 0);
	memcpy(uniqueid, sqlite3_column_blob(s, 1), MAILBOX_ID_LEN);
	sqlite3_reset(s);
	return STORE_OK;
}

void
message_columns(struct store *st, sqlite3_stmt *s, struct store_message *m,
    int64_t *blob_id)
{
	m->uid = (uint32_t)sqlite3_column_int64(s, 0);
	memcpy(m->guid, sqlite3_column_blob(s, 1), GUID_LEN);
	m->modseq = (uint64_t)sqlite3_column_int64(s, 2);
	m->flags = (uint32_t)sqlite3_column_int64(s, 3);
	snprintf(st->keywords, sizeof(st->keywords), "%s",
	    sqlite3_column_text(s, 4));
	m->keywords = st->keywords;
	m->internaldate = sqlite3_column_int64(s, 5);
	m->size = (uint64_t)sqlite3_column_int64(s, 6);
	m->savedate = sqlite3_column_int64(s, 7);
	if (blob_id != NULL)
		*blob_id = sqlite3_column_int64(s, 8);
}

/* Reads one message's row; *blob_id too when wanted. */
enum store_err
message_row(struct store *st, int64_t mbox_id, uint32_t uid,
    struct store_message *m, int64_t *blob_id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MSG_GET)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mbox_id);
	sqlite3_bind_int64(s, 2, uid);
	if ((err = step_row(st, s, "message get")) != STORE_OK)
		return err;
	message_columns(st, s, m, blob_id);
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_message_get(struct store *st, int64_t mailbox_id, uint32_t uid,
    struct store_message *out)
{
	return message_row(st, mailbox_id, uid, out, NULL);
}

enum store_err
store_message_set_flags(struct store *st, int64_t mailbox_id, uint32_t uid,
    uint32_t flags, const char *keywords, uint64_t *modseq)
{
	struct store_message	 m;
	uint8_t			 uniqueid[MAILBOX_ID_LEN];
	sqlite3_stmt		*s;
	enum store_err		 err;
	struct replog_rec	 r = { .type = REC_MESSAGE_FLAGS };

	if (keywords != NULL && strlen(keywords) >= STORE_MAX_KEYWORDS)
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = message_row(st, mailbox_id, uid, &m, NULL)) != STORE_OK)
		return op_end(st, err);
	/* \Seen set or cleared: one unseen message less or more (v17). */
	if ((err = mailbox_next_modseq(st, mailbox_id, ((m.flags ^ flags) &
	    FLAG_SEEN) == 0 ? 0 : (flags & FLAG_SEEN) != 0 ? -1 : 1, modseq,
	    uniqueid)) != STORE_OK)
		return op_end(st, err);
	if ((s = stmt(st, S_MSG_SET_FLAGS)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, uid);
	sqlite3_bind_int64(s, 3, flags);
	sqlite3_bind_text(s, 4, keywords ? keywords : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)*modseq);
	if ((err = step_done(st, s, "set flags")) != STORE_OK)
		return op_end(st, err);
	r.mailbox = uniqueid;
	r.uid = uid;
	r.guid = m.guid;
	r.modseq = *modseq;
	r.flags = flags;
	r.keywords = keywords;
	return op_end(st, replog_append(st, &r));
}

/*
 * Expunges inside the caller's savepoint: the row goes, a tombstone with
 * the GUID and a new modseq stays (for QRESYNC and reconciliation).
 */
enum store_err
message_expunge(struct store *st, int64_t mailbox_id, uint32_t uid,
    int64_t *blob_id)
{
	struct store_message	 m;
	uint8_t			 uniqueid[MAILBOX_ID_LEN];
	uint64_t		 modseq;
	sqlite3_stmt		*s;
	enum store_err		 err;
	struct replog_rec	 r = { .type = REC_MESSAGE_EXPUNGE };

	if ((err = message_row(st, mailbox_id, uid, &m, blob_id)) != STORE_OK ||
	    (err = mailbox_next_modseq(st, mailbox_id, 0, &modseq, uniqueid)) !=
	    STORE_OK)
		return err;
	if ((s = stmt(st, S_MSG_DEL)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, uid);
	if ((err = step_done(st, s, "expunge")) != STORE_OK)
		return err;
	/* message_row() found it: one message less (schema_v15, v17). */
	if ((s = stmt(st, S_MBOX_UNCOUNT)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int(s, 2, (m.flags & FLAG_SEEN) == 0);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)m.size);
	if ((err = step_done(st, s, "uncount")) != STORE_OK)
		return err;
	if ((s = stmt(st, S_EXPUNGED_ADD)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uid);
	sqlite3_bind_blob(s, 3, m.guid, GUID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)modseq);
	sqlite3_bind_int64(s, 5, time(NULL));
	sqlite3_bind_text(s, 6, rec_reason_name(st->reason), -1,
	    SQLITE_STATIC);
	if ((err = step_done(st, s, "tombstone")) != STORE_OK)
		return err;
	r.mailbox = uniqueid;
	r.uid = uid;
	r.guid = m.guid;
	r.modseq = modseq;
	return replog_append(st, &r);
}

enum store_err
store_message_expunge(struct store *st, int64_t mailbox_id, uint32_t uid)
{
	enum store_err	 err;
	int64_t		 blob_id = 0;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = message_expunge(st, mailbox_id, uid, &blob_id)) == STORE_OK)
		err = blob_drop_unused(st, blob_id);
	return op_end(st, err);
}

enum store_err
store_mailbox_state(struct store *st, const struct store_mailbox *mb,
    uint32_t *uidnext, uint64_t *highestmodseq)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_MBOX_STATE)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mb->id);
	sqlite3_bind_blob(s, 2, mb->uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, mb->uidvalidity);
	sqlite3_bind_text(s, 4, mb->name, -1, SQLITE_STATIC);
	if ((err = step_row(st, s, "mailbox state")) != STORE_OK)
		return err;
	*uidnext = (uint32_t)sqlite3_column_int64(s, 0);
	*highestmodseq = (uint64_t)sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	return STORE_OK;
}

/* Copies inside the caller's savepoint; the blob is shared, not copied. */
static enum store_err
message_copy(struct store *st, int64_t from, uint32_t uid, int64_t to,
    uint32_t *new_uid)
{
	struct store_message	 m;
	struct msg_attrs	 a;
	int64_t			 blob_id = 0;
	enum store_err		 err;

	if ((err = message_row(st, from, uid, &m, &blob_id)) != STORE_OK)
		return err;
	a = (struct msg_attrs){ m.flags, m.keywords, m.internaldate, 0 };
	return message_insert(st, to, blob_id, m.guid, &a, new_uid);
}

enum store_err
store_message_copy(struct store *st, int64_t from_mailbox, uint32_t uid,
    int64_t to_mailbox, uint32_t *new_uid)
{
	return store_message_copy_many(st, from_mailbox, &uid, 1, to_mailbox,
	    new_uid, 0);
}

enum store_err
store_message_copy_many(struct store *st, int64_t from_mailbox,
    const uint32_t *uids, size_t n, int64_t to_mailbox, uint32_t *new_uids,
    int move)
{
	struct store_usage	 before;
	enum store_err		 err = STORE_OK;
	enum rec_reason		 was;
	size_t			 i;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	/* All or nothing: a copy that would pass a limit copies none. */
	if ((err = mailbox_room(st, to_mailbox, n)) != STORE_OK ||
	    (err = quota_before(st, to_mailbox, &before)) != STORE_OK)
		return op_end(st, err);
	/* A MOVE's records say so: its expunges keep every message. */
	was = store_set_reason(st, move ? REASON_MOVE : st->reason);
	for (i = 0; i < n && err == STORE_OK; i++) {
		err = message_copy(st, from_mailbox, uids[i], to_mailbox,
		    &new_uids[i]);
		if (err == STORE_OK && move)
			err = message_expunge(st, from_mailbox, uids[i], NULL);
	}
	(void)store_set_reason(st, was);
	if (err == STORE_OK)
		err = quota_kept(st, to_mailbox, &before);
	return op_end(st, err);
}

enum store_err
store_message_changes(struct store *st, int64_t mailbox_id, uint64_t since,
    int (*cb)(void *, const struct store_message *), void *arg)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, S_MSG_CHANGED)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)since);
	return message_walk(st, s, cb, arg, "changes");
}

enum store_err
store_expunged_since(struct store *st, const uint8_t *uniqueid,
    uint64_t since, int (*cb)(void *, uint32_t uid), void *arg)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt(st, S_EXPUNGED_SINCE)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)since);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb(arg, (uint32_t)sqlite3_column_int64(s, 0)) != 0)
			break;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "expunged since");
}

/* Walks a mailbox and its children ("name" and "name/..."). */
struct family {
	int64_t	 id;
	uint8_t	 uniqueid[MAILBOX_ID_LEN];
	char	 name[MAILBOX_MAX_NAME + 1];
};

/* Collects the mailbox `name` and its inferiors; *out is malloc'd. */
static enum store_err
mailbox_family(struct store *st, const char *user, const char *name,
    struct family **out, size_t *n)
{
	struct family	*v = NULL, *grown;
	sqlite3_stmt	*s;
	int		 rc;

	*n = 0;
	if ((s = stmt(st, S_MBOX_CHILDREN)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((grown = reallocarray(v, *n + 1, sizeof(*v))) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		v = grown;
		v[*n].id = sqlite3_column_int64(s, 0);
		memcpy(v[*n].uniqueid, sqlite3_column_blob(s, 1),
		    MAILBOX_ID_LEN);
		snprintf(v[*n].name, sizeof(v[*n].name), "%s",
		    sqlite3_column_text(s, 2));
		++*n;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		free(v);
		*n = 0;		/* nothing collected */
		return db_error(st, rc, "mailbox family");
	}
	*out = v;
	return STORE_OK;
}

enum store_err
store_mailbox_delete(struct store *st, const char *user, const char *name)
{
	struct store_mailbox	 mb;
	sqlite3_stmt		*s;
	enum store_err		 err;
	struct replog_rec	 r = { .type = REC_MAILBOX_DELETE };

	if (strcasecmp(name, "INBOX") == 0)
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = store_mailbox_get(st, user, name, &mb)) != STORE_OK ||
	    (err = mailbox_unlocked(st, mb.id)) != STORE_OK)
		return op_end(st, err);
	if ((s = stmt(st, S_MSG_EXPUNGE_ALL)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, mb.id);
	sqlite3_bind_blob(s, 2, mb.uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, time(NULL));
	sqlite3_bind_text(s, 4, rec_reason_name(st->reason), -1,
	    SQLITE_STATIC);
	err = step_done(st, s, "tombstones");
	if (err == STORE_OK)
		err = blob_gc_queue(st, mb.id);
	if ((s = stmt_next(st, S_MSG_DEL_ALL, &err)) != NULL) {
		sqlite3_bind_int64(s, 1, mb.id);
		err = step_done(st, s, "messages delete");
	}
	if ((s = stmt_next(st, S_MBOX_GONE, &err)) != NULL) {
		sqlite3_bind_blob(s, 1, mb.uniqueid, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
		sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, mb.name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, time(NULL));
		err = step_done(st, s, "mailbox tombstone");
	}
	if ((s = stmt_next(st, S_MBOX_DELETE, &err)) != NULL) {
		sqlite3_bind_int64(s, 1, mb.id);
		err = step_done(st, s, "mailbox delete");
	}
	r.user = user;
	r.mailbox = mb.uniqueid;
	r.name = mb.name;
	if (err == STORE_OK)
		err = replog_append(st, &r);
	return op_end(st, err);
}

/*
 * RFC 3501 renames INBOX by moving its messages into a new mailbox and
 * leaving INBOX, empty, in place.
 */
static int
collect_uid(void *arg, const struct store_message *m)
{
	struct {
		uint32_t	*v;
		size_t		 n;
	} *uids = arg;
	uint32_t *grown;

	if ((grown = reallocarray(uids->v, uids->n + 1, sizeof(*grown))) ==
	    NULL)
		return 1;
	uids->v = grown;
	uids->v[uids->n++] = m->uid;
	return 0;
}

static enum store_err
rename_inbox(struct store *st, const char *user, const char *to)
{
	struct store_mailbox	 inbox;
	enum store_err		 err;
	enum rec_reason		 was;
	int64_t			 uid, to_id = 0;
	uint32_t		 new_uid;
	size_t			 i;
	struct {
		uint32_t	*v;
		size_t		 n;
	} uids = { NULL, 0 };

	if ((err = user_lookup(st, user, &uid, NULL)) != STORE_OK ||
	    (err = mailbox_insert(st, uid, user, to, "", 0)) != STORE_OK ||
	    (err = mailbox_id(st, user, to, &to_id)) != STORE_OK ||
	    (err = store_mailbox_get(st, user, "INBOX", &inbox)) != STORE_OK ||
	    (err = store_message_foreach(st, inbox.id, collect_uid, &uids)) !=
	    STORE_OK)
		return err;
	if (uids.n != inbox.messages)
		err = STORE_IO;		/* out of memory while collecting */
	was = store_set_reason(st, REASON_MOVE);
	for (i = 0; i < uids.n && err == STORE_OK; i++)
		if ((err = message_copy(st, inbox.id, uids.v[i], to_id,
		    &new_uid)) == STORE_OK)
			err = message_expunge(st, inbox.id, uids.v[i], NULL);
	(void)store_set_reason(st, was);
	free(uids.v);
	return err;
}

/* The wall clock in milliseconds: when a client renamed a mailbox. */
static int64_t
wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum store_err
store_mailbox_rename(struct store *st, const char *user, const char *from,
    const char *to)
{
	struct store_mailbox	 exists;
	struct family		*fam = NULL;
	sqlite3_stmt		*s;
	enum store_err		 err;
	char			 name[MAILBOX_MAX_NAME + 2];
	size_t			 n = 0, i, flen = strlen(from);
	struct replog_rec	 r = { .type = REC_MAILBOX_RENAME };

	r.internaldate = wall_ms();
	if (!mailbox_name_valid(to) || strcasecmp(to, "INBOX") == 0)
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	/* A failed look-up is no "free": SQLite may have undone it all. */
	if ((err = store_mailbox_get(st, user, to, &exists)) == STORE_OK)
		return op_end(st, STORE_EXISTS);
	if (err != STORE_NOTFOUND)
		return op_end(st, err);
	if (strcasecmp(from, "INBOX") == 0)
		return op_end(st, rename_inbox(st, user, to));
	if ((err = mailbox_family(st, user, from, &fam, &n)) != STORE_OK)
		return op_end(st, err);
	if (n == 0 || strcmp(fam[0].name, from) != 0)
		err = STORE_NOTFOUND;
	for (i = 0; i < n && err == STORE_OK; i++) {
		if ((size_t)snprintf(name, sizeof(name), "%s%s", to,
		    fam[i].name + flen) > MAILBOX_MAX_NAME) {
			err = STORE_INVALID;
			break;
		}
		if ((s = stmt(st, S_MBOX_RENAME_ONE)) == NULL) {
			err = STORE_IO;
			break;
		}
		sqlite3_bind_int64(s, 1, fam[i].id);
		sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, r.internaldate);
		if ((err = step_done(st, s, "rename")) != STORE_OK)
			break;
		r.user = user;
		r.mailbox = fam[i].uniqueid;
		r.name = name;
		err = replog_append(st, &r);
	}
	free(fam);
	return op_end(st, err);
}

/*
 * Subscribes (on) or unsubscribes user_id's name inside the caller's
 * savepoint, whether or not a mailbox has that name; *changed (unless
 * NULL) says whether the list changed.
 */
enum store_err
subscription_set(struct store *st, int64_t user_id, const char *name,
    int on, int *changed)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, on ? S_SUB_ADD : S_SUB_DEL)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, user_id);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if ((err = step_done(st, s, "subscription")) == STORE_OK &&
	    changed != NULL)
		*changed = sqlite3_changes(st->db) > 0;
	return err;
}

/*
 * Subscribes or unsubscribes user's name, logged when the list changed,
 * inside the caller's savepoint; *changed says whether it did.
 */
enum store_err
subscription_write(struct store *st, const char *user, const char *name,
    int on, int *changed)
{
	enum store_err		 err;
	int64_t			 user_id;
	char			 canon[USER_MAX_NAME + 1];
	struct replog_rec	 r = { .type = REC_USER_SUBSCRIBE };

	if ((err = user_lookup(st, user, &user_id, canon)) != STORE_OK ||
	    (err = subscription_set(st, user_id, name, on, changed)) !=
	    STORE_OK || !*changed)
		return err;
	r.user = canon;
	r.name = name;
	r.flags = on != 0;
	return replog_append(st, &r);
}

/*
 * A client subscribes to a mailbox that exists (RFC 3501 6.3.6 lets a
 * server check), and unsubscribes from any name it subscribed to, the
 * mailbox there or not: STORE_NOTFOUND when neither.
 */
enum store_err
store_mailbox_subscribe(struct store *st, const char *user,
    const char *name, int subscribed)
{
	struct store_mailbox	 mb;
	enum store_err		 err, found;
	int			 changed = 0;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((found = store_mailbox_get(st, user, name, &mb)) == STORE_OK)
		name = mb.name;		/* INBOX in any case */
	else if (found != STORE_NOTFOUND || subscribed)
		return op_end(st, found);
	err = subscription_write(st, user, name, subscribed, &changed);
	if (err == STORE_OK && !changed && found == STORE_NOTFOUND)
		err = STORE_NOTFOUND;
	return op_end(st, err);
}

enum store_err
store_subscribed_absent(struct store *st, const char *user,
    int (*cb)(void *, const char *name), void *arg)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt(st, S_SUB_ABSENT)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb(arg, (const char *)sqlite3_column_text(s, 0)) != 0)
			break;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "subscription list");
}
