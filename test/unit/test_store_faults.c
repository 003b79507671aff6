/*
 * test_store_faults.c — SQLite's allocations failing at every N, the way
 * SQLite tests itself, while a replica applies a batch, a master
 * renumbers, a client's changes share a group commit, a MOVE runs in
 * steps, the search index takes a batch, a replica deletes a user and a
 * mailbox and the operator cleans up, the mass-delete guard holds and
 * releases records, a conflict's copy is dropped, a restored store takes
 * a new identity, and a backup is made and restored: each run either
 * keeps all of its work or none of it, the store passes its check, and
 * the same work then succeeds.  In the group commit each mutation is
 * answered on its own: what was answered OK is kept exactly when the
 * commit succeeds, and nothing refused is ever kept.  Likewise a
 * replica's batch on the edges of its rules, a promoted replica's
 * bookkeeping, an abandoned COPY undone by the sweep, and a new store
 * made.  The store's yes/no look-ups fail or answer right, never "no"
 * on a failure, and its check finds all of a damaged store's damage or
 * says it could not look.
 *
 * Each run starts from a copy of one prepared store, so the statements
 * are prepared inside the run and their failures are reached too.  Runs
 * go every N up to FAULT_RUNS; MAILREPD_FAULTS_LONG=1 runs every N, and
 * MAILREPD_FAULTS_ONLY=PATTERN only the tests whose names match it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crypto.h"
#include "mime.h"
#include "store.h"
#include "unit_faults.h"

#define FAULT_RUNS	60	/* runs per scenario unless long */
#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static const char	*run_dir;	/* the copy a run works on */

static const uint8_t BOX[MAILBOX_ID_LEN] = "box-of-the-test";
static const char BODY1[] = "Subject: one\r\n\r\nthe first\r\n";
static const char BODY2[] = "Subject: two\r\n\r\nthe second\r\n";
static const char BODYX[] = "Subject: other\r\n\r\nanother at two\r\n";

static const char BODY3[] = "Subject: three\r\n\r\nthe third\r\n";
static const char BODY4[] = "Subject: four\r\n\r\nthe fourth\r\n";
static const char BODY5[] = "Subject: five\r\n\r\nthe fifth\r\n";
static const char BODY6[] = "Subject: six\r\n\r\nthe sixth\r\n";

#define BODIES	8	/* bodies blob() keeps parsed */

/* A body as the replica hands it to the store, parsed once. */
static struct store_blob_in
blob(const char *text)
{
	static struct mime_result	 parsed[BODIES];
	static const char		*of[BODIES];
	struct store_blob_in		 b;
	size_t				 i;

	for (i = 0; i < BODIES && of[i] != NULL && of[i] != text; i++)
		;
	assert_true(i < BODIES);
	if (of[i] == NULL) {
		assert_int_equal(mime_parse_buffer(text, strlen(text),
		    &parsed[i]), 0);
		of[i] = text;
	}
	memset(&b, 0, sizeof(b));
	b.fd = -1;
	b.mem = (const uint8_t *)text;
	b.size = strlen(text);
	b.mime = &parsed[i];
	crypto_sha256(text, b.size, b.guid);
	return b;
}

/* One integer a query on the store's file gives (its own connection). */
static long
query(const char *dir, const char *sql)
{
	sqlite3		*db;
	sqlite3_stmt	*s;
	char		 path[128];
	long		 v = -1;

	snprintf(path, sizeof(path), "%s/mailrepd.db", dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL),
	    SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* query() in the middle of a run, its allocations neither failed nor counted. */
static long
query_unarmed(const char *dir, const char *sql)
{
	long	 was = countdown, n = counted, v;

	countdown = -1;
	v = query(dir, sql);
	countdown = was;
	counted = n;
	return v;
}

static void
report(void *arg, const char *problem)
{
	(void)arg;
	fprintf(stderr, "check: %s\n", problem);
}

/* The store in dir passes its check. */
static void
check_clean(const char *dir)
{
	struct store	*st;
	uint64_t	 blobs = 0, problems = 0;

	assert_int_equal(store_open(dir, &st), STORE_OK);
	assert_int_equal(store_check(st, report, NULL, &blobs, &problems),
	    STORE_OK);
	assert_int_equal(problems, 0);
	store_close(st);
}

/* A fresh directory holding a copy of template's store. */
static void
copy_store(const char *template, char dir[64])
{
	char	 cmd[256];

	strcpy(dir, "/dev/shm/mailrepd-faults-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "cp %s/mailrepd.db %s/", template, dir);
	assert_int_equal(system(cmd), 0);
}

static void
remove_store(const char *dir)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * A scenario: prepare(dir) makes the template once; run(st) does the
 * work on an open copy (STORE_OK when all of it is kept), done(dir) and
 * untouched(dir) say whether the copy holds all of it or none.  Work
 * that commits in steps has settle(st), which does on the store a
 * failure left, reopened, what the server does at its next start (NULL:
 * nothing); with may_finish, what settles may be all of the work (a
 * MOVE whose copies show finishes) rather than none of it.
 */
struct scenario {
	void		(*prepare)(struct store *);
	enum store_err	(*run)(struct store *);
	int		(*done)(const char *dir);
	int		(*untouched)(const char *dir);
	void		(*settle)(struct store *);
	int		 may_finish;
};

/*
 * Runs sc with allocation n failing (none when n < 0); 1 when nothing
 * failed; *total (when not NULL) is the number of allocations made.
 */
static int
run_once(const struct scenario *sc, const char *template, long n,
    long *total)
{
	struct store	*st;
	enum store_err	 err;
	char		 dir[64];
	int		 clean, finished = 0;

	copy_store(template, dir);
	run_dir = dir;
	assert_int_equal(store_open(dir, &st), STORE_OK);
	arm(n);
	err = sc->run(st);
	if (err == STORE_OK)
		err = store_commit(st);
	else
		store_rollback(st);
	clean = n < 0 || countdown >= 0;	/* n never reached */
	if (total != NULL)
		*total = counted;
	disarm();
	store_close(st);
	if (err == STORE_OK)
		assert_true(sc->done(dir));
	else {
		assert_false(clean);
		if (sc->settle != NULL) {
			assert_int_equal(store_open(dir, &st), STORE_OK);
			sc->settle(st);
			assert_int_equal(store_commit(st), STORE_OK);
			store_close(st);
		}
		finished = sc->may_finish && sc->done(dir);
		if (!finished)
			assert_true(sc->untouched(dir));
	}
	check_clean(dir);
	/* The same work on the store as the failure left it succeeds. */
	if (err != STORE_OK && !finished) {
		assert_int_equal(store_open(dir, &st), STORE_OK);
		assert_int_equal(sc->run(st), STORE_OK);
		assert_int_equal(store_commit(st), STORE_OK);
		store_close(st);
		assert_true(sc->done(dir));
	}
	remove_store(dir);
	return clean;
}

/* A fresh directory holding a store that prepare(st) made. */
static void
make_template(char template[64], void (*prepare)(struct store *))
{
	struct store	*st;

	strcpy(template, "/dev/shm/mailrepd-template-XXXXXX");
	assert_non_null(mkdtemp(template));
	assert_int_equal(store_open(template, &st), STORE_OK);
	prepare(st);
	assert_int_equal(store_commit(st), STORE_OK);
	store_close(st);
}

/*
 * Makes sc's template, then runs once(sc, template, n, total) clean and
 * with allocation n failing for n from 0 on.
 */
static void
fault_loop(const struct scenario *sc, int (*once)(const struct scenario *,
    const char *, long, long *))
{
	char		 template[64];
	long		 total = 0, n, step;
	const char	*env = getenv("MAILREPD_FAULTS_LONG");

	make_template(template, sc->prepare);
	/* A clean run counts the allocations. */
	assert_true(once(sc, template, -1, &total));
	step = env != NULL && strcmp(env, "1") == 0 ? 1 :
	    total / FAULT_RUNS + 1;
	for (n = 0; n < total; n += step)
		(void)once(sc, template, n, NULL);
	remove_store(template);
}

/* --- a replica's batch ------------------------------------------------ */

static void
replica_prepare(struct store *st)
{
	(void)st;
}

static enum store_err
replica_batch(struct store *st)
{
	struct store_blob_in	 b1 = blob(BODY1), b2 = blob(BODY2);
	struct store_blob_in	 bx = blob(BODYX);
	struct store_conflict	 k;
	enum store_apply	 what;
	enum store_err		 err;
	uint8_t			 local[GUID_LEN], gone[GUID_LEN];
	uint8_t			 id[NODE_ID_LEN], epoch[EPOCH_LEN];
	uint8_t			 hash[LOG_HASH_LEN];

	memset(gone, 7, sizeof(gone));
	memset(id, 1, sizeof(id));
	memset(epoch, 2, sizeof(epoch));
	memset(hash, 3, sizeof(hash));
	if ((err = store_batch_begin(st)) != STORE_OK)
		return err;
	if ((err = store_apply_user_add(st, "bob", "$h", &what)) ==
	    STORE_OK)
		err = store_apply_mailbox_create(st, "bob", BOX, "INBOX", 7,
		    "", 1, &what);
	if (err == STORE_OK)
		err = store_apply_append(st, BOX, 1, b1.guid, 0, NULL,
		    1700000000, 1700000000, 0, &b1, &what, local);
	if (err == STORE_OK)
		err = store_apply_append(st, BOX, 2, b2.guid, FLAG_SEEN, "kw",
		    1700000000, 1700000000, 0, &b2, &what, local);
	/* Sent again without its body, other flags: they merge. */
	if (err == STORE_OK)
		err = store_apply_append(st, BOX, 1, b1.guid, FLAG_FLAGGED,
		    NULL, 1700000000, 1700000000, 0, NULL, &what, local);
	if (err == STORE_OK)
		err = store_apply_flags(st, BOX, 2, b2.guid, FLAG_SEEN, NULL,
		    &what, local);
	/* Another message at uid 2: a conflict, recorded. */
	if (err == STORE_OK)
		err = store_apply_append(st, BOX, 2, bx.guid, 0, NULL,
		    1700000000, 1700000000, 0, &bx, &what, local);
	if (err == STORE_OK) {
		assert_int_equal(what, APPLY_CONFLICT);
		memset(&k, 0, sizeof(k));
		snprintf(k.user, sizeof(k.user), "bob");
		snprintf(k.mailbox_name, sizeof(k.mailbox_name), "INBOX");
		memcpy(k.mailbox, BOX, MAILBOX_ID_LEN);
		k.uid = 2;
		memcpy(k.local_guid, local, GUID_LEN);
		memcpy(k.master_guid, bx.guid, GUID_LEN);
		snprintf(k.op, sizeof(k.op), "message.append");
		k.master_seq = 7;
		err = store_conflict_add(st, &k);
	}
	if (err == STORE_OK)
		err = store_apply_expunge(st, BOX, 1, b1.guid, &what, local);
	/* An expunge of a uid never here: the uid is taken all the same. */
	if (err == STORE_OK)
		err = store_apply_expunge(st, BOX, 5, gone, &what, local);
	if (err == STORE_OK)
		err = store_apply_mailbox_rename(st, BOX, "Kept", 1700000001,
		    &what);
	if (err == STORE_OK)
		err = store_apply_subscribe(st, "bob", "News", 1, &what);
	if (err == STORE_OK)
		err = store_node_applied(st, id, epoch, 9, hash);
	return store_batch_end(st, err);
}

static int
replica_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM user WHERE name = 'bob'") ==
	    1 && query(dir, "SELECT count(*) FROM mailbox WHERE name = "
	    "'Kept' AND uidnext = 6") == 1 &&
	    query(dir, "SELECT count(*) FROM message WHERE uid = 2 AND "
	    "flags = 1") == 1 &&
	    query(dir, "SELECT count(*) FROM message") == 1 &&
	    query(dir, "SELECT count(*) FROM conflict") == 1 &&
	    query(dir, "SELECT count(*) FROM quarantine WHERE uid = 1") ==
	    1 && query(dir, "SELECT count(*) FROM subscription WHERE name "
	    "= 'News'") == 1 && query(dir, "SELECT applied FROM node") == 9;
}

static int
replica_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM user") == 0 &&
	    query(dir, "SELECT count(*) FROM mailbox") == 0 &&
	    query(dir, "SELECT count(*) FROM message") == 0 &&
	    query(dir, "SELECT count(*) FROM conflict") == 0 &&
	    query(dir, "SELECT count(*) FROM quarantine") == 0 &&
	    query(dir, "SELECT coalesce(applied, 0) FROM node") == 0;
}

