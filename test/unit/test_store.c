/*
 * test_store.c — the store API against a real database in a temp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crypto.h"
#include "spool.h"
#include "store.h"
#include "store_internal.h"	/* the database, to fail its statements */

struct fixture {
	char		 dir[64];
	struct store	*st;
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/mailrepd-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(f->dir, &f->st), STORE_OK);
	assert_int_equal(store_user_add(f->st, "alice", "$hash"), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		 cmd[128];

	store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Delivers `body` to user/mailbox; returns the target's result. */
static enum store_err
deliver(struct fixture *f, const char *mailbox, const char *body, size_t len,
    uint32_t *uid)
{
	struct spool		*sp = spool_new(f->dir);
	struct store_blob_in	 blob;
	struct store_target	 t = { .user = "alice", .mailbox = mailbox,
				    .internaldate = 1700000000 };
	enum store_err		 err;

	assert_non_null(sp);
	spool_add_bytes(sp, body, len);
	assert_int_equal(spool_finish(sp, &blob), 0);
	err = store_deliver(f->st, &blob, &t, 1);
	spool_free(sp);
	if (err == STORE_OK)
		err = t.result;
	*uid = t.uid;
	return err;
}

static int
count_messages(void *arg, const struct store_message *m)
{
	(void)m;
	++*(int *)arg;
	return 0;
}

static void
test_new_user_has_special_mailboxes(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 mb;

	assert_int_equal(store_mailbox_get(f->st, "ALICE", "inbox", &mb),
	    STORE_OK);
	assert_string_equal(mb.name, "INBOX");
	assert_int_equal(mb.uidnext, 1);
	assert_true(mb.uidvalidity > 0);
	assert_int_equal(store_mailbox_get(f->st, "alice", "Sent", &mb),
	    STORE_OK);
	assert_string_equal(mb.special_use, "\\Sent");
	assert_int_equal(store_mailbox_get(f->st, "alice", "sent", &mb),
	    STORE_NOTFOUND);
	assert_int_equal(store_user_add(f->st, "Alice", "x"), STORE_EXISTS);
	assert_int_equal(store_user_add(f->st, "a@b", "x"), STORE_INVALID);
	assert_int_equal(store_mailbox_create(f->st, "alice", "a//b", NULL,
	    NULL), STORE_INVALID);
	assert_int_equal(store_mailbox_create(f->st, "alice", "Inbox", NULL,
	    NULL), STORE_INVALID);
}

/* User names: ASCII rules, and valid UTF-8 only beyond ASCII. */
static void
test_user_names(void **state)
{
	static const char *const good[] = {
		"alice", "Bob.Smith_2", "j\xc3\xbcrgen", "\xe5\xbc\xa0\xe4\xbc\x9f",
		"\xf0\x9f\x93\xac", "\xc2\xa1x",
	};
	static const char *const bad[] = {
		"", "a b", "a@b", "a+b", "a/b", "a\\b", "a\"b", "a\rb", "a\tb",
		"a\x7f", "j\xfcrgen", "j\xc3", "\xc0\xaf", "\xe0\x80\xaf",
		"\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xc2\x85" "b", "\xff",
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_true(store_user_name_valid(good[i]));
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_false(store_user_name_valid(bad[i]));
}

static void
test_uids_grow_and_blobs_are_shared(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 mb;
	const char		 msg[] = "Subject: x\r\n\r\nbody\r\n";
	uint32_t		 uid;
	int			 n = 0;

	assert_int_equal(deliver(f, "INBOX", msg, strlen(msg), &uid), STORE_OK);
	assert_int_equal(uid, 1);
	assert_int_equal(deliver(f, "INBOX", msg, strlen(msg), &uid), STORE_OK);
	assert_int_equal(uid, 2);
	assert_int_equal(deliver(f, "Nope", msg, strlen(msg), &uid),
	    STORE_NOTFOUND);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &mb),
	    STORE_OK);
	assert_int_equal(mb.uidnext, 3);
	assert_int_equal(mb.messages, 2);
	assert_int_equal(mb.highestmodseq, 3);
	assert_int_equal(store_message_foreach(f->st, mb.id, count_messages,
	    &n), STORE_OK);
	assert_int_equal(n, 2);
}

