/*
 * config.h — every compile-time default and limit of mailrepd.
 *
 * A limit that a peer can push against lives here and nowhere else; the
 * run-time settings table (settings.c) takes its defaults from here too.
 */
#ifndef MAILREPD_CONFIG_H
#define MAILREPD_CONFIG_H

#define MAILREPD_VERSION	"0.1.0"

/* Network and sessions */
/*
 * Memory (ARCHITECTURE.md: 64 MiB under any input).  What sessions buffer:
 *
 * - Before login (IMAP) or LHLO/EHLO (LMTP, SMTP) a session reads at
 *   most PRELOGIN_IN_LIMIT and stops reading once PRELOGIN_HIGH_WATER of
 *   replies wait: 8 + 4 KiB and one reply (CAPABILITY: 0.3 KiB), so
 *   with its state (about 3 KiB) at most ~16 KiB.  Both client pools
 *   full of them (2 x 512): 16 MiB.
 * - After it: input up to the protocol's limit (IMAP_MAX_LINE or
 *   LMTP_MAX_DATA_LINE, + IO_CHUNK: 80 KiB), output until OUTBUF_HIGH_WATER
 *   (256 KiB) and one reply or step.  Alone that could make 512 x 336
 *   KiB, so every session's buffers also count against SESSION_BUDGET:
 *   past it, a session holding SESSION_FAIR_SHARE or more is neither read
 *   nor given its commands (its output still drains) until the total is
 *   back under.  The total then stays under SESSION_BUDGET plus what
 *   each of the others may still take below its share: one read
 *   (IO_CHUNK) and one reply, ~40 KiB, so 8 MiB + 1,024 x 40 KiB =
 *   48 MiB in the worst case.
 * - TLS adds mbedTLS's two 16.7 KiB record buffers and its cipher state
 *   to each TLS session (transport.h), 36 KiB (35.2 measured with
 *   bench/tls_bench.py, 500 idle IMAPS sessions), which no setting of
 *   Debian's mbedTLS 2.28 shrinks (MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH
 *   is not built in; a client may ask for smaller records, but the
 *   buffers stay).  So client sessions hold TLS only in one of
 *   max-tls-sessions slots: 200 x 36 KiB = 7 MiB; replication's pool
 *   adds 64 x 36 KiB = 2.3 MiB.
 * - COMPRESS=DEFLATE adds its zlib states: inflate's 32 KiB window (a
 *   client may use any window, RFC 4978 negotiates none) and 7 KiB of
 *   state, deflate's 26 KiB (COMPRESS_WINDOW_BITS, COMPRESS_MEM_LEVEL),
 *   two COMPRESS_CHUNK buffers: 80 KiB (79.7 measured with
 *   bench/compress_slots.py, 200 sessions filling both windows).  Only
 *   max-compress-sessions sessions hold them: 20 x 80 KiB = 1.6 MiB.
 * - With the process itself (SQLite's page cache, code: 4-5 MiB),
 *   48 + 7 + 2.3 + 1.6 + 5 = 63.9 MiB.  Replicas (they hold the key)
 *   stream frames on top, unpaused: 2 x 65 KiB each way.
 */
#define DEFAULT_MAX_CONNECTIONS	512
/*
 * Connections of one non-loopback address, in each pool: Postfix's
 * default per-client count (anvil, 50), so that an office behind one NAT
 * address still gets in; one attacker then needs 11 addresses to fill a
 * pool, which the per-pool limit and the pre-login timeout bound.
 */
#define DEFAULT_MAX_PER_ADDRESS	50
#define DEFAULT_IDLE_TIMEOUT	1800	/* seconds a session may sit idle */
#define DEFAULT_PRELOGIN_TIMEOUT 60	/* seconds from connecting to logging in */
#define LISTEN_BACKLOG		128	/* listen(2) backlog */
#define LOOP_STEP_MS		10	/* sessions with replies queued run
					   this long per loop iteration */
