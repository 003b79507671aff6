/*
 * store.h — the mail store: users, mailboxes, messages, blobs and the
 * replication log, kept in one SQLite database in the data directory.
 *
 * This API speaks of users, mailboxes and messages, never of SQLite: a
 * second backend must be able to implement it unchanged.
 *
 * Transactions and group commit.  Every mutation runs in its own
 * savepoint inside the store's current write transaction, which the first
 * mutation opens.  Nothing is durable until store_commit(); a failed
 * mutation undoes only itself.  The server commits once per event-loop
 * iteration (all mutations of that iteration share one fsync) and only
 * then answers the clients; a command-line tool commits after each step.
 * Every mutation appends its replication record in the same transaction.
 */
#ifndef MAILREPD_STORE_H
#define MAILREPD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "crypto.h"

struct mime_result;

enum store_err {
	STORE_OK = 0,
	STORE_NOTFOUND,		/* no such user, mailbox or message */
	STORE_EXISTS,		/* it exists already */
	STORE_INVALID,		/* a name or value the store refuses */
	STORE_FULL,		/* the disk (or database) is full */
	STORE_BUSY,		/* another process held the lock too long */
	STORE_LIMIT,		/* a limit (messages in a mailbox) is reached */
	STORE_QUOTA,		/* the user's quota would be passed */
	STORE_IO,		/* any other failure; logged where it happened */
};

/* System flags, as stored; \Recent is per session and never stored. */
#define FLAG_SEEN	0x01
#define FLAG_ANSWERED	0x02
#define FLAG_FLAGGED	0x04
#define FLAG_DELETED	0x08
#define FLAG_DRAFT	0x10

#define MAILBOX_ID_LEN	16	/* bytes of a mailbox uniqueid */

struct store;
struct store_stage;

struct store_mailbox {
	int64_t		id;		/* local handle, never reused */
	uint8_t		uniqueid[MAILBOX_ID_LEN];
	char		name[MAILBOX_MAX_NAME + 1];
	uint32_t	uidvalidity;
	uint32_t	uidnext;
	uint64_t	highestmodseq;
	uint32_t	messages;
	uint32_t	unseen;		/* messages without \Seen */
	uint64_t	bytes;		/* the messages' sizes added up */
	int		subscribed;
	char		special_use[16];	/* "\\Sent", or "" */
	int64_t		named;		/* a client's last rename, ms since
					   the epoch (0: never renamed) */
};

/*
 * One message as listed.  `keywords` (space separated) points into the
 * store and is valid only during the callback that received it.
 */
struct store_message {
	uint32_t	 uid;
	uint8_t		 guid[GUID_LEN];
	uint64_t	 modseq;
	uint32_t	 flags;
	const char	*keywords;
	int64_t		 internaldate;	/* seconds since the epoch */
	uint64_t	 size;
	int64_t		 savedate;	/* put into its mailbox (RFC 8514) */
};

/*
 * A message body ready to be stored: its `size` bytes are mem[0, size)
 * when mem is not NULL (a small body, still in its spool's buffer), else
 * read from `fd` from offset 0, never held in memory whole.  The caller
 * computed the GUID and the MIME pre-parse while the bytes arrived.
 */
struct store_blob_in {
	int				 fd;
	const uint8_t			*mem;
	uint64_t			 size;
	uint8_t				 guid[GUID_LEN];
	const struct mime_result	*mime;
	struct store_stage		*stage;	/* store_blob_stage() */
};

/* One delivery of a blob: where to, and (out) what became of it. */
struct store_target {
	const char	*user;
	const char	*mailbox;	/* "INBOX" for plain delivery */
	uint32_t	 flags;
	const char	*keywords;	/* space separated, or NULL */
	int64_t		 internaldate;
	enum store_err	 result;	/* out */
	uint32_t	 uid;		/* out, when result is STORE_OK */
};

/*
 * Opens (creating when missing) the store in directory `dir`, creating
 * the directory too, and migrates its schema to SCHEMA_VERSION.  Returns
 * STORE_OK and *out, or an error after logging why.
 */
enum store_err	store_open(const char *dir, struct store **out);
void		store_close(struct store *);

/* Human text for an error code. */
const char	*store_strerror(enum store_err);

/*
 * Commits the open write transaction, if any, with a full sync.  On
 * failure everything since the last commit is rolled back.
 */
enum store_err	store_commit(struct store *);
void		store_rollback(struct store *);
int		store_txn_open(const struct store *);

/*
 * The event loop must never sleep on another process's lock (a
 * `mailrepd user` command, a sqlite3 shell): store_nowait() makes a
 * locked store answer STORE_BUSY at once instead of after
 * STORE_BUSY_TIMEOUT_MS.  store_write_try() then opens the write
 * transaction, or returns STORE_BUSY (quietly) while another process
 * holds the write lock; a command that will write calls it first and,
 * on STORE_BUSY, waits for a later loop iteration.  Other errors are
 * left for the write itself to meet.
 */
void		store_nowait(struct store *);

/*
 * The server's checkpoints run on a thread of their own (store_wal.c),
 * never inside a commit on the loop: store_checkpointer_start() opens
 * the thread's connection and starts it (0, or -1 logged), and turns
 * SQLite's automatic checkpoint off on st's.  A writer faster than the
 * thread waits (store_write_try() answers STORE_BUSY) once the WAL holds
 * STORE_WAL_PAUSE_PAGES, until the thread has caught up.
 * store_checkpointer_stop() waits for the checkpoint under way, stops
 * the thread and gives st SQLite's automatic checkpoint back;
 * store_checkpoint() and store_close() call it.
 */
int		store_checkpointer_start(struct store *);
void		store_checkpointer_stop(struct store *);

/*
 * Messages one mailbox may hold (0: no limit): a delivery or a copy that
 * would pass it fails whole with STORE_LIMIT.  What replication applies
 * is not limited: the master decided.
 */
void		store_set_max_messages(struct store *, long);

/*
 * A user's quota (RFC 9208): the bytes and the messages of all their
 * mailboxes together (0: no limit).  A delivery, append, copy or move
 * that would take the user past either, and grow what they use, fails
 * whole with STORE_QUOTA; a move between their own mailboxes never
 * grows it.  What replication applies is not limited: the master
 * decided.
 */
struct store_usage {
	uint64_t	messages;
	uint64_t	bytes;
};
void		store_set_quota(struct store *, const struct store_usage *limit);

/* What the user owning mailbox_id uses now (counters, not a scan). */
enum store_err	store_user_usage(struct store *, int64_t mailbox_id,
		    struct store_usage *out);
enum store_err	store_write_try(struct store *);

/*
 * Makes commits skip the sync: for a throw-away store only (`mailrepd
 * dev` on a temporary directory it removes on exit), where a crash loses
 * nothing anyone keeps.  Never for a store that outlives its process.
 */
enum store_err	store_set_throwaway(struct store *);

/*
 * A read snapshot for a run of look-ups (one step of a FETCH): until
 * store_read_end() they see one state of the store and share one lock
 * instead of taking and dropping one each.  Inside a write transaction,
 * which is a snapshot already, begin does nothing; a mutation made while
 * a snapshot is open ends the snapshot and opens the write transaction as
 * usual, so the caller need not care.  Hold a snapshot for a bounded
 * run only: it keeps the store from reclaiming older versions.
 */