/* A rolled-back delivery leaves the UID counter where it was. */
static void
test_rollback_keeps_nothing(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 mb;
	const char		 msg[] = "a\r\n";
	uint32_t		 uid;

	assert_int_equal(deliver(f, "INBOX", msg, 3, &uid), STORE_OK);
	store_rollback(f->st);
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &mb),
	    STORE_OK);
	assert_int_equal(mb.uidnext, 1);
	assert_int_equal(mb.messages, 0);
}

/* While set, the savepoint "op" can be neither released nor undone. */
static int	 deny_op_end;

/* An authorizer that refuses RELEASE op and ROLLBACK TO op when told. */
static int
refuse_op_end(void *arg, int action, const char *what, const char *name,
    const char *db, const char *trigger)
{
	(void)arg;
	(void)db;
	(void)trigger;
	if (deny_op_end && action == SQLITE_SAVEPOINT && name != NULL &&
	    strcmp(name, "op") == 0 && (strcmp(what, "RELEASE") == 0 ||
	    strcmp(what, "ROLLBACK") == 0))
		return SQLITE_DENY;
	return SQLITE_OK;
}

/*
 * A savepoint neither kept nor undone dooms its transaction, which the
 * group commit rolls back; the next transaction that
 * store_write_try() opens (as a session does before a write) starts
 * clean: its first mutation is not refused for the old one's doom.
 */
static void
test_doom_ends_with_its_transaction(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 mb;

	sqlite3_set_authorizer(f->st->db, refuse_op_end, NULL);
	assert_int_equal(store_write_try(f->st), STORE_OK);
	deny_op_end = 1;
	assert_int_not_equal(store_mailbox_create(f->st, "alice", "Doomed",
	    NULL, &mb), STORE_OK);
	deny_op_end = 0;
	assert_int_not_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(store_write_try(f->st), STORE_OK);
	assert_int_equal(store_mailbox_create(f->st, "alice", "Next", NULL,
	    &mb), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "Next", &mb),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "Doomed", &mb),
	    STORE_NOTFOUND);
	sqlite3_set_authorizer(f->st->db, NULL, NULL);
}

static void
count_problem(void *arg, const char *problem)
{
	(void)problem;
	++*(int *)arg;
}