#define LOOP_SLOW_MS		100	/* a loop iteration this long is logged (loop.slow, once a second at most) */
#define LOOP_SLOW_CPU_MS	(2 * LOOP_STEP_MS) /* so is one whose own CPU time is this long */
#define IO_CHUNK		16384	/* bytes read from a socket at once */
#define OUTBUF_HIGH_WATER	(256 * 1024) /* stop producing output above */
#define PRELOGIN_IN_LIMIT	(8 * 1024) /* input buffered before login */
#define PRELOGIN_HIGH_WATER	(4 * 1024) /* OUTBUF_HIGH_WATER before login */
#define SESSION_BUDGET		(8 * 1024 * 1024) /* every session's buffers */
#define SESSION_FAIR_SHARE	(16 * 1024) /* paused past it, over budget */

/* TLS and COMPRESS=DEFLATE (tls.c, transport.c) */
#define DEFAULT_TLS_HANDSHAKE_TIMEOUT 10 /* seconds a TLS handshake may take */
#define DEFAULT_MAX_TLS_HANDSHAKES 64	/* handshakes at once, per listener kind */
#define DEFAULT_MAX_TLS_SESSIONS 200	/* client sessions with TLS at once */
#define TLS_GEN_CERT_DAYS	3650	/* validity of a generated certificate */
#define DEFAULT_MAX_COMPRESS_SESSIONS 20	/* IMAP sessions with COMPRESS at once */
#define COMPRESS_LEVEL		1	/* deflate level of COMPRESS output */
#define COMPRESS_WINDOW_BITS	12	/* output window: 4 KiB (inflate takes 32) */
#define COMPRESS_MEM_LEVEL	3	/* deflate state: 10 KiB + window * 4 */
#define COMPRESS_CHUNK		8192	/* compressed bytes buffered each way */

/* Message store */
#define DEFAULT_MAX_MESSAGE_SIZE (50 * 1024 * 1024) /* bytes, SIZE= */
#define DEFAULT_MAX_MESSAGES	1000000	/* messages in one mailbox */
#define DEFAULT_QUOTA_STORAGE	0	/* bytes one user may keep; 0: no limit */
#define DEFAULT_QUOTA_MESSAGES	0	/* messages one user may keep; 0: none */
#define BLOB_CHUNK_SIZE		(64 * 1024) /* bytes per chunk of a blob stored before schema 24 */
/*
 * A message's bytes are rows of table piece, at row id blob id <<
 * BLOB_PIECE_BITS | row number: each whole BLOB_CHUNK_SIZE one row
 * (SQLite keeps all but ~3.5 KB of it in overflow pages it fills whole,
 * and a big message is read a row per 64 KiB), what is
 * left rows of BLOB_PIECE_SIZE: rows this small fill SQLite's 4 KiB
 * leaf pages to ~89%, where one row a message of 2-4 KB left a third of
 * every page empty (bench/RESULTS.md, schema 24).  Rows are stored as
 * they came: inflating costs more than a saving is worth (issue 9);
 * chunks that older versions deflated are still read.
 */
#define BLOB_PIECE_SIZE		800
#define BLOB_PIECE_BITS		24
#define BLOB_ZLIB_LEVEL		1	/* deflate level (replication): 1 is ~5x cheaper than 6 */
/*
 * A message up to this size is gathered in memory on its way into the
 * store (spool.c); a larger one goes to a temporary file.
 */
