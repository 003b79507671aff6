/*
 * store_internal.h — what the store's files (store.c, store_*.c) share:
 * the store's struct, its prepared statements and the helpers every
 * operation uses.
 * Nothing outside the store module includes this; store.h is the API.
 */
#ifndef MAILREPD_STORE_INTERNAL_H
#define MAILREPD_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

#define DB_FILE		"mailrepd.db"	/* the store, in the data directory */

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* Every statement the store runs more than once, prepared once. */
/*
 * The log position a tombstone waits for (schema_v10): the next record's,
 * the one that says so when the tombstone is written before it, or one
 * past it when after (a replica then acknowledges one record more).
 */
#define LOGPOS_NEXT	"(SELECT coalesce(max(seq), 0) + 1 FROM " \
			"sqlite_sequence WHERE name = 'replog')"

/*
 * A message's save date (RFC 8514) in a statement on message m: its
 * internal date when it came before schema version 20 kept them.
 */
#define MSG_SAVEDATE	"coalesce(m.savedate, m.internaldate)"

/*
 * One message's row by (mailbox ?1, uid ?2) as message_columns() reads
 * it, and the blob b it uses: S_MSG_GET, and with the blob's meta
 * (store_message_get_meta()).
 */
#define MSG_ROW_COLUMNS	"m.uid, b.guid, m.modseq, m.flags, m.keywords, " \
			"m.internaldate, b.size, " MSG_SAVEDATE ", m.blob_id"
#define MSG_ROW_NCOLUMNS 9
#define MSG_ROW_FROM	" FROM message m JOIN blob b ON b.id = m.blob_id " \
			"WHERE m.mailbox_id = ?1 AND m.uid = ?2 AND" \
			MSG_SHOWN("m", "?1")

/*
 * The rows readers see: a COPY in steps (store_copy.c) keeps its copies
 * at and above their mailbox's uidnext until it ends.  mbox is the
 * mailbox's id: a parameter ("?1") is looked up once.
 */
#define MSG_SHOWN(m, mbox) \
			" " m ".uid < (SELECT uidnext FROM mailbox WHERE " \
			"id = " mbox ") "

#define STORE_WEB_STMTS	4	/* store_web.c's statements */

/* The schema steps (store_schema.c): [v] takes version v to v + 1. */
extern const char *const store_migrations[SCHEMA_VERSION];

