/*
 * store_schema.c — the layout of the database, as the steps that made it:
 * store_migrations[v] takes a store from schema version v to v + 1 (the
 * first from nothing), and store_open() runs those a store lacks, in
 * one transaction each.  A step is SQL only, self-contained, and never
 * changed once released: a new version adds a step here and bumps
 * SCHEMA_VERSION (config.h).
 */
#include "config.h"
#include "store_internal.h"

static const char schema_v1[] =
	"CREATE TABLE node ("
	"  one INTEGER PRIMARY KEY CHECK (one = 1),"
	"  node_id BLOB NOT NULL,"
	"  role TEXT NOT NULL,"
	"  epoch BLOB NOT NULL,"
	"  last_uidvalidity INTEGER NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE user ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  password TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE mailbox ("
	"  id INTEGER PRIMARY KEY,"
	"  uniqueid BLOB NOT NULL UNIQUE,"
	"  user_id INTEGER NOT NULL REFERENCES user(id),"
	"  name TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL,"
	"  uidnext INTEGER NOT NULL,"
	"  highestmodseq INTEGER NOT NULL,"
	"  subscribed INTEGER NOT NULL DEFAULT 0,"
	"  special_use TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (user_id, name));"
	"CREATE TABLE blob ("
	"  id INTEGER PRIMARY KEY,"
	"  guid BLOB NOT NULL UNIQUE,"
	"  size INTEGER NOT NULL,"
	"  envelope TEXT, bodystructure TEXT, body TEXT,"
	"  header BLOB, parts BLOB,"
	"  subject TEXT, from_addr TEXT, to_addr TEXT, message_id TEXT,"
	"  sent_date INTEGER);"
	"CREATE TABLE chunk ("
	"  blob_id INTEGER NOT NULL REFERENCES blob(id),"
	"  seq INTEGER NOT NULL,"
	"  zlib INTEGER NOT NULL,"
	"  data BLOB NOT NULL,"
	"  PRIMARY KEY (blob_id, seq));"
	"CREATE TABLE message ("
	"  mailbox_id INTEGER NOT NULL REFERENCES mailbox(id),"
	"  uid INTEGER NOT NULL,"
	"  blob_id INTEGER NOT NULL REFERENCES blob(id),"
	"  modseq INTEGER NOT NULL,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  keywords TEXT NOT NULL DEFAULT '',"
	"  internaldate INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX message_blob ON message(blob_id);"
	"CREATE INDEX message_modseq ON message(mailbox_id, modseq);"
	"CREATE TABLE expunged ("
	"  mailbox BLOB NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  guid BLOB NOT NULL,"
	"  modseq INTEGER NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox, uid));"
	"CREATE TABLE mailbox_gone ("
	"  uniqueid BLOB PRIMARY KEY,"
	"  user TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  time INTEGER NOT NULL);"
	"CREATE TABLE replog ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  type TEXT NOT NULL,"
	"  user TEXT,"
	"  mailbox BLOB,"
	"  uid INTEGER,"
	"  guid BLOB,"
	"  modseq INTEGER,"
	"  flags INTEGER,"
	"  keywords TEXT,"
	"  internaldate INTEGER,"
	"  name TEXT,"
	"  value TEXT);";

/*
 * Version 2, replication: what a replica follows and has applied (in
 * node), each replica as its master knows it, and every GUID conflict.
 */
static const char schema_v2[] =
	"ALTER TABLE node ADD COLUMN master_id BLOB;"
	"ALTER TABLE node ADD COLUMN master_epoch BLOB;"
	"ALTER TABLE node ADD COLUMN applied INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE replica ("
	"  name TEXT PRIMARY KEY,"
	"  node_id BLOB NOT NULL,"
	"  acked INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  connected INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE conflict ("
	"  id INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL,"
	"  user TEXT NOT NULL,"
	"  mailbox BLOB NOT NULL,"
	"  mailbox_name TEXT NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  local_guid BLOB NOT NULL,"
	"  master_guid BLOB NOT NULL,"
	"  op TEXT NOT NULL,"
	"  master_seq INTEGER NOT NULL,"
	"  resolved INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX conflict_mailbox ON conflict(mailbox, uid);";

/*
 * Version 3, conflicts resolved by renumbering: which replica copies a
 * master renumbered (so a second push of the same copy changes nothing).
 */