#define SPOOL_MEM_MAX		(64 * 1024)
#define STORE_BUSY_TIMEOUT_MS	5000	/* a command-line tool waits for a lock */
#define STORE_STMT_JOURNAL_MEM	(128 * 1024) /* bytes of a savepoint's undo kept in memory before a temporary file (SQLite 3.40 fails past a limit of 256 KiB) */
#define STORE_RETRY_MS		10	/* the server looks again for the lock */
#define STORE_MAX_KEYWORDS	4096	/* bytes of keywords on a message */
#define STORE_GC_BATCH		256	/* unused blobs dropped in one loop step */
#define STORE_GC_STEP_USEC	5000	/* loop time one step of blob collection takes */
/*
 * A message of BLOB_STEP_MIN bytes or more is written into the store,
 * and dropped from it, a step of STORE_STAGE_STEP_USEC a loop iteration
 * (store_stage.c): written or deleted at once, 50 MiB held the loop for
 * 200 to 320 ms of CPU.  A step writes a row (64 KiB) at a time and
 * deletes BLOB_DROP_ROWS at a time.  Each step's commit is synced in
 * the loop, so the step is short for the bytes it leaves to sync: at
 * 5 ms a step, a client's NOOP waited up to 60 ms behind a 48 MiB
 * delivery on an idle machine; at 1 ms, 33 ms, with the delivery no
 * slower (bench/RESULTS.md).
 */
#define BLOB_STEP_MIN		(1024 * 1024)
#define STORE_STAGE_STEP_USEC	1000
#define BLOB_DROP_ROWS		4
#define SCHEMA_VERSION		26	/* bump with a step in store_schema.c */
/*
 * SEARCH's full-text index (imap_search_index.c, store_fts.c): blobs
 * indexed behind delivery, a bounded batch an iteration of the loop.
 */
#define FTS_STEP_BLOBS		64	/* blobs indexed in one loop step at most */
#define FTS_STEP_USEC		8000	/* loop time one step of indexing takes */
#define FTS_DELAY_MS		500	/* fewer than a batch wait this long to be indexed */
#define FTS_MAX_TEXT		(128 * 1024) /* text of one kind a blob may have indexed; more: always read (~7 ms to index) */
#define FTS_MAX_TRIGRAMS	24	/* trigrams of one search string asked of the index */
/*
 * FTS5 merges FTS_AUTOMERGE segments of one level into one of the next
 * (its default: 4).  Each level rewrites every row once, so the work a
 * delivery's rows cost grows with log base FTS_AUTOMERGE of the store:
 * 16 has half the levels of 4 (at 106,000 messages delivery took 0.765
 * ms of CPU a message against 0.915: bench/growth.py, RESULTS.md); a
 * search asks up to 15 segments a level instead of 3.
 */
#define FTS_AUTOMERGE		16
#define FTS_MAX_BITMAP		(1024 * 1024) /* bytes of one key's blob bitmap; a store past 8M blob ids reads */
#define FTS_GATHER_ROWS		4096	/* candidate blobs read from the index at once */
#define FTS_WALK_SHARE		2	/* SEARCH tries only the index's candidates when at most 1/N of the mailbox */
#define FTS_WALK_PENDING	1024	/* blobs not yet indexed a SEARCH looks up one by one; more: it tries every message */
#define FTS_WALK_BYTES		4096	/* bytes of the candidates' bitmap one move of SEARCH's set-up reads */
/*
 * Growth (store_purge.c): tombstones and renumbered copies go once every
 * known replica has them and they are older than --tombstone-retention;
 * resolved conflicts after --conflict-retention; quarantine after
 * --quarantine-days.  Each purge step deletes at most STORE_PURGE_BATCH
 * rows of each table, a few milliseconds.
 */
#define DEFAULT_TOMBSTONE_RETENTION (30 * 86400) /* seconds a tombstone is kept */
#define DEFAULT_CONFLICT_RETENTION (30 * 86400) /* seconds a resolved conflict is kept */
#define STORE_PURGE_BATCH	500	/* rows of one table purged per step */
#define STORE_PURGE_INTERVAL	1	/* seconds between purge steps */
#define STORE_PURGED_JOIN_MAX	64	/* held UIDs two purged ranges join across */
/*
 * The WAL: after a checkpoint SQLite truncates it to STORE_WAL_LIMIT
 * (journal_size_limit); every STORE_WAL_CHECK_INTERVAL a WAL past it is
 * checkpointed, without waiting for readers of other processes.
 */
