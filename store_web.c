/*
 * store_web.c — the reads the web view's API makes (store.h): every
 * user's messages (or one user's, or one mailbox's) newest first in
 * pages, counts (the mailboxes' counters), and one message by its
 * mailbox's uniqueid and UID.  A user who logged in over HTTP is held
 * to their own mail by the filter the API makes (web_api.c).
 *
 * The order is (internaldate, mailbox id, uid), descending; a page goes
 * on from the position where the last one ended (keyset paging), so a
 * message that arrives while a long list is sent in steps neither
 * repeats nor hides another.  The index message_date (schema 15), with
 * the table's key (mailbox_id, uid) after internaldate, is that order:
 * a page walks it backwards from its position, whatever the store's
 * size.  A page deep in the list is reached by moving the position
 * over the index alone (store_web_skip), a bounded run of it a step,
 * never by an OFFSET over the joined rows.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"
#include "store_internal.h"

/* A filter's terms: ?5 a user's name ("": any), ?6 a mailbox (0: any). */
#define WEB_FILTER							\
	"AND (?5 = '' OR m.mailbox_id IN (SELECT fm.id FROM mailbox fm "	\
	"  JOIN user fu ON fu.id = fm.user_id WHERE fu.name = ?5)) "	\
	"AND (?6 = 0 OR m.mailbox_id = ?6) "

static const char sql_page[] =
	"SELECT mb.uniqueid, mb.id, u.name, mb.name, m.uid, b.guid, m.flags, "
	"  m.internaldate, b.size, b.id "
	"FROM message m JOIN mailbox mb ON mb.id = m.mailbox_id "
	"JOIN user u ON u.id = mb.user_id JOIN blob b ON b.id = m.blob_id "
	"WHERE (m.internaldate, m.mailbox_id, m.uid) < (?1, ?2, ?3) "
	WEB_FILTER
	"AND m.uid < mb.uidnext "
	"ORDER BY m.internaldate DESC, m.mailbox_id DESC, m.uid DESC "
	"LIMIT ?4";

/*
 * The position n - 1 messages past *pos, counting only the messages a
 * page shows (MSG_SHOWN, as sql_page's "m.uid < mb.uidnext"): the
 * copies a COPY in steps keeps hidden would move a deep page by as
 * many while it runs.  The index and each message's mailbox row alone.
 */
static const char sql_skip[] =
	"SELECT m.internaldate, m.mailbox_id, m.uid FROM message m "
	"WHERE (m.internaldate, m.mailbox_id, m.uid) < (?1, ?2, ?3) "
	WEB_FILTER
	"AND" MSG_SHOWN("m", "m.mailbox_id")
	"ORDER BY m.internaldate DESC, m.mailbox_id DESC, m.uid DESC "
	"LIMIT 1 OFFSET ?4";

static const char sql_get[] =
	"SELECT mb.uniqueid, mb.id, u.name, mb.name, m.uid, b.guid, m.flags, "
	"  m.internaldate, b.size, b.id "
	"FROM message m JOIN mailbox mb ON mb.id = m.mailbox_id "
	"JOIN user u ON u.id = mb.user_id JOIN blob b ON b.id = m.blob_id "
	"WHERE mb.uniqueid = ?1 AND m.uid = ?2 AND m.uid < mb.uidnext";

/* From the mailboxes' counters (schema 13 and 17): no message is read. */
static const char sql_count[] =
	"SELECT coalesce(sum(mb.nmessages), 0), coalesce(sum(mb.nunseen), 0) "
	"FROM mailbox mb JOIN user u ON u.id = mb.user_id "
	"WHERE (?5 = '' OR u.name = ?5) AND (?6 = 0 OR mb.id = ?6)";

/* The statements, kept prepared in st->web_stmts. */
enum web_stmt {
	W_PAGE,
	W_SKIP,
	W_GET,
	W_COUNT,
};

static const char *const web_sql[STORE_WEB_STMTS] = {
	[W_PAGE] = sql_page,
	[W_SKIP] = sql_skip,
	[W_GET] = sql_get,
	[W_COUNT] = sql_count,
};

/*
 * Statement id, reset and unbound: prepared on first use and kept, as
 * a list's steps run it again and again.  NULL when it cannot be.  Its
 * user resets it when done, so that it holds no read lock.
 */