void		store_read_begin(struct store *);
void		store_read_end(struct store *);

/*
 * Users.  Names are compared without regard to ASCII case.  A name is
 * 1..USER_MAX_NAME bytes of printable ASCII other than @ + / \ " and
 * space, or valid UTF-8 (no C1 controls); never normalised.
 */
int		store_user_name_valid(const char *name);
enum store_err	store_user_add(struct store *, const char *name,
		    const char *pwhash);
enum store_err	store_user_del(struct store *, const char *name);
enum store_err	store_user_set_password(struct store *, const char *name,
		    const char *pwhash);
/* *pwhash is malloc'd; the caller frees it. */
enum store_err	store_user_password(struct store *, const char *name,
		    char **pwhash);
/*
 * A login's look-up: the user named (any case) to canon and its hash to
 * *pwhash (malloc'd, the caller frees it); STORE_NOTFOUND for no such
 * user (or a name too long to be one).  A failed look-up is an error,
 * never "no such user".
 */
enum store_err	store_user_hash(struct store *, const char *name,
		    char canon[USER_MAX_NAME + 1], char **pwhash);
/*
 * Who a logged-in session is: its user's id (never given to another
 * user) and a digest of the password hash it logged in under.
 */
struct store_user_ident {
	int64_t		id;
	uint8_t		password[GUID_LEN];
};

/*
 * One look-up an IMAP session makes before each command: the user called
 * name as it is now (*ident), which it compares with the one it logged
 * in as (a user deleted, perhaps added again under the same name, or
 * given a new password ends its sessions); and whether *mb, its selected
 * mailbox (NULL: none), is still that mailbox, as store_mailbox_state()
 * tells.  STORE_NOTFOUND: no such user.
 */
enum store_err	store_session_check(struct store *, const char *name,
		    const struct store_mailbox *mb,
		    struct store_user_ident *ident, int *mailbox_kept);

/*
 * A number that changes whenever a user may have been deleted or given
 * a new password, here or by another process (`mailrepd user`): idle
 * sessions look at their user again only when it moved.  Another
 * process's changes are noticed by store_poll_others(), which the event
 * loop calls once a second (one PRAGMA, no disk read).
 */
uint64_t	store_users_generation(const struct store *);
void		store_poll_others(struct store *);

/* Writes the user's name as stored (canonical case) to canon. */
enum store_err	store_user_find(struct store *, const char *name,
		    char canon[USER_MAX_NAME + 1]);
enum store_err	store_user_foreach(struct store *,
		    int (*cb)(void *, const char *name, int64_t created),
		    void *arg);

/* Mailboxes.  "INBOX" is matched without regard to case. */
enum store_err	store_mailbox_get(struct store *, const char *user,
		    const char *name, struct store_mailbox *out);
enum store_err	store_mailbox_create(struct store *, const char *user,
		    const char *name, const char *special_use,
		    struct store_mailbox *out);
enum store_err	store_mailbox_foreach(struct store *, const char *user,
		    int (*cb)(void *, const struct store_mailbox *), void *arg);

/*
 * A message of BLOB_STEP_MIN bytes or more is written in steps before
 * store_deliver() or store_deliver_all() takes it: each call writes its
 * rows for a step (STORE_STAGE_STEP_USEC) in the open transaction, in
 * the group commit, under an id that nothing takes for a message, and
 * sets *done once every row is written (at once for a smaller message,
 * or one stored already).  Call it again in a later loop iteration until
 * then, and once more before each store_deliver() (after a failed
 * commit it writes again what the commit lost).  The delivery that
 * follows adds the blob row, its GUID, in its own commit.  b->stage
 * (NULL at first) holds the stage; store_blob_unstage() ends it, after
 * the delivery or instead of it: pieces a delivery did not take are
 * dropped in steps.  b's bytes must stay readable until then.
 */
enum store_err	store_blob_stage(struct store *, struct store_blob_in *b,
		    int *done);
void		store_blob_unstage(struct store_blob_in *b);

/*
 * Stores the blob once (or finds it stored already, by GUID) and appends
 * one message per target, each in its own savepoint.  Returns STORE_OK
 * when the blob is stored (then each target says how it went), or the
 * error that stopped every target.
 */
enum store_err	store_deliver(struct store *, const struct store_blob_in *,
		    struct store_target *, size_t ntargets);

/*
 * Appends blob i as the message of target i, for every i below n, in one
 * savepoint: every message is appended or none is (MULTIAPPEND, RFC
 * 3502).  Returns STORE_OK with each target's uid, or the first error
 * (that target's result says which), having appended nothing.
 */
enum store_err	store_deliver_all(struct store *,
		    const struct store_blob_in *blobs,
		    struct store_target *targets, size_t n);

/*
 * Calls cb for each message of the mailbox in UID order; a non-zero
 * return from cb stops the walk.  cb may read blobs but must not start
 * another walk of messages.
 */
enum store_err	store_message_foreach(struct store *, int64_t mailbox_id,
		    int (*cb)(void *, const struct store_message *), void *arg);

/*
 * The UIDs above `after` of the mailbox's messages without \Seen, in
 * order, at most max of them, into uids (*n of them); read from an index
 * of the unseen messages alone, so the time is that of what is found.
 */
enum store_err	store_unseen_uids(struct store *, int64_t mailbox_id,
		    uint32_t after, uint32_t *uids, size_t max, size_t *n);
/* How many of the mailbox's messages have a UID above uid (\Recent). */
enum store_err	store_message_count_above(struct store *, int64_t mailbox_id,
		    uint32_t uid, uint32_t *n);
/* How many of the mailbox's messages have \Deleted (STATUS DELETED). */
enum store_err	store_message_count_deleted(struct store *,
		    int64_t mailbox_id, uint32_t *n);

/*
 * Reading a blob by GUID, in pieces, with bounded memory: stored bytes
 * are read straight into buf; a reader keeps one inflated chunk only for
 * a chunk stored deflated.  store_blob_read() returns the bytes copied
 * (0 at the end) or -1.  Inside store_read_begin()/end() a reader keeps
 * its place in the chunk table from call to call.
 */
struct store_blob_reader;
enum store_err	store_blob_open(struct store *, const uint8_t *guid,
		    struct store_blob_reader **out, uint64_t *size);
/* A reader of the blob a look-up of this read snapshot gave, by row id. */
enum store_err	store_blob_open_id(struct store *, int64_t blob_id,
		    uint64_t size, struct store_blob_reader **out);
ssize_t		store_blob_read(struct store_blob_reader *, uint64_t off,
		    void *buf, size_t len);
void		store_blob_close(struct store_blob_reader *);

/*
 * Checks the database (SQLite's integrity check, IMAP invariants) and
 * re-hashes every blob against its GUID.  Each problem found is passed
 * to report.  Returns STORE_OK when it could run; *problems counts what
 * it found and *blobs what it re-hashed.
 */
enum store_err	store_check(struct store *,
		    void (*report)(void *, const char *problem), void *arg,
		    uint64_t *blobs, uint64_t *problems);

/*
 * What the MIME pre-parse stored with a blob (see mime.h); every pointer
 * is malloc'd and released by store_meta_free().
 */