static const char schema_v3[] =
	"CREATE TABLE renumbered ("
	"  mailbox BLOB NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  guid BLOB NOT NULL,"
	"  new_uid INTEGER NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox, uid, guid));";

/*
 * Version 4: named counters that `mailrepd status` reads from a running
 * or a stopped node (synchronous replication's timeouts).
 */
static const char schema_v4[] =
	"CREATE TABLE counter ("
	"  name TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL) WITHOUT ROWID;";

/*
 * Version 5, the mass-delete guard: why a replica paused applying and
 * whether an operator allowed the deletes; what a replica deleted, kept
 * in quarantine (with its blob) for --quarantine-days.
 */
static const char schema_v5[] =
	"ALTER TABLE node ADD COLUMN paused TEXT;"
	"ALTER TABLE node ADD COLUMN allow_deletes INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE quarantine ("
	"  id INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL,"
	"  user TEXT NOT NULL,"
	"  mailbox BLOB NOT NULL,"
	"  mailbox_name TEXT NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  blob_id INTEGER NOT NULL REFERENCES blob(id),"
	"  flags INTEGER NOT NULL,"
	"  keywords TEXT NOT NULL,"
	"  internaldate INTEGER NOT NULL);"
	"CREATE INDEX quarantine_blob ON quarantine(blob_id);"
	"CREATE INDEX quarantine_time ON quarantine(time);";

/*
 * Version 6, planned failover: the upstream `mailrepd demote` recorded
 * (the next serve follows it), and the clean-shutdown marker a drain
 * leaves: what the log and each replica held when the node stopped.
 */
static const char schema_v6[] =
	"ALTER TABLE node ADD COLUMN upstream TEXT;"
	"CREATE TABLE shutdown ("
	"  one INTEGER PRIMARY KEY CHECK (one = 1),"
	"  time INTEGER NOT NULL,"
	"  role TEXT NOT NULL,"
	"  epoch BLOB NOT NULL,"
	"  head INTEGER NOT NULL,"
	"  status INTEGER NOT NULL,"
	"  stale INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE shutdown_replica ("
	"  name TEXT PRIMARY KEY,"
	"  node_id BLOB NOT NULL,"
	"  acked INTEGER NOT NULL,"
	"  connected INTEGER NOT NULL);";

/*
 * Version 7, identity of logs and replicas: each log record carries the
 * running hash of the log up to it (the hash at the position before the
 * first record kept, in node, survives a purge), a replica keeps the
 * hash at the position it applied, and its master knows it by node id
 * (a name is a label), with whether it is reconciling.  Of two names
 * one node had, the one seen last stays.
 */
static const char schema_v7[] =
	"ALTER TABLE replog ADD COLUMN hash BLOB;"
	"ALTER TABLE node ADD COLUMN applied_hash BLOB;"
	"ALTER TABLE node ADD COLUMN log_base_seq INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE node ADD COLUMN log_base_hash BLOB;"
	"UPDATE node SET log_base_seq = coalesce((SELECT min(seq) - 1 FROM "
	"  replog), (SELECT seq FROM sqlite_sequence WHERE name = 'replog'),"
	"  0);"
	"CREATE TABLE replica_v7 ("
	"  node_id BLOB PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  acked INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  connected INTEGER NOT NULL DEFAULT 0,"
	"  reconciling INTEGER NOT NULL DEFAULT 0);"
	"INSERT OR REPLACE INTO replica_v7 (node_id, name, acked, last_seen,"
	"  connected) SELECT node_id, name, acked, last_seen, connected"
	"  FROM replica ORDER BY last_seen;"
	"DROP TABLE replica;"
	"ALTER TABLE replica_v7 RENAME TO replica;"
	"CREATE TABLE shutdown_replica_v7 ("
	"  node_id BLOB PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  acked INTEGER NOT NULL,"
	"  connected INTEGER NOT NULL,"
	"  reconciling INTEGER NOT NULL DEFAULT 0);"
	"INSERT OR REPLACE INTO shutdown_replica_v7 (node_id, name, acked,"
	"  connected) SELECT node_id, name, acked, connected"
	"  FROM shutdown_replica;"
	"DROP TABLE shutdown_replica;"
	"ALTER TABLE shutdown_replica_v7 RENAME TO shutdown_replica;";