static void
test_replica_batch_under_alloc_faults(void **state)
{
	static const struct scenario sc = { replica_prepare, replica_batch,
	    replica_done, replica_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- a master renumbering a replica's copy ------------------------------ */

static void
master_prepare(struct store *st)
{
	struct store_blob_in	 b1 = blob(BODY1), b2 = blob(BODY2);
	enum store_apply	 what;
	uint8_t			 local[GUID_LEN];

	assert_int_equal(store_apply_user_add(st, "bob", "$h", &what),
	    STORE_OK);
	assert_int_equal(store_apply_mailbox_create(st, "bob", BOX, "INBOX",
	    7, "", 1, &what), STORE_OK);
	assert_int_equal(store_apply_append(st, BOX, 1, b1.guid, 0, NULL,
	    1700000000, 1700000000, 0, &b1, &what, local), STORE_OK);
	assert_int_equal(store_apply_append(st, BOX, 2, b2.guid, 0, NULL,
	    1700000000, 1700000000, 0, &b2, &what, local), STORE_OK);
}

/*
 * The replica's copy of uid 1 is another message: both move above the
 * replica's UIDNEXT (5); then the replica asks the master to move its
 * uid 2 above 10 (a uid it used for another message).  One transaction.
 */
static enum store_err
master_renumber(struct store *st)
{
	struct store_blob_in	 bx = blob(BODYX), b2 = blob(BODY2);
	enum store_err		 err;
	uint32_t		 new_uid, moved;

	err = store_renumber(st, BOX, 1, bx.guid, FLAG_SEEN, "theirs",
	    1700000000, &bx, 5, &new_uid);
	if (err == STORE_OK)
		err = store_relocate(st, BOX, 2, b2.guid, 10, &moved);
	return err;
}

static int
master_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 3 &&
	    query(dir, "SELECT min(uid) FROM message") >= 5 &&
	    query(dir, "SELECT max(uid) FROM message") >= 10 &&
	    query(dir, "SELECT count(*) FROM renumbered") >= 3;
}

static int
master_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 2 &&
	    query(dir, "SELECT max(uid) FROM message") == 2 &&
	    query(dir, "SELECT count(*) FROM renumbered") == 0 &&
	    query(dir, "SELECT uidnext FROM mailbox") == 3;
}