#define STORE_WAL_LIMIT		(16 * 1024 * 1024) /* bytes */
#define STORE_WAL_CHECK_INTERVAL 10	/* seconds between WAL size checks */
/*
 * The server checkpoints on a thread of its own (store_wal.c): a commit
 * that leaves STORE_CHECKPOINT_PAGES in the WAL wakes it; writes wait
 * for it once the WAL holds STORE_WAL_PAUSE_PAGES (STORE_WAL_LIMIT in
 * 4 KiB pages) until it has caught up, so the WAL stays near
 * STORE_WAL_LIMIT but while another reader holds it.
 */
#define STORE_CHECKPOINT_PAGES	1000	/* WAL pages that wake the checkpointer (SQLite's default) */
#define STORE_WAL_PAUSE_PAGES	4096	/* WAL pages that make writes wait for it */
/*
 * A full disk (store_room.c): a reserve file of --disk-reserve bytes
 * beside the database is released when a write finds the disk full, so
 * that deleting mail can still commit.  It covers a checkpoint of the
 * WAL (SQLite's default: 1,000 pages, 4 MiB) and the deletes' own WAL
 * pages.  New mail is stored again once the disk and the database's
 * free pages hold STORE_ROOM_RESUME besides the reserve.  A write that
 * begins with less than STORE_ROOM_LOW free beside the reserve file
 * releases the file first: the WAL pages of an EXPUNGE (SQLite zeroes
 * what it frees: secure_delete, Debian's default) can pass what is
 * left, and a failed commit is undone, not retried.  The file is taken
 * back with STORE_ROOM_LOW and STORE_ROOM_RESUME free beside it.
 */
#define DEFAULT_DISK_RESERVE	(8 * 1024 * 1024) /* bytes kept for freeing space */
#define STORE_ROOM_RESUME	(1024 * 1024) /* bytes free before new mail is taken */
#define STORE_ROOM_LOW		(4 * 1024 * 1024) /* free beside the reserve file before a write */
#define BACKUP_STEP_PAGES	256	/* pages `mailrepd backup` copies per step */
#define BACKUP_STEP_PAUSE_MS	2	/* its pause between steps */
#define IDENTITY_FILE		"identity" /* the marker beside the database */

/* LMTP */
#define LMTP_MAX_LINE		2048	/* command line, CRLF included */
#define LMTP_MAX_DATA_LINE	(64 * 1024) /* one DATA line; RFC says 1000 */
#define LMTP_MAX_RECIPIENTS	1000	/* RCPT TO per transaction */
#define LMTP_STORE_STEP		64	/* recipients stored per loop iteration (~5 ms) */
#define LMTP_COMMANDS_STEP	64	/* pipelined commands run per loop iteration */
#define LMTP_MAX_ADDRESS	512	/* bytes in one path */
#define LMTP_MAX_ERRORS		20	/* bad commands before 421 */

/* SMTP intake (--smtp): the LMTP session with SMTP's differences */
#define SMTP_MAX_HELO		255	/* HELO/EHLO name bytes kept for Received: */
#define SMTP_MAX_AUTH		(PASSWORD_MAX * 2) /* a decoded AUTH response */

/* Dev mode (`mailrepd dev`) and the JSON view */
#define DEV_LMTP_PORT		2424	/* dev's fixed loopback LMTP port */
#define DEV_SMTP_PORT		2525	/* dev's fixed loopback SMTP port */
#define DEV_IMAP_PORT		1143	/* dev's fixed loopback IMAP port */
#define DEV_IMAPS_PORT		1993	/* dev's fixed loopback IMAPS port */
#define DEV_USER		"dev"	/* the user dev makes ready */
#define DEV_PASSWORD		"dev"	/* printed; any password works in dev */
#define DEV_SLOW_SECONDS	2	/* extra delay of a +slow recipient's reply */
#define WAIT_POLL_MS		10	/* how often `mailrepd wait` looks */
#define WAIT_DEFAULT_TIMEOUT	30	/* seconds `mailrepd wait` waits */
#define WAIT_MAX_TIMEOUT	86400	/* longest --timeout accepted */