/*
 * Version 8, every record says why: the reason of each log record and
 * of each expunge's tombstone (rows from before say "client", which the
 * mass-delete guard counts: it errs on pausing); the users the guard
 * holds the records of, and those records (with the blob of an append's
 * body), replacing the node's single pause.
 */
static const char schema_v8[] =
	"ALTER TABLE replog ADD COLUMN reason TEXT NOT NULL DEFAULT 'client';"
	"ALTER TABLE expunged ADD COLUMN reason TEXT NOT NULL "
	"  DEFAULT 'client';"
	"ALTER TABLE node DROP COLUMN paused;"
	"ALTER TABLE node DROP COLUMN allow_deletes;"
	"CREATE TABLE guard_pause ("
	"  user TEXT PRIMARY KEY COLLATE NOCASE,"
	"  reason TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE held ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  user TEXT NOT NULL COLLATE NOCASE,"
	"  mailbox BLOB,"
	"  uid INTEGER,"
	"  guid BLOB,"
	"  rec BLOB NOT NULL,"
	"  blob_id INTEGER REFERENCES blob(id));"
	"CREATE INDEX held_user ON held(user, id);"
	"CREATE INDEX held_mailbox ON held(mailbox, uid);"
	"CREATE INDEX held_blob ON held(blob_id);";

/*
 * Version 9, ids never reused: every table whose row ids a session or a
 * replica holds (a selected mailbox, a blob being streamed, a conflict
 * or quarantine entry an operator names, a user) hands out each id once.
 * Without AUTOINCREMENT SQLite gives the highest freed id to the next
 * row, so a session that kept a deleted mailbox selected read the next
 * mailbox anyone created.  AUTOINCREMENT needs the table rebuilt; the
 * rows, their ids and the indexes are kept, and store_migrate() runs
 * the step with foreign keys off, as SQLite's ALTER TABLE procedure
 * asks, so that dropping a parent table does not touch its children.
 */
static const char schema_v9[] =
	"CREATE TABLE new_user ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  password TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"INSERT INTO new_user (id, name, password, created) "
	"  SELECT id, name, password, created FROM user;"
	"DROP TABLE user;"
	"ALTER TABLE new_user RENAME TO user;"
	"CREATE TABLE new_mailbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  uniqueid BLOB NOT NULL UNIQUE,"
	"  user_id INTEGER NOT NULL REFERENCES user(id),"
	"  name TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL,"
	"  uidnext INTEGER NOT NULL,"
	"  highestmodseq INTEGER NOT NULL,"
	"  subscribed INTEGER NOT NULL DEFAULT 0,"
	"  special_use TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (user_id, name));"
	"INSERT INTO new_mailbox (id, uniqueid, user_id, name, uidvalidity, "
	"  uidnext, highestmodseq, subscribed, special_use) "
	"  SELECT id, uniqueid, user_id, name, uidvalidity, uidnext, "
	"  highestmodseq, subscribed, special_use FROM mailbox;"
	"DROP TABLE mailbox;"
	"ALTER TABLE new_mailbox RENAME TO mailbox;"
	"CREATE TABLE new_blob ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  guid BLOB NOT NULL UNIQUE,"
	"  size INTEGER NOT NULL,"
	"  envelope TEXT, bodystructure TEXT, body TEXT,"
	"  header BLOB, parts BLOB,"
	"  subject TEXT, from_addr TEXT, to_addr TEXT, message_id TEXT,"
	"  sent_date INTEGER);"
	"INSERT INTO new_blob (id, guid, size, envelope, bodystructure, body, "
	"  header, parts, subject, from_addr, to_addr, message_id, sent_date) "
	"  SELECT id, guid, size, envelope, bodystructure, body, header, "
	"  parts, subject, from_addr, to_addr, message_id, sent_date FROM blob;"
	"DROP TABLE blob;"
	"ALTER TABLE new_blob RENAME TO blob;"
	"CREATE TABLE new_conflict ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  user TEXT NOT NULL,"
	"  mailbox BLOB NOT NULL,"
	"  mailbox_name TEXT NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  local_guid BLOB NOT NULL,"
	"  master_guid BLOB NOT NULL,"
	"  op TEXT NOT NULL,"
	"  master_seq INTEGER NOT NULL,"
	"  resolved INTEGER NOT NULL DEFAULT 0);"
	"INSERT INTO new_conflict (id, time, user, mailbox, mailbox_name, uid, "
	"  local_guid, master_guid, op, master_seq, resolved) "
	"  SELECT id, time, user, mailbox, mailbox_name, uid, local_guid, "
	"  master_guid, op, master_seq, resolved FROM conflict;"
	"DROP TABLE conflict;"
	"ALTER TABLE new_conflict RENAME TO conflict;"
	"CREATE INDEX conflict_mailbox ON conflict(mailbox, uid);"
	"CREATE TABLE new_quarantine ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  user TEXT NOT NULL,"
	"  mailbox BLOB NOT NULL,"
	"  mailbox_name TEXT NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  blob_id INTEGER NOT NULL REFERENCES blob(id),"
	"  flags INTEGER NOT NULL,"
	"  keywords TEXT NOT NULL,"
	"  internaldate INTEGER NOT NULL);"
	"INSERT INTO new_quarantine (id, time, user, mailbox, mailbox_name, "
	"  uid, blob_id, flags, keywords, internaldate) "
	"  SELECT id, time, user, mailbox, mailbox_name, uid, blob_id, flags, "
	"  keywords, internaldate FROM quarantine;"
	"DROP TABLE quarantine;"
	"ALTER TABLE new_quarantine RENAME TO quarantine;"
	"CREATE INDEX quarantine_blob ON quarantine(blob_id);"
	"CREATE INDEX quarantine_time ON quarantine(time);";