struct store_meta {
	char			*envelope;
	char			*bodystructure;
	char			*body;
	char			*header;	/* top-level header block */
	size_t			 header_len;
	struct mime_part	*parts;
	size_t			 nparts;
	time_t			 sent_date;	/* Date:, or -1 */
	char			*subject, *from, *to, *message_id;
	uint64_t		 size;
};

/*
 * Loads the groups of *out that `what` names (STORE_META_*); the rest is
 * left NULL (sent_date -1).  A FETCH of ENVELOPE and BODYSTRUCTURE need
 * not read the header block, which can be 64 KiB.
 */
#define STORE_META_STRUCT	0x1	/* envelope, bodystructure, body */
#define STORE_META_SECTIONS	0x2	/* header, header_len, parts, nparts */
#define STORE_META_SEARCH	0x4	/* sent_date, subject, from, to, ... */
#define STORE_META_ALL		0x7
enum store_err	store_message_meta(struct store *, const uint8_t *guid,
		    unsigned what, struct store_meta *out);
void		store_meta_free(struct store_meta *);

/*
 * One message by UID.  out->keywords stays valid until the next call
 * into the store.
 */
enum store_err	store_message_get(struct store *, int64_t mailbox_id,
		    uint32_t uid, struct store_message *out);
/*
 * store_message_get() and store_message_meta() of its blob in one
 * look-up: what a FETCH of MIME data or a SEARCH of header fields
 * reads of each message.  On failure *meta holds nothing.  *blob_id
 * (when not NULL) is for store_blob_open_id() in the same snapshot.
 */
enum store_err	store_message_get_meta(struct store *, int64_t mailbox_id,
		    uint32_t uid, unsigned what, struct store_message *row,
		    struct store_meta *meta, int64_t *blob_id);

/*
 * A selected mailbox's UIDNEXT and HIGHESTMODSEQ: the cheap look-up an
 * IMAP session makes before each command and at each wake.  The mailbox
 * is the one *mb names by local id, uniqueid, UIDVALIDITY and name (as
 * at SELECT): STORE_NOTFOUND when it was deleted, re-created or renamed
 * since, so that a session never follows an id to another mailbox.
 */
enum store_err	store_mailbox_state(struct store *,
		    const struct store_mailbox *mb, uint32_t *uidnext,
		    uint64_t *highestmodseq);

/* Message changes; each takes the next MODSEQ of the mailbox. */
enum store_err	store_message_set_flags(struct store *, int64_t mailbox_id,
		    uint32_t uid, uint32_t flags, const char *keywords,
		    uint64_t *modseq);
enum store_err	store_message_expunge(struct store *, int64_t mailbox_id,
		    uint32_t uid);
/* Copies under a new UID of the target; the bytes are shared. */
enum store_err	store_message_copy(struct store *, int64_t from_mailbox,
		    uint32_t uid, int64_t to_mailbox, uint32_t *new_uid);

/*
 * Copies (or, with move, moves) n messages in one step: either all of
 * them or none (RFC 3501 COPY is atomic).  new_uids[i] receives the UID
 * of uids[i]'s copy.
 */
enum store_err	store_message_copy_many(struct store *, int64_t from_mailbox,
		    const uint32_t *uids, size_t n, int64_t to_mailbox,
		    uint32_t *new_uids, int move);

/*
 * A COPY or MOVE too big for one step (store_copy.c), all or nothing
 * all the same.  store_copy_begin() journals it and holds the target:
 * every other write into it gets STORE_BUSY until the copies show.
 * Each store_copy_step() copies until the deadline (log_clock_us()) as
 * rows no reader sees and log records no replica is sent; the step
 * that copies the last shows them all in one short write, the copies of
 * uids[i] at uid_lo + i.  A MOVE's later steps then expunge its sources
 * (the copies stay whatever happens).  store_copy_abandon() hands a job
 * left unfinished to store_copy_sweep(), which undoes its copies (or
 * ends a MOVE's expunges) a bounded step at a time; at start every job
 * in the journal is such a job.  The caller owns uids (ascending),
 * which must stay until the job is finished or abandoned.
 */
struct store_copy_job {
	struct store_copy_job	*next;		/* the store's live jobs */
	int64_t		 id;
	int64_t		 from, to;	/* the mailboxes' local ids */
	const uint32_t	*uids;
	size_t		 n;
	int		 move;
	size_t		 done;		/* copied, then a MOVE's expunged */
	int		 shown;		/* the copies show */
	int		 finished;
	uint32_t	 uid_lo;	/* the first copy's UID */
};
enum store_err	store_copy_begin(struct store *, struct store_copy_job *);
enum store_err	store_copy_step(struct store *, struct store_copy_job *,
		    int64_t deadline_us);
void		store_copy_abandon(struct store *, struct store_copy_job *);
/* One bounded step of undoing (or ending) abandoned jobs; 1: more wait. */
int		store_copy_sweep(struct store *);
/*
 * The log position replicas may have, below the records of the COPYs in
 * steps under way (store_replog_head() without any); -1 when unknown.
 */
int64_t		store_replog_shippable(struct store *);

/*
 * Messages whose MODSEQ is above `since`, in UID order (CONDSTORE),
 * without their blob's columns (guid zero, size 0): the flags changed.
 */
enum store_err	store_message_changes(struct store *, int64_t mailbox_id,
		    uint64_t since, int (*cb)(void *,
		    const struct store_message *), void *arg);
/* UIDs expunged from a mailbox with a MODSEQ above `since`. */
enum store_err	store_expunged_since(struct store *, const uint8_t *uniqueid,
		    uint64_t since, int (*cb)(void *, uint32_t uid), void *arg);

/*
 * Mailbox changes.  Delete refuses INBOX (STORE_INVALID).  Rename takes
 * the inferiors along ("a/x" follows "a"); renaming INBOX moves its
 * messages to the new mailbox and leaves INBOX empty (RFC 3501 6.3.5).
 */
enum store_err	store_mailbox_delete(struct store *, const char *user,
		    const char *name);
enum store_err	store_mailbox_rename(struct store *, const char *user,
		    const char *from, const char *to);
/*
 * Subscriptions are the user's names, not mailboxes (RFC 3501 6.3.6):
 * deleting a mailbox keeps its name's, renaming one moves it.  SUBSCRIBE
 * wants the mailbox; UNSUBSCRIBE takes any subscribed name
 * (STORE_NOTFOUND otherwise).
 */
enum store_err	store_mailbox_subscribe(struct store *, const char *user,
		    const char *name, int subscribed);
/* The user's subscribed names that no mailbox has, in name order. */
enum store_err	store_subscribed_absent(struct store *, const char *user,
		    int (*cb)(void *, const char *name), void *arg);

/*
 * The log head: the last record's position (0 before the first), or -1
 * when it cannot be read, which a caller takes as unknown, never as a
 * position (an unread head moved, and no replica has it).
 */
int64_t		store_replog_head(struct store *);

/* --- Replication (sync.c) ---------------------------------------------- */

#define NODE_ID_LEN	16	/* bytes of a node id */
#define EPOCH_LEN	8	/* bytes of a master log epoch */
#define LOG_HASH_LEN	32	/* bytes of the log's running hash (SHA-256) */

/*
 * The kinds of replication records; record.h's table says, for each,
 * its name in the log and on the wire, what it needs and how a replica
 * applies it and the mass-delete guard counts it.
 */