static void
test_renumbering_under_alloc_faults(void **state)
{
	static const struct scenario sc = { master_prepare, master_renumber,
	    master_done, master_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- renumbering asked again, and for what cannot be moved ---------------- */

/*
 * On the renumbered master: the same requests again (each only logs
 * the copy's leaving again: STORE_EXISTS), a relocation of a UID whose
 * tombstone names another message and of one never given out (nothing
 * done: STORE_INVALID), bad arguments, and a replica's copy of the
 * master's own message at its own UID (STORE_EXISTS).
 */
static enum store_err
renumber_again_run(struct store *st)
{
	struct store_blob_in	 bx = blob(BODYX), b2 = blob(BODY2);
	struct store_blob_in	 b6 = blob(BODY6);
	static const struct {
		int		 relocate;
		uint32_t	 uid;
		int		 body;		/* 0: BODYX, 1: BODY2, 2: BODY6 */
		uint32_t	 above;
		enum store_err	 want;
	} asks[] = {
		{ 0, 1, 0, 5, STORE_EXISTS },
		{ 1, 2, 1, 10, STORE_EXISTS },
		{ 1, 1, 2, 10, STORE_INVALID },
		{ 1, 40, 2, 10, STORE_INVALID },
		{ 1, 0, 2, 10, STORE_INVALID },
		{ 0, UINT32_MAX, 2, 10, STORE_INVALID },
	};
	const struct store_blob_in	*b[] = { &bx, &b2, &b6 };
	enum store_err			 err;
	uint32_t			 new_uid;
	size_t				 i;

	for (i = 0; i < nitems(asks); i++) {
		if (asks[i].relocate)
			err = store_relocate(st, BOX, asks[i].uid,
			    b[asks[i].body]->guid, asks[i].above, &new_uid);
		else
			err = store_renumber(st, BOX, asks[i].uid,
			    b[asks[i].body]->guid, 0, NULL, 1700000000,
			    b[asks[i].body], asks[i].above, &new_uid);
		if (err != asks[i].want)
			return err != STORE_OK ? err : STORE_IO;
	}
	return STORE_OK;
}

static long	 renumbered_head;	/* the template's log head */

static void
renumbered_prepare(struct store *st)
{
	master_prepare(st);
	assert_int_equal(master_renumber(st), STORE_OK);
	renumbered_head = (long)store_replog_head(st);
}

/* The two requests asked again logged the copies' leaving again. */
static int
renumber_again_done(const char *dir)
{
	char	 sql[96];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM replog WHERE seq > "
	    "%ld", renumbered_head);
	return query(dir, sql) == 2 && query(dir, "SELECT count(*) FROM "
	    "message") == 3;
}

static int
renumber_again_untouched(const char *dir)
{
	return query(dir, "SELECT max(seq) FROM replog") == renumbered_head &&
	    query(dir, "SELECT count(*) FROM message") == 3;
}

static void
test_renumbering_again_under_alloc_faults(void **state)
{
	static const struct scenario sc = { renumbered_prepare,
	    renumber_again_run, renumber_again_done,
	    renumber_again_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- a client's changes on a master ---------------------------------- */

/* Delivers body to user's mailbox; STORE_OK only when it is there. */
static enum store_err
deliver(struct store *st, const char *user, const char *mailbox,
    const char *body)
{
	struct store_blob_in	 b = blob(body);
	struct store_target	 t;
	enum store_err		 err;

	memset(&t, 0, sizeof(t));
	t.user = user;
	t.mailbox = mailbox;
	t.internaldate = 1700000000;
	if ((err = store_deliver(st, &b, &t, 1)) != STORE_OK)
		return err;
	return t.result;
}

/* A mailbox's local id, or 0 (*err says why). */
static int64_t
mailbox_id(struct store *st, const char *user, const char *name,
    enum store_err *err)
{
	struct store_mailbox	 mb;

	if ((*err = store_mailbox_get(st, user, name, &mb)) != STORE_OK)
		return 0;
	return mb.id;
}

/* --- a pushed copy of a message expunged here meanwhile ------------------ */

/* The master's uid 2 expunged (its tombstone kept). */
static void
expunged_prepare(struct store *st)
{
	struct store_mailbox	 mb;

	master_prepare(st);
	assert_int_equal(store_mailbox_by_uniqueid(st, BOX, &mb, NULL),
	    STORE_OK);
	assert_int_equal(store_message_expunge(st, mb.id, 2), STORE_OK);
}

/*
 * A replica pushes its copy of uid 2, the very message expunged here:
 * the copy leaves there, nothing joins here.  A tombstone look-up that
 * failed once read as "never here", and the expunged message came back.
 */
static enum store_err
expunged_push(struct store *st)
{
	struct store_blob_in	 b2 = blob(BODY2);
	enum store_err		 err;
	uint32_t		 new_uid;

	err = store_renumber(st, BOX, 2, b2.guid, 0, NULL, 1700000000, &b2,
	    3, &new_uid);
	return err == STORE_OK && new_uid != 0 ? STORE_INVALID : err;
}

static int
expunged_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 1 &&
	    query(dir, "SELECT count(*) FROM renumbered") == 1;
}

static int
expunged_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 1 &&
	    query(dir, "SELECT count(*) FROM renumbered") == 0;
}

static void
test_expunged_copy_pushed_under_alloc_faults(void **state)
{
	static const struct scenario sc = { expunged_prepare, expunged_push,
	    expunged_done, expunged_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* bob: two messages in INBOX, Work empty, Gone with one; dave: one. */
static void
imap_prepare(struct store *st)
{
	struct store_mailbox	 mb;

	assert_int_equal(store_user_add(st, "bob", "$h"), STORE_OK);
	assert_int_equal(store_user_add(st, "dave", "$h"), STORE_OK);
	assert_int_equal(store_mailbox_create(st, "bob", "Work", "", &mb),
	    STORE_OK);
	assert_int_equal(store_mailbox_create(st, "bob", "Gone", "", &mb),
	    STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY1), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY2), STORE_OK);
	assert_int_equal(deliver(st, "bob", "Gone", BODYX), STORE_OK);
	assert_int_equal(deliver(st, "dave", "INBOX", BODY6), STORE_OK);
}

/* Mailbox changes: create, subscribe, rename, delete; dave goes. */
static enum store_err
imap_mailboxes(struct store *st)
{
	struct store_mailbox	 mb;
	enum store_err		 err;

	if ((err = store_mailbox_create(st, "bob", "New", "", &mb)) !=
	    STORE_OK ||
	    (err = store_mailbox_subscribe(st, "bob", "New", 1)) !=
	    STORE_OK ||
	    (err = store_mailbox_rename(st, "bob", "New", "Old")) !=
	    STORE_OK ||
	    (err = store_mailbox_delete(st, "bob", "Gone")) != STORE_OK ||
	    (err = store_user_set_password(st, "bob", "$new")) != STORE_OK)
		return err;
	return store_user_del(st, "dave");
}

/*
 * What one group commit may hold of IMAP and LMTP: a delivery to two
 * mailboxes, a MULTIAPPEND, a flag change, a COPY, a MOVE, an EXPUNGE
 * and the mailbox changes, each its own mutation.
 */
static enum store_err
imap_run(struct store *st)
{
	struct store_blob_in	 b[2] = { blob(BODY4), blob(BODY5) };
	struct store_target	 t[2];
	enum store_err		 err;
	int64_t			 inbox, work;
	uint64_t		 modseq;
	uint32_t		 uid, moved = 1, to;

	if ((inbox = mailbox_id(st, "bob", "INBOX", &err)) == 0 ||
	    (work = mailbox_id(st, "bob", "Work", &err)) == 0)
		return err;
	memset(t, 0, sizeof(t));
	t[0].user = t[1].user = "bob";
	t[0].mailbox = "INBOX";
	t[1].mailbox = "Work";
	b[0] = blob(BODY3);
	if ((err = store_deliver(st, &b[0], t, 2)) != STORE_OK ||
	    (err = t[0].result) != STORE_OK || (err = t[1].result) != STORE_OK)
		return err;
	b[0] = blob(BODY4);
	t[0].mailbox = "Work";
	if ((err = store_deliver_all(st, b, t, 2)) != STORE_OK ||
	    (err = store_message_set_flags(st, inbox, 1, FLAG_SEEN, "kw",
	    &modseq)) != STORE_OK ||
	    (err = store_message_copy(st, inbox, 2, work, &uid)) !=
	    STORE_OK ||
	    (err = store_message_copy_many(st, inbox, &moved, 1, work, &to,
	    1)) != STORE_OK ||
	    (err = store_message_expunge(st, work, 1)) != STORE_OK)
		return err;
	return imap_mailboxes(st);
}

static int
imap_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 6 &&
	    query(dir, "SELECT count(*) FROM message WHERE flags = 1 AND "
	    "keywords = 'kw'") == 1 &&
	    query(dir, "SELECT count(*) FROM mailbox WHERE name = 'Old'") ==
	    1 && query(dir, "SELECT count(*) FROM mailbox WHERE name IN "
	    "('New', 'Gone')") == 0 &&
	    query(dir, "SELECT count(*) FROM subscription WHERE name = "
	    "'Old'") == 1 &&
	    query(dir, "SELECT count(*) FROM user") == 1 &&
	    query(dir, "SELECT count(*) FROM user WHERE password = '$new'") ==
	    1 && query(dir, "SELECT count(*) FROM expunged") >= 3;
}

static int
imap_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 4 &&
	    query(dir, "SELECT count(*) FROM message WHERE flags != 0") == 0 &&
	    query(dir, "SELECT count(*) FROM mailbox WHERE name IN "
	    "('New', 'Old')") == 0 &&
	    query(dir, "SELECT count(*) FROM mailbox WHERE name = 'Gone'") ==
	    1 && query(dir, "SELECT count(*) FROM user") == 2 &&
	    query(dir, "SELECT count(*) FROM user WHERE password = '$h'") ==
	    2 && query(dir, "SELECT count(*) FROM expunged") == 0 &&
	    query(dir, "SELECT count(*) FROM blob") == 4;
}

static void
test_client_changes_under_alloc_faults(void **state)
{
	static const struct scenario sc = { imap_prepare, imap_run,
	    imap_done, imap_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- a MOVE in steps ---------------------------------------------------- */

static const uint32_t	 MOVED[] = { 1, 2, 3, 4 };
static long		 move_head;	/* the template's log head */

/* bob: four messages in INBOX and a fifth, Work empty. */
static void
move_prepare(struct store *st)
{
	struct store_mailbox	 mb;

	assert_int_equal(store_user_add(st, "bob", "$h"), STORE_OK);
	assert_int_equal(store_mailbox_create(st, "bob", "Work", "", &mb),
	    STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY1), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY2), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY3), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY4), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY5), STORE_OK);
	move_head = (long)store_replog_head(st);
}

/*
 * A MOVE of four messages one a step, each step committed as the
 * loop's group commit does; a step that fails abandons the job, as the
 * IMAP session does, for the sweep at the next start.
 */
static enum store_err
move_run(struct store *st)
{
	struct store_copy_job	 job;
	enum store_err		 err;

	memset(&job, 0, sizeof(job));
	job.uids = MOVED;
	job.n = nitems(MOVED);
	job.move = 1;
	if ((job.from = mailbox_id(st, "bob", "INBOX", &err)) == 0 ||
	    (job.to = mailbox_id(st, "bob", "Work", &err)) == 0)
		return err;
	if ((err = store_copy_begin(st, &job)) == STORE_OK)
		err = store_commit(st);
	while (err == STORE_OK && !job.finished)
		if ((err = store_copy_step(st, &job, 0)) == STORE_OK)
			err = store_commit(st);
	if (job.id != 0 && err != STORE_OK)
		store_copy_abandon(st, &job);
	return err;
}

/* The next start's sweep, a step a commit. */
static void
move_settle(struct store *st)
{
	while (store_copy_sweep(st))
		assert_int_equal(store_commit(st), STORE_OK);
}

static int
move_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message JOIN mailbox ON "
	    "mailbox.id = mailbox_id WHERE name = 'Work' AND uid < uidnext") ==
	    4 && query(dir, "SELECT count(*) FROM message JOIN mailbox ON "
	    "mailbox.id = mailbox_id WHERE name = 'INBOX'") == 1 &&
	    query(dir, "SELECT count(*) FROM copy_job") == 0;
}

static int
move_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message JOIN mailbox ON "
	    "mailbox.id = mailbox_id WHERE name = 'Work'") == 0 &&
	    query(dir, "SELECT count(*) FROM message") == 5 &&
	    query(dir, "SELECT count(*) FROM copy_job") == 0 &&
	    query(dir, "SELECT seq FROM sqlite_sequence WHERE name = "
	    "'replog'") == move_head;
}