enum stmt_id {
	S_USER_ADD,
	S_USER_FIND,
	S_USER_DEL,
	S_USER_SETPW,
	S_USER_LIST,
	S_MBOX_GET,
	S_MBOX_ADD,
	S_MBOX_TARGET,
	S_MBOX_LIST,
	S_MBOX_BUMP,
	S_MBOX_OF_USER,
	S_MBOX_DEL_USER,
	S_MBOX_GONE,
	S_NODE_UIDVALIDITY,
	S_BLOB_FIND,
	S_BLOB_ADD,
	S_PIECE_ADD,
	S_CHUNK_GET,
	S_MSG_ADD,
	S_MSG_LIST,
	S_MSG_EXPUNGE_ALL,
	S_MSG_DEL_ALL,
	S_GC_QUEUE_MAILBOX,
	S_GC_QUEUE_ONE,
	S_GC_NEXT,
	S_GC_DONE,
	S_REPLOG_ADD,
	S_REPLOG_HEAD,
	S_MBOX_RENAME_ONE,
	S_SUB_ADD,
	S_SUB_DEL,
	S_SUB_ABSENT,
	S_MBOX_DELETE,
	S_MBOX_MODSEQ,
	S_MBOX_CHILDREN,
	S_MSG_GET,
	S_MSG_SET_FLAGS,
	S_MSG_DEL,
	S_EXPUNGED_ADD,
	S_MSG_CHANGED,
	S_EXPUNGED_SINCE,
	S_MBOX_STATE,
	S_BLOB_UNUSED_CHUNKS,
	S_BLOB_UNUSED_PIECES,
	S_BLOB_UNUSED,
	S_REPLOG_NEXT,
	S_REPLOG_FIRST,
	S_NODE_GET,
	S_NODE_APPLIED,
	S_NODE_UIDV_MAX,
	S_MBOX_BY_UNIQUEID,
	S_MBOX_ID_BY_UNIQUEID,
	S_MBOX_ADD_AT,
	S_MBOX_BUMP_TO,
	S_MBOX_UIDNEXT_MAX,
	S_REPLICA_PUT,
	S_REPLICA_LIST,
	S_CONFLICT_ADD,
	S_CONFLICT_COUNT,
	S_CONFLICT_LIST,
	S_MSG_RANGE,
	S_MSG_ROWS,
	S_MSG_UIDS_RANGE,
	S_MSG_KEYWORDS_RANGE,
	S_EXPUNGED_GUID,
	S_MBOX_GONE_GET,
	S_REPLOG_PURGE,
	S_MBOX_ALL,
	S_RENUMBERED_GET,
	S_RENUMBERED_HELD,
	S_RENUMBERED_FROM,
	S_RENUMBERED_ADD,
	S_CONFLICT_RESOLVED,
	S_CONFLICT_REUSED_DONE,
	S_MBOX_GONE_CLEAR,
	S_MBOX_UIDNEXT_TOMBS,
	S_CONFLICT_NEXT,
	S_CONFLICT_SET,
	S_COUNTER_ADD,
	S_COUNTER_GET,
	S_PAUSE_SET,
	S_PAUSE_RESUME,
	S_PAUSE_CLEAR,
	S_PAUSE_LIST,
	S_HELD_ADD,
	S_HELD_NEXT,
	S_HELD_DROP,
	S_HELD_MAILBOX,
	S_HELD_RESERVED,
	S_EXPUNGED_REASON,
	S_QUAR_MAILBOX,
	S_QUAR_LIST,
	S_QUAR_DEL,
	S_USER_MESSAGES,
	S_NODE_DEMOTE,
	S_SHUTDOWN_SET,
	S_SHUTDOWN_CLEAR_REPLICAS,
	S_SHUTDOWN_COPY_REPLICAS,
	S_SHUTDOWN_GET,
	S_SHUTDOWN_STALE,
	S_SHUTDOWN_REPLICA_LIST,
	S_REPLOG_HEAD_HASH,
	S_REPLOG_HASH_AT,
	S_NODE_LOG_BASE,
	S_REPLICA_FORGET,
	S_DATA_VERSION,
	S_SESSION_CHECK,
	S_MBOX_COUNT,
	S_USER_USAGE,
	S_MBOX_UNCOUNT,
	S_NODE_MARKER_GET,
	S_NODE_MARKER_SET,
	S_NODE_RENEW,
	S_REPLICA_RESET,
	S_MBOX_REVALIDATE,
	S_MBOX_SET_UIDVALIDITY,
	S_MSG_GUID_HELD,
	S_CONFLICT_ALL_DONE,
	S_CONFLICT_MAILBOX_DONE,
	S_MSG_UNSEEN,
	S_MSG_COUNT_ABOVE,
	S_MSG_COUNT_DELETED,
	S_FTS_STATE,
	S_FTS_PENDING,
	S_FTS_ADD,
	S_FTS_SKIP,
	S_FTS_DONE,
	S_FTS_MATCH,
	S_FTS_SKIPPED,
	S_MSG_BLOBS,
	S_BLOB_MESSAGES,
	S_BLOB_LAST,
	S_BLOB_USED,
	S_FTS_HOLDS,
	S_FTS_UNSKIP,
	S_LOOSE_NEXT_ID,
	S_LOOSE_SEQ_SET,
	S_LOOSE_SEQ_ADD,
	S_LOOSE_ADD,
	S_LOOSE_DEL,
	S_LOOSE_NEXT,
	S_LOOSE_FIRST,
	S_PIECE_DROP,
	S_FTS_FORGETTABLE,
	S_FTS_FORGET,
	S_COPY_TARGET,
	S_SP_OP,
	S_SP_OP_RELEASE,
	S_SP_OP_UNDO,
	S_SP_TARGET,
	S_SP_TARGET_RELEASE,
	S_SP_TARGET_UNDO,
	S_SP_BATCH,
	S_SP_BATCH_RELEASE,
	S_SP_BATCH_UNDO,
	NSTMT
};

