/*
 * store_user.c — accounts: adding, removing and changing users, their
 * passwords, and how a running server notices another process did so
 * (store.h).  A new user gets the standard mailboxes.
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

/* The mailboxes every new user gets, with their RFC 6154 use. */
static const struct {
	const char	*name;
	const char	*special_use;
} default_mailboxes[] = {
	{ "INBOX", "" },
	{ "Sent", "\\Sent" },
	{ "Drafts", "\\Drafts" },
	{ "Trash", "\\Trash" },
	{ "Junk", "\\Junk" },
	{ "Archive", "\\Archive" },
};

/* Looks a user up; fills id and, when wanted, the canonical name. */
enum store_err
user_lookup(struct store *st, const char *name, int64_t *id, char *canon)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_USER_FIND)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((err = step_row(st, s, "user find")) != STORE_OK)
		return err;
	*id = sqlite3_column_int64(s, 0);
	if (canon != NULL)
		snprintf(canon, USER_MAX_NAME + 1, "%s",
		    (const char *)sqlite3_column_text(s, 1));
	sqlite3_reset(s);
	return STORE_OK;
}

/*
 * A user name is 1..USER_MAX_NAME bytes of printable ASCII without '@',
 * '+' (the address separators), '/', '\\', '"' or white space, and
 * valid UTF-8 beyond ASCII (SMTPUTF8 local parts) without the C1
 * controls U+0080..U+009F.  Names are compared without case in ASCII
 * only, and never normalised: "jürgen" in NFC and NFD are two users.
 */
int
store_user_name_valid(const char *name)
{
	const unsigned char	*p = (const unsigned char *)name;
	size_t			 n = strlen(name), i, len;

	if (n == 0 || n > USER_MAX_NAME)
		return 0;
	for (i = 0; i < n; i += len) {
		if ((len = utf8_len(p + i, n - i)) == 0 ||
		    (len == 1 && (p[i] <= ' ' || p[i] == 0x7f ||
		    strchr("@+/\\\"", p[i]) != NULL)) ||
		    (len == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0))
			return 0;
	}
	return 1;
}

/* Draws a UIDVALIDITY never used before on this node. */
enum store_err
next_uidvalidity(struct store *st, uint32_t *out)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt(st, S_NODE_UIDVALIDITY)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, (uint32_t)time(NULL));
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_error(st, rc, "uidvalidity");
	}
	*out = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return *out == 0 ? STORE_INVALID : STORE_OK;
}

/*
 * Inserts user name with password hash pwhash and logs it for replicas;
 * *id is the new row.  Runs inside the caller's operation, which checked
 * the name and that no such user exists.
 */