/*
 * Version 10, bounded growth (store_purge.c): each tombstone (of a
 * message, of a mailbox, of a renumbered copy) keeps the log position a
 * replica must have acknowledged to have it (logpos: the record that
 * made it, or one past the head when the tombstone was written), so
 * that it is purged only once every replica has it; each mailbox keeps
 * the highest MODSEQ of a tombstone purged (tombs_purged), below which
 * its expunges are no longer listed one by one.  Rows from before wait
 * for the head of now.  The purge walks tombstones and conflicts by age.
 */
static const char schema_v10[] =
	"ALTER TABLE expunged ADD COLUMN logpos INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE mailbox_gone ADD COLUMN logpos INTEGER NOT NULL "
	"  DEFAULT 0;"
	"ALTER TABLE renumbered ADD COLUMN logpos INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE mailbox ADD COLUMN tombs_purged INTEGER NOT NULL "
	"  DEFAULT 0;"
	"UPDATE expunged SET logpos = " LOGPOS_NEXT ";"
	"UPDATE mailbox_gone SET logpos = " LOGPOS_NEXT ";"
	"UPDATE renumbered SET logpos = " LOGPOS_NEXT ";"
	"CREATE INDEX expunged_time ON expunged(time);"
	"CREATE INDEX mailbox_gone_time ON mailbox_gone(time);"
	"CREATE INDEX renumbered_time ON renumbered(time);"
	"CREATE INDEX conflict_time ON conflict(time);";

/*
 * Version 11, a mailbox's message count kept, so that the limit on
 * messages in a mailbox (--max-messages) is checked without counting
 * them on every delivery: triggers keep it on every insert and delete.
 */
static const char schema_v11[] =
	"ALTER TABLE mailbox ADD COLUMN nmessages INTEGER NOT NULL DEFAULT 0;"
	"UPDATE mailbox SET nmessages = "
	"  (SELECT count(*) FROM message WHERE mailbox_id = mailbox.id);"
	"CREATE TRIGGER message_counted AFTER INSERT ON message BEGIN "
	"  UPDATE mailbox SET nmessages = nmessages + 1 "
	"  WHERE id = NEW.mailbox_id; END;"
	"CREATE TRIGGER message_uncounted AFTER DELETE ON message BEGIN "
	"  UPDATE mailbox SET nmessages = nmessages - 1 "
	"  WHERE id = OLD.mailbox_id; END;";

/*
 * Version 12: the node row records its identity marker (store_restore.c),
 * so that a copy of the store is known for one at start.
 */
static const char schema_v12[] =
	"ALTER TABLE node ADD COLUMN marker_ino INTEGER;"
	"ALTER TABLE node ADD COLUMN marker_time INTEGER;";

/*
 * Version 13: when a client last renamed a mailbox (milliseconds since
 * the epoch, 0 for never), so that reconciliation keeps the newer name
 * when a master comes back from a copy older than its replicas' rename.
 */