/*
 * The savepoints inside a write transaction: one mutation (op_begin()),
 * one target of a delivery, one batch of replicated records.  Their
 * statements are prepared once like the others: parsed anew for each
 * mutation they cost more than the mutation's own UPDATE.
 */
enum savepoint {
	SP_OP,
	SP_TARGET,
	SP_BATCH,
};

struct store {
	sqlite3		*db;
	sqlite3_stmt	*stmts[NSTMT];
	sqlite3_stmt	*meta_stmts[STORE_META_ALL];	/* of meta_stmt() */
	sqlite3_stmt	*web_stmts[STORE_WEB_STMTS];	/* store_web.c's */
	sqlite3_stmt	*row_meta_stmts[STORE_META_ALL]; /* with the row */
	int		 in_txn;	/* a write transaction is open */
	int		 txn_lazy;	/* it is the index's: its commit need not sync */
	int		 sync_lowered;	/* synchronous is NORMAL (txn_begin()) */
	int		 batch_txn;	/* store_batch_begin() opened it */
	int		 in_read;	/* a read snapshot is open */
	enum store_err	 fault;		/* the last failure db_error() saw */
	int		 doomed;	/* a savepoint could be neither kept
					   nor undone: the transaction must
					   roll back (savepoint_end) */
	uint8_t		*raw;		/* BLOB_CHUNK_SIZE scratch */
	uint8_t		*packed;	/* compressBound(BLOB_CHUNK_SIZE) */
	size_t		 packed_cap;
	char		 keywords[STORE_MAX_KEYWORDS]; /* of message_row() */
	struct store_blob_reader *readers;	/* open blob readers */
	struct store_stage *stages;	/* blobs being written in steps */
	int		 loose_more;	/* piece_loose may list pieces to drop */
	enum rec_reason	 reason;	/* of the records made now */
	uint64_t	 users_gen;	/* store_users_generation() */
	int64_t		 data_version;	/* as store_poll_others() last saw */
	long		 max_messages;	/* in one mailbox; 0: no limit */
	struct store_usage quota;	/* per user; 0s: no limit */
	int		 busy_ms;	/* SQLite's busy timeout, as set */
	int64_t		 reserve_bytes;	/* store_room.c: the reserve's size */
	int		 reserve_held;	/* the reserve file holds them (or
					   there is no reserve) */
	int		 tight;		/* the disk was full: no new blob */
	int		 gc_more;	/* blob_unused may list blobs to drop */
	int		 fts_off;	/* SEARCH's index is neither kept nor used */
	int		 fts_tuned;	/* FTS_AUTOMERGE checked since opening */
	int64_t		 gc_after;	/* where store_gc_step() goes on */
	int64_t		 piece_first;	/* blobs from it on are in pieces */
	struct store_copy_job *copy_jobs; /* of live sessions (store_copy.c) */
	int		 copy_sweep;	/* the journal may hold abandoned jobs */
	struct checkpointer *ckpt;	/* store_wal.c's thread, or NULL */
	int		 wal_pages;	/* in the WAL after the last commit */
	uint64_t	 ckpt_asked;	/* the last checkpoint asked for */
};

/* A replication record, as handed to replog_append(). */
struct replog_rec {
	enum rec_type	 type;
	const char	*user;
	const uint8_t	*mailbox;	/* uniqueid, or NULL */
	uint32_t	 uid;
	const uint8_t	*guid;		/* or NULL */
	uint64_t	 modseq;
	uint32_t	 flags;
	const char	*keywords;
	int64_t		 internaldate;
	const char	*name;
	const char	*value;
	int64_t		 time;		/* when it was made; 0: now */
};


