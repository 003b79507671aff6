/*
 * store_web.c — the reads the web view's API makes (store.h): every
 * user's messages (or one user's) newest first in pages, counts, and
 * one message by its mailbox's uniqueid and UID.
 *
 * The order is (internaldate, mailbox id, uid), descending; a page goes
 * on from the position where the last one ended (keyset paging), so a
 * message that arrives while a long list is sent in steps neither
 * repeats nor hides another.  The index message_date (schema 15), with
 * the table's key (mailbox_id, uid) after internaldate, is that order:
 * a page walks it backwards from its position, whatever the store's
 * size.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"
#include "store_internal.h"

static const char sql_page[] =
	"SELECT mb.uniqueid, mb.id, u.name, mb.name, m.uid, b.guid, m.flags, "
	"  m.internaldate, b.size "
	"FROM message m JOIN mailbox mb ON mb.id = m.mailbox_id "
	"JOIN user u ON u.id = mb.user_id JOIN blob b ON b.id = m.blob_id "
	"WHERE (m.internaldate, m.mailbox_id, m.uid) < (?1, ?2, ?3) "
	"  AND (?6 IS NULL OR u.name = ?6) "
	"  AND m.uid < mb.uidnext "
	"ORDER BY m.internaldate DESC, m.mailbox_id DESC, m.uid DESC "
	"LIMIT ?4 OFFSET ?5";

static const char sql_get[] =
	"SELECT mb.uniqueid, mb.id, u.name, mb.name, m.uid, b.guid, m.flags, "
	"  m.internaldate, b.size "
	"FROM message m JOIN mailbox mb ON mb.id = m.mailbox_id "
	"JOIN user u ON u.id = mb.user_id JOIN blob b ON b.id = m.blob_id "
	"WHERE mb.uniqueid = ?1 AND m.uid = ?2 AND m.uid < mb.uidnext";

static const char sql_count[] =
	"SELECT count(*), coalesce(sum((m.flags & ?1) = 0), 0) FROM message m "
	"WHERE" MSG_SHOWN("m", "m.mailbox_id");

/* One user's: the mailboxes' counters (schema 15 and 17). */
static const char sql_count_user[] =
	"SELECT coalesce(sum(mb.nmessages), 0), coalesce(sum(mb.nunseen), 0) "
	"FROM mailbox mb JOIN user u ON u.id = mb.user_id WHERE u.name = ?1";

/* One row of sql_page or sql_get into *out. */
static void
web_row(sqlite3_stmt *s, struct store_web_message *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->uniqueid, sqlite3_column_blob(s, 0), MAILBOX_ID_LEN);
	out->mailbox_id = sqlite3_column_int64(s, 1);
	snprintf(out->user, sizeof(out->user), "%s",
	    (const char *)sqlite3_column_text(s, 2));
	snprintf(out->mailbox, sizeof(out->mailbox), "%s",
	    (const char *)sqlite3_column_text(s, 3));
	out->uid = (uint32_t)sqlite3_column_int64(s, 4);
	memcpy(out->guid, sqlite3_column_blob(s, 5), GUID_LEN);
	out->flags = (uint32_t)sqlite3_column_int64(s, 6);
	out->internaldate = sqlite3_column_int64(s, 7);
	out->size = (uint64_t)sqlite3_column_int64(s, 8);
}

void
store_web_top(struct store_web_pos *pos)
{
	pos->date = INT64_MAX;
	pos->mailbox_id = INT64_MAX;
	pos->uid = INT64_MAX;
}

enum store_err
store_web_page(struct store *st, const char *user, struct store_web_pos *pos,
    int64_t skip, struct store_web_message *out, size_t n, size_t *got)
{
	sqlite3_stmt	*s;
	int		 rc = SQLITE_DONE;

	*got = 0;
	if ((s = prepare(st, sql_page)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, pos->date);
	sqlite3_bind_int64(s, 2, pos->mailbox_id);
	sqlite3_bind_int64(s, 3, pos->uid);
	sqlite3_bind_int64(s, 4, (int64_t)n);
	sqlite3_bind_int64(s, 5, skip);
	if (user != NULL)
		sqlite3_bind_text(s, 6, user, -1, SQLITE_STATIC);
	while (*got < n && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		web_row(s, &out[*got]);
		pos->date = out[*got].internaldate;
		pos->mailbox_id = out[*got].mailbox_id;
		pos->uid = out[*got].uid;
		(*got)++;
	}
	if (*got < n && rc != SQLITE_DONE) {
		sqlite3_finalize(s);
		return db_error(st, rc, "web page");
	}
	sqlite3_finalize(s);
	return STORE_OK;
}

enum store_err
store_web_get(struct store *st, const char *user, const uint8_t *uniqueid,
    uint32_t uid, struct store_web_message *out)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = prepare(st, sql_get)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		web_row(s, out);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return user == NULL || strcmp(out->user, user) == 0 ? STORE_OK :
		    STORE_NOTFOUND;
	return rc == SQLITE_DONE ? STORE_NOTFOUND : db_error(st, rc, "web get");
}

enum store_err
store_web_count(struct store *st, const char *user, int64_t *total,
    int64_t *unread)
{
	sqlite3_stmt	*s;
	int		 rc;

	*total = *unread = 0;
	if ((s = prepare(st, user != NULL ? sql_count_user : sql_count)) ==
	    NULL)
		return STORE_IO;
	if (user != NULL)
		sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(s, 1, FLAG_SEEN);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*total = sqlite3_column_int64(s, 0);
		*unread = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? STORE_OK : db_error(st, rc, "web count");
}