static const char schema_v13[] =
	"ALTER TABLE mailbox ADD COLUMN named INTEGER NOT NULL DEFAULT 0;";

/*
 * Version 14: blobs that may have lost their last message wait here
 * for store_gc_step(), which drops them a few at a time between the
 * loop's other work: a deleted mailbox's or user's, and one an open
 * reader kept (blob_drop_unused()).  The blobs without a message that
 * the whole-store collection of older versions left go there too.
 */
static const char schema_v14[] =
	"CREATE TABLE blob_unused (blob_id INTEGER PRIMARY KEY);"
	"INSERT INTO blob_unused SELECT id FROM blob b WHERE NOT EXISTS "
	"  (SELECT 1 FROM message WHERE blob_id = b.id);";

/*
 * Version 15: a mailbox's message count is kept by the statements that
 * add and remove messages, not by triggers.  A trigger makes every
 * INSERT and DELETE on message a statement that may abort halfway
 * (the foreign keys), so SQLite journals each page it touches once
 * more in the statement journal, inside the command's savepoint: a
 * COPY of 1,000 wrote ~10,000 pages there.  Recounted, in case.
 */
static const char schema_v15[] =
	"DROP TRIGGER message_counted;"
	"DROP TRIGGER message_uncounted;"
	"UPDATE mailbox SET nmessages = "
	"  (SELECT count(*) FROM message WHERE mailbox_id = mailbox.id);";

/*
 * Version 16: subscriptions belong to a user's names, not to mailboxes
 * (RFC 3501 6.3.6): a deleted mailbox's subscription stays, and one
 * made again under the name finds it.  A mailbox renamed takes the
 * subscription of its old name along (the trigger), a deleted user's
 * go with it.  The log's records of the old kind (by mailbox identity)
 * become records of the new one (by name), keeping their hashes; a
 * record whose mailbox no longer has a name here is dropped, and a
 * replica that stopped at one reconciles.
 */
static const char schema_v16[] =
	"CREATE TABLE subscription ("
	"  user_id INTEGER NOT NULL REFERENCES user(id),"
	"  name TEXT NOT NULL,"
	"  PRIMARY KEY (user_id, name)) WITHOUT ROWID;"
	"INSERT INTO subscription SELECT user_id, name FROM mailbox "
	"  WHERE subscribed;"
	"ALTER TABLE mailbox DROP COLUMN subscribed;"
	"CREATE TRIGGER mailbox_renamed AFTER UPDATE OF name ON mailbox BEGIN "
	"  UPDATE OR REPLACE subscription SET name = NEW.name "
	"  WHERE user_id = NEW.user_id AND name = OLD.name; END;"
	"CREATE TRIGGER user_deleted AFTER DELETE ON user BEGIN "
	"  DELETE FROM subscription WHERE user_id = OLD.id; END;"
	"UPDATE replog SET type = 'user.subscribe', name = coalesce("
	"  (SELECT name FROM mailbox WHERE uniqueid = replog.mailbox),"
	"  (SELECT name FROM mailbox_gone WHERE uniqueid = replog.mailbox)),"
	"  mailbox = NULL WHERE type = 'mailbox.subscribe';"
	"DELETE FROM replog WHERE type = 'user.subscribe' AND name IS NULL;";

/*
 * Version 17: each mailbox's unseen messages and bytes kept beside its
 * message count, by the statements that add and expunge messages and
 * change their flags (as version 15 keeps the count: no triggers), so
 * that SELECT and STATUS read them instead of counting.  Local, never
 * replicated: a replica's own statements keep its own.  The unseen
 * messages are indexed on their own (a partial index: a query names it
 * by repeating its condition, "flags & 1 = 0", \Seen being FLAG_SEEN,
 * 1) so that SEARCH UNSEEN reads only them.
 */
static const char schema_v17[] =
	"ALTER TABLE mailbox ADD COLUMN nunseen INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE mailbox ADD COLUMN nbytes INTEGER NOT NULL DEFAULT 0;"
	"UPDATE mailbox SET "
	"  nmessages = (SELECT count(*) FROM message "
	"    WHERE mailbox_id = mailbox.id),"
	"  nunseen = (SELECT count(*) FROM message "
	"    WHERE mailbox_id = mailbox.id AND flags & 1 = 0),"
	"  nbytes = (SELECT coalesce(sum(b.size), 0) FROM message g "
	"    JOIN blob b ON b.id = g.blob_id WHERE g.mailbox_id = mailbox.id);"
	"CREATE INDEX message_unseen ON message(mailbox_id, uid) "
	"  WHERE flags & 1 = 0;";