/* A reader of one blob (store.h); st->readers lists the open ones. */
struct store_blob_reader {
	struct store_blob_reader *next;		/* in st->readers */
	struct store	*st;
	int64_t		 blob_id;
	uint64_t	 size;
	int		 pieces;	/* in table piece, else in chunk */
	int64_t		 seq;		/* piece or chunk located, or -1 */
	int64_t		 rowid;		/* its row */
	size_t		 len;		/* its stored length */
	int		 zlib;		/* it is deflated */
	sqlite3_blob	*h;		/* open on one of its rows, or NULL */
	int64_t		 h_rowid;	/* the row h is open on */
	int64_t		 inflated_seq;	/* chunk in `inflated`, or -1 */
	size_t		 inflated_len;
	uint8_t		*inflated;	/* BLOB_CHUNK_SIZE, on first need */
};

/*
 * A blob being written in steps (store_stage.c), under an id listed in
 * piece_loose; st->stages lists the live ones.  Where it is, and where
 * it was at the last commit, to go back to when a commit fails.
 */
struct store_stage {
	struct store_stage *next;	/* in st->stages */
	struct store	*st;
	int64_t		 blob_id;	/* reserved, or 0: not yet */
	uint64_t	 off;		/* bytes written */
	int64_t		 seq;		/* rows written */
	int64_t		 kept_id;	/* ...as of the last commit */
	uint64_t	 kept_off;
	int64_t		 kept_seq;
};

/* What a message carries besides its bytes. */
struct msg_attrs {
	uint32_t	 flags;
	const char	*keywords;
	int64_t		 internaldate;
	uint32_t	 renumbered_from;	/* the UID a renumbering moved
						   it from, or 0 */
};

/*
 * The helpers below live in store.c.  Each statement comes from stmt()
 * (prepared once, reset after use); every write runs between op_begin()
 * and op_end(), which joins the group-commit transaction when one is
 * open; every mutation calls replog_append() in that same transaction.
 */
sqlite3_stmt	*stmt(struct store *, enum stmt_id);
/*
 * The statement for the next step of a run of steps that stops at the
 * first error: NULL when *err is set already, or when it cannot be
 * prepared (then *err is STORE_IO), so that no step is skipped quietly.
 */
sqlite3_stmt	*stmt_next(struct store *, enum stmt_id, enum store_err *err);
/* A statement run once (store_purge.c); NULL (logged) on failure. */
sqlite3_stmt	*prepare(struct store *, const char *sql);
enum store_err	 db_error(struct store *, int rc, const char *what);
enum store_err	 step_done(struct store *, sqlite3_stmt *, const char *what);
enum store_err	 step_row(struct store *, sqlite3_stmt *, const char *what);
enum store_err	 step_exists(struct store *, sqlite3_stmt *, const char *what,
		    int *yes);
int64_t		 query_int64(struct store *, enum stmt_id);
enum store_err	 db_exec(struct store *, const char *sql);
/* SQLite rolled the open write transaction back by itself. */
int		 txn_lost(struct store *);
enum store_err	 op_begin(struct store *);
/*
 * op_begin() for SEARCH's index (store_fts_begin()): a transaction it
 * opens commits without a sync, and no other write may join it.
 */
enum store_err	 op_begin_lazy(struct store *);
enum store_err	 op_end(struct store *, enum store_err);
enum store_err	 savepoint_begin(struct store *, enum savepoint);
enum store_err	 savepoint_end(struct store *, enum savepoint,
		    enum store_err);
enum store_err	 replog_append(struct store *, const struct replog_rec *);
/* Text column i into dst (cap bytes), "" for NULL. */
void		 column_text(sqlite3_stmt *, int i, char *dst, size_t cap);
/* Blob column i, exactly n bytes, into dst; 1 when it was there. */
int		 column_id(sqlite3_stmt *, int i, uint8_t *dst, size_t n);
/* Hash column i of a row (zeros for a NULL: a record older than hashes). */
void		 column_hash(sqlite3_stmt *, int, uint8_t out[LOG_HASH_LEN]);
/* store_user.c: inserts a user, logged, inside the caller's operation. */
enum store_err	 user_insert(struct store *, const char *name,
		    const char *pwhash, int64_t *id);
