/*
 * store_copy.c — COPY and MOVE in steps, all or nothing all the same.
 *
 * A COPY of 20,000 messages writes a row, a UID, a MODSEQ and a log
 * record for each: about a second of work, far more than the loop's
 * step.  So a big COPY is a job in the journal (copy_job, schema 19),
 * done a step at a time, each step committed by that iteration's group
 * commit:
 * - Its copies are real rows of the target at UIDs from its uidnext on,
 *   but its uidnext, HIGHESTMODSEQ and counters stay as they were: every
 *   reader sees only the rows below uidnext (MSG_SHOWN), so no session,
 *   LMTP, the HTTP API nor a reconciliation sees them.  Their log
 *   records take their place in the log, but the master sends no
 *   replica any record from the job's first on (S_REPLOG_NEXT) while it
 *   copies: replication pauses behind it, and then sees the COPY as
 *   it saw one made at once, one append record a copy.
 * - The target is held meanwhile: every other write into it (a
 *   delivery, an APPEND, a flag change, an EXPUNGE, a DELETE) gets
 *   STORE_BUSY, so that no other message takes a UID or MODSEQ among
 *   the copies' and the copies' UIDs stay above every message shown.
 * - The step that copies the last one shows them all: one UPDATE of the
 *   target's row (uidnext, HIGHESTMODSEQ, counters) and the job's.  A
 *   MOVE then expunges its sources in later steps, as an EXPUNGE of
 *   many does; the copies stay, and an expunge the server did not get
 *   to before a crash is done at the next start.
 * - A job left unfinished (an error, a failed commit, a disconnect, a
 *   drain, or a crash: at start every job in the journal is one) is
 *   swept: its copies and their records deleted a batch a step, the
 *   log's head put back where its last record is, so that no replica
 *   ever hears of them and an undone COPY counts as no delete.
 * Quotas count what a COPY copied so far (S_USER_USAGE), so that a
 * COPY passing a limit midway fails there and nothing else gets in
 * meanwhile; a MOVE between the user's own mailboxes grows nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "store.h"
#include "store_internal.h"

/* A job's row of the journal, as a step reads and writes it. */
struct job_row {
	int64_t		 target, source;
	uint8_t		 uniqueid[MAILBOX_ID_LEN];
	int		 move, expunging;
	uint32_t	 uid_lo, uid_next;
	uint64_t	 modseq_next;
	int64_t		 first_seq, undo_seq;
	int64_t		 done, n, unseen, bytes;
	int		 dropped;	/* the step ended the job */
};

/* Runs a one-off statement (of prepare()) once, then finalizes it. */
static enum store_err
run_sql(struct store *st, sqlite3_stmt *s, const char *what)
{
	int	 rc;

	if (s == NULL)
		return STORE_IO;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK :
	    db_error(st, rc, what);
}

/* Reads job id's row; STORE_NOTFOUND when it is gone. */
static enum store_err
job_get(struct store *st, int64_t id, struct job_row *j)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = prepare(st, "SELECT target, uniqueid, source, move, "
	    "expunging, uid_lo, uid_next, modseq_next, first_seq, undo_seq, "
	    "done, length(sources) / 4, unseen, bytes FROM copy_job "
	    "WHERE id = ?1")) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, id);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? STORE_NOTFOUND :
		    db_error(st, rc, "copy job");
	}
	j->target = sqlite3_column_int64(s, 0);
	memset(j->uniqueid, 0, sizeof(j->uniqueid));
	if (sqlite3_column_bytes(s, 1) == MAILBOX_ID_LEN)
		memcpy(j->uniqueid, sqlite3_column_blob(s, 1), MAILBOX_ID_LEN);
	j->source = sqlite3_column_int64(s, 2);
	j->move = sqlite3_column_int(s, 3);
	j->expunging = sqlite3_column_int(s, 4);
	j->uid_lo = (uint32_t)sqlite3_column_int64(s, 5);
	j->uid_next = (uint32_t)sqlite3_column_int64(s, 6);
	j->modseq_next = (uint64_t)sqlite3_column_int64(s, 7);
	j->first_seq = sqlite3_column_int64(s, 8);
	j->undo_seq = sqlite3_column_int64(s, 9);
	j->done = sqlite3_column_int64(s, 10);
	j->n = sqlite3_column_int64(s, 11);
	j->unseen = sqlite3_column_int64(s, 12);
	j->bytes = sqlite3_column_int64(s, 13);
	j->dropped = 0;
	sqlite3_finalize(s);
	return STORE_OK;
}