/* HTTP (--http: health, metrics, the web view and its API) */
#define DEV_HTTP_PORT		8025	/* dev's fixed loopback HTTP port (Mailpit's) */
#define HTTP_MAX_REQUEST_LINE	4096	/* method, target and version; past it 414 */
#define HTTP_MAX_HEAD		(16 * 1024) /* request line and headers; past it 431 */
#define HTTP_MAX_HEADERS	64	/* header fields in one request; past it 431 */
#define HTTP_MAX_BODY		(64 * 1024) /* request body (DELETE's IDs); past it 413 */
#define HTTP_MAX_METHOD		16	/* bytes of a method name */
#define HTTP_MAX_KEEPALIVE	1000	/* requests on one connection, then close */
#define HTTP_REQUEST_TIMEOUT	10	/* seconds from a request's first byte to its end; 408 */
#define HTTP_KEEPALIVE_TIMEOUT	15	/* seconds an idle keep-alive connection stays */
#define HTTP_SEND_TIMEOUT	60	/* seconds a client may leave a reply unread */
#define HTTP_OUT_LIMIT		(1024 * 1024) /* output buffered: one step past the high water */
#define HTTP_STEP_USEC		5000	/* loop time a reply made in steps takes an iteration */
#define WEB_BATCH		50	/* messages an API list step reads (a default page) */
#define WEB_DEFAULT_LIMIT	50	/* messages a list gives without limit= (Mailpit's) */
#define WEB_MAX_LIMIT		1000	/* most messages one list or search gives */
#define WEB_MAX_QUERY		512	/* bytes of a search query, decoded */
#define WEB_MAX_TERMS		16	/* terms of one search query */
#define WEB_MAX_TEXT		(64 * 1024) /* bytes of a message's text in its JSON */
#define WEB_MAX_HTML		(1024 * 1024) /* decoded HTML bytes one message view sanitizes; the rest is cut */
#define WEB_MAX_SEGMENT		512	/* bytes of the path segments a route's "*"s take (ID/PartID, ID/Content-ID) */
#define WEB_MAX_MAILBOXES	1000	/* users and mailboxes GET /api/v1/mailboxes lists */
#define WEB_MAX_PARTS		100	/* attachments one message's JSON lists */
#define WEB_SKIP_STEP		2000	/* list positions a deep page skips per loop step (index only) */
#define WEB_DELETE_BATCH	64	/* messages one DELETE step expunges */
#define SSE_MAX_CLIENTS		100	/* event streams (/api/v1/events) open at once; past it 503 */
#define SSE_RING_EVENTS		256	/* events kept for streams; a stream further behind resyncs */
#define SSE_COLLECT_STEP	64	/* log records one collection turns into events */
#define SSE_MAX_BEHIND		4096	/* log records the feed may lag; past it every stream resyncs */
#define SSE_MAX_FIELD		256	/* bytes of a subject or sender in an event */
#define SSE_KEEPALIVE		15	/* seconds between keep-alive comments of a quiet stream */
#define SSE_SNDBUF		(64 * 1024) /* kernel send buffer of a stream (doubled): its queue past the output's */
#define HTTP_MAX_AUTH_FAILURES	3	/* failed logins on one connection, then close */
#define HTTP_ADMIN_TOKEN_MIN	16	/* bytes of the --http-admin-token-file token, at least */
#define HTTP_ADMIN_TOKEN_MAX	256	/* and at most */