/*
 * Version 18, the web view's API: every user's messages newest first
 * (store_web.c) walk this index backwards instead of sorting them all
 * for each page; the table's key (mailbox_id, uid) completes the order.
 */
static const char schema_v18[] =
	"CREATE INDEX message_date ON message(internaldate);";

/*
 * Version 19, SEARCH's full-text index, local and never replicated:
 * every node builds it from its own blobs (imap_search_index.c).  One
 * row per blob and kind of text (rowid = blob id * 16 + kind), trigrams
 * of case-folded text, contentless and without positions (detail=none):
 * it only names the blobs that hold every trigram of a string, which
 * SEARCH then reads as before.  Blobs up to `upto` are indexed in
 * `generation` by extractor `version`; one whose text is too long for
 * the index is in fts_skipped and always read.  Version 0 makes the
 * server build the index anew.
 */
static const char schema_v19[] =
	"CREATE VIRTUAL TABLE fts USING fts5(text, content='', "
	"  detail=none, tokenize='trigram');"
	"CREATE TABLE fts_skipped (blob_id INTEGER PRIMARY KEY);"
	"CREATE TABLE fts_state ("
	"  one INTEGER PRIMARY KEY CHECK (one = 1),"
	"  generation INTEGER NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  upto INTEGER NOT NULL,"
	"  blobs INTEGER NOT NULL);"
	"INSERT INTO fts_state VALUES (1, 1, 0, 0, 0);";

/*
 * Version 20, SAVEDATE (RFC 8514): when each message was put into its
 * mailbox (APPEND, COPY, MOVE, delivery; on a replica the master's
 * time, from the append's record).  Messages from before it have none
 * (NULL) and give their internal date, as Dovecot falls back to a date
 * it knows rather than NIL where the storage keeps save dates; no row
 * is rewritten.
 */
static const char schema_v20[] =
	"ALTER TABLE message ADD COLUMN savedate INTEGER;";

/*
 * Version 21, COPY and MOVE in steps (store_copy.c): the journal of one
 * under way.  Its copies are rows of the target at UIDs from uid_lo to
 * uid_next - 1, at and above the target's uidnext, so that no reader
 * sees them, and log records from first_seq on, which no replica is
 * sent while the job copies (uniqueid: the target's, as they name
 * it); sources are the source UIDs, 4 bytes each
 * (little-endian), done how many are copied (or, once expunging, how
 * many of a MOVE's sources are expunged).  undo_seq is where undoing
 * the log records goes on.
 */
static const char schema_v21[] =
	"CREATE TABLE copy_job ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  target INTEGER NOT NULL,"
	"  uniqueid BLOB NOT NULL,"
	"  source INTEGER NOT NULL,"
	"  move INTEGER NOT NULL,"
	"  expunging INTEGER NOT NULL DEFAULT 0,"
	"  uid_lo INTEGER NOT NULL,"
	"  uid_next INTEGER NOT NULL,"
	"  modseq_next INTEGER NOT NULL,"
	"  first_seq INTEGER NOT NULL,"
	"  undo_seq INTEGER NOT NULL DEFAULT 0,"
	"  done INTEGER NOT NULL DEFAULT 0,"
	"  unseen INTEGER NOT NULL DEFAULT 0,"
	"  bytes INTEGER NOT NULL DEFAULT 0,"
	"  sources BLOB NOT NULL,"
	"  time INTEGER NOT NULL);"
	"CREATE INDEX copy_job_target ON copy_job(target);";

/*
 * Version 22, STATUS DELETED (RFC 9051 6.3.11): the messages with
 * \Deleted are indexed on their own (partial, as message_unseen: a
 * query repeats "flags & 8 = 8", \Deleted being FLAG_DELETED, 8) so
 * that counting them reads only them.  Local, never replicated.
 */
static const char schema_v22[] =
	"CREATE INDEX message_deleted ON message(mailbox_id, uid) "
	"  WHERE flags & 8 = 8;";