/* Writes back what a step changed in job id's row. */
static enum store_err
job_save(struct store *st, int64_t id, const struct job_row *j)
{
	sqlite3_stmt	*s;

	if ((s = prepare(st, "UPDATE copy_job SET expunging = ?2, "
	    "uid_next = ?3, modseq_next = ?4, undo_seq = ?5, done = ?6, "
	    "unseen = ?7, bytes = ?8 WHERE id = ?1")) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, j->expunging);
	sqlite3_bind_int64(s, 3, j->uid_next);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)j->modseq_next);
	sqlite3_bind_int64(s, 5, j->undo_seq);
	sqlite3_bind_int64(s, 6, j->done);
	sqlite3_bind_int64(s, 7, j->unseen);
	sqlite3_bind_int64(s, 8, j->bytes);
	return run_sql(st, s, "copy job save");
}

static enum store_err
job_drop(struct store *st, int64_t id)
{
	sqlite3_stmt	*s;

	if ((s = prepare(st, "DELETE FROM copy_job WHERE id = ?1")) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, id);
	return run_sql(st, s, "copy job drop");
}

/* The journal's form of the sources: 4 bytes a UID, little-endian. */
static uint8_t *
sources_pack(const uint32_t *uids, size_t n)
{
	uint8_t		*p;
	size_t		 i;

	if ((p = malloc(n * 4)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		p[4 * i] = (uint8_t)uids[i];
		p[4 * i + 1] = (uint8_t)(uids[i] >> 8);
		p[4 * i + 2] = (uint8_t)(uids[i] >> 16);
		p[4 * i + 3] = (uint8_t)(uids[i] >> 24);
	}
	return p;
}

/* Reads up to max source UIDs of job id from index `from` into uids. */
static enum store_err
sources_read(struct store *st, int64_t id, int64_t from, uint32_t *uids,
    size_t max, size_t *n)
{
	sqlite3_stmt	*s;
	const uint8_t	*p;
	size_t		 i;
	int		 rc;

	*n = 0;
	if ((s = prepare(st, "SELECT substr(sources, ?2, ?3) FROM copy_job "
	    "WHERE id = ?1")) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, from * 4 + 1);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)max * 4);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		p = sqlite3_column_blob(s, 0);
		*n = (size_t)sqlite3_column_bytes(s, 0) / 4;
		for (i = 0; i < *n; i++)
			uids[i] = (uint32_t)p[4 * i] |
			    (uint32_t)p[4 * i + 1] << 8 |
			    (uint32_t)p[4 * i + 2] << 16 |
			    (uint32_t)p[4 * i + 3] << 24;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK :
	    db_error(st, rc, "copy sources");
}

/*
 * Inside the caller's savepoint: checks that the copies fit the
 * target's limit and, for a COPY, the owner's message quota (its bytes
 * are counted as they are copied), then journals the job with the
 * target's next UID and MODSEQ as the copies' first.
 */
static enum store_err
job_insert(struct store *st, struct store_copy_job *job)
{
	struct store_usage	 use;
	sqlite3_stmt		*s;
	uint8_t			*packed;
	enum store_err		 err;
	int64_t			 head;
	int			 rc;

	if ((err = mailbox_unlocked(st, job->to)) != STORE_OK ||
	    (err = mailbox_room(st, job->to, job->n)) != STORE_OK ||
	    (err = quota_before(st, job->to, &use)) != STORE_OK)
		return err;
	/* The job's records start past the head: they must not ship. */
	if ((head = store_replog_head(st)) < 0)
		return STORE_IO;
	if (!job->move && st->quota.messages != 0 &&
	    use.messages + job->n > st->quota.messages)
		return STORE_QUOTA;
	if ((packed = sources_pack(job->uids, job->n)) == NULL)
		return STORE_IO;
	if ((s = prepare(st, "INSERT INTO copy_job (target, uniqueid, "
	    "source, move, uid_lo, uid_next, modseq_next, first_seq, sources, "
	    "time) SELECT id, uniqueid, ?2, ?3, uidnext, uidnext, "
	    "highestmodseq + 1, ?4, ?5, ?6 FROM mailbox WHERE id = ?1 "
	    "AND uidnext + ?7 < 4294967295 RETURNING id, uid_lo")) == NULL) {
		free(packed);
		return STORE_IO;
	}
	sqlite3_bind_int64(s, 1, job->to);
	sqlite3_bind_int64(s, 2, job->from);
	sqlite3_bind_int(s, 3, job->move);
	sqlite3_bind_int64(s, 4, head + 1);
	sqlite3_bind_blob(s, 5, packed, (int)(job->n * 4), free);
	sqlite3_bind_int64(s, 6, time(NULL));
	sqlite3_bind_int64(s, 7, (sqlite3_int64)job->n);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		job->id = sqlite3_column_int64(s, 0);
		job->uid_lo = (uint32_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	/* No row: the UIDs would pass 2^32 - 1, IMAP's last. */
	return rc == SQLITE_ROW ? STORE_OK : rc == SQLITE_DONE ? STORE_FULL :
	    db_error(st, rc, "copy job");
}

enum store_err
store_copy_begin(struct store *st, struct store_copy_job *job)
{
	enum store_err	 err;

	job->id = 0;
	job->done = 0;
	job->shown = job->finished = 0;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = op_end(st, job_insert(st, job))) != STORE_OK) {
		job->id = 0;
		return err;
	}
	job->next = st->copy_jobs;
	st->copy_jobs = job;
	return STORE_OK;
}