static void
test_move_in_steps_under_alloc_faults(void **state)
{
	static const struct scenario sc = { move_prepare, move_run,
	    move_done, move_untouched, move_settle, 1 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- an abandoned COPY undone by the sweep ------------------------------ */

/*
 * bob's INBOX and Work as for the MOVE, and a COPY of four messages
 * into Work cut off after two of its steps (committed, as the loop's
 * group commit does): its copies and their log records are there, but
 * show to no one; the job is the sweep's.
 */
static void
sweep_prepare(struct store *st)
{
	struct store_copy_job	 job;
	enum store_err		 err;
	int			 i;

	move_prepare(st);
	memset(&job, 0, sizeof(job));
	job.uids = MOVED;
	job.n = nitems(MOVED);
	assert_true((job.from = mailbox_id(st, "bob", "INBOX", &err)) != 0);
	assert_true((job.to = mailbox_id(st, "bob", "Work", &err)) != 0);
	assert_int_equal(store_copy_begin(st, &job), STORE_OK);
	assert_int_equal(store_commit(st), STORE_OK);
	for (i = 0; i < 2; i++) {
		assert_int_equal(store_copy_step(st, &job, 0), STORE_OK);
		assert_int_equal(store_commit(st), STORE_OK);
	}
	assert_false(job.finished);
	store_copy_abandon(st, &job);
}

/*
 * The sweep at the next start, a step a commit; STORE_OK when the job
 * is undone, else what failed (a step that fails leaves the job).
 */
static enum store_err
sweep_run(struct store *st)
{
	enum store_err	 err;
	int		 more;

	do {
		more = store_copy_sweep(st);
		if ((err = store_commit(st)) != STORE_OK)
			return err;
	} while (more);
	return query_unarmed(run_dir, "SELECT count(*) FROM copy_job") == 0 ?
	    STORE_OK : STORE_IO;
}

/* The COPY left nothing: no copy, no job, no record of a copy. */
static int
sweep_done(const char *dir)
{
	char	 sql[96];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM replog WHERE seq > "
	    "%ld", move_head);
	return query(dir, "SELECT count(*) FROM message JOIN mailbox ON "
	    "mailbox.id = mailbox_id WHERE name = 'Work'") == 0 &&
	    query(dir, "SELECT count(*) FROM message") == 5 &&
	    query(dir, "SELECT count(*) FROM copy_job") == 0 &&
	    query(dir, sql) == 0;
}

static int
sweep_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM copy_job") == 1;
}

static void
test_copy_sweep_under_alloc_faults(void **state)
{
	static const struct scenario sc = { sweep_prepare, sweep_run,
	    sweep_done, sweep_untouched, move_settle, 1 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- a COPY in steps meeting what it must refuse or pass over ---------- */

/* Starts a COPY (or MOVE) of MOVED from bob's INBOX to Work as job. */
static enum store_err
job_start(struct store *st, struct store_copy_job *job, int move)
{
	enum store_err	 err;

	memset(job, 0, sizeof(*job));
	job->uids = MOVED;
	job->n = nitems(MOVED);
	job->move = move;
	if ((job->from = mailbox_id(st, "bob", "INBOX", &err)) == 0 ||
	    (job->to = mailbox_id(st, "bob", "Work", &err)) == 0)
		return err;
	return store_copy_begin(st, job);
}

/*
 * Without faults: a COPY past the user's quota is refused; a second job
 * into a target held by one waits (STORE_BUSY); a MOVE whose source a
 * client expunged meanwhile passes it over; a MOVE abandoned while it
 * expunges its sources is finished by the sweep.
 */
static void
test_copy_steps_refusals(void **state)
{
	struct store_copy_job	 job, other;
	struct store_usage	 quota = { 6, 0 };
	struct store		*st;
	char			 template[64], dir[64];

	(void)state;
	make_template(template, move_prepare);
	copy_store(template, dir);
	assert_int_equal(store_open(dir, &st), STORE_OK);
	store_set_quota(st, &quota);
	assert_int_equal(job_start(st, &job, 0), STORE_QUOTA);
	quota.messages = 0;
	store_set_quota(st, &quota);
	assert_int_equal(job_start(st, &job, 1), STORE_OK);
	assert_int_equal(store_commit(st), STORE_OK);
	assert_int_equal(job_start(st, &other, 0), STORE_BUSY);
	while (!job.shown) {
		assert_int_equal(store_copy_step(st, &job, 0), STORE_OK);
		assert_int_equal(store_commit(st), STORE_OK);
	}
	/* A client expunges the MOVE's next source; then it is cut off. */
	assert_int_equal(store_message_expunge(st, job.from,
	    MOVED[job.done]), STORE_OK);
	assert_int_equal(store_commit(st), STORE_OK);
	assert_int_equal(store_copy_step(st, &job, 0), STORE_OK);
	assert_int_equal(store_commit(st), STORE_OK);
	store_copy_abandon(st, &job);
	store_close(st);
	assert_int_equal(store_open(dir, &st), STORE_OK);
	move_settle(st);
	assert_int_equal(store_commit(st), STORE_OK);
	store_close(st);
	assert_true(move_done(dir));
	check_clean(dir);
	remove_store(dir);
	remove_store(template);
}

/* --- the search index's batch ------------------------------------------- */

static void
fts_prepare(struct store *st)
{
	assert_int_equal(store_user_add(st, "bob", "$h"), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY1), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY2), STORE_OK);
	assert_int_equal(deliver(st, "bob", "INBOX", BODY3), STORE_OK);
}

/* A rebuild's first batch: two blobs indexed, the third skipped. */
static enum store_err
fts_run(struct store *st)
{
	static const char	*text[] = { "lunchbox one", "lunchbox two" };
	struct store_fts_blob	 b[4];
	enum store_err		 err;
	size_t			 n, i;

	if ((err = store_fts_pending(st, 0, b, nitems(b), &n)) != STORE_OK)
		return err;
	assert_int_equal(n, 3);
	if ((err = store_fts_begin(st)) != STORE_OK)
		return err;
	err = store_fts_reset(st, 3);
	for (i = 0; err == STORE_OK && i < 2; i++)
		if ((err = store_fts_add(st, b[i].id, STORE_FTS_BODY, text[i],
		    strlen(text[i]))) == STORE_OK)
			err = store_fts_add(st, b[i].id, STORE_FTS_SUBJECT,
			    "subject", 7);
	if (err == STORE_OK)
		err = store_fts_skip(st, b[2].id);
	return store_fts_end(st, b[2].id, 2, err);
}

static int
fts_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM fts WHERE fts MATCH "
	    "'\"lun\" AND \"box\"'") == 2 &&
	    query(dir, "SELECT count(*) FROM fts_skipped") == 1 &&
	    query(dir, "SELECT blobs FROM fts_state") == 2 &&
	    query(dir, "SELECT version FROM fts_state") == 3 &&
	    query(dir, "SELECT upto FROM fts_state") ==
	    query(dir, "SELECT max(id) FROM blob");
}

static int
fts_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM fts WHERE fts MATCH "
	    "'\"lun\" AND \"box\"'") == 0 &&
	    query(dir, "SELECT count(*) FROM fts_skipped") == 0 &&
	    query(dir, "SELECT upto + blobs + version FROM fts_state") == 0;
}

