/*
 * store_stage.c — big blobs written and dropped in steps (schema_v25),
 * so that no loop iteration writes or deletes 50 MiB at once.
 *
 * A message of BLOB_STEP_MIN bytes or more is written a step a loop
 * iteration, each in the group commit, under a blob id reserved from
 * blob's AUTOINCREMENT sequence and listed in piece_loose; its blob row,
 * and with it its GUID, is added by the delivery's own commit
 * (blob_put()), so that until then no GUID look-up, reader, replica,
 * index or `mailrepd check` takes its pieces for a message, and a kill
 * leaves loose pieces, never half a message.  A big blob that nothing
 * uses any more loses its blob row at once and is listed again; its
 * pieces go a few a step.  Whatever piece_loose lists that no live stage
 * writes (all of it after a restart) is dropped by loose_step().
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "store.h"
#include "store_internal.h"

/* Runs statement id with blob id ?1. */
static enum store_err
loose_run(struct store *st, enum stmt_id id, int64_t blob_id,
    const char *what)
{
	sqlite3_stmt	*s;

	if ((s = stmt(st, id)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, blob_id);
	return step_done(st, s, what);
}

/*
 * Reserves a blob id for the stage: the next one blob's AUTOINCREMENT
 * would give, which it then never gives (sqlite_sequence moves past
 * it), listed in piece_loose.
 */
static enum store_err
stage_reserve(struct store *st, struct store_stage *sg)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 id;

	if ((s = stmt(st, S_LOOSE_NEXT_ID)) == NULL)
		return STORE_IO;
	if ((err = step_row(st, s, "blob id")) != STORE_OK)
		return err;
	id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if ((err = loose_run(st, S_LOOSE_SEQ_SET, id, "blob id")) !=
	    STORE_OK)
		return err;
	if (sqlite3_changes(st->db) == 0 &&
	    (err = loose_run(st, S_LOOSE_SEQ_ADD, id, "blob id")) != STORE_OK)
		return err;
	if ((err = loose_run(st, S_LOOSE_ADD, id, "loose add")) != STORE_OK)
		return err;
	sg->blob_id = id;
	return STORE_OK;
}

/* A new stage, in st->stages; NULL when out of memory. */
static struct store_stage *
stage_new(struct store *st)
{
	struct store_stage	*sg;

	if ((sg = calloc(1, sizeof(*sg))) == NULL)
		return NULL;
	sg->st = st;
	sg->next = st->stages;
	st->stages = sg;
	return sg;
}

enum store_err
store_blob_stage(struct store *st, struct store_blob_in *b, int *done)
{
	struct store_stage	*sg = b->stage, at;
	enum store_err		 err;
	int64_t			 id;

	*done = 1;
	if (b->size < BLOB_STEP_MIN)
		return STORE_OK;
	if (sg == NULL) {
		if ((err = blob_find(st, b->guid, &id)) != STORE_NOTFOUND)
			return err;	/* stored already, or a failure */
		if (!room_for_blob(st, b->size))
			return STORE_FULL;
		if ((sg = b->stage = stage_new(st)) == NULL)
			return STORE_IO;
	}
	if (sg->off == b->size)
		return STORE_OK;
	if ((err = op_begin(st)) != STORE_OK)
		return err;
	at = *sg;
	err = sg->blob_id != 0 ? STORE_OK : stage_reserve(st, sg);
	if (err == STORE_OK)
		err = blob_write_rows(st, sg->blob_id, b, &sg->off, &sg->seq,
		    log_clock_us() + STORE_STAGE_STEP_USEC);
	if ((err = op_end(st, err)) != STORE_OK) {
		sg->blob_id = at.blob_id;	/* the savepoint undid it */
		sg->off = at.off;
		sg->seq = at.seq;
		return err;
	}
	*done = sg->off == b->size;
	return STORE_OK;
}

void
store_blob_unstage(struct store_blob_in *b)
{
	struct store_stage	*sg = b->stage, **p;

	if (sg == NULL)
		return;
	for (p = &sg->st->stages; *p != sg; p = &(*p)->next)
		assert(*p != NULL);
	*p = sg->next;
	sg->st->loose_more = 1;		/* its pieces, unless delivered */
	free(sg);
	b->stage = NULL;
}