/*
 * Copies sources from j->done on, at least one, until the deadline:
 * rows at the target's next UIDs and MODSEQs, not shown, each logged
 * (a MOVE's as a MOVE's, as store_message_copy_many() logs them).  A
 * source gone (expunged meanwhile) fails the job: all or nothing.
 */
static enum store_err
stage(struct store *st, const struct store_copy_job *job, struct job_row *j,
    int64_t deadline_us)
{
	struct store_message	 m;
	struct msg_attrs	 a;
	struct msg_place	 at = { .mbox_id = job->to };
	int64_t			 blob_id, first = j->done;
	enum store_err		 err = STORE_OK;
	enum rec_reason		 was;

	was = store_set_reason(st, job->move ? REASON_MOVE : st->reason);
	memcpy(at.uniqueid, j->uniqueid, MAILBOX_ID_LEN);
	while (err == STORE_OK && (size_t)j->done < job->n &&
	    (j->done == first || log_clock_us() < deadline_us)) {
		if ((err = message_row(st, job->from, job->uids[j->done], &m,
		    &blob_id)) != STORE_OK)
			break;
		at.uid = j->uid_next;
		at.modseq = j->modseq_next;
		a = (struct msg_attrs){ m.flags, m.keywords, m.internaldate,
		    0 };
		if ((err = message_put(st, &at, blob_id, m.guid, &a)) !=
		    STORE_OK)
			break;
		j->uid_next++;
		j->modseq_next++;
		j->done++;
		j->unseen += (m.flags & FLAG_SEEN) == 0;
		j->bytes += (int64_t)m.size;
	}
	(void)store_set_reason(st, was);
	return err;
}

/*
 * Shows every copy at once: the target's uidnext, HIGHESTMODSEQ and
 * counters take them in (the target was held: nothing else moved
 * them).  A COPY's job is done; a MOVE's goes on with its expunges.
 */
static enum store_err
show(struct store *st, int64_t id, struct job_row *j)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((s = prepare(st, "UPDATE mailbox SET uidnext = ?2, "
	    "highestmodseq = max(highestmodseq, ?3), nmessages = nmessages "
	    "+ ?4, nunseen = nunseen + ?5, nbytes = nbytes + ?6 "
	    "WHERE id = ?1")) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, j->target);
	sqlite3_bind_int64(s, 2, j->uid_next);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)j->modseq_next - 1);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)(j->uid_next - j->uid_lo));
	sqlite3_bind_int64(s, 5, j->unseen);
	sqlite3_bind_int64(s, 6, j->bytes);
	if ((err = run_sql(st, s, "copy show")) != STORE_OK)
		return err;
	if (sqlite3_changes(st->db) != 1)
		return STORE_NOTFOUND;		/* the target went */
	if (!j->move) {
		j->dropped = 1;
		return job_drop(st, id);
	}
	j->expunging = 1;
	j->done = 0;
	return job_save(st, id, j);
}

/*
 * Expunges a MOVE's sources uids[0..n) (from j->done on) until the
 * deadline, each logged as a MOVE's (the guard does not count it); one
 * expunged elsewhere meanwhile is passed over.  STORE_BUSY when a COPY
 * in steps holds the source and none was expunged.
 */