/* Bytes come back exactly, across chunk boundaries, compressed or not. */
static void
test_blob_round_trip(void **state)
{
	struct fixture			*f = *state;
	struct store_blob_reader	*r;
	size_t				 len = 3 * 65536 + 123, i;
	char				*msg = malloc(len), *back = malloc(len);
	uint8_t				 guid[GUID_LEN];
	uint64_t			 size, problems, blobs;
	uint32_t			 uid;
	int				 seen = 0;

	srand(42);
	for (i = 0; i < len; i++)	/* half compressible, half not */
		msg[i] = i < len / 2 ? "abc\r\n"[i % 5] : (char)rand();
	assert_int_equal(deliver(f, "INBOX", msg, len, &uid), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	crypto_sha256(msg, len, guid);
	assert_int_equal(store_blob_open(f->st, guid, &r, &size), STORE_OK);
	assert_int_equal(size, len);
	assert_int_equal(store_blob_read(r, 0, back, len), (ssize_t)len);
	assert_memory_equal(back, msg, len);
	assert_int_equal(store_blob_read(r, 65530, back, 20), 20);
	assert_memory_equal(back, msg + 65530, 20);
	assert_int_equal(store_blob_read(r, len, back, 10), 0);
	store_blob_close(r);
	assert_int_equal(store_check(f->st, count_problem, &seen, &blobs,
	    &problems), STORE_OK);
	assert_int_equal(problems, 0);
	assert_int_equal(seen, 0);
	free(msg);
	free(back);
}

/* check finds a blob whose bytes no longer match its GUID. */
static void
test_check_finds_corruption(void **state)
{
	struct fixture	*f = *state;
	const char	 msg[] = "Subject: y\r\n\r\nsome body\r\n";
	uint64_t	 blobs, problems;
	uint32_t	 uid;
	char		 path[128];
	sqlite3		*db;
	int		 seen = 0;

	assert_int_equal(deliver(f, "INBOX", msg, strlen(msg), &uid), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(store_check(f->st, count_problem, &seen, &blobs,
	    &problems), STORE_OK);
	assert_int_equal(problems, 0);
	assert_int_equal(blobs, 1);
	snprintf(path, sizeof(path), "%s/mailrepd.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE piece SET "
	    "data = CAST('Subject: y\r\n\r\nsome BODY\r\n' AS BLOB)", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_check(f->st, count_problem, &seen, &blobs,
	    &problems), STORE_OK);
	assert_int_equal(problems, 1);
	assert_int_equal(seen, 1);
}

/* Deleting a user leaves tombstones and no orphan blob. */
static void
test_user_del(void **state)
{
	struct fixture	*f = *state;
	const char	 msg[] = "x\r\n";
	char		*pw;
	uint32_t	 uid;

	assert_int_equal(deliver(f, "INBOX", msg, 3, &uid), STORE_OK);
	assert_int_equal(store_user_del(f->st, "alice"), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(store_user_password(f->st, "alice", &pw),
	    STORE_NOTFOUND);
	assert_int_equal(store_user_del(f->st, "alice"), STORE_NOTFOUND);
	assert_true(store_replog_head(f->st) > 0);
}

/*
 * The log's running hash: each record changes it, a position keeps its
 * hash, and a purge keeps the hash where it stopped (a replica that
 * applied up to there is still checked); purged positions before that
 * are unknown.
 */
static void
test_replog_hash_chain(void **state)
{
	struct fixture	*f = *state;
	uint8_t		 h1[LOG_HASH_LEN], h2[LOG_HASH_LEN], again[LOG_HASH_LEN];
	uint32_t	 uid;
	int64_t		 p1, p2, purged;

	p1 = store_replog_head(f->st);
	assert_int_equal(store_replog_hash(f->st, p1, h1), STORE_OK);
	assert_int_equal(deliver(f, "INBOX", "x\r\n", 3, &uid), STORE_OK);
	p2 = store_replog_head(f->st);
	assert_true(p2 > p1);
	assert_int_equal(store_replog_hash(f->st, p2, h2), STORE_OK);
	assert_memory_not_equal(h1, h2, LOG_HASH_LEN);
	assert_int_equal(store_replog_hash(f->st, p2 + 1, again),
	    STORE_NOTFOUND);
	assert_int_equal(store_replog_purge(f->st, p2, 0, &purged), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(purged, p2);
	assert_int_equal(store_replog_hash(f->st, p2, again), STORE_OK);
	assert_memory_equal(h2, again, LOG_HASH_LEN);
	assert_int_equal(store_replog_hash(f->st, p1, again), STORE_NOTFOUND);
	/* The chain goes on from the purged base. */
	assert_int_equal(deliver(f, "INBOX", "y\r\n", 3, &uid), STORE_OK);
	assert_int_equal(store_replog_hash(f->st, p2 + 1, again), STORE_OK);
	assert_memory_not_equal(h2, again, LOG_HASH_LEN);
}

static int
collect_expunged(void *arg, uint32_t uid)
{
	*(uint32_t *)arg = uid;
	return 0;
}

/* Flags take a new MODSEQ; expunge leaves a tombstone; copy shares. */
static void
test_flags_expunge_copy(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 in, sent;
	struct store_message	 m;
	const char		 msg[] = "Subject: z\r\n\r\nz\r\n";
	uint64_t		 modseq;
	uint32_t		 uid, copied, gone = 0;
	int			 n = 0;

	assert_int_equal(deliver(f, "INBOX", msg, strlen(msg), &uid), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &in),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "Sent", &sent),
	    STORE_OK);
	assert_int_equal(store_message_set_flags(f->st, in.id, uid,
	    FLAG_SEEN | FLAG_FLAGGED, "$Label1", &modseq), STORE_OK);
	assert_int_equal(modseq, in.highestmodseq + 1);
	assert_int_equal(store_message_get(f->st, in.id, uid, &m), STORE_OK);
	assert_int_equal(m.flags, FLAG_SEEN | FLAG_FLAGGED);
	assert_string_equal(m.keywords, "$Label1");
	assert_int_equal(store_message_copy(f->st, in.id, uid, sent.id,
	    &copied), STORE_OK);
	assert_int_equal(copied, 1);
	assert_int_equal(store_message_changes(f->st, in.id, modseq - 1,
	    count_messages, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_message_expunge(f->st, in.id, uid), STORE_OK);
	assert_int_equal(store_message_get(f->st, in.id, uid, &m),
	    STORE_NOTFOUND);
	assert_int_equal(store_expunged_since(f->st, in.uniqueid, modseq,
	    collect_expunged, &gone), STORE_OK);
	assert_int_equal(gone, uid);
	/* The copy still has the bytes: the blob is shared, not dropped. */
	assert_int_equal(store_message_get(f->st, sent.id, copied, &m),
	    STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
}

/* An authorizer that refuses every read of the blob table. */
static int
refuse_blob(void *arg, int action, const char *table, const char *column,
    const char *db, const char *trigger)
{
	(void)arg;
	(void)column;
	(void)db;
	(void)trigger;
	return action == SQLITE_READ && table != NULL &&
	    strcmp(table, "blob") == 0 ? SQLITE_DENY : SQLITE_OK;
}

/* What a walk saw: each row's uid, flags and keywords, as one string. */
struct seen_rows {
	char		 text[512];
	uint32_t	 after;
};

static int
note_row(void *arg, const struct store_message *m)
{
	struct seen_rows	*w = arg;
	size_t			 n = strlen(w->text);

	snprintf(w->text + n, sizeof(w->text) - n, "%u:%u:%s ", m->uid,
	    m->flags, m->keywords);
	w->after = m->uid;
	return 0;
}

/*
 * store_message_uids() and store_message_keywords(), what SELECT reads
 * into a session's view: the same uids in the same order as
 * store_message_range(), batch by batch, an expunged message and one
 * above upto left out, the keywords of the messages that have some,
 * and without reading a single blob row (a SELECT of 100,000 messages
 * read 100,000 of those for nothing: 70 ms instead of 15).
 */
static void
test_view_rows_read_no_blob(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 mb;
	struct seen_rows	 full, kw;
	char			 msg[64], lean[512];
	uint64_t		 modseq;
	uint32_t		 uid, i, uids[2];
	size_t			 n, k;

	for (i = 1; i <= 7; i++) {
		snprintf(msg, sizeof(msg), "Subject: %u\r\n\r\nbody\r\n", i);
		assert_int_equal(deliver(f, "INBOX", msg, strlen(msg), &uid),
		    STORE_OK);
	}
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &mb),
	    STORE_OK);
	assert_int_equal(store_message_set_flags(f->st, mb.id, 2,
	    FLAG_SEEN | FLAG_FLAGGED, "$Label1 work", &modseq), STORE_OK);
	assert_int_equal(store_message_set_flags(f->st, mb.id, 6, FLAG_SEEN,
	    NULL, &modseq), STORE_OK);
	assert_int_equal(store_message_set_flags(f->st, mb.id, 5, 0, "x",
	    &modseq), STORE_OK);
	assert_int_equal(store_message_set_flags(f->st, mb.id, 7, 0, "late",
	    &modseq), STORE_OK);
	assert_int_equal(store_message_expunge(f->st, mb.id, 4), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	sqlite3_set_authorizer(f->st->db, refuse_blob, NULL);
	lean[0] = '\0';
	uid = 0;
	do {
		assert_int_equal(store_message_uids(f->st, mb.id, uid, 6, uids,
		    2, &n), STORE_OK);
		for (k = 0; k < n; k++)
			snprintf(lean + strlen(lean), sizeof(lean) -
			    strlen(lean), "%u ", uid = uids[k]);
	} while (n == 2);
	memset(&kw, 0, sizeof(kw));
	do {
		uid = kw.after;
		assert_int_equal(store_message_keywords(f->st, mb.id, uid, 6, 1,
		    note_row, &kw), STORE_OK);
	} while (kw.after != uid);
	memset(&full, 0, sizeof(full));
	/* the authorizer works: the walk with the blob's columns fails */
	assert_int_not_equal(store_message_range(f->st, mb.id, 0, 6, 100,
	    note_row, &full), STORE_OK);
	sqlite3_set_authorizer(f->st->db, NULL, NULL);
	memset(&full, 0, sizeof(full));
	assert_int_equal(store_message_range(f->st, mb.id, 0, 6, 100,
	    note_row, &full), STORE_OK);
	assert_string_equal(full.text, "1:0: 2:5:$Label1 work 3:0: "
	    "5:0:x 6:1: ");
	assert_string_equal(lean, "1 2 3 5 6 ");
	assert_string_equal(kw.text, "2:0:$Label1 work 5:0:x ");
}

/*
 * A node promoted while a conflict it opened as a replica was open: when
 * a replica says the copy was expunged or renumbered there, the copy
 * goes and its conflict is over (it stayed open for good, jepsen seed
 * 1207 life 19).  Another message at that uid is not touched.
 */
static void
test_dropped_copy_resolves_its_conflict(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 in;
	struct store_message	 m;
	struct store_conflict	 k;
	const char		 msg[] = "Subject: c\r\n\r\nc\r\n";
	uint8_t			 other[GUID_LEN];
	uint32_t		 uid;

	assert_int_equal(deliver(f, "INBOX", msg, strlen(msg), &uid), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &in),
	    STORE_OK);
	assert_int_equal(store_message_get(f->st, in.id, uid, &m), STORE_OK);
	memset(&k, 0, sizeof(k));
	k.time = time(NULL);
	strcpy(k.user, "alice");
	strcpy(k.mailbox_name, "INBOX");
	memcpy(k.mailbox, in.uniqueid, MAILBOX_ID_LEN);
	k.uid = uid;
	memcpy(k.local_guid, m.guid, GUID_LEN);
	strcpy(k.op, "message.local");
	assert_int_equal(store_conflict_add(f->st, &k), STORE_OK);
	assert_int_equal(store_conflict_count(f->st, NULL), 1);
	memcpy(other, m.guid, GUID_LEN);
	other[0] ^= 1;
	assert_int_equal(store_drop_copy(f->st, in.uniqueid, uid, other,
	    REASON_RENUMBER), STORE_NOTFOUND);
	assert_int_equal(store_message_get(f->st, in.id, uid, &m), STORE_OK);
	assert_int_equal(store_conflict_count(f->st, NULL), 1);
	assert_int_equal(store_drop_copy(f->st, in.uniqueid, uid, m.guid,
	    REASON_RENUMBER), STORE_OK);
	assert_int_equal(store_message_get(f->st, in.id, uid, &m),
	    STORE_NOTFOUND);
	assert_int_equal(store_conflict_count(f->st, NULL), 0);
	assert_int_equal(store_commit(f->st), STORE_OK);
}

/* Rename takes children along; INBOX rename moves the messages. */
static void
test_rename_and_delete(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 mb;
	const char		 msg[] = "x\r\n";
	uint32_t		 uid;

	assert_int_equal(store_mailbox_create(f->st, "alice", "a", NULL,
	    NULL), STORE_OK);
	assert_int_equal(store_mailbox_create(f->st, "alice", "a/b", NULL,
	    NULL), STORE_OK);
	assert_int_equal(store_mailbox_create(f->st, "alice", "ab", NULL,
	    NULL), STORE_OK);
	assert_int_equal(store_mailbox_rename(f->st, "alice", "a", "c"),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "c/b", &mb),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "ab", &mb),
	    STORE_OK);
	assert_int_equal(store_mailbox_rename(f->st, "alice", "c", "ab"),
	    STORE_EXISTS);
	assert_int_equal(deliver(f, "INBOX", msg, 3, &uid), STORE_OK);
	assert_int_equal(store_mailbox_rename(f->st, "alice", "INBOX", "old"),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "old", &mb),
	    STORE_OK);
	assert_int_equal(mb.messages, 1);
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &mb),
	    STORE_OK);
	assert_int_equal(mb.messages, 0);
	assert_int_equal(mb.uidnext, 2);
	assert_int_equal(store_mailbox_subscribe(f->st, "alice", "old", 0),
	    STORE_OK);
	assert_int_equal(store_mailbox_delete(f->st, "alice", "INBOX"),
	    STORE_INVALID);
	assert_int_equal(store_mailbox_delete(f->st, "alice", "old"),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "old", &mb),
	    STORE_NOTFOUND);
	assert_int_equal(store_commit(f->st), STORE_OK);
}