enum rec_type {
	REC_USER_ADD,
	REC_USER_PASSWD,
	REC_USER_DEL,
	REC_MAILBOX_CREATE,
	REC_MAILBOX_RENAME,
	REC_MAILBOX_DELETE,
	REC_USER_SUBSCRIBE,
	REC_MESSAGE_APPEND,
	REC_MESSAGE_FLAGS,
	REC_MESSAGE_EXPUNGE,
	REC_NTYPES
};

/*
 * Why a record was made (ARCHITECTURE.md: every record says why).  It is kept
 * with the record in the log and with an expunge's tombstone, and ships
 * with the record: the mass-delete guard counts only what a client or an
 * operator deleted.  A replica's own record of what it applied keeps
 * its master's reason.
 */
enum rec_reason {
	REASON_CLIENT,		/* an IMAP or LMTP client (the default) */
	REASON_OPERATOR,	/* a command-line tool: user del, restore */
	REASON_MOVE,		/* MOVE, or INBOX renamed: the copy stays */
	REASON_RENUMBER,	/* a conflict or split-off copy renumbered */
	REASON_RECONCILE,	/* what a full reconciliation sent or made */
	REC_NREASONS
};

/*
 * Sets the reason the store's next records carry (and tombstones keep)
 * and returns the one it replaces, for the caller to put back: a store
 * opens with REASON_CLIENT.
 */
enum rec_reason	store_set_reason(struct store *, enum rec_reason);

/*
 * One record of the replication log, as stored and as shipped.  Strings
 * are "" when the record has none; has_mailbox / has_guid say whether
 * the ids are there.
 */
struct store_replog_rec {
	int64_t		 seq;
	int64_t		 time;		/* when it was made; an append's is
					   its message's save date */
	enum rec_type	 type;
	enum rec_reason	 reason;
	char		 user[USER_MAX_NAME + 1];
	int		 has_mailbox;
	uint8_t		 mailbox[MAILBOX_ID_LEN];
	uint32_t	 uid;
	int		 has_guid;
	uint8_t		 guid[GUID_LEN];
	uint64_t	 modseq;
	uint32_t	 flags;
	char		 keywords[STORE_MAX_KEYWORDS];
	int64_t		 internaldate;
	char		 name[MAILBOX_MAX_NAME + 1];
	char		 value[STORE_MAX_VALUE];
};

/* The first record after `after`: STORE_OK, or STORE_NOTFOUND at the end. */
enum store_err	store_replog_next(struct store *, int64_t after,
		    struct store_replog_rec *out);
/* The oldest position still in the log (0 when the log is empty). */
int64_t		store_replog_first(struct store *);
/*
 * The running hash of the log at position pos (after record pos): every
 * record carries it, chained from the one before, so that two logs agree
 * at a position only if every record up to it agrees.  Known for the
 * positions from the one before the first record kept to the head (a
 * purge keeps the hash where it stopped); STORE_NOTFOUND for others.
 * Records older than hashes have zeros.
 */
enum store_err	store_replog_hash(struct store *, int64_t pos,
		    uint8_t out[LOG_HASH_LEN]);

/* This node: its identity, role and (on a replica) what it follows. */
struct store_node {
	uint8_t		 node_id[NODE_ID_LEN];
	uint8_t		 epoch[EPOCH_LEN];
	char		 role[16];		/* "master" or "replica" */
	int		 has_master;
	uint8_t		 master_id[NODE_ID_LEN];
	uint8_t		 master_epoch[EPOCH_LEN];
	int64_t		 applied;		/* master position applied */
	uint8_t		 applied_hash[LOG_HASH_LEN];	/* the log's there */
	char		 upstream[SYNC_UPSTREAM_MAX + 1]; /* demote's, or "" */
};
enum store_err	store_node_get(struct store *, struct store_node *out);
/* Records the role ("master" or "replica"); a mutation, not logged. */
enum store_err	store_node_set_role(struct store *, const char *role);
/*
 * Role master and a new random epoch (`mailrepd promote`), and no
 * recorded upstream any more; every open conflict is settled (a master
 * has no one to ask; demoted, a node reconciles and finds each anew).
 * A mutation.
 */
enum store_err	store_node_promote(struct store *);
/*
 * `mailrepd demote`: role replica, following upstream (HOST:PORT) from
 * the next start or at once.  A node that was a master forgets which log
 * it followed, so that its next master compares everything (its own
 * writes included) rather than stream past them.  A mutation, not logged.
 */
enum store_err	store_node_demote(struct store *, const char *upstream);
/*
 * --- Backup and restore (store_restore.c) ---
 *
 * store_backup copies the store in dir (the server may be running) to
 * the file `to`, consistent as of one commit, in steps that never hold a
 * lock the server waits on; cb (may be NULL) hears (pages copied, pages
 * in all) after each step.  The file is synced and then renamed into
 * place.  STORE_NOTFOUND when dir holds no store.
 */
typedef void	store_backup_progress(void *arg, int done, int total);
enum store_err	store_backup(const char *dir, const char *to,
		    store_backup_progress *cb, void *arg);
/*
 * Installs the backup file `from` as the store of dir (created if
 * missing): STORE_EXISTS when dir holds a store (or its WAL) already,
 * STORE_NOTFOUND when from is no database.  The caller then opens it
 * and gives it a new incarnation (store_incarnation with renew).
 */
enum store_err	store_restore_file(const char *from, const char *dir);
/*
 * Checks the store of dir (opened as st, no transaction open) against
 * its identity marker at start.  A copy (the marker missing or another
 * file), or renew, makes a new incarnation: a new node id and epoch,
 * every known replica behind and reconciling; *renewed says so.  A new
 * store, or one older than markers, only gets its marker.  Commits.
 */
enum store_err	store_incarnation(struct store *, const char *dir,
		    int renew, int *renewed);
/* Checkpoints the WAL into the database (at a clean exit). */
enum store_err	store_checkpoint(struct store *);
/*
 * Records, inside the current write transaction, that the log of master
 * (id, epoch) is applied up to pos, where the master's log had the
 * running hash `hash`: the same commit as the batch.
 */
enum store_err	store_node_applied(struct store *, const uint8_t *master_id,
		    const uint8_t *epoch, int64_t pos,
		    const uint8_t hash[LOG_HASH_LEN]);

/*
 * A batch: the store_apply_* calls between begin and end are kept
 * together or not at all (end with err != STORE_OK undoes them).
 */
enum store_err	store_batch_begin(struct store *);
enum store_err	store_batch_end(struct store *, enum store_err err);

/* What a store_apply_* call found (the GUID check of ARCHITECTURE.md). */
enum store_apply {
	APPLY_DONE,		/* applied */
	APPLY_SAME,		/* already here: nothing or flags merged */
	APPLY_ABSENT,		/* nothing here to change */
	APPLY_CONFLICT,		/* another message at that UID: untouched */
	APPLY_REUSED,		/* that UID named another message here */
	APPLY_EXPUNGED,		/* this very message was expunged here */
};

/*
 * Each applies one master record on a replica, keeping the master's
 * identities (mailbox uniqueid, uidvalidity, uid), and appends this
 * node's own log record.  *what says what happened; a conflict fills
 * local_guid with the guid of the message kept.
 */
enum store_err	store_apply_user_add(struct store *, const char *name,
		    const char *pwhash, enum store_apply *what);