enum store_err
user_insert(struct store *st, const char *name, const char *pwhash,
    int64_t *id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	struct replog_rec r = { .type = REC_USER_ADD };

	if ((s = stmt(st, S_USER_ADD)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, time(NULL));
	if ((err = step_done(st, s, "user add")) != STORE_OK)
		return err;
	*id = sqlite3_last_insert_rowid(st->db);
	r.user = name;
	r.value = pwhash;
	return replog_append(st, &r);
}

enum store_err
store_user_add(struct store *st, const char *name, const char *pwhash)
{
	enum store_err	 err;
	int64_t		 id;
	size_t		 i;

	if (!store_user_name_valid(name))
		return STORE_INVALID;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	err = user_insert(st, name, pwhash, &id);
	for (i = 0; err == STORE_OK && i < sizeof(default_mailboxes) /
	    sizeof(default_mailboxes[0]); i++)
		err = mailbox_insert(st, id, name, default_mailboxes[i].name,
		    default_mailboxes[i].special_use, 1);
	return op_end(st, err);
}

/*
 * Deletes a user with every mailbox and message, leaving tombstones so
 * that replicas and reconciliation see an explicit delete.
 */
enum store_err
store_user_del(struct store *st, const char *name)
{
	sqlite3_stmt	*s, *t;
	enum store_err	 err;
	int64_t		 uid, mbox;
	uint8_t		 uniqueid[MAILBOX_ID_LEN];
	char		 canon[USER_MAX_NAME + 1], mname[MAILBOX_MAX_NAME + 1];
	int		 rc;
	struct replog_rec r = { .type = REC_USER_DEL };

	st->users_gen++;	/* the user's sessions look again */
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = user_lookup(st, name, &uid, canon)) != STORE_OK)
		return op_end(st, err);
	if ((s = stmt(st, S_MBOX_OF_USER)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, uid);
	while (err == STORE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		mbox = sqlite3_column_int64(s, 0);
		memcpy(uniqueid, sqlite3_column_blob(s, 1), MAILBOX_ID_LEN);
		snprintf(mname, sizeof(mname), "%s", sqlite3_column_text(s, 2));
		if ((t = stmt(st, S_MSG_EXPUNGE_ALL)) == NULL) {
			err = STORE_IO;
			break;
		}
		sqlite3_bind_int64(t, 1, mbox);
		sqlite3_bind_blob(t, 2, uniqueid, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
		sqlite3_bind_int64(t, 3, time(NULL));
		err = step_done(st, t, "tombstones");
		if (err == STORE_OK)
			err = blob_gc_queue(st, mbox);
		if ((t = stmt_next(st, S_MSG_DEL_ALL, &err)) != NULL) {
			sqlite3_bind_int64(t, 1, mbox);
			err = step_done(st, t, "messages delete");
		}
		if ((t = stmt_next(st, S_MBOX_GONE, &err)) != NULL) {
			sqlite3_bind_blob(t, 1, uniqueid, MAILBOX_ID_LEN,
			    SQLITE_STATIC);
			sqlite3_bind_text(t, 2, canon, -1, SQLITE_STATIC);
			sqlite3_bind_text(t, 3, mname, -1, SQLITE_STATIC);
			sqlite3_bind_int64(t, 4, time(NULL));
			err = step_done(st, t, "mailbox tombstone");
		}
	}
	if (err == STORE_OK && rc != SQLITE_DONE)
		err = db_error(st, rc, "user mailboxes");
	sqlite3_reset(s);
	if (err != STORE_OK)
		return op_end(st, err);
	/* Mailboxes go after the walk: deleting rows under it is unsafe. */
	if ((t = stmt(st, S_MBOX_DEL_USER)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(t, 1, uid);
	err = step_done(st, t, "mailboxes delete");
	if ((t = stmt_next(st, S_USER_DEL, &err)) != NULL) {
		sqlite3_bind_int64(t, 1, uid);
		err = step_done(st, t, "user delete");
	}
	r.user = canon;
	if (err == STORE_OK)
		err = replog_append(st, &r);
	return op_end(st, err);
}

enum store_err
store_user_set_password(struct store *st, const char *name,
    const char *pwhash)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 id;
	char		 canon[USER_MAX_NAME + 1];
	struct replog_rec r = { .type = REC_USER_PASSWD };

	st->users_gen++;	/* the user's sessions look again */
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = user_lookup(st, name, &id, canon)) != STORE_OK)
		return op_end(st, err);
	if ((s = stmt(st, S_USER_SETPW)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, pwhash, -1, SQLITE_STATIC);
	err = step_done(st, s, "user passwd");
	r.user = canon;
	r.value = pwhash;
	if (err == STORE_OK)
		err = replog_append(st, &r);
	return op_end(st, err);
}

enum store_err
store_session_check(struct store *st, const char *name,
    const struct store_mailbox *mb, struct store_user_ident *ident,
    int *mailbox_kept)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = stmt(st, S_SESSION_CHECK)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (mb != NULL) {
		sqlite3_bind_int64(s, 2, mb->id);
		sqlite3_bind_blob(s, 3, mb->uniqueid, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, mb->uidvalidity);
		sqlite3_bind_text(s, 5, mb->name, -1, SQLITE_STATIC);
	}
	err = step_row(st, s, "session check");
	if (err == STORE_OK) {
		ident->id = sqlite3_column_int64(s, 0);
		crypto_sha256(sqlite3_column_text(s, 1),
		    (size_t)sqlite3_column_bytes(s, 1), ident->password);
		*mailbox_kept = mb == NULL || sqlite3_column_int(s, 2);
	}
	sqlite3_clear_bindings(s);
	sqlite3_reset(s);
	return err;
}

uint64_t
store_users_generation(const struct store *st)
{
	return st->users_gen;
}

void
store_poll_others(struct store *st)
{
	sqlite3_stmt	*s;
	int64_t		 v;

	if ((s = stmt(st, S_DATA_VERSION)) == NULL)
		return;
	if (sqlite3_step(s) == SQLITE_ROW) {
		v = sqlite3_column_int64(s, 0);
		if (v != st->data_version)
			st->users_gen++;
		st->data_version = v;
	}
	sqlite3_reset(s);
}

enum store_err
store_user_password(struct store *st, const char *name, char **pwhash)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	*pwhash = NULL;
	if ((s = stmt(st, S_USER_FIND)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((err = step_row(st, s, "user password")) != STORE_OK)
		return err;
	*pwhash = strdup((const char *)sqlite3_column_text(s, 2));
	sqlite3_reset(s);
	return *pwhash == NULL ? STORE_IO : STORE_OK;
}

enum store_err
store_user_hash(struct store *st, const char *name,
    char canon[USER_MAX_NAME + 1], char **pwhash)
{
	enum store_err	 err;

	*pwhash = NULL;
	if (strlen(name) > USER_MAX_NAME)
		return STORE_NOTFOUND;
	if ((err = store_user_find(st, name, canon)) != STORE_OK)
		return err;
	return store_user_password(st, canon, pwhash);
}

enum store_err
store_user_find(struct store *st, const char *name,
    char canon[USER_MAX_NAME + 1])
{
	int64_t	 id;

	if (!store_user_name_valid(name))
		return STORE_NOTFOUND;
	return user_lookup(st, name, &id, canon);
}

enum store_err
store_user_foreach(struct store *st,
    int (*cb)(void *, const char *, int64_t), void *arg)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt(st, S_USER_LIST)) == NULL)
		return STORE_IO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb(arg, (const char *)sqlite3_column_text(s, 0),
		    sqlite3_column_int64(s, 1)) != 0)
			break;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "user list");
}
