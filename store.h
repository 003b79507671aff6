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

struct store_mailbox {
	int64_t		id;		/* local handle, not replicated */
	uint8_t		uniqueid[MAILBOX_ID_LEN];
	char		name[MAILBOX_MAX_NAME + 1];
	uint32_t	uidvalidity;
	uint32_t	uidnext;
	uint64_t	highestmodseq;
	uint32_t	messages;
	int		subscribed;
	char		special_use[16];	/* "\\Sent", or "" */
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
};

/*
 * A message body ready to be stored: its bytes are read from `fd` (from
 * offset 0, `size` bytes), never held in memory.  The caller computed the
 * GUID and the MIME pre-parse while the bytes arrived.
 */
struct store_blob_in {
	int				 fd;
	uint64_t			 size;
	uint8_t				 guid[GUID_LEN];
	const struct mime_result	*mime;
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

/* Users.  Names are compared without regard to ASCII case. */
enum store_err	store_user_add(struct store *, const char *name,
		    const char *pwhash);
enum store_err	store_user_del(struct store *, const char *name);
enum store_err	store_user_set_password(struct store *, const char *name,
		    const char *pwhash);
/* *pwhash is malloc'd; the caller frees it. */
enum store_err	store_user_password(struct store *, const char *name,
		    char **pwhash);
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
 * Stores the blob once (or finds it stored already, by GUID) and appends
 * one message per target, each in its own savepoint.  Returns STORE_OK
 * when the blob is stored (then each target says how it went), or the
 * error that stopped every target.
 */
enum store_err	store_deliver(struct store *, const struct store_blob_in *,
		    struct store_target *, size_t ntargets);

/*
 * Calls cb for each message of the mailbox in UID order; a non-zero
 * return from cb stops the walk.  cb may read blobs but must not start
 * another walk of messages.
 */
enum store_err	store_message_foreach(struct store *, int64_t mailbox_id,
		    int (*cb)(void *, const struct store_message *), void *arg);

/*
 * Reading a blob by GUID, in pieces, with bounded memory: a reader keeps
 * one decompressed chunk.  store_blob_read() returns the bytes copied
 * (0 at the end) or -1.
 */
struct store_blob_reader;
enum store_err	store_blob_open(struct store *, const uint8_t *guid,
		    struct store_blob_reader **out, uint64_t *size);
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

enum store_err	store_message_meta(struct store *, const uint8_t *guid,
		    struct store_meta *out);
void		store_meta_free(struct store_meta *);

/*
 * One message by UID.  out->keywords stays valid until the next call
 * into the store.
 */
enum store_err	store_message_get(struct store *, int64_t mailbox_id,
		    uint32_t uid, struct store_message *out);

/*
 * A mailbox's UIDNEXT and HIGHESTMODSEQ by local id: the cheap look-up
 * an IMAP session makes to learn whether anything changed.
 */
enum store_err	store_mailbox_state(struct store *, int64_t mailbox_id,
		    uint32_t *uidnext, uint64_t *highestmodseq);

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
/* Expunges n messages in one step, all or none. */
enum store_err	store_message_expunge_many(struct store *, int64_t mailbox_id,
		    const uint32_t *uids, size_t n);

/* Messages whose MODSEQ is above `since`, in UID order (CONDSTORE). */
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
enum store_err	store_mailbox_subscribe(struct store *, const char *user,
		    const char *name, int subscribed);

/* Counts log records; the replication issue builds on these. */
int64_t		store_replog_head(struct store *);

#endif /* MAILREPD_STORE_H */