static enum store_err
expunge_sources(struct store *st, int64_t id, struct job_row *j,
    const uint32_t *uids, size_t n, int64_t deadline_us)
{
	enum rec_reason	 was = store_set_reason(st, REASON_MOVE);
	enum store_err	 err = STORE_OK;
	size_t		 i;

	for (i = 0; i < n && (i == 0 || log_clock_us() < deadline_us); i++) {
		err = message_expunge(st, j->source, uids[i], NULL);
		if (err == STORE_NOTFOUND)
			err = STORE_OK;
		if (err != STORE_OK)
			break;
		j->done++;
	}
	(void)store_set_reason(st, was);
	if (err == STORE_BUSY && i > 0)
		err = STORE_OK;		/* on in a later step */
	if (err != STORE_OK)
		return err;
	j->dropped = j->done == j->n;
	return j->dropped ? job_drop(st, id) : job_save(st, id, j);
}

/* One step of a live job, inside its savepoint; *j: the job after it. */
static enum store_err
copy_step(struct store *st, const struct store_copy_job *job,
    int64_t deadline_us, struct job_row *j)
{
	struct store_usage	 before;
	enum store_err		 err;

	if ((err = job_get(st, job->id, j)) != STORE_OK)
		return err == STORE_NOTFOUND ? STORE_IO : err;
	if ((size_t)j->done != job->done || j->expunging != job->shown)
		return STORE_IO;	/* a step's commit failed */
	if (j->expunging)
		return expunge_sources(st, job->id, j, job->uids + j->done,
		    job->n - (size_t)j->done, deadline_us);
	if ((err = quota_before(st, job->to, &before)) != STORE_OK ||
	    (err = stage(st, job, j, deadline_us)) != STORE_OK ||
	    (err = job_save(st, job->id, j)) != STORE_OK ||
	    (err = quota_kept(st, job->to, &before)) != STORE_OK)
		return err;
	if ((size_t)j->done < job->n)
		return STORE_OK;
	return show(st, job->id, j);
}

enum store_err
store_copy_step(struct store *st, struct store_copy_job *job,
    int64_t deadline_us)
{
	struct job_row	 j = { .dropped = 0 };
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((err = op_end(st, copy_step(st, job, deadline_us, &j))) !=
	    STORE_OK)
		return err;
	job->shown = j.expunging || j.dropped;
	job->finished = j.dropped;
	job->done = (size_t)j.done;
	return STORE_OK;
}

void
store_copy_abandon(struct store *st, struct store_copy_job *job)
{
	struct store_copy_job	**p;

	for (p = &st->copy_jobs; *p != NULL; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			if (!job->finished)
				st->copy_sweep = 1;
			break;
		}
	job->id = 0;
}

/*
 * Puts the log's head back on its last record (or the purged base) once
 * an undone job's records are gone: they were never sent, so that no
 * replica waits for a position no record will reach.  Never below a
 * job still copying: its records must stay behind its first_seq.
 */
static enum store_err
head_back(struct store *st)
{
	return run_sql(st, prepare(st, "UPDATE sqlite_sequence SET seq = "
	    "max((SELECT coalesce(max(seq), 0) FROM replog), "
	    "(SELECT log_base_seq FROM node), (SELECT coalesce(max(first_seq) "
	    "- 1, 0) FROM copy_job WHERE expunging = 0)) "
	    "WHERE name = 'replog'"), "log head back");
}

/*
 * Deletes the copies from UID lo up, their blobs queued for collection
 * (a source expunged meanwhile leaves its copy the last user).
 */
static enum store_err
undo_rows(struct store *st, const struct job_row *j, uint32_t lo)
{
	static const char *const sql[] = {
		"INSERT OR IGNORE INTO blob_unused (blob_id) SELECT blob_id "
		"FROM message WHERE mailbox_id = ?1 AND uid >= ?2 AND uid < ?3",
		"DELETE FROM message WHERE mailbox_id = ?1 AND uid >= ?2 AND "
		"uid < ?3",
	};
	sqlite3_stmt	*s;
	enum store_err	 err = STORE_OK;
	size_t		 i;

	for (i = 0; i < nitems(sql) && err == STORE_OK; i++) {
		if ((s = prepare(st, sql[i])) == NULL)
			return STORE_IO;
		sqlite3_bind_int64(s, 1, j->target);
		sqlite3_bind_int64(s, 2, lo);
		sqlite3_bind_int64(s, 3, j->uid_next);
		err = run_sql(st, s, "copy undo");
	}
	st->gc_more = 1;
	return err;
}