enum store_err	store_apply_mailbox_create(struct store *, const char *user,
		    const uint8_t *uniqueid, const char *name,
		    uint32_t uidvalidity, const char *special_use,
		    int subscribed, enum store_apply *what);
enum store_err	store_apply_mailbox_rename(struct store *,
		    const uint8_t *uniqueid, const char *name, int64_t named,
		    enum store_apply *what);
enum store_err	store_apply_mailbox_delete(struct store *,
		    const uint8_t *uniqueid, enum store_apply *what);
enum store_err	store_apply_subscribe(struct store *, const char *user,
		    const char *name, int subscribed, enum store_apply *what);
/*
 * Appends at exactly `uid` (uidnext becomes max(uidnext, uid + 1)).  b
 * is the body, or NULL when the master no longer had it (the message was
 * expunged there since): then only uidnext moves.  A UID below uidnext
 * that never held this message here (ARCHITECTURE.md: a UID names one message
 * for ever) is left alone: APPLY_REUSED, local_guid the guid its
 * tombstone names (zeros when none); the master must move its message.
 * The very message, expunged here (its tombstone names it), stays
 * expunged: APPLY_EXPUNGED, and the master must expunge its copy.
 * renumbered_from (0: none) is the UID a renumbering moved the message
 * from; the message held at uid, this node knows that too.  savedate is
 * the master's (its record's time): a message's save date is part of
 * its state in the mailbox, the same on every node.  This and
 * store_apply_flags() settle a conflict on the very message held at uid
 * here (the master holds it there too: nothing of ours to keep out).
 */
enum store_err	store_apply_append(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, uint32_t flags,
		    const char *keywords, int64_t internaldate,
		    int64_t savedate, uint32_t renumbered_from,
		    const struct store_blob_in *b,
		    enum store_apply *what, uint8_t local_guid[GUID_LEN]);
enum store_err	store_apply_flags(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, uint32_t flags,
		    const char *keywords, enum store_apply *what,
		    uint8_t local_guid[GUID_LEN]);
enum store_err	store_apply_expunge(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, enum store_apply *what,
		    uint8_t local_guid[GUID_LEN]);
/* user.del on a replica: its messages go to quarantine first. */
enum store_err	store_apply_user_del(struct store *, const char *name,
		    enum store_apply *what);
/*
 * The mass-delete guard's state (ARCHITECTURE.md, guard.h): the users whose
 * records a replica holds instead of applying, why, and whether an
 * operator resumed them; each with how many records it holds.
 */
struct store_pause {
	char		 user[USER_MAX_NAME + 1];
	char		 reason[256];
	int64_t		 time;
	int		 state;			/* PAUSE_HOLD... */
	int64_t		 held;			/* records held */
};
#define PAUSE_HOLD	0	/* holding the user's records */
#define PAUSE_RECHECK	1	/* `replica resume`: check them again */
#define PAUSE_ALLOW	2	/* `replica resume --allow-deletes` */
/* Holds user's records from now on, for reason (again when resumed). */
enum store_err	store_pause_set(struct store *, const char *user,
		    const char *reason);
/*
 * `replica resume`: every paused user (user NULL) or one moves to state
 * (PAUSE_RECHECK or PAUSE_ALLOW); *n says how many did.
 */
enum store_err	store_pause_resume(struct store *, const char *user,
		    int state, int64_t *n);
/* The user's pause ends (nothing of it is held any more). */
enum store_err	store_pause_clear(struct store *, const char *user);
enum store_err	store_pause_foreach(struct store *,
		    int (*cb)(void *, const struct store_pause *), void *arg);
/*
 * Keeps one record of a paused user (its encoded bytes, opaque here) in
 * arrival order, with its body (b, or NULL) stored as a blob until the
 * record is applied.  An append's UID is taken at once: its mailbox's
 * UIDNEXT moves past it, so no other message gets that UID meanwhile.
 */
enum store_err	store_held_add(struct store *, const char *user,
		    const struct store_replog_rec *r, const void *rec,
		    size_t len, const struct store_blob_in *b);
/*
 * The user's first held record after id `after`: its id and bytes
 * (at most cap; STORE_INVALID when longer); STORE_NOTFOUND when none.
 */
enum store_err	store_held_next(struct store *, const char *user,
		    int64_t after, int64_t *id, void *buf, size_t cap,
		    size_t *len);
/* A held record was applied (or re-held): it goes, its body if unused. */
enum store_err	store_held_drop(struct store *, int64_t id);
/*
 * Whether a record of this mailbox (uniqueid) is held (*yes); user:
 * whose.  A failed look-up is an error, never "no".
 */
enum store_err	store_held_mailbox(struct store *, const uint8_t *uniqueid,
		    char user[USER_MAX_NAME + 1], int *yes);
/*
 * How many messages a user has, in all mailboxes (*n; 0 for a user not
 * here).  A failed count is an error, never a number.
 */
enum store_err	store_user_message_count(struct store *, const char *user,
		    int64_t *n);
/* One message in quarantine (store_purge_step()). */
struct store_quarantined {
	int64_t		 id;
	int64_t		 time;			/* when it went there */
	char		 user[USER_MAX_NAME + 1];
	uint8_t		 mailbox[MAILBOX_ID_LEN];
	char		 mailbox_name[MAILBOX_MAX_NAME + 1];
	uint32_t	 uid;
	uint8_t		 guid[GUID_LEN];
	uint64_t	 size;
	uint32_t	 flags;
	char		 keywords[STORE_MAX_KEYWORDS];
	int64_t		 internaldate;
};
/* Every message in quarantine, oldest first (id 0), or the one with id. */
enum store_err	store_quarantine_foreach(struct store *, int64_t id,
		    int (*cb)(void *, const struct store_quarantined *),
		    void *arg);
/*
 * Puts quarantined message id back where its owner can see it: into its
 * mailbox, or one of that name, created when neither is there; at a new
 * UID (written to *uid, the mailbox's name to mailbox), logged like any
 * append.  STORE_NOTFOUND: no such entry, or its user is gone.
 */
enum store_err	store_quarantine_restore(struct store *, int64_t id,
		    uint32_t *uid, char mailbox[MAILBOX_MAX_NAME + 1]);
/* Finds a mailbox by uniqueid; user receives its owner's name. */
enum store_err	store_mailbox_by_uniqueid(struct store *,
		    const uint8_t *uniqueid, struct store_mailbox *out,
		    char user[USER_MAX_NAME + 1]);

/*
 * Full reconciliation (ARCHITECTURE.md): a mailbox's digest is the SHA-256 of
 * its (uid, flags, guid, keywords) list in UID order, equal on two nodes
 * exactly when the lists are; modseqs are each node's own and left out.
 */
enum store_err	store_mailbox_digest(struct store *, int64_t mailbox_id,
		    uint8_t digest[GUID_LEN]);
/*
 * Messages with after < uid <= upto in UID order, at most limit of them:
 * store_message_range() reads their blob's row too, store_message_rows()
 * only theirs (guid zero, size 0).
 */
enum store_err	store_message_range(struct store *, int64_t mailbox_id,
		    uint32_t after, uint32_t upto, int limit,
		    int (*cb)(void *, const struct store_message *), void *arg);
enum store_err	store_message_rows(struct store *, int64_t mailbox_id,
		    uint32_t after, uint32_t upto, int limit,
		    int (*cb)(void *, const struct store_message *), void *arg);