/* Counts the UIDs store_expunged_since() lists. */
static int
count_uids(void *arg, uint32_t uid)
{
	(void)uid;
	++*(int *)arg;
	return 0;
}

/* One purge step with the given bounds; returns its counts. */
static struct store_purged
purge(struct fixture *f, int64_t acked, int64_t tombs_before, int keep)
{
	struct store_purge	 p = { acked, tombs_before, keep,
				    time(NULL) + 10, 0 };
	struct store_purged	 out;

	assert_int_equal(store_purge_step(f->st, &p, &out), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	return out;
}

/*
 * Tombstones go only once acknowledged (their log position at or below
 * `acked`), past retention, and not while kept; each mailbox remembers
 * the highest MODSEQ purged.  Resolved conflicts go, open ones stay.
 */
static void
test_purge_keeps_what_replicas_need(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 in;
	struct store_purged	 out;
	sqlite3			*db;
	char			 path[128];
	int64_t			 head;
	uint64_t		 modseq;
	uint32_t		 uid;
	int			 n, i;
	time_t			 later = time(NULL) + 10;

	for (i = 0; i < 3; i++)
		assert_int_equal(deliver(f, "INBOX", i == 0 ? "a\n" : i == 1 ?
		    "b\n" : "c\n", 2, &uid), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &in),
	    STORE_OK);
	head = store_replog_head(f->st);
	assert_int_equal(store_message_expunge(f->st, in.id, 1), STORE_OK);
	assert_int_equal(store_message_expunge(f->st, in.id, 2), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	snprintf(path, sizeof(path), "%s/mailrepd.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO conflict (time, user, "
	    "mailbox, mailbox_name, uid, local_guid, master_guid, op, "
	    "master_seq, resolved) VALUES (0, 'alice', x'00', 'INBOX', 9, "
	    "x'00', x'00', 'message.append', 0, 1), (0, 'alice', x'00', "
	    "'INBOX', 9, x'00', x'00', 'message.append', 0, 0)", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);

	/* No replica has the expunges: both stay; the resolved conflict goes. */
	out = purge(f, head, later, 0);
	assert_int_equal(out.expunged, 0);
	assert_int_equal(out.conflict, 1);
	assert_int_equal(store_conflict_count(f->st, NULL), 1);
	/* Acknowledged, but within retention, or kept: they stay. */
	assert_int_equal(purge(f, INT64_MAX, 0, 0).expunged, 0);
	assert_int_equal(purge(f, INT64_MAX, later, 1).expunged, 0);
	assert_int_equal(store_tombs_purged(f->st, in.uniqueid), 0);
	/* The first expunge acknowledged: its tombstone alone goes. */
	assert_int_equal(purge(f, head + 1, later, 0).expunged, 1);
	n = 0;
	assert_int_equal(store_expunged_since(f->st, in.uniqueid, 0,
	    count_uids, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(store_tombs_purged(f->st, in.uniqueid) > 0);
	assert_int_equal(purge(f, head + 2, later, 0).expunged, 1);
	assert_int_equal(store_mailbox_state(f->st, &in, &uid, &modseq),
	    STORE_OK);
	assert_int_equal(store_tombs_purged(f->st, in.uniqueid), modseq);
}

/*
 * A uid below UIDNEXT with neither a message nor a tombstone was held
 * here only when its tombstone was purged: a RELOCATE of one expunges
 * it on the replicas (STORE_NOTFOUND), of a uid a raised UIDNEXT
 * skipped (never given here) moves and logs nothing (STORE_INVALID).
 * Purged uids join across held ones (a message, a tombstone), never
 * across a uid never given.
 */
static void
test_purged_uids_are_told_from_uids_never_given(void **state)
{
	struct fixture		*f = *state;
	struct store_mailbox	 in;
	struct store_message	 m;
	uint8_t			 g1[GUID_LEN], g3[GUID_LEN], g20[GUID_LEN];
	int64_t			 head;
	uint32_t		 uid, moved;
	int			 i;
	time_t			 later = time(NULL) + 10;
	char			 body[16];

	for (i = 0; i < 6; i++) {
		snprintf(body, sizeof(body), "m%d\n", i);
		assert_int_equal(deliver(f, "INBOX", body, strlen(body), &uid),
		    STORE_OK);
	}
	assert_int_equal(store_mailbox_get(f->st, "alice", "INBOX", &in),
	    STORE_OK);
	/* A reconciliation took a replica's UIDNEXT: 7 to 19 never given. */
	assert_int_equal(store_mailbox_raise_uidnext(f->st, in.uniqueid, 20),
	    STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(deliver(f, "INBOX", "late\n", 5, &uid), STORE_OK);
	assert_int_equal(uid, 20);
	assert_int_equal(store_message_get(f->st, in.id, 1, &m), STORE_OK);
	memcpy(g1, m.guid, GUID_LEN);
	assert_int_equal(store_message_get(f->st, in.id, 3, &m), STORE_OK);
	memcpy(g3, m.guid, GUID_LEN);
	assert_int_equal(store_message_get(f->st, in.id, 20, &m), STORE_OK);
	memcpy(g20, m.guid, GUID_LEN);
	assert_int_equal(store_message_expunge(f->st, in.id, 1), STORE_OK);
	assert_int_equal(store_message_expunge(f->st, in.id, 3), STORE_OK);
	assert_int_equal(store_message_expunge(f->st, in.id, 20), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(purge(f, INT64_MAX, later, 0).expunged, 3);

	/* Never given: refused, and no record. */
	head = store_replog_head(f->st);
	assert_int_equal(store_relocate(f->st, in.uniqueid, 10, g3, 0,
	    &moved), STORE_INVALID);
	assert_int_equal(store_relocate(f->st, in.uniqueid, 19, g20, 0,
	    &moved), STORE_INVALID);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(store_replog_head(f->st), head);
	/* Held and purged, across the message at 2 and past the skip. */
	assert_int_equal(store_relocate(f->st, in.uniqueid, 3, g3, 0,
	    &moved), STORE_NOTFOUND);
	assert_int_equal(store_relocate(f->st, in.uniqueid, 1, g1, 0,
	    &moved), STORE_NOTFOUND);
	assert_int_equal(store_relocate(f->st, in.uniqueid, 20, g20, 0,
	    &moved), STORE_NOTFOUND);
	/* The message at 2, and a uid held still, stay as they are. */
	assert_int_equal(store_relocate(f->st, in.uniqueid, 2, g3, 0,
	    &moved), STORE_INVALID);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(store_replog_head(f->st), head + 3);
	/* Another purge, of the message between, keeps it all so. */
	assert_int_equal(store_message_expunge(f->st, in.id, 2), STORE_OK);
	assert_int_equal(store_commit(f->st), STORE_OK);
	assert_int_equal(purge(f, INT64_MAX, later, 0).expunged, 1);
	assert_int_equal(store_relocate(f->st, in.uniqueid, 12, g1, 0,
	    &moved), STORE_INVALID);
	assert_int_equal(store_relocate(f->st, in.uniqueid, 2, g1, 0,
	    &moved), STORE_NOTFOUND);
	assert_int_equal(store_commit(f->st), STORE_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_names),
		cmocka_unit_test_setup_teardown(
		    test_new_user_has_special_mailboxes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_uids_grow_and_blobs_are_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_keeps_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_doom_ends_with_its_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_round_trip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_check_finds_corruption,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_replog_hash_chain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_user_del, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_dropped_copy_resolves_its_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags_expunge_copy, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_view_rows_read_no_blob,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_and_delete, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_purge_keeps_what_replicas_need, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_purged_uids_are_told_from_uids_never_given, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