/* IMAP */
#define IMAP_MAX_LINE		(64 * 1024) /* one command line (>= 8 KiB) */
#define IMAP_MAX_LITERAL	(64 * 1024) /* a literal outside APPEND */
#define IMAP_LITERAL_MINUS	4096	/* a {N+} literal under LITERAL- (RFC 7888) */
#define IMAP_NAME_SLOTS		4	/* UTF-8 mailbox names one command holds */
#define IMAP_MAX_DEPTH		16	/* nested parentheses in a command */
#define IMAP_MAX_ARGS		10000	/* arguments in one command */
#define IMAP_MAX_RANGES		32768	/* ranges in one sequence set */
#define IMAP_MAX_SEARCH_KEYS	1000	/* search keys in one SEARCH */
#define IMAP_MAX_FETCH_ITEMS	100	/* items in one FETCH */
#define IMAP_MAX_QUOTED		1024	/* longer strings are sent as literals */
#define IMAP_MAX_AUTH_FAILURES	3	/* failed logins before BYE */
#define IMAP_AUTH_FAIL_DELAY_MS	2000	/* ms before NO [AUTHENTICATIONFAILED] */
#define AUTH_FAIL_MAX_DELAY_MS	30000	/* ms: cap of the per-address delay */
#define AUTH_FAIL_FORGET	900	/* seconds until an address's failures fade */
#define AUTH_FAIL_ADDRESSES	1024	/* client addresses remembered for delays */
#define IMAP_MAX_USER_SESSIONS	128	/* IMAP sessions of one user */
#define IMAP_MAX_BAD_COMMANDS	20	/* BAD replies before BYE */
#define IMAP_MAX_PRELOGIN_COMMANDS 32	/* commands before login, then BYE */
/*
 * ID's list (RFC 2971 3.3's limits for what a client sends): a list too
 * long for the input buffer (before login: PRELOGIN_IN_LIMIT) is read
 * pair by pair, holding one byte of state, so the maxima (~32 KiB) do
 * not grow what a session buffers.
 */
#define IMAP_ID_MAX_PAIRS	30	/* field-value pairs in one ID */
#define IMAP_ID_MAX_FIELD	30	/* octets of a field name */
#define IMAP_ID_MAX_VALUE	1024	/* octets of a value */
#define IMAP_MAX_CAPS_TEXT	1024	/* the capability list, every name offered */
#define IMAP_MAX_SKIP		(4 * 1024 * 1024) /* over-long line dropped before BYE */
#define IMAP_MAX_OUTPUT		(4 * 1024 * 1024) /* a session's output buffer */
#define IMAP_STEP_MESSAGES	256	/* messages a long command does in one loop step */
#define IMAP_STEP_USEC		5000	/* loop time one step of a long command takes */
#define FETCH_ROW_BATCH		256	/* message rows a FETCH of flags alone reads at once */
#define IMAP_MAX_MULTIAPPEND	32	/* messages in one APPEND (a spool and a file each) */
#define IMAP_MAX_SECTION	64	/* bytes of a section in a CATENATE URL */
/*
 * COPY and MOVE of up to IMAP_STEP_MESSAGES messages are one store
 * step, all or nothing (RFC 3501 6.4.7).  A bigger set is copied in
 * steps of IMAP_STEP_USEC, one a loop iteration, as rows the other
 * sessions cannot see (UIDs at and above the target's UIDNEXT) and log
 * records the replicas are not sent, under a journal (copy_job); one
 * short write then shows them all (store_copy.c).  An error, a
 * disconnect or a drain leaves the journal to be undone a step at a
 * time, a crash at the next start.  The picked UIDs cost 4 bytes each
 * while the command runs: 400 KiB at most.
 */
#define IMAP_MAX_COPY		100000	/* messages one COPY or MOVE takes */
#define STORE_COPY_UNDO_BATCH	512	/* copies or log records undone in one loop step */
#define STORE_COPY_STEP_USEC	5000	/* loop time a step of an abandoned MOVE's expunges takes */
#define IMAP_MAX_SEARCH_TEXT	16	/* BODY and TEXT keys in one SEARCH */
#define IMAP_MAX_SEARCH_FTS	4	/* keys of one SEARCH that ask the full-text index */
#define VIEW_INDEX_EVERY	16	/* UID runs of a view per sequence-number index entry */
#define IMAP_MAX_SORT_KEYS	16	/* criteria in one SORT (9 keys, each maybe twice) */
#define IMAP_MAX_UPDATES	5	/* updating searches (RETURN (UPDATE)) one session keeps */
#define IMAP_MAX_SORT_UPDATE	100000	/* matches an updating SORT may start with (kept in order) */
#define THREAD_MAX_DEPTH	1000	/* levels THREAD walks up to refuse a loop */