enum store_err
stage_adopt(struct store *st, const struct store_stage *sg)
{
	enum store_err	 err;

	if ((err = loose_run(st, S_LOOSE_DEL, sg->blob_id, "loose adopt")) ==
	    STORE_OK && sqlite3_changes(st->db) != 1) {
		log_error("store.stage", "msg=\"staged blob %lld not loose\"",
		    (long long)sg->blob_id);
		err = STORE_IO;
	}
	return err;
}

void
stage_settle(struct store *st, int kept)
{
	struct store_stage	*sg;

	for (sg = st->stages; sg != NULL; sg = sg->next) {
		if (kept) {
			sg->kept_id = sg->blob_id;
			sg->kept_off = sg->off;
			sg->kept_seq = sg->seq;
		} else {
			sg->blob_id = sg->kept_id;
			sg->off = sg->kept_off;
			sg->seq = sg->kept_seq;
		}
	}
	if (!kept)
		st->loose_more = 1;	/* a delivery's adoption undone */
}

enum store_err
loose_queue(struct store *st, int64_t blob_id)
{
	st->loose_more = 1;
	return loose_run(st, S_LOOSE_ADD, blob_id, "loose add");
}

/* Whether a live stage writes blob_id. */
static int
stage_live(const struct store *st, int64_t blob_id)
{
	const struct store_stage	*sg;

	for (sg = st->stages; sg != NULL; sg = sg->next)
		if (sg->blob_id == blob_id || sg->kept_id == blob_id)
			return 1;
	return 0;
}

/*
 * The first id after `after` that piece_loose lists and no live stage
 * writes, in *id; STORE_NOTFOUND when there is none.
 */
static enum store_err
loose_next(struct store *st, int64_t after, int64_t *id)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	do {
		if ((s = stmt(st, S_LOOSE_NEXT)) == NULL)
			return STORE_IO;
		sqlite3_bind_int64(s, 1, after);
		if ((err = step_row(st, s, "loose next")) != STORE_OK)
			return err;
		after = *id = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	} while (stage_live(st, *id));
	return STORE_OK;
}

/*
 * Deletes the first BLOB_DROP_ROWS rows of blob_id's pieces left, or,
 * when none is left, its line in piece_loose (*gone).
 */
static enum store_err
loose_drop(struct store *st, int64_t blob_id, int *gone)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	int64_t		 first, last = piece_rowid(blob_id,
			    ((int64_t)1 << BLOB_PIECE_BITS) - 1);

	if ((s = stmt(st, S_LOOSE_FIRST)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, piece_rowid(blob_id, 0));
	sqlite3_bind_int64(s, 2, last);
	if ((err = step_row(st, s, "loose first")) != STORE_OK)
		return err;
	*gone = sqlite3_column_type(s, 0) == SQLITE_NULL;
	first = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (*gone)
		return loose_run(st, S_LOOSE_DEL, blob_id, "loose done");
	if ((s = stmt(st, S_PIECE_DROP)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, first);
	sqlite3_bind_int64(s, 2, first + BLOB_DROP_ROWS - 1 < last ?
	    first + BLOB_DROP_ROWS - 1 : last);
	return step_done(st, s, "loose drop");
}

int
loose_step(struct store *st)
{
	enum store_err	 err;
	int64_t		 id, start;
	int		 gone = 0;

	if (!st->loose_more)
		return 0;
	if ((err = loose_next(st, 0, &id)) != STORE_OK) {
		if (err == STORE_NOTFOUND)
			st->loose_more = 0;	/* again when one is listed */
		return 0;
	}
	if (op_begin(st) != STORE_OK)
		return 0;	/* again when the loop next wakes */
	start = log_clock_us();
	do
		err = loose_drop(st, id, &gone);
	while (err == STORE_OK && !gone &&
	    log_clock_us() - start < STORE_STAGE_STEP_USEC);
	return op_end(st, err) == STORE_OK;
}