enum store_err	 user_lookup(struct store *, const char *name, int64_t *id,
		    char *canon);
/* Draws a UIDVALIDITY never used before on this node. */
enum store_err	 next_uidvalidity(struct store *, uint32_t *);
int		 mailbox_name_valid(const char *name);
/* Creates a mailbox for user_id inside the caller's savepoint. */
enum store_err	 mailbox_insert(struct store *, int64_t user_id,
		    const char *user, const char *name, const char *special_use,
		    int subscribed);
/* store_mailbox.c: a user's subscription by name (see there). */
enum store_err	 subscription_set(struct store *, int64_t user_id,
		    const char *name, int on, int *changed);
enum store_err	 subscription_write(struct store *, const char *user,
		    const char *name, int on, int *changed);
/* Whether a mailbox has room for n more messages (max-messages). */
enum store_err	 mailbox_room(struct store *, int64_t mbox_id, size_t n);
void		 mailbox_from_row(sqlite3_stmt *, struct store_mailbox *);
enum store_err	 message_row(struct store *, int64_t mbox_id, uint32_t uid,
		    struct store_message *, int64_t *blob_id);
/* A row's MSG_ROW_COLUMNS, keywords copied to st->keywords. */
void		 message_columns(struct store *, sqlite3_stmt *,
		    struct store_message *, int64_t *blob_id);
enum store_err	 message_walk(struct store *, sqlite3_stmt *,
		    int (*cb)(void *, const struct store_message *), void *arg,
		    const char *what);
/* Where a message goes: its mailbox, UID and MODSEQ, all assigned. */
struct msg_place {
	int64_t		 mbox_id;
	uint8_t		 uniqueid[MAILBOX_ID_LEN];
	uint32_t	 uid;
	uint64_t	 modseq;
};
/* Inserts the message row at `at` and logs it (the mailbox row as is). */
enum store_err	 message_put(struct store *, const struct msg_place *at,
		    int64_t blob_id, const uint8_t *guid,
		    const struct msg_attrs *);
/* STORE_BUSY while a COPY in steps fills mailbox mbox_id (store_copy.c). */
enum store_err	 mailbox_unlocked(struct store *, int64_t mbox_id);
/*
 * What the owner of a mailbox uses (with what COPYs in steps copied so
 * far) before a write that may grow it; then STORE_QUOTA when the write
 * took them past a limit by growing it.
 */
enum store_err	 quota_before(struct store *, int64_t mbox_id,
		    struct store_usage *before);
enum store_err	 quota_kept(struct store *, int64_t mbox_id,
		    const struct store_usage *before);
/* Appends at the mailbox's uidnext, logged; *uid receives the UID. */
enum store_err	 message_insert(struct store *, int64_t mbox_id,
		    int64_t blob_id, const uint8_t *guid,
		    const struct msg_attrs *, uint32_t *uid);
/* Expunges one message with its tombstone, logged; *blob_id was its. */
enum store_err	 message_expunge(struct store *, int64_t mailbox_id,
		    uint32_t uid, int64_t *blob_id);
enum store_err	 blob_drop_unused(struct store *, int64_t blob_id);
void		 bind_text_or_null(sqlite3_stmt *, int, const char *);
/* store_blob.c: where blobs keep their bytes (schema_v24), at open. */
enum store_err	 blob_form_load(struct store *);
/* store_blob.c: a reader gives back its chunk's handle and buffer. */
void		 chunk_release(struct store_blob_reader *);
/* store_blob.c: re-reads a blob; 0 with why when it is not its GUID's. */
int		 blob_verify(struct store *, const uint8_t *guid, char *why,
		    size_t whylen);
/*
 * Queues the blobs of a mailbox's messages, which are about to go, for
 * store_gc_step().
 */