/*
 * What a session's view of the mailbox needs (SELECT reads every
 * message), from indexes alone, never the table's rows: the UIDs in
 * (after, upto], in order, at most max into uids (*n of them); and
 * store_message_rows() of the messages with keywords alone, their uid
 * and keywords set, the rest zero.  upto is below the mailbox's UIDNEXT
 * as the caller read it: a COPY under way keeps its messages above
 * UIDNEXT (MSG_SHOWN), which these do not test.
 */
enum store_err	store_message_uids(struct store *, int64_t mailbox_id,
		    uint32_t after, uint32_t upto, uint32_t *uids, size_t max,
		    size_t *n);
enum store_err	store_message_keywords(struct store *, int64_t mailbox_id,
		    uint32_t after, uint32_t upto, int limit,
		    int (*cb)(void *, const struct store_message *), void *arg);
/*
 * Why an expunged uid went (its tombstone's reason) to *reason; CLIENT
 * when no tombstone says.  A failed look-up is an error, never CLIENT.
 */
enum store_err	store_tombstone_reason(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, enum rec_reason *reason);
/* The guid an expunged uid had (its tombstone), or STORE_NOTFOUND. */
enum store_err	store_tombstone_guid(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, uint8_t guid[GUID_LEN]);
/*
 * Logs again the expunge of (mailbox, uid, guid) that this node's
 * tombstone keeps, with its reason, so that a replica still waiting for
 * it settles; STORE_NOTFOUND when no such tombstone.  A mutation.
 */
enum store_err	store_expunge_relog(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t guid[GUID_LEN]);
/*
 * The yes/no look-ups below answer in *yes with STORE_OK; a look-up
 * that fails returns its error and leaves *yes alone, so that no caller
 * takes a failure for "no" (and drops or renumbers a copy on it).
 *
 * Whether the mailbox holds the message guid, at any uid.
 */
enum store_err	store_mailbox_holds(struct store *, const uint8_t *uniqueid,
		    const uint8_t guid[GUID_LEN], int *yes);
/*
 * Whether the copy (mailbox, uid, guid) was renumbered before: by this
 * master, or by one whose append record of it said so.
 */
enum store_err	store_was_renumbered(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, int *yes);
/*
 * Whether the mailbox holds the message guid at the UID a renumbering
 * gave it (this master's, or one whose append record said so).
 */
enum store_err	store_renumbered_held(struct store *, const uint8_t *uniqueid,
		    const uint8_t *guid, int *yes);
/*
 * The UID a renumbering moved the message guid at uid from (the lowest,
 * when several), or 0, to *from: what its append record says (record.h).
 */
enum store_err	store_renumbered_from(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, uint32_t *from);
/* Whether a mailbox with this uniqueid was deleted here (tombstone). */
enum store_err	store_mailbox_was_deleted(struct store *,
		    const uint8_t *uniqueid, int *yes);
/*
 * Purges the oldest records, at most SYNC_PURGE_BATCH: those up to
 * position upto (acknowledged by every replica) and those older than
 * `before` (a time), always a prefix so that what remains has no gaps;
 * *purged counts them.  The head position survives an empty log.
 */
enum store_err	store_replog_purge(struct store *, int64_t upto,
		    int64_t before, int64_t *purged);
/*
 * Growth (store_purge.c).  What one purge step may delete: tombstones
 * (of messages and mailboxes) and renumbered copies that every replica
 * has, acknowledged at or below log position `acked`, and that are
 * older than tombs_before (a time), unless keep_tombs; resolved
 * conflicts older than conflicts_before; quarantine entries older than
 * quarantine_before.
 */
struct store_purge {
	int64_t		 acked;
	int64_t		 tombs_before;
	int		 keep_tombs;
	int64_t		 conflicts_before;
	int64_t		 quarantine_before;
};
/* Rows one step deleted, per table. */
struct store_purged {
	int64_t		 expunged;
	int64_t		 mailbox_gone;
	int64_t		 renumbered;
	int64_t		 conflict;
	int64_t		 quarantine;
};
/*
 * Deletes at most STORE_PURGE_BATCH rows of each table that p allows,
 * oldest first, in the caller's transaction (a few milliseconds); *out
 * counts them.  A mailbox's tombs_purged rises to the highest MODSEQ of
 * its tombstones purged.
 */
enum store_err	store_purge_step(struct store *, const struct store_purge *p,
		    struct store_purged *out);
/*
 * The highest MODSEQ of a tombstone purged from this mailbox: expunges
 * up to it are no longer listed by store_expunged_since().  UINT64_MAX
 * when the store cannot say (no list is known to be complete).
 */
uint64_t	store_tombs_purged(struct store *, const uint8_t *uniqueid);
/*
 * Blobs that lost their last message to a mailbox or user delete, or
 * that an open reader kept, wait in a queue: each call drops a bounded
 * batch of them (never one a reader has open), in the group commit's
 * transaction, and returns 1 while more may wait.
 */
int		store_gc_step(struct store *);

/*
 * SEARCH's full-text index (store_fts.c): trigrams of each blob's text,
 * one row per kind of text, kept by the server behind delivery and
 * never replicated.  The text is the caller's (imap_search_index.c),
 * already case-folded; the store only keeps and answers.  It names the
 * blobs that may hold a string, never fewer than do: the caller reads
 * them to be sure.
 */
enum store_fts_kind {
	STORE_FTS_BODY,		/* what BODY reads */
	STORE_FTS_HEADER,	/* the top-level header, unfolded */
	STORE_FTS_FROM,		/* each field's values, as SEARCH sees them */
	STORE_FTS_TO,
	STORE_FTS_CC,
	STORE_FTS_BCC,
	STORE_FTS_SUBJECT,
	STORE_FTS_NKINDS
};
struct store_fts_state {
	int64_t		 generation;	/* a new one at each rebuild */
	unsigned	 version;	/* of the text the rows hold */
	int64_t		 upto;		/* blobs up to this id are done */
	int64_t		 blobs;		/* indexed in this generation */
	/* store_fts_status() only: */
	int64_t		 stored;	/* blobs in the store */
	int64_t		 pending;	/* of them above upto */
	int64_t		 skipped;	/* too long to index, always read */
	int64_t		 bytes;		/* the index's own */
	int64_t		 orphaned;	/* rows of blobs gone */
};
struct store_fts_blob {
	int64_t		 id;
	uint8_t		 guid[GUID_LEN];
};

/* Turns the index off (--search-index no): neither kept nor used. */
void		store_fts_disable(struct store *);
int		store_fts_enabled(const struct store *);
enum store_err	store_fts_state(struct store *, struct store_fts_state *);
/*
 * A number that moves whenever the index may have work: it counts the
 * rows this connection changed and the commits of other processes as
 * store_poll_others() last saw them (once a second).
 */
int64_t		store_fts_changes(struct store *);
/* The state with the counts `mailrepd index status` shows. */
enum store_err	store_fts_status(struct store *, struct store_fts_state *);
/*
 * Empties the index for a rebuild by extractor `version`, between
 * store_fts_begin() and store_fts_end().
 */
enum store_err	store_fts_reset(struct store *, unsigned version);
/*
 * The state, and when the index is by extractor `version` what waits
 * for it: whether a blob waits to be forgotten (*gone, 0 or 1) and up
 * to max blobs above the high-water mark (out, *n); in one snapshot.
 */