static sqlite3_stmt *
web_stmt(struct store *st, enum web_stmt id)
{
	sqlite3_stmt	**sp = &st->web_stmts[id];
	int		  rc;

	if (*sp != NULL) {
		sqlite3_reset(*sp);
		sqlite3_clear_bindings(*sp);
		return *sp;
	}
	if ((rc = sqlite3_prepare_v3(st->db, web_sql[id], -1,
	    SQLITE_PREPARE_PERSISTENT, sp, NULL)) != SQLITE_OK) {
		db_error(st, rc, "web prepare");
		return NULL;
	}
	return *sp;
}

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
	out->blob_id = sqlite3_column_int64(s, 9);
}

void
store_web_top(struct store_web_pos *pos)
{
	pos->date = INT64_MAX;
	pos->mailbox_id = INT64_MAX;
	pos->uid = INT64_MAX;
}

/* Binds a position (?1-?3) and a filter (?5, ?6). */
static void
bind_pos(sqlite3_stmt *s, const struct store_web_pos *pos,
    const struct store_web_filter *f)
{
	sqlite3_bind_int64(s, 1, pos->date);
	sqlite3_bind_int64(s, 2, pos->mailbox_id);
	sqlite3_bind_int64(s, 3, pos->uid);
	sqlite3_bind_text(s, 5, f->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, f->mailbox_id);
}

/* Whether the filter takes message m (as WEB_FILTER would). */
static int
takes(const struct store_web_filter *f, const struct store_web_message *m)
{
	return (f->user[0] == '\0' || strcmp(f->user, m->user) == 0) &&
	    (f->mailbox_id == 0 || f->mailbox_id == m->mailbox_id);
}

enum store_err
store_web_page(struct store *st, const struct store_web_filter *f,
    struct store_web_pos *pos, struct store_web_message *out, size_t n,
    size_t *got)
{
	sqlite3_stmt	*s;
	int		 rc = SQLITE_DONE;

	*got = 0;
	if ((s = web_stmt(st, W_PAGE)) == NULL)
		return STORE_IO;
	bind_pos(s, pos, f);
	sqlite3_bind_int64(s, 4, (int64_t)n);
	while (*got < n && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		web_row(s, &out[*got]);
		pos->date = out[*got].internaldate;
		pos->mailbox_id = out[*got].mailbox_id;
		pos->uid = out[*got].uid;
		(*got)++;
	}
	if (*got < n && rc != SQLITE_DONE) {
		sqlite3_reset(s);
		return db_error(st, rc, "web page");
	}
	sqlite3_reset(s);
	return STORE_OK;
}

enum store_err
store_web_skip(struct store *st, const struct store_web_filter *f,
    struct store_web_pos *pos, int64_t n, int *end)
{
	sqlite3_stmt	*s;
	int		 rc;

	*end = 0;
	if (n <= 0)
		return STORE_OK;
	if ((s = web_stmt(st, W_SKIP)) == NULL)
		return STORE_IO;
	bind_pos(s, pos, f);
	sqlite3_bind_int64(s, 4, n - 1);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		pos->date = sqlite3_column_int64(s, 0);
		pos->mailbox_id = sqlite3_column_int64(s, 1);
		pos->uid = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	*end = rc == SQLITE_DONE;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "web skip");
}

enum store_err
store_web_get(struct store *st, const struct store_web_filter *f,
    const uint8_t *uniqueid, uint32_t uid, struct store_web_message *out)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = web_stmt(st, W_GET)) == NULL)
		return STORE_IO;
	sqlite3_bind_blob(s, 1, uniqueid, MAILBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		web_row(s, out);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return takes(f, out) ? STORE_OK : STORE_NOTFOUND;
	return rc == SQLITE_DONE ? STORE_NOTFOUND : db_error(st, rc, "web get");
}

enum store_err
store_web_count(struct store *st, const struct store_web_filter *f,
    int64_t *total, int64_t *unread)
{
	sqlite3_stmt	*s;
	int		 rc;

	*total = *unread = 0;
	if ((s = web_stmt(st, W_COUNT)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 5, f->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, f->mailbox_id);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*total = sqlite3_column_int64(s, 0);
		*unread = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? STORE_OK : db_error(st, rc, "web count");
}