enum store_err	 blob_gc_queue(struct store *, int64_t mailbox_id);
/*
 * store_wal.c: asks the checkpointer to checkpoint the WAL and truncate
 * it, unless a reader holds it or the loop writes meanwhile (no
 * waiting); nothing without the checkpointer.
 */
void		 wal_truncate(struct store *);
/*
 * store_wal.c: whether writes wait for the checkpointer, the WAL having
 * grown to STORE_WAL_PAUSE_PAGES since it last caught up
 * (store_write_try() answers STORE_BUSY).
 */
int		 wal_writes_wait(struct store *);
/* store_room.c: a write found the disk full; frees the reserve. */
void		 room_exhausted(struct store *);
/*
 * store_room.c: a write transaction is about to begin; releases the
 * reserve file first when the disk has less than STORE_ROOM_LOW free.
 */
void		 room_before_write(struct store *);
/* store_room.c: whether a new blob of size bytes may be stored. */
int		 room_for_blob(struct store *, uint64_t size);
/* store_blob.c: a blob's id by GUID, or STORE_NOTFOUND. */
enum store_err	 blob_find(struct store *, const uint8_t *guid,
		    int64_t *blob_id);
/*
 * store_purge.c: whether uid of the mailbox had a tombstone that was
 * purged since (*yes): below UIDNEXT, a uid with neither a message nor
 * a tombstone named a message here once only then.
 */
enum store_err	 uid_purged(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, int *yes);
/* store_purge.c: SQLite truncates the WAL to STORE_WAL_LIMIT. */
enum store_err	 wal_size_limit(struct store *);
enum store_err	 blob_put(struct store *, const struct store_blob_in *,
		    int64_t *blob_id);
/*
 * store_blob.c: writes b's rows from byte *off (row *seq) on, a row
 * (BLOB_CHUNK_SIZE, or the rest in pieces) at a time, until the end or,
 * after the first row, until log_clock_us() passes until (0: none).
 */
enum store_err	 blob_write_rows(struct store *, int64_t blob_id,
		    const struct store_blob_in *b, uint64_t *off,
		    int64_t *seq, int64_t until);
/* store_blob.c: the row id of row seq of blob blob_id. */
int64_t		 piece_rowid(int64_t blob_id, int64_t seq);
/*
 * store_stage.c: the last step of a blob written in steps, in
 * blob_put() after its blob row, at the stage's id, was added: its
 * pieces are no longer loose.
 */
enum store_err	 stage_adopt(struct store *, const struct store_stage *);
/*
 * store_stage.c: a commit (kept) or a rollback: the stages note where
 * they are, or go back to where the last commit left them.
 */
void		 stage_settle(struct store *, int kept);
/*
 * store_stage.c: a blob of BLOB_STEP_MIN or more that nothing uses any
 * more, its blob row about to go: its pieces are listed as loose, for
 * loose_step() to drop in steps.
 */
enum store_err	 loose_queue(struct store *, int64_t blob_id);
/*
 * store_stage.c: drops pieces that no live stage writes and no blob row
 * owns, for at most STORE_STAGE_STEP_USEC; 1 when more is left.
 */
int		 loose_step(struct store *);
/* store_apply.c: a mailbox's local id by uniqueid. */
enum store_err	 mailbox_local_id(struct store *, const uint8_t *uniqueid,
		    int64_t *id);
/* store_apply.c: moves a mailbox's uidnext past uid (UIDs only grow). */
enum store_err	 uidnext_past(struct store *, int64_t mbox_id, uint32_t uid);
/* store_conflict.c: binds (mailbox uniqueid, uid, guid) to ?1, ?2, ?3. */
void		 bind_copy(sqlite3_stmt *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid);
/* store_conflict.c: (mailbox, uid, guid) now lives at new_uid (0: gone). */
enum store_err	 renumbered_add(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, uint32_t new_uid);
/* store_conflict.c: closes the conflict at (mailbox, uid, guid) by id. */
enum store_err	 conflict_done(struct store *, enum stmt_id,
		    const uint8_t *uniqueid, uint32_t uid, const uint8_t *guid);

#endif /* MAILREPD_STORE_INTERNAL_H */