/*
 * One batch of undoing a job: its copies from the top down, then its
 * log records in order of position; then the job goes and the target
 * is free.
 */
static enum store_err
undo(struct store *st, int64_t id, struct job_row *j)
{
	sqlite3_stmt	*s;
	int64_t		 head, to;
	uint32_t	 lo;

	if (j->uid_next > j->uid_lo) {
		lo = j->uid_next - j->uid_lo > STORE_COPY_UNDO_BATCH ?
		    j->uid_next - STORE_COPY_UNDO_BATCH : j->uid_lo;
		if (undo_rows(st, j, lo) != STORE_OK)
			return STORE_IO;
		j->uid_next = lo;
		return job_save(st, id, j);
	}
	/* Not knowing the head is no licence to leave the copies' records. */
	if ((head = store_replog_head(st)) < 0)
		return STORE_IO;
	if (j->undo_seq < j->first_seq)
		j->undo_seq = j->first_seq;
	if (j->undo_seq <= head) {
		to = j->undo_seq + STORE_COPY_UNDO_BATCH;
		if ((s = prepare(st, "DELETE FROM replog WHERE seq >= ?1 AND "
		    "seq < ?2 AND type = 'message.append' AND mailbox = ?3 AND "
		    "uid >= ?4")) == NULL)
			return STORE_IO;
		sqlite3_bind_int64(s, 1, j->undo_seq);
		sqlite3_bind_int64(s, 2, to);
		sqlite3_bind_blob(s, 3, j->uniqueid, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, j->uid_lo);
		j->undo_seq = to;
		return run_sql(st, s, "copy undo log") == STORE_OK ?
		    job_save(st, id, j) : STORE_IO;
	}
	if (job_drop(st, id) != STORE_OK)
		return STORE_IO;
	log_info("store.copy.undone", "job=%lld copies=%lld",
	    (long long)id, (long long)j->done);
	return head_back(st);
}

/*
 * The first job in the journal that no live session owns, 0 when none,
 * or -1 when the journal cannot be read (not "none": it is read again).
 */
static int64_t
orphan(struct store *st)
{
	struct store_copy_job	*live;
	sqlite3_stmt		*s;
	int64_t			 id = 0;
	int			 rc = SQLITE_DONE;

	if ((s = prepare(st, "SELECT id FROM copy_job ORDER BY id")) == NULL)
		return -1;
	while (id == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		id = sqlite3_column_int64(s, 0);
		for (live = st->copy_jobs; live != NULL; live = live->next)
			if (live->id == id)
				id = 0;
	}
	if (id == 0 && rc != SQLITE_DONE) {
		(void)db_error(st, rc, "copy orphan");
		id = -1;
	}
	sqlite3_finalize(s);
	return id;
}

/* One step on an abandoned job: undone, or a MOVE's expunges go on. */
static enum store_err
sweep_one(struct store *st, int64_t id)
{
	uint32_t	 uids[STORE_COPY_UNDO_BATCH];
	struct job_row	 j;
	enum store_err	 err;
	size_t		 n;

	if ((err = job_get(st, id, &j)) != STORE_OK)
		return err;
	if (!j.expunging)
		return undo(st, id, &j);
	if ((err = sources_read(st, id, j.done, uids, nitems(uids), &n)) !=
	    STORE_OK)
		return err;
	if (n == 0)
		return job_drop(st, id);
	return expunge_sources(st, id, &j, uids, n,
	    log_clock_us() + STORE_COPY_STEP_USEC);
}

int
store_copy_sweep(struct store *st)
{
	int64_t		 id;

	if (!st->copy_sweep)
		return 0;
	if ((id = orphan(st)) == 0)
		st->copy_sweep = 0;
	if (id <= 0 || op_begin(st) != STORE_OK)
		return 0;
	return op_end(st, sweep_one(st, id)) == STORE_OK;
}

int64_t
store_replog_shippable(struct store *st)
{
	sqlite3_stmt	*s;
	int64_t		 head = store_replog_head(st), fence = head + 1;
	int		 rc;

	if (head < 0 || (s = prepare(st, "SELECT min(first_seq) FROM "
	    "copy_job WHERE expunging = 0")) == NULL)
		return -1;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    sqlite3_column_type(s, 0) != SQLITE_NULL)
		fence = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return -1;	/* unknown: nothing may ship on a guess */
	return fence - 1 < head ? fence - 1 : head;
}