static void
test_index_batch_under_alloc_faults(void **state)
{
	static const struct scenario sc = { fts_prepare, fts_run,
	    fts_done, fts_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- a replica's deletes, and what cleans up after them ----------------- */

/* The store as the replica's batch left it. */
static void
replica_prepare_batch(struct store *st)
{
	assert_int_equal(replica_batch(st), STORE_OK);
}

static const uint8_t BOX2[MAILBOX_ID_LEN] = "carols-own-box!";

/* The replica's batch, then carol with a message of her own. */
static void
cleanup_prepare(struct store *st)
{
	struct store_blob_in	 b3 = blob(BODY3);
	enum store_apply	 what;
	uint8_t			 local[GUID_LEN];

	replica_prepare_batch(st);
	assert_int_equal(store_apply_user_add(st, "carol", "$h", &what),
	    STORE_OK);
	assert_int_equal(store_apply_mailbox_create(st, "carol", BOX2,
	    "INBOX", 8, "", 1, &what), STORE_OK);
	assert_int_equal(store_apply_append(st, BOX2, 1, b3.guid, 0, NULL,
	    1700000000, 1700000000, 0, &b3, &what, local), STORE_OK);
}

/* The first entry of a walk (quarantine or conflicts) keeps its id. */
static int
first_quarantined(void *arg, const struct store_quarantined *q)
{
	*(int64_t *)arg = q->id;
	return 1;
}

static int
first_conflict(void *arg, const struct store_conflict *k)
{
	*(int64_t *)arg = k->id;
	return 1;
}

/*
 * A batch deleting carol and bob's mailbox (both quarantined first),
 * then what an operator and the housekeeping do: bob's first message
 * back from quarantine, the conflict resolved, and a purge of every
 * tombstone, resolved conflict and quarantine entry left.
 */
static enum store_err
cleanup_run(struct store *st)
{
	struct store_purge	 p = { INT64_MAX, INT64_MAX, 0, INT64_MAX,
	    INT64_MAX };
	struct store_purged	 purged;
	enum store_apply	 what;
	enum store_err		 err;
	int64_t			 quarantined = 0, conflict = 0;
	uint32_t		 uid;
	char			 name[MAILBOX_MAX_NAME + 1];

	if ((err = store_quarantine_foreach(st, 0, first_quarantined,
	    &quarantined)) != STORE_OK ||
	    (err = store_conflict_foreach(st, first_conflict, &conflict)) !=
	    STORE_OK)
		return err;
	assert_true(quarantined != 0 && conflict != 0);
	if ((err = store_batch_begin(st)) != STORE_OK)
		return err;
	if ((err = store_apply_user_del(st, "carol", &what)) == STORE_OK)
		err = store_apply_mailbox_delete(st, BOX, &what);
	if ((err = store_batch_end(st, err)) != STORE_OK ||
	    (err = store_quarantine_restore(st, quarantined, &uid, name)) !=
	    STORE_OK ||
	    (err = store_conflict_set_state(st, conflict,
	    CONFLICT_RESOLVED)) != STORE_OK)
		return err;
	return store_purge_step(st, &p, &purged);
}

static int
cleanup_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM user") == 1 &&
	    query(dir, "SELECT count(*) FROM message") == 1 &&
	    query(dir, "SELECT count(*) FROM mailbox WHERE uniqueid = "
	    "'box-of-the-test'") == 0 &&
	    query(dir, "SELECT count(*) FROM quarantine") == 0 &&
	    query(dir, "SELECT count(*) FROM conflict") == 0 &&
	    query(dir, "SELECT count(*) FROM expunged") == 0 &&
	    query(dir, "SELECT count(*) FROM mailbox_gone") == 0;
}

static int
cleanup_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM user") == 2 &&
	    query(dir, "SELECT count(*) FROM message") == 2 &&
	    query(dir, "SELECT count(*) FROM quarantine") == 1 &&
	    query(dir, "SELECT count(*) FROM conflict WHERE resolved = 0") == 1 &&
	    query(dir, "SELECT count(*) FROM expunged") == 1 &&
	    query(dir, "SELECT count(*) FROM mailbox_gone") == 0;
}