enum store_err	store_fts_look(struct store *, unsigned version,
		    struct store_fts_state *, struct store_fts_blob *out,
		    size_t max, size_t *n, size_t *gone);
/* Up to max blobs above `after`, in id order. */
enum store_err	store_fts_pending(struct store *, int64_t after,
		    struct store_fts_blob *out, size_t max, size_t *n);
/*
 * Indexing a batch: store_fts_begin(), then per blob either
 * store_fts_add() of each kind or store_fts_skip(), then
 * store_fts_end() with the last blob done and how many were indexed.
 * A transaction store_fts_begin() opens is committed without a sync
 * (the index is rebuilt from the store, and the next synced commit
 * carries it): nothing but the index may write in it before
 * store_commit().
 */
enum store_err	store_fts_begin(struct store *);
enum store_err	store_fts_add(struct store *, int64_t blob_id,
		    enum store_fts_kind, const char *text, size_t len);
enum store_err	store_fts_skip(struct store *, int64_t blob_id);
enum store_err	store_fts_end(struct store *, int64_t upto, int64_t blobs,
		    enum store_err);
/*
 * The blobs whose text of a kind in `kinds` (a mask of 1 << kind) may
 * hold str (valid UTF-8 of 3 or more characters, no NUL): up to max
 * rows of the index after *pos (0 first) are read, their blobs put in
 * ids (*n of them, ascending), and *pos moved on; *done is set when
 * the index has no more.  STORE_NOTFOUND when the index is not the
 * generation asked for any more (rebuilt since).
 */
enum store_err	store_fts_match(struct store *, int64_t generation,
		    unsigned kinds, const char *str, size_t len, int64_t *pos,
		    int64_t *ids, size_t max, size_t *n, int *done);
/*
 * Rows of blobs that go: up to max blobs up to `upto` that no message
 * uses any more and whose rows the index holds (deletes leave them for
 * the index to forget first).  store_fts_forget() deletes each row of
 * one, given its text as it was added, and store_fts_forgot() lets the
 * blob go; both between store_fts_begin() and store_fts_end().
 */
enum store_err	store_fts_forgettable(struct store *, int64_t upto,
		    struct store_fts_blob *out, size_t max, size_t *n);
enum store_err	store_fts_forget(struct store *, int64_t blob_id,
		    enum store_fts_kind, const char *text, size_t len);
enum store_err	store_fts_forgot(struct store *, int64_t blob_id);
/* Up to max skipped blobs above `after`, in id order. */
enum store_err	store_fts_skipped(struct store *, int64_t after,
		    int64_t *ids, size_t max, size_t *n);
/* Up to max messages of a mailbox above UID `after`: UIDs and blobs. */
enum store_err	store_message_blobs(struct store *, int64_t mailbox_id,
		    uint32_t after, uint32_t *uids, int64_t *blobs, size_t max,
		    size_t *n);
/*
 * Up to max UIDs of a mailbox's messages whose blob is blob_id, in no
 * order.  *n == max: there may be more.
 */
enum store_err	store_blob_messages(struct store *, int64_t mailbox_id,
		    int64_t blob_id, uint32_t *uids, size_t max, size_t *n);
/* The highest blob id in the store (0: none). */
enum store_err	store_blob_last(struct store *, int64_t *);

/*
 * Room on a full disk (store_room.c).  store_room_reserve() keeps a
 * reserve file of `bytes` (0: none) beside the database, released when a
 * write finds the disk full; the store is then tight (store_room_tight()
 * looks whether it still is): a new message's bytes are refused with
 * STORE_FULL at once, and what frees space (flag
 * changes, expunges, deletes) commits in the reserve's room.
 * store_room_tick(), once a second with no write transaction open,
 * gives the WAL's room back, takes the reserve back and ends the tight
 * state once there is room (STORE_ROOM_RESUME).
 */
void		store_room_reserve(struct store *, int64_t bytes);
int		store_room_tight(struct store *);
void		store_room_tick(struct store *);
/* Bytes free on the store's disk (/metrics too); -1 when unknown. */
int64_t		store_disk_free(struct store *);
/*
 * Checkpoints the WAL when it is larger than STORE_WAL_LIMIT, without
 * waiting for another process's reader (it stays for the next check);
 * nothing is done while a write transaction is open.
 */
void		store_wal_trim(struct store *);
/* What `mailrepd status` shows of the store's size. */
struct store_size_table {
	const char	*name;
	int64_t		 rows;
};
#define STORE_SIZE_TABLES	9
struct store_sizes {
	struct store_size_table	 tables[STORE_SIZE_TABLES];
	int64_t			 db_bytes;	/* the database file */
	int64_t			 wal_bytes;	/* its WAL */
};
enum store_err	store_sizes(struct store *, struct store_sizes *out);
/*
 * The web view's API (store_web.c): every user's messages, newest first
 * by (internaldate, mailbox, uid), in pages that go on from a position.
 * Each call takes the user it is limited to (the stored name), or NULL
 * for every user's.
 */
struct store_web_message {
	uint8_t		 uniqueid[MAILBOX_ID_LEN];	/* of its mailbox */
	int64_t		 mailbox_id;
	char		 user[USER_MAX_NAME + 1];
	char		 mailbox[MAILBOX_MAX_NAME + 1];
	uint32_t	 uid;
	uint8_t		 guid[GUID_LEN];
	uint32_t	 flags;
	int64_t		 internaldate;
	uint64_t	 size;
	int64_t		 blob_id;	/* for the search's index */
};
struct store_web_pos {
	int64_t		 date, mailbox_id, uid;	/* the last one listed */
};
/* Whose messages a list takes: user "" is everyone, mailbox_id 0 all. */
struct store_web_filter {
	char		 user[USER_MAX_NAME + 1];
	int64_t		 mailbox_id;
};
/* The position before the newest message. */
void		store_web_top(struct store_web_pos *);
/*
 * Up to n messages after *pos that the filter takes, into out; *got
 * says how many, and *pos moves to the last.
 */
enum store_err	store_web_page(struct store *, const struct store_web_filter *,
		    struct store_web_pos *pos, struct store_web_message *out,
		    size_t n, size_t *got);
/*
 * Moves *pos over the next n messages the filter takes, reading the
 * date index only (keep n to a bounded step); *end is set when fewer
 * than n were left.
 */
enum store_err	store_web_skip(struct store *, const struct store_web_filter *,
		    struct store_web_pos *pos, int64_t n, int *end);
/*
 * One message by its mailbox's uniqueid and its UID, if the filter
 * takes it (another user's is not found).
 */
enum store_err	store_web_get(struct store *, const struct store_web_filter *,
		    const uint8_t *uniqueid, uint32_t uid,
		    struct store_web_message *out);
/* Messages the filter takes, and those without \Seen. */
enum store_err	store_web_count(struct store *, const struct store_web_filter *,
		    int64_t *total, int64_t *unread);
/* Bytes of the database file, and of its WAL (/metrics); 0 if none. */
void		store_file_bytes(struct store *, int64_t *db, int64_t *wal);
/* Calls cb with the uniqueid of every mailbox of every user. */
enum store_err	store_mailbox_ids(struct store *,
		    int (*cb)(void *, const uint8_t *uniqueid), void *arg);