/* MIME pre-parser (run once per delivered message) */
#define MIME_MAX_DEPTH		32	/* nested multiparts / message parts */
#define MIME_MAX_PARTS		1000	/* parts described in BODYSTRUCTURE */
#define MIME_MAX_HEADER		(64 * 1024) /* header bytes kept per part */
#define MIME_MAX_TYPE		128	/* bytes of a part's type/subtype kept for the web view */
#define MIME_MAX_CHARSET	40	/* bytes of a part's charset kept for the web view */
#define MIME_MAX_FILENAME	256	/* bytes of an attachment's file name kept */
#define MIME_MAX_CONTENT_ID	256	/* bytes of a part's Content-ID kept; a longer one names nothing */
#define MIME_QP_BLANKS		80	/* blanks a QP decoder holds to see if a line ends */
#define MIME_MAX_BOUNDARY	70	/* RFC 2046 boundary length */

/* Users and passwords */
#define USER_MAX_NAME		64	/* bytes in a user name */
#define PASSWORD_MAX		1024	/* bytes in a password */
#define PBKDF2_ITERATIONS	100000	/* PBKDF2-HMAC-SHA256 rounds */
#define PBKDF2_SALT_LEN		16	/* bytes of random salt */
/* The stored hash of a user made by dev or catch-all: no password matches */
#define PASSWORD_NONE		"!"
#define PASSWORD_HASH_MAX	128	/* bytes of a stored hash the checker takes */
#define AUTH_QUEUE_LEN		64	/* password checks waiting or running (~4 s) */
#define AUTH_CACHE_ENTRIES	1024	/* recently verified credentials kept */
#define AUTH_CACHE_SECONDS	900	/* how long a verified credential is trusted */
#define MAILBOX_MAX_NAME	512	/* bytes in a mailbox name */
#define MAILBOX_MAX_DEPTH	32	/* levels in a mailbox name (a/b/c: 3) */
#define DEFAULT_MAX_MAILBOXES	1000	/* mailboxes one user may create */
#define IMAP_MAX_LIST_PATTERNS	32	/* patterns in one LIST */

/* Replication (sync.c) */
#define SYNC_MAX_FRAME		(BLOB_CHUNK_SIZE + 1024) /* compressed payload bytes */
#define SYNC_MAX_ITEM		(BLOB_CHUNK_SIZE + 8192) /* one inflated record or chunk */
#define SYNC_BATCH_RECORDS	256	/* log records per batch (one replica commit) */
#define SYNC_BATCH_BYTES	(32 * 1024 * 1024) /* body bytes per batch */
/*
 * A replica holds a batch's bodies until the batch is applied: each in
 * memory up to SPOOL_MEM_MAX, a larger one in a temporary file (an open
 * descriptor).  A batch ends once its bodies hold SYNC_BATCH_MEM bytes
 * of memory (a replica refuses one past it by more than a body) or
 * SYNC_BATCH_FILES files.  4 KiB messages: 256 a batch, one fsync each.
 */
#define SYNC_BATCH_MEM		(4 * 1024 * 1024)
#define SYNC_BATCH_FILES	64
#define SYNC_WINDOW		4	/* batches sent ahead of the replica's ACK */
#define SYNC_SECRET_MAX		1024	/* bytes in the secret file's line */
#define SYNC_SECRET_MIN		16	/* shortest secret accepted */
#define SYNC_RECONNECT_MIN	1	/* seconds before the first reconnect */
#define SYNC_RECONNECT_MAX	30	/* reconnect backoff cap, seconds */
/*
 * The replication link's timings (settings; sync_tick() looks once a
 * second).  A peer is dropped only after more than two keep-alives
 * could have come, so one delayed ping never cuts a healthy link.
 */