static void
test_deletes_and_cleanup_under_alloc_faults(void **state)
{
	static const struct scenario sc = { cleanup_prepare, cleanup_run,
	    cleanup_done, cleanup_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- a replica's batch on the edges of its rules ------------------------ */

static const uint8_t BOX3[MAILBOX_ID_LEN] = "third-box-here!";
static const uint8_t BOX4[MAILBOX_ID_LEN] = "never-was-here!";

/*
 * The replica's batch, a mailbox "Clash" bob made here himself, and
 * carol's replicated mailbox deleted (BOX2).
 */
static void
edges_prepare(struct store *st)
{
	struct store_mailbox	 mb;
	enum store_apply	 what;

	replica_prepare_batch(st);
	assert_int_equal(store_mailbox_create(st, "bob", "Clash", "", &mb),
	    STORE_OK);
	assert_int_equal(store_apply_mailbox_create(st, "bob", BOX2, "Old",
	    8, "", 0, &what), STORE_OK);
	assert_int_equal(store_apply_mailbox_delete(st, BOX2, &what),
	    STORE_OK);
}

/*
 * A batch of records that each take a rule's other branch: a user who
 * is here already, a mailbox with a new UIDVALIDITY, one whose name a
 * local mailbox holds (it steps aside), one deleted here made again,
 * one of a user not here, renames to the same name and of a mailbox not
 * here, an append that says it was renumbered, sent twice, flags for a
 * mailbox not here, an unsubscribe, an expunge naming another message.
 */
static enum store_err
edges_batch(struct store *st)
{
	struct store_blob_in	 b3 = blob(BODY3), bx = blob(BODYX);
	enum store_apply	 what;
	enum store_err		 err;
	uint8_t			 local[GUID_LEN];

	if ((err = store_batch_begin(st)) != STORE_OK)
		return err;
	if ((err = store_apply_user_add(st, "bob", "$h2", &what)) ==
	    STORE_OK)
		err = store_apply_mailbox_create(st, "bob", BOX, "Kept", 9, "",
		    0, &what);
	if (err == STORE_OK)
		err = store_apply_mailbox_create(st, "bob", BOX3, "Clash", 11,
		    "", 1, &what);
	if (err == STORE_OK)
		err = store_apply_mailbox_create(st, "bob", BOX2, "Again", 12,
		    "", 0, &what);
	if (err == STORE_OK)
		err = store_apply_mailbox_create(st, "nobody", BOX4, "X", 13,
		    "", 0, &what);
	if (err == STORE_OK)
		err = store_apply_mailbox_rename(st, BOX3, "Clash", 1, &what);
	if (err == STORE_OK)
		err = store_apply_mailbox_rename(st, BOX4, "Y", 1, &what);
	if (err == STORE_OK)
		err = store_apply_append(st, BOX3, 1, b3.guid, FLAG_SEEN, NULL,
		    1700000000, 1700000000, 4, &b3, &what, local);
	if (err == STORE_OK)
		err = store_apply_append(st, BOX3, 1, b3.guid, FLAG_SEEN, NULL,
		    1700000000, 1700000000, 4, NULL, &what, local);
	if (err == STORE_OK)
		err = store_apply_flags(st, BOX4, 1, b3.guid, 0, NULL, &what,
		    local);
	if (err == STORE_OK)
		err = store_apply_subscribe(st, "bob", "News", 0, &what);
	if (err == STORE_OK)
		err = store_apply_expunge(st, BOX, 2, bx.guid, &what, local);
	return store_batch_end(st, err);
}

static int
edges_done(const char *dir)
{
	return query(dir, "SELECT uidvalidity FROM mailbox WHERE name = "
	    "'Kept'") == 9 && query(dir, "SELECT count(*) FROM mailbox WHERE "
	    "name LIKE 'Clash-%'") == 1 && query(dir, "SELECT count(*) FROM "
	    "mailbox WHERE name IN ('Clash', 'Again')") == 2 &&
	    query(dir, "SELECT count(*) FROM mailbox_gone") == 0 &&
	    query(dir, "SELECT count(*) FROM message") == 2 &&
	    query(dir, "SELECT count(*) FROM renumbered") == 1 &&
	    query(dir, "SELECT count(*) FROM subscription WHERE name = "
	    "'News'") == 0 && query(dir, "SELECT count(*) FROM user WHERE "
	    "password = '$h2'") == 1;
}

static int
edges_untouched(const char *dir)
{
	return query(dir, "SELECT uidvalidity FROM mailbox WHERE name = "
	    "'Kept'") == 7 && query(dir, "SELECT count(*) FROM mailbox WHERE "
	    "name LIKE 'Clash%'") == 1 && query(dir, "SELECT count(*) FROM "
	    "mailbox_gone") == 1 && query(dir, "SELECT count(*) FROM "
	    "message") == 1 && query(dir, "SELECT count(*) FROM renumbered") ==
	    0 && query(dir, "SELECT count(*) FROM subscription WHERE name = "
	    "'News'") == 1 && query(dir, "SELECT count(*) FROM user WHERE "
	    "password = '$h'") == 1;
}

static void
test_replica_edges_under_alloc_faults(void **state)
{
	static const struct scenario sc = { edges_prepare, edges_batch,
	    edges_done, edges_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- the mass-delete guard's holds and a node's bookkeeping ------------- */

/*
 * What a replica's guard and housekeeping write: bob paused, two of his
 * records held (an append with its body, an expunge), the pause
 * resumed and the first record applied and dropped; a replica's
 * position, the drain's marker, the log's oldest records purged and a
 * mailbox's UIDNEXT raised.
 */
static enum store_err
holds_run(struct store *st)
{
	struct store_blob_in	 b3 = blob(BODY3);
	struct store_replog_rec	 r;
	struct store_replica	 rep;
	enum store_err		 err;
	int64_t			 n, id, purged;
	size_t			 len;
	char			 buf[16];

	memset(&r, 0, sizeof(r));
	r.type = REC_MESSAGE_APPEND;
	r.has_mailbox = r.has_guid = 1;
	memcpy(r.mailbox, BOX, MAILBOX_ID_LEN);
	r.uid = 7;
	memcpy(r.guid, b3.guid, GUID_LEN);
	if ((err = store_pause_set(st, "bob", "many deletes")) != STORE_OK ||
	    (err = store_held_add(st, "bob", &r, "append", 6, &b3)) !=
	    STORE_OK)
		return err;
	r.type = REC_MESSAGE_EXPUNGE;
	r.uid = 2;
	if ((err = store_held_add(st, "bob", &r, "expunge", 7, NULL)) !=
	    STORE_OK ||
	    (err = store_pause_resume(st, NULL, PAUSE_ALLOW, &n)) !=
	    STORE_OK ||
	    (err = store_held_next(st, "bob", 0, &id, buf, sizeof(buf),
	    &len)) != STORE_OK ||
	    (err = store_held_drop(st, id)) != STORE_OK)
		return err;
	assert_int_equal(n, 1);
	assert_memory_equal(buf, "append", len);
	memset(&rep, 0, sizeof(rep));
	snprintf(rep.name, sizeof(rep.name), "r1");
	memset(rep.node_id, 4, NODE_ID_LEN);
	rep.acked = 5;
	rep.last_seen = 1700000000;
	if ((err = store_replica_update(st, &rep)) != STORE_OK ||
	    (err = store_shutdown_record(st, 1700000000, 0)) != STORE_OK ||
	    (err = store_replog_purge(st, 3, 0, &purged)) != STORE_OK)
		return err;
	return store_mailbox_raise_uidnext(st, BOX, 20);
}

static int
holds_done(const char *dir)
{
	return query(dir, "SELECT state FROM guard_pause") == PAUSE_ALLOW &&
	    query(dir, "SELECT count(*) FROM held") == 1 &&
	    query(dir, "SELECT uidnext FROM mailbox WHERE name = 'Kept'") ==
	    20 && query(dir, "SELECT count(*) FROM replica") == 1 &&
	    query(dir, "SELECT count(*) FROM shutdown") == 1 &&
	    query(dir, "SELECT min(seq) FROM replog") == 4;
}

static int
holds_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM guard_pause") == 0 &&
	    query(dir, "SELECT count(*) FROM held") == 0 &&
	    query(dir, "SELECT uidnext FROM mailbox WHERE name = 'Kept'") ==
	    6 && query(dir, "SELECT count(*) FROM replica") == 0 &&
	    query(dir, "SELECT count(*) FROM shutdown") == 0 &&
	    query(dir, "SELECT min(seq) FROM replog") == 1;
}

static void
test_holds_and_bookkeeping_under_alloc_faults(void **state)
{
	static const struct scenario sc = { replica_prepare_batch, holds_run,
	    holds_done, holds_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- a conflict resolved by dropping the local copy -------------------- */

/*
 * `conflicts resolve` on the replica's conflict, then what a master
 * that was that replica does when the other side renumbered the
 * message: its copy at uid 2 goes, the conflict on it resolved.
 */
static enum store_err
conflict_run(struct store *st)
{
	struct store_blob_in	 b2 = blob(BODY2);
	struct store_conflict	 k;
	enum store_err		 err;
	int64_t			 conflict = 0;

	if ((err = store_conflict_foreach(st, first_conflict, &conflict)) !=
	    STORE_OK ||
	    (err = store_conflict_set_state(st, conflict,
	    CONFLICT_REQUESTED)) != STORE_OK ||
	    (err = store_conflict_next(st, 0, 0, &k)) != STORE_OK)
		return err;
	assert_int_equal(k.id, conflict);
	if ((err = store_drop_copy(st, BOX, 2, b2.guid, REASON_RENUMBER)) !=
	    STORE_OK)
		return err;
	return store_counter_add(st, "conflicts.dropped", 1);
}

static int
conflict_done(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 0 &&
	    query(dir, "SELECT resolved FROM conflict") == CONFLICT_RESOLVED &&
	    query(dir, "SELECT count(*) FROM expunged") == 2 &&
	    query(dir, "SELECT value FROM counter WHERE name = "
	    "'conflicts.dropped'") == 1;
}

static int
conflict_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM message") == 1 &&
	    query(dir, "SELECT resolved FROM conflict") == CONFLICT_OPEN &&
	    query(dir, "SELECT count(*) FROM expunged") == 1 &&
	    query(dir, "SELECT count(*) FROM counter WHERE name = "
	    "'conflicts.dropped'") == 0;
}

static void
test_conflict_drop_under_alloc_faults(void **state)
{
	static const struct scenario sc = { replica_prepare_batch,
	    conflict_run, conflict_done, conflict_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- the store's yes/no look-ups fail, never answer "no" ---------------- */

/*
 * The renumbering's store (bob's uid 1 and the replica's copy of it
 * renumbered, uid 2 relocated above 10), a replica mailbox created and
 * deleted, and a record of bob's mailbox held by the guard: every
 * look-up below answers "yes" there.
 */
static void
lookups_prepare(struct store *st)
{
	struct store_blob_in	 b3 = blob(BODY3);
	struct store_replog_rec	 r;
	enum store_apply	 what;

	master_prepare(st);
	assert_int_equal(master_renumber(st), STORE_OK);
	assert_int_equal(store_apply_mailbox_create(st, "bob", BOX2, "Old",
	    8, "", 0, &what), STORE_OK);
	assert_int_equal(store_apply_mailbox_delete(st, BOX2, &what),
	    STORE_OK);
	memset(&r, 0, sizeof(r));
	r.type = REC_MESSAGE_APPEND;
	r.has_mailbox = r.has_guid = 1;
	memcpy(r.mailbox, BOX, MAILBOX_ID_LEN);
	r.uid = 30;
	memcpy(r.guid, b3.guid, GUID_LEN);
	assert_int_equal(store_pause_set(st, "bob", "many deletes"),
	    STORE_OK);
	assert_int_equal(store_held_add(st, "bob", &r, "append", 6, &b3),
	    STORE_OK);
}

#define LOOKUPS	7

/*
 * Look-up i on st: STORE_OK with *right saying whether its answer is
 * the true one, or its error.
 */
static enum store_err
lookup(struct store *st, int i, uint32_t relocated, int *right)
{
	struct store_blob_in	 b2 = blob(BODY2);
	enum rec_reason		 reason = REASON_CLIENT;
	enum store_err		 err = STORE_INVALID;
	uint32_t		 from = 0;
	int			 yes = 0;
	char			 user[USER_MAX_NAME + 1] = "";

	switch (i) {
	case 0:
		err = store_was_renumbered(st, BOX, 2, b2.guid, &yes);
		break;
	case 1:
		err = store_renumbered_held(st, BOX, b2.guid, &yes);
		break;
	case 2:
		err = store_renumbered_from(st, BOX, relocated, b2.guid,
		    &from);
		yes = from == 2;
		break;
	case 3:
		err = store_mailbox_holds(st, BOX, b2.guid, &yes);
		break;
	case 4:
		err = store_tombstone_reason(st, BOX, 2, &reason);
		yes = reason == REASON_RENUMBER;
		break;
	case 5:
		err = store_mailbox_was_deleted(st, BOX2, &yes);
		break;
	case 6:
		err = store_held_mailbox(st, BOX, user, &yes);
		yes = yes && strcmp(user, "bob") == 0;
		break;
	}
	*right = yes;
	return err;
}

/*
 * Look-up i on the store in dir with SQLite's allocation n failing (its
 * statements prepared inside the run; the look-ups write nothing):
 * it fails, or gives the true answer.  Returns 1 when n was never
 * reached; counts the failures in *failed.
 */
static int
lookup_once(const char *dir, int i, long n, uint32_t relocated,
    int *failed)
{
	struct store	*st;
	enum store_err	 err;
	int		 right, clean;

	assert_int_equal(store_open(dir, &st), STORE_OK);
	arm(n);
	err = lookup(st, i, relocated, &right);
	clean = n < 0 || countdown >= 0;
	disarm();
	store_close(st);
	if (err == STORE_OK)
		assert_true(right);
	else
		(*failed)++;
	return clean;
}

static void
test_lookups_fail_under_alloc_faults(void **state)
{
	char		 template[64];
	long		 n;
	int		 i, failed;
	uint32_t	 relocated;

	(void)state;
	make_template(template, lookups_prepare);
	relocated = (uint32_t)query(template, "SELECT max(uid) FROM message");
	assert_true(relocated >= 10);
	for (i = 0; i < LOOKUPS; i++) {
		failed = 0;
		assert_true(lookup_once(template, i, -1, relocated, &failed));
		assert_int_equal(failed, 0);
		for (n = 0; !lookup_once(template, i, n, relocated, &failed);
		    n++)
			;
		assert_true(failed > 0);
	}
	remove_store(template);
}

/* --- one group commit, each mutation answered on its own ----------------- */

/*
 * The loop's group commit: several clients' mutations in one
 * transaction, each in its own savepoint and answered on its own.  A
 * failed one is undone alone and the others go on; then the commit.
 * What was answered OK is there exactly when the commit succeeded, and
 * what was refused is never there.
 */
#define GROUP_OPS	5

static enum store_err
group_op(struct store *st, int op)
{
	struct store_mailbox	 mb;
	enum store_err		 err;
	uint64_t		 modseq;
	int64_t			 inbox;

	if (op == 0)
		return deliver(st, "bob", "INBOX", BODY3);
	if (op == 2)
		return deliver(st, "bob", "Work", BODY4);
	if (op == 4)
		return store_mailbox_create(st, "bob", "New", "", &mb);
	if ((inbox = mailbox_id(st, "bob", "INBOX", &err)) == 0)
		return err;
	if (op == 1)
		return store_message_set_flags(st, inbox, 1, FLAG_SEEN, NULL,
		    &modseq);
	return store_message_expunge(st, inbox, 2);
}

/* Whether op's change is in the store in dir. */
static int
group_kept(const char *dir, int op)
{
	static const char *const sql[GROUP_OPS] = {
		"SELECT count(*) FROM message JOIN blob ON blob.id = blob_id "
		    "WHERE subject = 'three'",
		"SELECT count(*) FROM message JOIN mailbox ON mailbox.id = "
		    "mailbox_id WHERE name = 'INBOX' AND uid = 1 AND flags = 1",
		"SELECT count(*) FROM message JOIN blob ON blob.id = blob_id "
		    "WHERE subject = 'four'",
		"SELECT count(*) = 0 FROM message JOIN mailbox ON mailbox.id = "
		    "mailbox_id WHERE name = 'INBOX' AND uid = 2",
		"SELECT count(*) FROM mailbox WHERE name = 'New'",
	};

	return query(dir, sql[op]) == 1;
}

/* The group with allocation n failing; 1 when n was never reached. */
static int
group_once(const struct scenario *sc, const char *template, long n,
    long *total)
{
	struct store	*st;
	enum store_err	 answer[GROUP_OPS], err;
	char		 dir[64];
	int		 op, clean;

	(void)sc;
	copy_store(template, dir);
	assert_int_equal(store_open(dir, &st), STORE_OK);
	arm(n);
	for (op = 0; op < GROUP_OPS; op++)
		answer[op] = group_op(st, op);
	err = store_commit(st);
	clean = n < 0 || countdown >= 0;
	if (total != NULL)
		*total = counted;
	disarm();
	store_close(st);
	for (op = 0; op < GROUP_OPS; op++) {
		if (err == STORE_OK)
			assert_int_equal(group_kept(dir, op),
			    answer[op] == STORE_OK);
		else
			assert_false(group_kept(dir, op));
	}
	check_clean(dir);
	remove_store(dir);
	return clean;
}

static void
test_group_commit_under_alloc_faults(void **state)
{
	static const struct scenario sc = { imap_prepare, NULL, NULL, NULL,
	    NULL, 0 };

	(void)state;
	fault_loop(&sc, group_once);
}

/* --- a replica promoted, its log and bookkeeping read and written ------- */

static long	 promote_head;	/* the template's log head */

/* The replica's batch on a node following a master. */
static void
promote_prepare(struct store *st)
{
	replica_prepare_batch(st);
	assert_int_equal(store_node_demote(st, "192.0.2.1:7000"), STORE_OK);
	promote_head = (long)store_replog_head(st);
}

/* A walk's callback (of what it visits, of type T) that counts it. */
#define COUNTER(name, T)						\
static int								\
name(void *arg, T what)							\
{									\
	(void)what;							\
	++*(int *)arg;							\
	return 0;							\
}

COUNTER(count_replica, const struct store_replica *)
COUNTER(count_pause, const struct store_pause *)
COUNTER(count_id, const uint8_t *)
COUNTER(count_message, const struct store_message *)

/*
 * What a promoted node reads of its store and writes first: the node
 * row, the log and its hash, the digest and messages a reconciliation
 * compares, a tombstone's expunge logged again; then the promotion,
 * two replicas (one forgotten), the drain's marker and a pause lifted.
 */
static enum store_err
promote_reads(struct store *st)
{
	struct store_replog_rec	 rec;
	struct store_mailbox	 mb;
	struct store_node	 me;
	struct store_blob_in	 b1 = blob(BODY1);
	enum store_err		 err;
	uint8_t			 hash[LOG_HASH_LEN], digest[GUID_LEN];
	uint8_t			 gone[GUID_LEN];
	int64_t			 head;
	int			 n = 0, ids = 0;

	if ((err = store_node_get(st, &me)) != STORE_OK ||
	    (err = store_replog_next(st, 0, &rec)) != STORE_OK ||
	    (head = store_replog_head(st)) < 0 ||
	    (err = store_replog_hash(st, head, hash)) != STORE_OK ||
	    (err = store_mailbox_by_uniqueid(st, BOX, &mb, NULL)) !=
	    STORE_OK ||
	    (err = store_mailbox_digest(st, mb.id, digest)) != STORE_OK ||
	    (err = store_message_range(st, mb.id, 0, UINT32_MAX, 10,
	    count_message, &n)) != STORE_OK ||
	    (err = store_mailbox_ids(st, count_id, &ids)) != STORE_OK ||
	    (err = store_tombstone_guid(st, BOX, 1, gone)) != STORE_OK)
		return err != STORE_OK ? err : STORE_IO;
	assert_string_equal(me.role, "replica");
	assert_int_equal(n, 1);
	assert_int_equal(ids, 1);
	assert_memory_equal(gone, b1.guid, GUID_LEN);
	return store_expunge_relog(st, BOX, 1, b1.guid);
}

static enum store_err
promote_run(struct store *st)
{
	struct store_replica	 rep;
	struct store_shutdown	 sd;
	enum store_err		 err;
	int			 replicas = 0, marked = 0, pauses = 0;

	if ((err = promote_reads(st)) != STORE_OK ||
	    (err = store_node_promote(st)) != STORE_OK)
		return err;
	memset(&rep, 0, sizeof(rep));
	snprintf(rep.name, sizeof(rep.name), "r1");
	memset(rep.node_id, 4, NODE_ID_LEN);
	if ((err = store_replica_update(st, &rep)) != STORE_OK)
		return err;
	snprintf(rep.name, sizeof(rep.name), "r2");
	memset(rep.node_id, 5, NODE_ID_LEN);
	if ((err = store_replica_update(st, &rep)) != STORE_OK ||
	    (err = store_replica_forget(st, rep.node_id)) != STORE_OK ||
	    (err = store_replica_foreach(st, count_replica, &replicas)) !=
	    STORE_OK ||
	    (err = store_shutdown_record(st, 1700000000, 0)) != STORE_OK ||
	    (err = store_shutdown_get(st, &sd)) != STORE_OK ||
	    (err = store_shutdown_replica_foreach(st, count_replica,
	    &marked)) != STORE_OK ||
	    (err = store_shutdown_stale(st, 1700000001)) != STORE_OK ||
	    (err = store_pause_set(st, "bob", "test")) != STORE_OK ||
	    (err = store_pause_foreach(st, count_pause, &pauses)) !=
	    STORE_OK)
		return err;
	assert_int_equal(replicas, 1);
	assert_int_equal(marked, 1);
	assert_int_equal(pauses, 1);
	assert_string_equal(sd.role, "master");
	return store_pause_clear(st, "bob");
}

static int
promote_done(const char *dir)
{
	return query(dir, "SELECT role = 'master' AND upstream IS NULL FROM "
	    "node") == 1 && query(dir, "SELECT count(*) FROM replica") == 1 &&
	    query(dir, "SELECT count(*) FROM shutdown WHERE stale != 0") ==
	    1 && query(dir, "SELECT count(*) FROM guard_pause") == 0 &&
	    query(dir, "SELECT max(seq) FROM replog") == promote_head + 1;
}

static int
promote_untouched(const char *dir)
{
	return query(dir, "SELECT count(*) FROM node WHERE role = "
	    "'replica'") == 1 && query(dir, "SELECT count(*) FROM replica") ==
	    0 && query(dir, "SELECT count(*) FROM shutdown") == 0 &&
	    query(dir, "SELECT max(seq) FROM replog") == promote_head;
}

static void
test_promotion_under_alloc_faults(void **state)
{
	static const struct scenario sc = { promote_prepare, promote_run,
	    promote_done, promote_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* --- backup, restore and identity refusing what they must -------------- */

/*
 * Without faults, the refusals: a restore over a store (or a WAL left
 * beside one), from no file, from a file that is no database; a backup
 * of no store, and to a place that cannot be written.  Each leaves
 * nothing behind.  Then a copy of a store takes a new identity at its
 * first start and keeps it at the next.
 */
static void
test_backup_restore_refusals(void **state)
{
	struct store	*st;
	char		 template[64], dir[64], path[160], junk[160];
	FILE		*f;
	int		 renewed;

	(void)state;
	make_template(template, replica_prepare_batch);
	snprintf(path, sizeof(path), "%s/mailrepd.db", template);
	copy_store(template, dir);
	assert_int_equal(store_restore_file(path, dir), STORE_EXISTS);
	remove_store(dir);
	strcpy(dir, "/dev/shm/mailrepd-faults-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(junk, sizeof(junk), "%s/mailrepd.db-wal", dir);
	assert_non_null(f = fopen(junk, "w"));
	fclose(f);
	assert_int_equal(store_restore_file(path, dir), STORE_EXISTS);
	assert_int_equal(unlink(junk), 0);
	assert_int_equal(store_restore_file("/nonexistent/mailrepd.db", dir),
	    STORE_NOTFOUND);
	snprintf(junk, sizeof(junk), "%s/junk", template);
	assert_non_null(f = fopen(junk, "w"));
	fputs("not a database, not even close to one, but long enough to "
	    "be read as a header and refused\n", f);
	fclose(f);
	assert_int_equal(store_restore_file(junk, dir), STORE_INVALID);
	snprintf(junk, sizeof(junk), "%s/mailrepd.db", dir);
	assert_int_not_equal(access(junk, F_OK), 0);
	assert_int_equal(store_backup("/nonexistent", path, NULL, NULL),
	    STORE_NOTFOUND);
	assert_int_equal(store_backup(template, "/nonexistent/b.db", NULL,
	    NULL), STORE_IO);
	/*
	 * The template gets its marker at a first start; a copy (without
	 * it: copy_store copies the database only) is a new node.
	 */
	assert_int_equal(store_open(template, &st), STORE_OK);
	assert_int_equal(store_incarnation(st, template, 0, &renewed),
	    STORE_OK);
	assert_int_equal(renewed, 0);
	store_close(st);
	remove_store(dir);
	copy_store(template, dir);
	assert_int_equal(store_open(dir, &st), STORE_OK);
	assert_int_equal(store_incarnation(st, dir, 0, &renewed), STORE_OK);
	assert_int_equal(renewed, 1);
	assert_int_equal(store_incarnation(st, dir, 0, &renewed), STORE_OK);
	assert_int_equal(renewed, 0);
	store_close(st);
	check_clean(dir);
	remove_store(dir);
	remove_store(template);
}

/* --- a store made, opened and checked ----------------------------------- */

static uint64_t	 damage_found;	/* the damaged store's problems */

/* Breaks the counters and the MODSEQs of the store in dir behind its back. */
static void
damage(const char *dir)
{
	sqlite3	*db;
	char	 path[128];

	snprintf(path, sizeof(path), "%s/mailrepd.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE mailbox SET nmessages = "
	    "nmessages + 1, highestmodseq = 0", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
report_quietly(void *arg, const char *problem)
{
	(void)arg;
	(void)problem;
}

/*
 * With SQLite's allocation n failing, a new store made in a fresh
 * directory (every migration) is made or not; opened again without
 * faults, it is whole.  Returns 1 when n was never reached; *made: the
 * allocations it made.
 */
static int
make_once(long n, long *made)
{
	struct store	*st;
	char		 fresh[64];
	int		 clean;

	strcpy(fresh, "/dev/shm/mailrepd-fresh-XXXXXX");
	assert_non_null(mkdtemp(fresh));
	arm(n);
	if (store_open(fresh, &st) == STORE_OK)
		store_close(st);
	clean = n < 0 || countdown >= 0;
	*made = counted;
	disarm();
	check_clean(fresh);
	remove_store(fresh);
	return clean;
}

/*
 * With SQLite's allocation n failing, the check of the damaged store in
 * dir: a check that answers finds all of the damage; one that could not
 * look says so, never "sound".  As make_once().
 */
static int
check_once(const char *dir, long n, long *made)
{
	struct store	*st;
	enum store_err	 err;
	uint64_t	 blobs = 0, problems = 0;
	int		 clean;

	assert_int_equal(store_open(dir, &st), STORE_OK);
	arm(n);
	err = store_check(st, report_quietly, NULL, &blobs, &problems);
	clean = n < 0 || countdown >= 0;
	*made = counted;
	disarm();
	store_close(st);
	assert_true(err == STORE_OK || !clean);
	if (n < 0)
		damage_found = problems;
	else if (err == STORE_OK)
		assert_true(problems >= damage_found);
	return clean;
}

/*
 * Runs once(arg, n, &made) clean, then for n from 0 up to what the clean
 * run allocated: every n when long, else about FAULT_RUNS of them.
 */
static void
every_n(int (*once)(const char *, long, long *), const char *arg)
{
	const char	*env = getenv("MAILREPD_FAULTS_LONG");
	long		 n, step, total, made;

	assert_true(once(arg, -1, &total));
	step = env != NULL && strcmp(env, "1") == 0 ? 1 :
	    total / FAULT_RUNS + 1;
	for (n = 0; n < total; n += step)
		(void)once(arg, n, &made);
}

/* make_once() in every_n()'s shape. */
static int
make_fresh_once(const char *unused, long n, long *made)
{
	(void)unused;
	return make_once(n, made);
}

static void
test_new_store_under_alloc_faults(void **state)
{
	(void)state;
	every_n(make_fresh_once, NULL);
}

static void
test_check_under_alloc_faults(void **state)
{
	char		 template[64];

	(void)state;
	make_template(template, replica_prepare_batch);
	damage(template);
	every_n(check_once, template);
	assert_true(damage_found >= 2);
	remove_store(template);
}

/* --- a new incarnation, a backup and its restore ----------------------- */

static uint8_t	 first_node_id[NODE_ID_LEN];	/* the template's */

/* The replica's batch, a replica of its own, and its node id kept. */
static void
incarnation_prepare(struct store *st)
{
	struct store_replica	 rep;
	struct store_node	 me;

	replica_prepare_batch(st);
	memset(&rep, 0, sizeof(rep));
	snprintf(rep.name, sizeof(rep.name), "r1");
	memset(rep.node_id, 4, NODE_ID_LEN);
	rep.acked = 5;
	assert_int_equal(store_replica_update(st, &rep), STORE_OK);
	assert_int_equal(store_node_get(st, &me), STORE_OK);
	memcpy(first_node_id, me.node_id, NODE_ID_LEN);
}

/* Whether the store in dir has the template's node id. */
static int
same_node(const char *dir)
{
	char	 sql[128], hex[NODE_ID_LEN * 2 + 1];

	crypto_hex(first_node_id, NODE_ID_LEN, hex);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM node WHERE "
	    "node_id = x'%s'", hex);
	return query(dir, sql) == 1;
}

/* `mailrepd restore`'s last step: a new node id and epoch. */
static enum store_err
incarnation_run(struct store *st)
{
	int	 renewed;

	return store_incarnation(st, run_dir, 1, &renewed);
}

static int
incarnation_done(const char *dir)
{
	return !same_node(dir) && query(dir, "SELECT reconciling FROM "
	    "replica") == 1 && query(dir, "SELECT count(*) FROM message") == 1;
}

static int
incarnation_untouched(const char *dir)
{
	return same_node(dir) && query(dir, "SELECT reconciling FROM "
	    "replica") == 0;
}

static void
test_incarnation_under_alloc_faults(void **state)
{
	static const struct scenario sc = { incarnation_prepare,
	    incarnation_run, incarnation_done, incarnation_untouched, NULL,
	    0 };

	(void)state;
	fault_loop(&sc, run_once);
}

/* Where a run's backup (b/) and its restore (r/) go. */
static void
side_dir(char *out, size_t len, const char *dir, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

/* `mailrepd backup` of the open store, then `restore` of it elsewhere. */
static enum store_err
backup_run(struct store *st)
{
	char		 b[96], r[96], file[128];
	enum store_err	 err;

	(void)st;
	side_dir(b, sizeof(b), run_dir, "b");
	side_dir(r, sizeof(r), run_dir, "r");
	(void)mkdir(b, 0700);
	snprintf(file, sizeof(file), "%s/mailrepd.db", b);
	if ((err = store_backup(run_dir, file, NULL, NULL)) != STORE_OK)
		return err;
	return store_restore_file(file, r);
}

static int
backup_done(const char *dir)
{
	char	 r[96];

	side_dir(r, sizeof(r), dir, "r");
	return query(r, "SELECT count(*) FROM message") == 1 &&
	    query(r, "SELECT count(*) FROM conflict") == 1;
}

static int
backup_untouched(const char *dir)
{
	char	 r[96];

	side_dir(r, sizeof(r), dir, "r/mailrepd.db");
	return access(r, F_OK) != 0;
}

static void
test_backup_restore_under_alloc_faults(void **state)
{
	static const struct scenario sc = { replica_prepare_batch,
	    backup_run, backup_done, backup_untouched, NULL, 0 };

	(void)state;
	fault_loop(&sc, run_once);
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test(test_replica_batch_under_alloc_faults),
		cmocka_unit_test(test_renumbering_under_alloc_faults),
		cmocka_unit_test(test_renumbering_again_under_alloc_faults),
		cmocka_unit_test(test_expunged_copy_pushed_under_alloc_faults),
		cmocka_unit_test(test_client_changes_under_alloc_faults),
		cmocka_unit_test(test_move_in_steps_under_alloc_faults),
		cmocka_unit_test(test_copy_sweep_under_alloc_faults),
		cmocka_unit_test(test_copy_steps_refusals),
		cmocka_unit_test(test_index_batch_under_alloc_faults),
		cmocka_unit_test(test_deletes_and_cleanup_under_alloc_faults),
		cmocka_unit_test(test_replica_edges_under_alloc_faults),
		cmocka_unit_test(test_holds_and_bookkeeping_under_alloc_faults),
		cmocka_unit_test(test_group_commit_under_alloc_faults),
		cmocka_unit_test(test_conflict_drop_under_alloc_faults),
		cmocka_unit_test(test_lookups_fail_under_alloc_faults),
		cmocka_unit_test(test_promotion_under_alloc_faults),
		cmocka_unit_test(test_incarnation_under_alloc_faults),
		cmocka_unit_test(test_backup_restore_under_alloc_faults),
		cmocka_unit_test(test_backup_restore_refusals),
		cmocka_unit_test(test_new_store_under_alloc_faults),
		cmocka_unit_test(test_check_under_alloc_faults),
	};

	if (getenv("MAILREPD_FAULTS_ONLY") != NULL)
		cmocka_set_test_filter(getenv("MAILREPD_FAULTS_ONLY"));
	if (faults_install() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