/*
 * Version 23: the UIDs of each mailbox whose tombstones were purged, as
 * ranges (store_purge.c), so that a master tells a uid it held once
 * from one it never gave: a reconciliation raises UIDNEXT past UIDs a
 * replica gave out, which name no message here (store_conflict.c,
 * held_once()).  A range joins its neighbour across UIDs held still
 * (messages, tombstones), which keeps them few.  Tombstones purged
 * before it are not known: their uids read as never held, and a
 * RELOCATE of one is answered NEVER_HELD, which expunges nothing.
 */
static const char schema_v23[] =
	"CREATE TABLE uid_purged ("
	"  mailbox BLOB NOT NULL,"
	"  lo INTEGER NOT NULL,"
	"  hi INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox, lo)) WITHOUT ROWID;";

/*
 * Version 24, message bytes in pieces (config.h BLOB_PIECE_SIZE): a
 * blob from piece_form.first_blob on keeps its bytes in table piece,
 * row id blob id << BLOB_PIECE_BITS | row number, its whole chunks
 * first and then pieces (no index besides the table's own: ids only
 * grow, so rows are appended and pages fill).
 * Blobs stored before keep their rows in chunk, read as before, and go
 * with them; no row is rewritten.  A new blob whose header block is the
 * first bytes of the message (all but those the parser cut) keeps in
 * blob.header only its length, an integer, instead of a second copy.
 */
static const char schema_v24[] =
	"CREATE TABLE piece ("
	"  id INTEGER PRIMARY KEY,"
	"  data BLOB NOT NULL);"
	"CREATE TABLE piece_form ("
	"  one INTEGER PRIMARY KEY CHECK (one = 1),"
	"  first_blob INTEGER NOT NULL);"
	"INSERT INTO piece_form VALUES (1, 1 + max("
	"  (SELECT coalesce(max(id), 0) FROM blob),"
	"  (SELECT coalesce(max(seq), 0) FROM sqlite_sequence "
	"  WHERE name = 'blob')));";

/*
 * Version 25, big blobs written and dropped in steps (store_stage.c):
 * piece_loose lists the blob ids whose pieces have no blob row, one
 * being written a few rows a loop iteration (its blob row, and so its
 * GUID, comes with its last step's commit) or one dropped the same way
 * after its blob row went.  No GUID look-up, reader, replication, index
 * or check sees such pieces as a message.  A listed id that no live
 * writer holds (all of them after a restart) has its pieces dropped.
 */
static const char schema_v25[] =
	"CREATE TABLE piece_loose (blob_id INTEGER PRIMARY KEY);";

/*
 * Version 26, what SELECT and SEARCH UNSEEN read, from indexes alone.
 * The partial indexes of unseen (v17) and \Deleted (v22) messages
 * hold the flags too: a query names them by repeating their condition
 * ("flags & 1 = 0"), and SQLite then looks each entry up in table
 * message to check that condition unless the index covers the column,
 * so SEARCH UNSEEN read a page of message for each unseen message.
 * A session's view reads every message's UID: from message_uids, a
 * quarter of the table's pages (whose rows hold dates, MODSEQs, blob
 * ids), and the keywords from the messages that have some alone
 * (message_keywords, partial).  Local, never replicated.
 */
static const char schema_v26[] =
	"DROP INDEX message_unseen;"
	"CREATE INDEX message_unseen ON message(mailbox_id, uid, flags) "
	"  WHERE flags & 1 = 0;"
	"DROP INDEX message_deleted;"
	"CREATE INDEX message_deleted ON message(mailbox_id, uid, flags) "
	"  WHERE flags & 8 = 8;"
	"CREATE INDEX message_uids ON message(mailbox_id, uid);"
	"CREATE INDEX message_keywords ON message(mailbox_id, uid, keywords) "
	"  WHERE keywords <> '';";

const char *const store_migrations[SCHEMA_VERSION] = {
	schema_v1,
	schema_v2,
	schema_v3,
	schema_v4,
	schema_v5,
	schema_v6,
	schema_v7,
	schema_v8,
	schema_v9,
	schema_v10,
	schema_v11,
	schema_v12,
	schema_v13,
	schema_v14,
	schema_v15,
	schema_v16,
	schema_v17,
	schema_v18,
	schema_v19,
	schema_v20,
	schema_v21,
	schema_v22,
	schema_v23,
	schema_v24,
	schema_v25,
	schema_v26,
};