#define DEFAULT_REPL_HANDSHAKE_TIMEOUT 10 /* seconds to HELLO and START */
#define DEFAULT_REPL_PING_INTERVAL 15	/* seconds between keep-alives */
#define DEFAULT_REPL_DEAD_AFTER	60	/* seconds of silence before a peer is dropped */
#define REPL_TIMING_MAX		3600	/* seconds, any of the three */
#define SYNC_MAX_PEERS		64	/* replication connections at once */
#define SYNC_PURGE_BATCH	1000	/* log records purged per statement */
#define SYNC_PURGE_STEP_MS	3	/* a purge step's statements stop after this long */
#define SYNC_PURGE_INTERVAL	5	/* seconds between log purges */
#define SYNC_RECON_CHUNK	1024	/* messages compared per round trip */
#define SYNC_RECON_MAX_MAILBOXES 100000 /* mailboxes in a replica's inventory */
/*
 * A peer's UIDNEXT (in a copy it pushes, a RELOCATE, its inventory) may
 * raise a mailbox's here by the UIDs it gave out while split off: at
 * most this many, and never into the last this many of the UID space
 * (a mailbox taken in from the peer: only that).
 */
#define SYNC_UIDNEXT_JUMP_MAX	(1U << 24) /* UIDs a peer's UIDNEXT may run ahead */
#define DEFAULT_REPL_LOG_RETENTION (7 * 86400) /* seconds a log record is kept */
#define DEFAULT_GUARD_MAX_MAILBOX_DELETES 10 /* per guard window */
#define DEFAULT_GUARD_MAX_EXPUNGE_PERCENT 50 /* of one user's messages */
#define DEFAULT_GUARD_WINDOW	3600	/* seconds */
#define GUARD_MIN_EXPUNGES	20	/* fewer never trip the percentage */
#define GUARD_REC_MAX		8192	/* bytes of one held record, encoded */
#define GUARD_REPLAY_MS		10	/* a replay step stops after this long */
#define DEFAULT_QUARANTINE_DAYS	14	/* days deleted mail is kept */
#define SYNC_UPSTREAM_MAX	255	/* bytes of a HOST:PORT to follow (demote) */
#define DEMOTE_WAIT_TICKS	50	/* 100 ms looks for a running node to demote */
#define SYNC_STATUS_INTERVAL	5	/* seconds between acked-position writes */
/*
 * --repl-sync-timeout: 0 (asynchronous) by default; at most a minute,
 * well inside an MTA's wait for the reply to DATA (Postfix: 10 min).
 */
#define DEFAULT_REPL_SYNC_TIMEOUT 0	/* ms a reply waits for a replica's ACK */
#define REPL_SYNC_TIMEOUT_MAX	60000	/* ms */
/*
 * After a timeout replies go out asynchronously until a replica is back
 * within this many records of the log head (about one batch): then a
 * held reply waits one round trip, not for a backlog to be applied.
 */
#define SYNC_RESUME_LAG		SYNC_BATCH_RECORDS
#define STORE_MAX_VALUE		512	/* bytes of a log record's value (hash, use) */

/* Defaults for `mailrepd serve` and `make run` */
#define DEFAULT_DATA_DIR	"/var/lib/mailrepd"
#define DEFAULT_DRAIN_TIMEOUT	10	/* seconds, SIGQUIT drain bound */
#define CONFIG_MAX_LINE		4096	/* bytes in one config-file line */
#define DEFAULT_UNIX_SOCKET_MODE "0600"	/* unix:PATH listeners: owner only */
#define SERVE_UMASK		077	/* nothing the server writes is shared */

#endif /* MAILREPD_CONFIG_H */