/*
 * A replica as its master knows it: by node id (the name is its label,
 * the last one it gave), with its acknowledged position and whether it
 * was reconciling when last seen (then it has not caught up, whatever
 * acked says).
 */
struct store_replica {
	char		 name[256];
	uint8_t		 node_id[NODE_ID_LEN];
	int64_t		 acked;
	int64_t		 last_seen;
	int		 connected;
	int		 reconciling;
};
enum store_err	store_replica_update(struct store *,
		    const struct store_replica *);
/* `mailrepd replica forget`: STORE_NOTFOUND when no such replica. */
enum store_err	store_replica_forget(struct store *,
		    const uint8_t node_id[NODE_ID_LEN]);
enum store_err	store_replica_foreach(struct store *,
		    int (*cb)(void *, const struct store_replica *), void *arg);

/*
 * The clean-shutdown marker (ARCHITECTURE.md, "Graceful drain", step 4): what
 * this node's log held when a drain ended, with each known replica's
 * acknowledged position (store_shutdown_replica_foreach, as store_replica
 * with last_seen the marker's time).  stale is 0 until the node serves
 * again, then when it started.
 */
struct store_shutdown {
	int64_t		 time;
	char		 role[16];
	uint8_t		 epoch[EPOCH_LEN];
	int64_t		 head;
	int		 status;		/* the exit status (control.h) */
	int64_t		 stale;
};
/* Records the marker (replacing the last one); a mutation, not logged. */
enum store_err	store_shutdown_record(struct store *, int64_t now, int status);
/* The last marker: STORE_OK, or STORE_NOTFOUND when none was recorded. */
enum store_err	store_shutdown_get(struct store *, struct store_shutdown *);
/* Serving again: a fresh marker becomes stale (since now); a mutation. */
enum store_err	store_shutdown_stale(struct store *, int64_t now);
enum store_err	store_shutdown_replica_foreach(struct store *,
		    int (*cb)(void *, const struct store_replica *), void *arg);

/* A GUID conflict a replica found and kept out of its store. */
struct store_conflict {
	int64_t		 id;
	int64_t		 time;
	char		 user[USER_MAX_NAME + 1];
	char		 mailbox_name[MAILBOX_MAX_NAME + 1];
	uint8_t		 mailbox[MAILBOX_ID_LEN];
	uint32_t	 uid;
	uint8_t		 local_guid[GUID_LEN];
	uint8_t		 master_guid[GUID_LEN];
	char		 op[32];		/* the master's record type */
	int64_t		 master_seq;
	int		 state;			/* CONFLICT_OPEN... */
};
#define CONFLICT_OPEN		0
#define CONFLICT_RESOLVED	1	/* the copy was renumbered */
#define CONFLICT_REQUESTED	2	/* `conflicts resolve`: renumber it */
/* STORE_EXISTS when the same unresolved pair is recorded already. */
enum store_err	store_conflict_add(struct store *, struct store_conflict *);
/*
 * The first conflict after id `after` to renumber: requested ones, and
 * open ones too when open_too (policy renumber).  STORE_NOTFOUND: none.
 */
enum store_err	store_conflict_next(struct store *, int64_t after,
		    int open_too, struct store_conflict *);
/*
 * Moves an unresolved conflict to state (CONFLICT_REQUESTED: `conflicts
 * resolve`; CONFLICT_RESOLVED: its copy is gone); STORE_NOTFOUND when
 * there is no such unresolved conflict.
 */
enum store_err	store_conflict_set_state(struct store *, int64_t id,
		    int state);
/*
 * On a replica: its master never held the message (uid, guid) that could
 * not take uid here (or was expunged here), so no record of the master's
 * will move or expunge it; its conflict is over.  STORE_NOTFOUND when no
 * such conflict is open.
 */
enum store_err	store_conflict_never_held(struct store *,
		    const uint8_t *uniqueid, uint32_t uid, const uint8_t *guid);
/*
 * On a master: a replica's copy of a message (its uid, guid and
 * attributes; b its verified body, or NULL when the blob is here) that
 * this master does not hold at that uid.  In one step the master's own
 * message there, if another, is expunged; both are appended at uidnext,
 * lower GUID first; and a log record expunges the copy at uid wherever
 * it is, so every node ends with both under new UIDs and nothing lost
 * (ARCHITECTURE.md, "A conflict").  A uid this master expunged the same copy
 * from only logs that record.  New UIDs are at least `above` (the
 * replica's UIDNEXT: UIDs only grow there too).  *new_uid is the copy's
 * new UID (0 when none); STORE_EXISTS when the copy was renumbered
 * before or is the master's message (then that message's flags record is
 * logged again, which settles the replica's conflict on it).
 */
enum store_err	store_renumber(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, uint32_t flags,
		    const char *keywords, int64_t internaldate,
		    const struct store_blob_in *b, uint32_t above,
		    uint32_t *new_uid);
/*
 * On a master: a replica cannot place this master's message (uid, guid)
 * because that UID named another message there (APPLY_REUSED).  In one
 * step the message leaves uid and is appended again at uidnext, at least
 * `above` (the replica's UIDNEXT), as renumbering does; *new_uid is its
 * new UID.  When it is not at uid (gone, or moved before: STORE_EXISTS)
 * a log record expunging (uid, guid) is all it does, so the replica's
 * conflict resolves either way.  STORE_INVALID, and nothing done, when
 * it never was this master's message at uid: another one is there, its
 * tombstone names another, uid was never given out (no message, no
 * tombstone and none purged: a reconciliation may have raised UIDNEXT
 * past it), or the mailbox is not here.
 */
enum store_err	store_relocate(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, uint32_t above,
		    uint32_t *new_uid);
/*
 * On a master: a replica expunged or renumbered the message (uid, guid)
 * since this node's copy of it was made, so the copy here goes, its
 * expunge logged with reason why.  In the same step a conflict this node
 * opened on that copy while it was a replica is resolved.  STORE_NOTFOUND
 * when (uid, guid) is not here.
 */
enum store_err	store_drop_copy(struct store *, const uint8_t *uniqueid,
		    uint32_t uid, const uint8_t *guid, enum rec_reason why);
/*
 * Raises a mailbox's UIDNEXT to at least uidnext (a replica gave UIDs
 * up to there while split off); not logged: appends carry their UIDs.
 */
enum store_err	store_mailbox_raise_uidnext(struct store *,
		    const uint8_t *uniqueid, uint32_t uidnext);
/*
 * Unresolved conflicts in all mailboxes (NULL), or those of one mailbox
 * (uniqueid) that keep a local copy here (a reused UID keeps none);
 * -1 when the count fails.
 */
int64_t		store_conflict_count(struct store *, const uint8_t *uniqueid);
enum store_err	store_conflict_foreach(struct store *,
		    int (*cb)(void *, const struct store_conflict *), void *arg);

/*
 * Named counters kept across restarts (`mailrepd status`); a mutation,
 * not logged.  store_counter_add() adds delta inside the open write
 * transaction; store_counter_get() reads one into *value, 0 for a counter
 * never added (STORE_OK), or fails with the store's error.
 */
enum store_err	store_counter_add(struct store *, const char *name,
		    int64_t delta);
enum store_err	store_counter_get(struct store *, const char *name,
		    int64_t *value);

#endif /* MAILREPD_STORE_H */
