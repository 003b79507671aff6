/*
 * store.c — the store's core: every SQL statement, opening (and the
 * schema steps of store_schema.c), transactions and the group commit.
 * Only store*.c speak SQL: store_user.c (accounts), store_mailbox.c
 * (mailboxes and messages), store_blob.c (message bytes), store_repl.c
 * (the replication half), store_apply.c (a replica's apply of its
 * master's records), store_conflict.c (conflicts and renumbering),
 * store_purge.c (growth), store_restore.c (backup and restore),
 * store_check.c (`mailrepd check`); store_internal.h is what they
 * share.
 *
 * Layout of the database (schema version 1):
 *   node		this node's identity and role (one row)
 *   user		accounts and password hashes
 *   mailbox		one row per mailbox, with its IMAP counters
 *   blob, piece	message bytes by GUID, in BLOB_PIECE_SIZE pieces
 *			(version 24; blobs stored before are in chunk, in
 *			BLOB_CHUNK_SIZE chunks, some zlib-deflated); the
 *			MIME pre-parse results sit beside them in blob
 *   message		(mailbox, uid) -> blob, flags, modseq, internaldate
 *   expunged		tombstones of expunged messages (uid, guid)
 *   mailbox_gone	tombstones of deleted mailboxes
 *   replog		the replication log: one row per mutation, each with
 *			the running hash of the log up to it
 *
 * Invariants kept here: a mailbox's uidnext never goes down and every
 * uid in it is below uidnext; a message's modseq is at most its mailbox's
 * highestmodseq; a blob's bytes hash to its GUID.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "mime.h"
#include "record.h"
#include "store.h"
#include "store_internal.h"
#include "utf8.h"



/* Whether mailbox m's name is subscribed (a result column). */
#define SUBSCRIBED	"EXISTS (SELECT 1 FROM subscription s WHERE " \
	"s.user_id = m.user_id AND s.name = m.name)"

static const char *const stmt_sql[NSTMT] = {
	[S_USER_ADD] = "INSERT INTO user (name, password, created) "
	    "VALUES (?1, ?2, ?3)",
	[S_USER_FIND] = "SELECT id, name, password FROM user WHERE name = ?1",
	[S_USER_DEL] = "DELETE FROM user WHERE id = ?1",
	[S_USER_SETPW] = "UPDATE user SET password = ?2 WHERE id = ?1",
	[S_USER_LIST] = "SELECT name, created FROM user ORDER BY name",
	[S_MBOX_GET] = "SELECT m.id, m.uniqueid, m.name, m.uidvalidity, "
	    "m.uidnext, m.highestmodseq, " SUBSCRIBED ", m.special_use, "
	    "m.nmessages, m.named, m.nunseen, m.nbytes FROM mailbox m "
	    "JOIN user u ON u.id = m.user_id "
	    "WHERE u.name = ?1 AND (m.name = ?2 OR "
	    "(upper(?2) = 'INBOX' AND m.name = 'INBOX'))",
	[S_MBOX_ADD] = "INSERT INTO mailbox (uniqueid, user_id, name, "
	    "uidvalidity, uidnext, highestmodseq, special_use) "
	    "VALUES (?1, ?2, ?3, ?4, 1, 1, ?5)",
	[S_MBOX_TARGET] = "SELECT m.id "
	    "FROM mailbox m JOIN user u ON u.id = m.user_id "
	    "WHERE u.name = ?1 AND (m.name = ?2 OR "
	    "(upper(?2) = 'INBOX' AND m.name = 'INBOX'))",
	[S_MBOX_LIST] = "SELECT m.id, m.uniqueid, m.name, m.uidvalidity, "
	    "m.uidnext, m.highestmodseq, " SUBSCRIBED ", m.special_use, "
	    "m.nmessages, m.named, m.nunseen, m.nbytes FROM mailbox m "
	    "JOIN user u ON u.id = m.user_id "
	    "WHERE u.name = ?1 ORDER BY m.name",
	[S_MBOX_COUNT] = "SELECT nmessages FROM mailbox WHERE id = ?1",
	[S_USER_USAGE] = "SELECT coalesce(sum(nmessages), 0) + coalesce(sum("
	    "c.n), 0), coalesce(sum(nbytes), 0) + coalesce(sum(c.bytes), 0) "
	    "FROM mailbox LEFT JOIN (SELECT target, sum(uid_next - uid_lo) "
	    "AS n, sum(bytes) AS bytes FROM copy_job WHERE move = 0 AND "
	    "expunging = 0 GROUP BY target) c ON c.target = mailbox.id "
	    "WHERE user_id = (SELECT user_id FROM mailbox WHERE id = ?1)",
	[S_MBOX_UNCOUNT] = "UPDATE mailbox SET nmessages = nmessages - 1, "
	    "nunseen = nunseen - ?2, nbytes = nbytes - ?3 WHERE id = ?1",
	[S_MBOX_BUMP] = "UPDATE mailbox SET uidnext = uidnext + 1, "
	    "highestmodseq = highestmodseq + 1, nmessages = nmessages + 1, "
	    "nunseen = nunseen + ?2, nbytes = nbytes + "
	    "(SELECT size FROM blob WHERE id = ?3) WHERE id = ?1 "
	    "RETURNING uidnext - 1, highestmodseq, uniqueid",
	[S_MBOX_OF_USER] = "SELECT id, uniqueid, name FROM mailbox "
	    "WHERE user_id = ?1",
	[S_MBOX_DEL_USER] = "DELETE FROM mailbox WHERE user_id = ?1",
	[S_MBOX_GONE] = "INSERT OR REPLACE INTO mailbox_gone "
	    "(uniqueid, user, name, time, logpos) VALUES (?1, ?2, ?3, ?4, "
	    LOGPOS_NEXT ")",
	[S_NODE_UIDVALIDITY] = "UPDATE node SET last_uidvalidity = "
	    "max(last_uidvalidity + 1, ?1) RETURNING last_uidvalidity",
	[S_BLOB_FIND] = "SELECT id, size FROM blob WHERE guid = ?1",
	/* ?13: the id a blob written in steps has; NULL: a new one */
	[S_BLOB_ADD] = "INSERT INTO blob (id, guid, size, envelope, "
	    "bodystructure, body, header, parts, subject, from_addr, to_addr, "
	    "message_id, sent_date) "
	    "VALUES (?13, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[S_PIECE_ADD] = "INSERT INTO piece (id, data) VALUES (?1, ?2)",
	[S_CHUNK_GET] = "SELECT rowid, zlib, length(data) FROM chunk "
	    "WHERE blob_id = ?1 AND seq = ?2",
	[S_MSG_ADD] = "INSERT INTO message (mailbox_id, uid, blob_id, modseq, "
	    "flags, keywords, internaldate, savedate) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_MSG_LIST] = "SELECT m.uid, b.guid, m.modseq, m.flags, m.keywords, "
	    "m.internaldate, b.size, " MSG_SAVEDATE " "
	    "FROM message m JOIN blob b "
	    "ON b.id = m.blob_id WHERE m.mailbox_id = ?1 AND" MSG_SHOWN("m", "?1")
	    "ORDER BY m.uid",
	[S_MSG_EXPUNGE_ALL] = "INSERT OR REPLACE INTO expunged "
	    "(mailbox, uid, guid, modseq, time, reason, logpos) "
	    "SELECT ?2, m.uid, b.guid, m.modseq, ?3, ?4, " LOGPOS_NEXT
	    " FROM message m "
	    "JOIN blob b ON b.id = m.blob_id WHERE m.mailbox_id = ?1",
	[S_MSG_DEL_ALL] = "DELETE FROM message WHERE mailbox_id = ?1",
	[S_GC_QUEUE_MAILBOX] = "INSERT OR IGNORE INTO blob_unused (blob_id) "
	    "SELECT DISTINCT blob_id FROM message WHERE mailbox_id = ?1",
	[S_GC_QUEUE_ONE] = "INSERT OR IGNORE INTO blob_unused (blob_id) "
	    "VALUES (?1)",
	[S_GC_NEXT] = "SELECT blob_id FROM blob_unused WHERE blob_id > ?1 "
	    "ORDER BY blob_id LIMIT ?2",
	[S_GC_DONE] = "DELETE FROM blob_unused WHERE blob_id = ?1",
	[S_REPLOG_ADD] = "INSERT INTO replog (time, type, user, mailbox, uid, "
	    "guid, modseq, flags, keywords, internaldate, name, value, hash, "
	    "reason) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
	    "?14)",
	/* The hash at the head: the last record's, or the purged base. */
	[S_REPLOG_HEAD_HASH] = "SELECT coalesce((SELECT hash FROM replog "
	    "ORDER BY seq DESC LIMIT 1), (SELECT log_base_hash FROM node))",
	[S_REPLOG_HASH_AT] = "SELECT hash FROM replog WHERE seq = ?1 "
	    "UNION ALL SELECT log_base_hash FROM node WHERE log_base_seq = ?1 "
	    "LIMIT 1",
	[S_NODE_LOG_BASE] = "UPDATE node SET log_base_seq = ?1, "
	    "log_base_hash = ?2 WHERE log_base_seq < ?1",
	/* sqlite_sequence: the head survives purging every record. */
	[S_REPLOG_HEAD] = "SELECT coalesce((SELECT seq FROM sqlite_sequence "
	    "WHERE name = 'replog'), 0)",
	[S_MBOX_RENAME_ONE] = "UPDATE mailbox SET name = ?2, named = ?3 "
	    "WHERE id = ?1",
	[S_SUB_ADD] = "INSERT OR IGNORE INTO subscription (user_id, name) "
	    "VALUES (?1, ?2)",
	[S_SUB_DEL] = "DELETE FROM subscription WHERE user_id = ?1 AND "
	    "name = ?2",
	/* The subscribed names that are no mailbox (LIST's \\NonExistent). */
	[S_SUB_ABSENT] = "SELECT s.name FROM subscription s JOIN user u "
	    "ON u.id = s.user_id WHERE u.name = ?1 AND NOT EXISTS (SELECT 1 "
	    "FROM mailbox m WHERE m.user_id = s.user_id AND m.name = s.name) "
	    "ORDER BY s.name",
	[S_MBOX_DELETE] = "DELETE FROM mailbox WHERE id = ?1",
	/* one change; ?2: the unseen messages it adds (-1, 0 or 1) */
	[S_MBOX_MODSEQ] = "UPDATE mailbox SET highestmodseq = highestmodseq + 1, "
	    "nunseen = nunseen + ?2 WHERE id = ?1 "
	    "RETURNING highestmodseq, uniqueid",
	[S_MBOX_CHILDREN] = "SELECT m.id, m.uniqueid, m.name FROM mailbox m "
	    "JOIN user u ON u.id = m.user_id WHERE u.name = ?1 AND "
	    "(m.name = ?2 OR substr(m.name, 1, length(?2) + 1) = ?2 || '/')",
	[S_MSG_GET] = "SELECT " MSG_ROW_COLUMNS MSG_ROW_FROM,
	[S_MSG_SET_FLAGS] = "UPDATE message SET flags = ?3, keywords = ?4, "
	    "modseq = ?5 WHERE mailbox_id = ?1 AND uid = ?2",
	[S_MSG_DEL] = "DELETE FROM message WHERE mailbox_id = ?1 AND uid = ?2",
	[S_EXPUNGED_ADD] = "INSERT OR REPLACE INTO expunged "
	    "(mailbox, uid, guid, modseq, time, reason, logpos) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, " LOGPOS_NEXT ")",
	[S_MSG_CHANGED] = "SELECT m.uid, NULL, m.modseq, m.flags, "
	    "m.keywords, m.internaldate, 0, " MSG_SAVEDATE " "
	    "FROM message m WHERE m.mailbox_id = ?1 AND m.modseq > ?2 "
	    "AND" MSG_SHOWN("m", "?1") "ORDER BY m.uid",
	[S_EXPUNGED_SINCE] = "SELECT uid FROM expunged WHERE mailbox = ?1 "
	    "AND modseq > ?2 ORDER BY uid",
	[S_MBOX_STATE] = "SELECT uidnext, highestmodseq FROM mailbox "
	    "WHERE id = ?1 AND uniqueid = ?2 AND uidvalidity = ?3 AND "
	    "name = ?4",
	[S_BLOB_UNUSED_CHUNKS] = "DELETE FROM chunk WHERE blob_id = ?1 AND "
	    "NOT EXISTS (SELECT 1 FROM message WHERE blob_id = ?1) AND "
	    "NOT EXISTS (SELECT 1 FROM quarantine WHERE blob_id = ?1) AND "
	    "NOT EXISTS (SELECT 1 FROM held WHERE blob_id = ?1)",
	[S_BLOB_UNUSED_PIECES] = "DELETE FROM piece WHERE id BETWEEN ?2 AND "
	    "?3 AND "
	    "NOT EXISTS (SELECT 1 FROM message WHERE blob_id = ?1) AND "
	    "NOT EXISTS (SELECT 1 FROM quarantine WHERE blob_id = ?1) AND "
	    "NOT EXISTS (SELECT 1 FROM held WHERE blob_id = ?1)",
	[S_BLOB_UNUSED] = "DELETE FROM blob WHERE id = ?1 AND "
	    "NOT EXISTS (SELECT 1 FROM message WHERE blob_id = ?1) AND "
	    "NOT EXISTS (SELECT 1 FROM quarantine WHERE blob_id = ?1) AND "
	    "NOT EXISTS (SELECT 1 FROM held WHERE blob_id = ?1)",
	[S_REPLOG_NEXT] = "SELECT seq, time, type, user, mailbox, uid, guid, "
	    "modseq, flags, keywords, internaldate, name, value, reason "
	    "FROM replog WHERE seq > ?1 AND seq < (SELECT coalesce(min(first_seq), "
	    "1 << 62) FROM copy_job WHERE expunging = 0) ORDER BY seq LIMIT 1",
	[S_REPLOG_FIRST] = "SELECT coalesce(min(seq), 0) FROM replog",
	[S_NODE_GET] = "SELECT node_id, epoch, role, master_id, master_epoch, "
	    "applied, upstream, applied_hash FROM node",
	[S_NODE_APPLIED] = "UPDATE node SET master_id = ?1, master_epoch = ?2, "
	    "applied = ?3, applied_hash = ?4",
	/* A node that was a master accepted writes of its own: compare. */
	[S_NODE_DEMOTE] = "UPDATE node SET upstream = ?1, "
	    "master_id = CASE role WHEN 'master' THEN NULL ELSE master_id END, "
	    "master_epoch = CASE role WHEN 'master' THEN NULL "
	    "ELSE master_epoch END, "
	    "applied = CASE role WHEN 'master' THEN 0 ELSE applied END, "
	    "applied_hash = CASE role WHEN 'master' THEN NULL "
	    "ELSE applied_hash END, role = 'replica'",
	[S_SHUTDOWN_SET] = "INSERT OR REPLACE INTO shutdown (one, time, role, "
	    "epoch, head, status, stale) SELECT 1, ?1, role, epoch, "
	    "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'replog'), "
	    "0), ?2, 0 FROM node",
	[S_SHUTDOWN_CLEAR_REPLICAS] = "DELETE FROM shutdown_replica",
	[S_SHUTDOWN_COPY_REPLICAS] = "INSERT INTO shutdown_replica (name, "
	    "node_id, acked, connected, reconciling) SELECT name, node_id, "
	    "acked, connected, reconciling FROM replica",
	[S_SHUTDOWN_GET] = "SELECT time, role, epoch, head, status, stale "
	    "FROM shutdown",
	[S_SHUTDOWN_STALE] = "UPDATE shutdown SET stale = ?1 WHERE stale = 0",
	/* As S_REPLICA_LIST, last seen when the marker was recorded. */
	[S_SHUTDOWN_REPLICA_LIST] = "SELECT name, node_id, acked, "
	    "(SELECT time FROM shutdown), connected, reconciling "
	    "FROM shutdown_replica ORDER BY name, node_id",
	[S_NODE_UIDV_MAX] = "UPDATE node SET last_uidvalidity = "
	    "max(last_uidvalidity, ?1)",
	[S_MBOX_BY_UNIQUEID] = "SELECT m.id, m.uniqueid, m.name, "
	    "m.uidvalidity, m.uidnext, m.highestmodseq, " SUBSCRIBED ", "
	    "m.special_use, m.nmessages, m.named, m.nunseen, m.nbytes, "
	    "u.name FROM mailbox m JOIN user u "
	    "ON u.id = m.user_id "
	    "WHERE m.uniqueid = ?1",
	[S_MBOX_ID_BY_UNIQUEID] = "SELECT id FROM mailbox WHERE uniqueid = ?1",
	[S_MBOX_ADD_AT] = "INSERT INTO mailbox (uniqueid, user_id, name, "
	    "uidvalidity, uidnext, highestmodseq, special_use) "
	    "VALUES (?1, ?2, ?3, ?4, 1, 1, ?5)",
	[S_MBOX_BUMP_TO] = "UPDATE mailbox SET uidnext = max(uidnext, ?2 + 1), "
	    "highestmodseq = highestmodseq + 1, nmessages = nmessages + 1, "
	    "nunseen = nunseen + ?3, nbytes = nbytes + "
	    "(SELECT size FROM blob WHERE id = ?4) WHERE id = ?1 "
	    "RETURNING highestmodseq, uniqueid",
	[S_MBOX_UIDNEXT_MAX] = "UPDATE mailbox SET uidnext = "
	    "max(uidnext, ?2 + 1) WHERE id = ?1",
	[S_REPLICA_PUT] = "INSERT INTO replica (name, node_id, acked, "
	    "last_seen, connected, reconciling) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
	    "ON CONFLICT (node_id) DO UPDATE SET name = excluded.name, "
	    "acked = excluded.acked, last_seen = excluded.last_seen, "
	    "connected = excluded.connected, "
	    "reconciling = excluded.reconciling",
	[S_REPLICA_LIST] = "SELECT name, node_id, acked, last_seen, connected, "
	    "reconciling FROM replica ORDER BY name, node_id",
	[S_REPLICA_FORGET] = "DELETE FROM replica WHERE node_id = ?1",
	/* The same pair met again (a replayed record) is not a new one. */
	[S_CONFLICT_ADD] = "INSERT INTO conflict (time, user, mailbox, "
	    "mailbox_name, uid, local_guid, master_guid, op, master_seq) "
	    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE NOT EXISTS "
	    "(SELECT 1 FROM conflict WHERE resolved != 1 AND mailbox = ?3 AND "
	    "uid = ?5 AND local_guid = ?6 AND master_guid = ?7)",
	/*
	 * In one mailbox: those that keep a local copy (reused and
	 * expunged: none, the master's message was refused).
	 */
	[S_CONFLICT_COUNT] = "SELECT count(*) FROM conflict WHERE resolved != 1 "
	    "AND (?1 IS NULL OR (mailbox = ?1 AND op NOT IN "
	    "('message.reused', 'message.expunged')))",
	[S_CONFLICT_LIST] = "SELECT id, time, user, mailbox, mailbox_name, uid, "
	    "local_guid, master_guid, op, master_seq, resolved FROM conflict "
	    "ORDER BY id",
	[S_MSG_RANGE] = "SELECT m.uid, b.guid, m.modseq, m.flags, m.keywords, "
	    "m.internaldate, b.size, " MSG_SAVEDATE " "
	    "FROM message m JOIN blob b "
	    "ON b.id = m.blob_id WHERE m.mailbox_id = ?1 AND m.uid > ?2 AND "
	    "m.uid <= ?3 AND" MSG_SHOWN("m", "?1") "ORDER BY m.uid LIMIT ?4",
	/* S_MSG_RANGE's rows without their blob's (store_message_rows()) */
	[S_MSG_ROWS] = "SELECT m.uid, NULL, m.modseq, m.flags, m.keywords, "
	    "m.internaldate, 0, " MSG_SAVEDATE " FROM message m "
	    "WHERE m.mailbox_id = ?1 AND m.uid > ?2 AND m.uid <= ?3 AND"
	    MSG_SHOWN("m", "?1") "ORDER BY m.uid LIMIT ?4",
	/*
	 * What a session's view of the mailbox holds: the UIDs from index
	 * message_uids (v26), the keywords from the partial index
	 * message_keywords ("keywords <> ''" names it, as S_MSG_UNSEEN's).
	 * ?3 is below UIDNEXT as read before (store_message_uids()), so
	 * every row up to it is shown: MSG_SHOWN would cost a test a row.
	 */
	[S_MSG_UIDS_RANGE] = "SELECT uid FROM message INDEXED BY message_uids "
	    "WHERE mailbox_id = ?1 AND uid > ?2 AND uid <= ?3 "
	    "ORDER BY uid LIMIT ?4",
	[S_MSG_KEYWORDS_RANGE] = "SELECT uid, keywords FROM message "
	    "INDEXED BY message_keywords WHERE mailbox_id = ?1 AND "
	    "keywords <> '' AND uid > ?2 AND uid <= ?3 ORDER BY uid LIMIT ?4",
	[S_EXPUNGED_GUID] = "SELECT guid FROM expunged WHERE mailbox = ?1 "
	    "AND uid = ?2",
	[S_MBOX_GONE_GET] = "SELECT 1 FROM mailbox_gone WHERE uniqueid = ?1",
	/*
	 * Purges a prefix of the log, at most ?3 records: up to the first
	 * one that is neither acknowledged by all (?1) nor past retention
	 * (?2).  A prefix, so the rest of the log has no gaps.
	 */
	[S_REPLOG_PURGE] = "DELETE FROM replog WHERE seq < (SELECT "
	    "coalesce(min(CASE WHEN seq > ?1 AND time >= ?2 THEN seq END), "
	    "max(seq) + 1) FROM (SELECT seq, time FROM replog ORDER BY seq "
	    "LIMIT ?3)) RETURNING seq, hash",
	[S_MBOX_ALL] = "SELECT uniqueid FROM mailbox ORDER BY id",
	[S_RENUMBERED_GET] = "SELECT new_uid FROM renumbered WHERE "
	    "mailbox = ?1 AND uid = ?2 AND guid = ?3",
	/* The message guid, held at the UID a renumbered copy of it got. */
	[S_RENUMBERED_HELD] = "SELECT 1 FROM renumbered r JOIN mailbox mb "
	    "ON mb.uniqueid = r.mailbox JOIN message m ON m.mailbox_id = "
	    "mb.id AND m.uid = r.new_uid JOIN blob b ON b.id = m.blob_id "
	    "WHERE r.mailbox = ?1 AND r.guid = ?2 AND b.guid = r.guid AND "
	    "m.uid < mb.uidnext LIMIT 1",
	/* A UID a renumbering moved the message at new_uid from. */
	[S_RENUMBERED_FROM] = "SELECT uid FROM renumbered WHERE "
	    "mailbox = ?1 AND guid = ?2 AND new_uid = ?3 ORDER BY uid LIMIT 1",
	/* Known already when a replica hears of it again. */
	[S_RENUMBERED_ADD] = "INSERT OR IGNORE INTO renumbered (mailbox, uid, "
	    "guid, new_uid, time, logpos) VALUES (?1, ?2, ?3, ?4, ?5, "
	    LOGPOS_NEXT ")",
	[S_CONFLICT_RESOLVED] = "UPDATE conflict SET resolved = 1 WHERE "
	    "mailbox = ?1 AND uid = ?2 AND local_guid = ?3 AND resolved != 1",
	/* The master's message left the UID it could not take here. */
	[S_CONFLICT_REUSED_DONE] = "UPDATE conflict SET resolved = 1 WHERE "
	    "mailbox = ?1 AND uid = ?2 AND master_guid = ?3 AND "
	    "op IN ('message.reused', 'message.expunged') AND resolved != 1",
	[S_MBOX_GONE_CLEAR] = "DELETE FROM mailbox_gone WHERE uniqueid = ?1",
	/* A mailbox made again under its identity: past its old UIDs. */
	[S_MBOX_UIDNEXT_TOMBS] = "UPDATE mailbox SET uidnext = max(uidnext, "
	    "(SELECT coalesce(max(uid), 0) + 1 FROM expunged "
	    "WHERE mailbox = ?1)) WHERE uniqueid = ?1",
	[S_CONFLICT_NEXT] = "SELECT id, time, user, mailbox, mailbox_name, "
	    "uid, local_guid, master_guid, op, master_seq, resolved FROM "
	    "conflict WHERE id > ?1 AND (resolved = 2 OR (resolved = 0 AND ?2)) "
	    "ORDER BY id LIMIT 1",
	[S_CONFLICT_SET] = "UPDATE conflict SET resolved = ?2 WHERE "
	    "id = ?1 AND resolved != 1",
	[S_COUNTER_ADD] = "INSERT INTO counter (name, value) VALUES (?1, ?2) "
	    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
	[S_COUNTER_GET] = "SELECT value FROM counter WHERE name = ?1",
	[S_PAUSE_SET] = "INSERT INTO guard_pause (user, reason, time, state) "
	    "VALUES (?1, ?2, ?3, 0) ON CONFLICT (user) DO UPDATE SET "
	    "reason = excluded.reason, time = excluded.time, state = 0",
	[S_PAUSE_RESUME] = "UPDATE guard_pause SET state = ?2 WHERE "
	    "?1 IS NULL OR user = ?1",
	[S_PAUSE_CLEAR] = "DELETE FROM guard_pause WHERE user = ?1",
	[S_PAUSE_LIST] = "SELECT user, reason, time, state, (SELECT count(*) "
	    "FROM held h WHERE h.user = p.user) FROM guard_pause p "
	    "ORDER BY user",
	[S_HELD_ADD] = "INSERT INTO held (user, mailbox, rec, blob_id, uid, "
	    "guid) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	/* A UID a held append took (store_held_add) is that message's. */
	[S_HELD_RESERVED] = "SELECT 1 FROM held WHERE mailbox = ?1 AND "
	    "uid = ?2 AND guid = ?3",
	[S_HELD_NEXT] = "SELECT id, rec FROM held WHERE user = ?1 AND id > ?2 "
	    "ORDER BY id LIMIT 1",
	[S_HELD_DROP] = "DELETE FROM held WHERE id = ?1 RETURNING blob_id",
	[S_HELD_MAILBOX] = "SELECT user FROM held WHERE mailbox = ?1 LIMIT 1",
	[S_EXPUNGED_REASON] = "SELECT reason FROM expunged WHERE "
	    "mailbox = ?1 AND uid = ?2",
	/* What a replica deletes: one message (?2) or a whole mailbox. */
	[S_QUAR_MAILBOX] = "INSERT INTO quarantine (time, user, mailbox, "
	    "mailbox_name, uid, blob_id, flags, keywords, internaldate) "
	    "SELECT ?3, u.name, mb.uniqueid, mb.name, m.uid, m.blob_id, "
	    "m.flags, m.keywords, m.internaldate FROM message m JOIN mailbox mb "
	    "ON mb.id = m.mailbox_id JOIN user u ON u.id = mb.user_id "
	    "WHERE m.mailbox_id = ?1 AND (?2 IS NULL OR m.uid = ?2)",
	/* Every entry (?1 NULL) or one, with its message's guid and size. */
	[S_QUAR_LIST] = "SELECT q.id, q.time, q.user, q.mailbox, "
	    "q.mailbox_name, q.uid, b.guid, b.size, q.flags, q.keywords, "
	    "q.internaldate, q.blob_id FROM quarantine q JOIN blob b "
	    "ON b.id = q.blob_id WHERE ?1 IS NULL OR q.id = ?1 ORDER BY q.id",
	[S_QUAR_DEL] = "DELETE FROM quarantine WHERE id = ?1",
	[S_USER_MESSAGES] = "SELECT count(*) FROM message m JOIN mailbox mb "
	    "ON mb.id = m.mailbox_id JOIN user u ON u.id = mb.user_id "
	    "WHERE u.name = ?1 AND m.uid < mb.uidnext",
	/* Changes when another connection (process) commits. */
	[S_DATA_VERSION] = "PRAGMA data_version",
	/* One statement, one read lock: it runs before every command. */
	[S_SESSION_CHECK] = "SELECT id, password, EXISTS (SELECT 1 FROM "
	    "mailbox WHERE id = ?2 AND uniqueid = ?3 AND uidvalidity = ?4 AND "
	    "name = ?5 AND user_id = user.id) FROM user WHERE name = ?1",
	/* The identity marker and new incarnations (store_restore.c). */
	[S_NODE_MARKER_GET] = "SELECT marker_ino, marker_time FROM node",
	[S_NODE_MARKER_SET] = "UPDATE node SET marker_ino = ?1, "
	    "marker_time = ?2",
	[S_NODE_RENEW] = "UPDATE node SET marker_ino = ?1, marker_time = ?2, "
	    "node_id = ?3, epoch = ?4",
	[S_REPLICA_RESET] = "UPDATE replica SET acked = 0, connected = 0, "
	    "reconciling = 1",
	[S_MBOX_REVALIDATE] = "UPDATE mailbox SET uidvalidity = ?1",
	[S_MBOX_SET_UIDVALIDITY] = "UPDATE mailbox SET uidvalidity = ?2 "
	    "WHERE uniqueid = ?1",
	[S_CONFLICT_ALL_DONE] = "UPDATE conflict SET resolved = 1 "
	    "WHERE resolved != 1",
	/* A deleted mailbox's conflicts that keep no copy (S_CONFLICT_COUNT) */
	[S_CONFLICT_MAILBOX_DONE] = "UPDATE conflict SET resolved = 1 "
	    "WHERE mailbox = ?1 AND op IN ('message.reused', "
	    "'message.expunged') AND resolved != 1",
	[S_MSG_GUID_HELD] = "SELECT 1 FROM message m JOIN blob b ON "
	    "b.id = m.blob_id JOIN mailbox mb ON mb.id = m.mailbox_id "
	    "WHERE mb.uniqueid = ?1 AND b.guid = ?2 AND m.uid < mb.uidnext "
	    "LIMIT 1",
	/*
	 * The partial index message_unseen (v17), named: without statistics
	 * the planner prefers the primary key; "flags & 1 = 0" repeats its
	 * condition, which lets it be used, and the index holds the flags
	 * (v26), so that the condition is not checked in table message.
	 */
	[S_MSG_UNSEEN] = "SELECT uid FROM message INDEXED BY message_unseen "
	    "WHERE mailbox_id = ?1 "
	    "AND flags & 1 = 0 AND uid > ?2 AND" MSG_SHOWN("message", "?1")
	    "ORDER BY uid LIMIT ?3",
	[S_MSG_COUNT_ABOVE] = "SELECT count(*) FROM message "
	    "WHERE mailbox_id = ?1 AND uid > ?2 AND" MSG_SHOWN("message", "?1"),
	/* the partial index message_deleted (v22), as S_MSG_UNSEEN's */
	[S_MSG_COUNT_DELETED] = "SELECT count(*) FROM message "
	    "INDEXED BY message_deleted WHERE mailbox_id = ?1 "
	    "AND flags & 8 = 8 AND" MSG_SHOWN("message", "?1"),
	/* store_fts.c: a row of fts is blob id * 16 + its kind. */
	[S_FTS_STATE] = "SELECT generation, version, upto, blobs "
	    "FROM fts_state",
	[S_FTS_PENDING] = "SELECT id, guid FROM blob WHERE id > ?1 "
	    "ORDER BY id LIMIT ?2",
	[S_FTS_ADD] = "INSERT INTO fts (rowid, text) VALUES (?1 * 16 + ?2, ?3)",
	[S_FTS_SKIP] = "INSERT OR IGNORE INTO fts_skipped VALUES (?1)",
	[S_FTS_DONE] = "UPDATE fts_state SET upto = max(upto, ?1), "
	    "blobs = blobs + ?2",
	[S_FTS_MATCH] = "SELECT rowid FROM fts WHERE fts MATCH ?1 "
	    "AND rowid > ?2 ORDER BY rowid LIMIT ?3",
	[S_FTS_SKIPPED] = "SELECT blob_id FROM fts_skipped WHERE blob_id > ?1 "
	    "ORDER BY blob_id LIMIT ?2",
	[S_MSG_BLOBS] = "SELECT uid, blob_id FROM message "
	    "WHERE mailbox_id = ?1 AND uid > ?2 AND" MSG_SHOWN("message", "?1")
	    "ORDER BY uid LIMIT ?3",
	/* By message_blob: a mailbox holds many messages, a blob few. */
	[S_BLOB_MESSAGES] = "SELECT uid FROM message "
	    "WHERE blob_id = ?2 AND mailbox_id = ?1 LIMIT ?3",
	[S_BLOB_LAST] = "SELECT coalesce(max(id), 0) FROM blob",
	[S_BLOB_USED] = "SELECT EXISTS (SELECT 1 FROM message "
	    "WHERE blob_id = ?1) OR EXISTS (SELECT 1 FROM quarantine "
	    "WHERE blob_id = ?1) OR EXISTS (SELECT 1 FROM held "
	    "WHERE blob_id = ?1), (SELECT size FROM blob WHERE id = ?1)",
	/* store_blob.c, store_fts.c: rows of blobs that go. */
	[S_FTS_HOLDS] = "SELECT ?1 <= upto AND NOT EXISTS (SELECT 1 "
	    "FROM fts_skipped WHERE blob_id = ?1) FROM fts_state",
	[S_FTS_UNSKIP] = "DELETE FROM fts_skipped WHERE blob_id = ?1",
	/* store_stage.c: blobs written and dropped in steps. */
	[S_LOOSE_NEXT_ID] = "SELECT max(coalesce((SELECT seq FROM "
	    "sqlite_sequence WHERE name = 'blob'), 0), "
	    "coalesce((SELECT max(id) FROM blob), 0)) + 1",
	[S_LOOSE_SEQ_SET] = "UPDATE sqlite_sequence SET seq = ?1 "
	    "WHERE name = 'blob'",
	[S_LOOSE_SEQ_ADD] = "INSERT INTO sqlite_sequence (name, seq) "
	    "VALUES ('blob', ?1)",
	[S_LOOSE_ADD] = "INSERT INTO piece_loose (blob_id) VALUES (?1)",
	[S_LOOSE_DEL] = "DELETE FROM piece_loose WHERE blob_id = ?1",
	[S_LOOSE_NEXT] = "SELECT blob_id FROM piece_loose WHERE blob_id > ?1 "
	    "ORDER BY blob_id LIMIT 1",
	[S_LOOSE_FIRST] = "SELECT min(id) FROM piece WHERE id BETWEEN ?1 "
	    "AND ?2",
	[S_PIECE_DROP] = "DELETE FROM piece WHERE id BETWEEN ?1 AND ?2",
	[S_FTS_FORGETTABLE] = "SELECT u.blob_id, b.guid FROM blob_unused u "
	    "JOIN blob b ON b.id = u.blob_id WHERE u.blob_id <= ?1 AND "
	    "NOT EXISTS (SELECT 1 FROM fts_skipped WHERE blob_id = b.id) AND "
	    "NOT EXISTS (SELECT 1 FROM message WHERE blob_id = b.id) AND "
	    "NOT EXISTS (SELECT 1 FROM quarantine WHERE blob_id = b.id) AND "
	    "NOT EXISTS (SELECT 1 FROM held WHERE blob_id = b.id) "
	    "ORDER BY u.blob_id LIMIT ?2",
	[S_FTS_FORGET] = "INSERT INTO fts (fts, rowid, text) "
	    "VALUES ('delete', ?1 * 16 + ?2, ?3)",
	/* A COPY in steps fills the mailbox: no other write to it. */
	[S_COPY_TARGET] = "SELECT 1 FROM copy_job WHERE target = ?1 AND "
	    "expunging = 0",
	[S_SP_OP] = "SAVEPOINT op",
	[S_SP_OP_RELEASE] = "RELEASE op",
	[S_SP_OP_UNDO] = "ROLLBACK TO op",
	[S_SP_TARGET] = "SAVEPOINT target",
	[S_SP_TARGET_RELEASE] = "RELEASE target",
	[S_SP_TARGET_UNDO] = "ROLLBACK TO target",
	[S_SP_BATCH] = "SAVEPOINT batch",
	[S_SP_BATCH_RELEASE] = "RELEASE batch",
	[S_SP_BATCH_UNDO] = "ROLLBACK TO batch",
};

/* Each savepoint's statements: open, release (keep), undo. */
static const enum stmt_id savepoint_stmts[][3] = {
	[SP_OP] = { S_SP_OP, S_SP_OP_RELEASE, S_SP_OP_UNDO },
	[SP_TARGET] = { S_SP_TARGET, S_SP_TARGET_RELEASE, S_SP_TARGET_UNDO },
	[SP_BATCH] = { S_SP_BATCH, S_SP_BATCH_RELEASE, S_SP_BATCH_UNDO },
};




/* Whether errno e means the disk, a quota or the file-size limit is full. */
static int
db_errno_full(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

/*
 * Maps an SQLite result code to a store error, logging what failed, and
 * remembers it in st->fault (but for "it exists", which is no fault).
 */
enum store_err
db_error(struct store *st, int rc, const char *what)
{
	/* A constraint is the answer "it exists", not a fault. */
	/*
	 * The errno of a failed write.  SQLite keeps it for a failed
	 * statement but not for a failed COMMIT, whose write is the one a
	 * full disk usually stops; its unix VFS reads errno just the same
	 * (unixGetLastError), so errno as SQLite left it is taken then.
	 */
	int	 sys = sqlite3_system_errno(st->db) != 0 ?
		    sqlite3_system_errno(st->db) : errno;

	log_event((rc & 0xff) == SQLITE_CONSTRAINT ? LOG_LEVEL_DEBUG :
	    LOG_LEVEL_ERROR, "store.error", "op=%s sqlite=%d errno=%d msg=%s",
	    what, rc, sys, log_quote(sqlite3_errmsg(st->db)));
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return STORE_EXISTS;
	case SQLITE_FULL:
		room_exhausted(st);
		return st->fault = STORE_FULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return st->fault = STORE_BUSY;
	case SQLITE_IOERR:
		/*
		 * SQLite says SQLITE_FULL only for ENOSPC on a short write;
		 * a write refused outright, a quota (EDQUOT) or the file-size
		 * limit (EFBIG, RLIMIT_FSIZE) come back as an I/O error, and
		 * all of them mean the same to a client: no room, try later.
		 */
		if (db_errno_full(sys)) {
			room_exhausted(st);
			return st->fault = STORE_FULL;
		}
		return st->fault = STORE_IO;
	default:
		return st->fault = STORE_IO;
	}
}

/* Returns the prepared statement `id`, reset and unbound, or NULL. */
sqlite3_stmt *
stmt(struct store *st, enum stmt_id id)
{
	sqlite3_stmt	*s = st->stmts[id];

	/*
	 * The write transaction is lost (txn_lost): a statement run now
	 * would run outside it, and a write would commit by itself, half
	 * an operation kept (an expunge without the append that follows
	 * it), after a failure that its caller took for "not found".
	 */
	if (st->in_txn && txn_lost(st))
		return NULL;
	if (s == NULL) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmts[id], NULL) !=
		    SQLITE_OK) {
			log_error("store.prepare", "sql=%s msg=%s",
			    log_quote(stmt_sql[id]),
			    log_quote(sqlite3_errmsg(st->db)));
			return NULL;
		}
		return st->stmts[id];
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

sqlite3_stmt *
stmt_next(struct store *st, enum stmt_id id, enum store_err *err)
{
	sqlite3_stmt	*s;

	if (*err != STORE_OK)
		return NULL;
	if ((s = stmt(st, id)) == NULL)
		*err = STORE_IO;
	return s;
}

/*
 * Runs a statement that returns no rows (or whose rows are not wanted),
 * then resets it so that it holds no read lock.
 */
enum store_err
step_done(struct store *st, sqlite3_stmt *s, const char *what)
{
	int	 rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, what);
}

/*
 * Steps a statement that should yield one row.  Returns STORE_OK with
 * the row ready to read; otherwise resets the statement and returns
 * STORE_NOTFOUND (no row) or the error.
 */
enum store_err
step_row(struct store *st, sqlite3_stmt *s, const char *what)
{
	int	 rc;

	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		return STORE_OK;
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? STORE_NOTFOUND : db_error(st, rc, what);
}

/*
 * Steps a statement that yields a row when the answer is yes: *yes is 1
 * (the row ready to read) or 0, and STORE_OK; or the error, which is
 * never taken for "no", *yes left alone.
 */
enum store_err
step_exists(struct store *st, sqlite3_stmt *s, const char *what, int *yes)
{
	enum store_err	 err;

	if ((err = step_row(st, s, what)) == STORE_OK)
		*yes = 1;
	else if (err == STORE_NOTFOUND) {
		*yes = 0;
		err = STORE_OK;
	}
	return err;
}

enum store_err
db_exec(struct store *st, const char *sql)
{
	int	 rc;

	errno = 0;	/* so that db_error() sees this statement's errno */
	if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return db_error(st, rc, sql);
	return STORE_OK;
}

/*
 * Whether the open write transaction is lost: SQLite rolled it back by
 * itself, as it may after SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM, or
 * it is doomed (savepoint_end).  The mutations of the group commit are
 * gone or cannot be told apart then: no further mutation may run (outside
 * the transaction a SAVEPOINT would commit on its own at RELEASE), and
 * the commit must fail with what undid it, so that no client is told
 * that undone work is saved.
 */
int
txn_lost(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db) && !st->doomed)
		return 0;
	if (st->fault == STORE_OK)
		st->fault = STORE_IO;
	return 1;
}

/*
 * The write transaction has just begun: nothing of an earlier one's
 * failure (its fault, its doom) carries over into it.
 */
static void
txn_opened(struct store *st)
{
	st->in_txn = 1;
	st->fault = STORE_OK;
	st->doomed = 0;
}

/*
 * Opens the write transaction.  BEGIN IMMEDIATE takes the write lock at
 * once, so that a command-line tool and the server never deadlock
 * upgrading a read lock.  A transaction still open here is one whose
 * ROLLBACK failed (SQLite could not allocate to run it): it goes first.
 * A lazy one (the index's, op_begin_lazy()) commits without a sync;
 * every other syncs, or does not begin.
 */
static enum store_err
txn_begin(struct store *st, int lazy)
{
	enum store_err	 err;

	store_read_end(st);
	if (!sqlite3_get_autocommit(st->db) &&
	    (err = db_exec(st, "ROLLBACK")) != STORE_OK)
		return err;
	/* SQLite takes the level only outside a transaction. */
	if (st->sync_lowered != lazy) {
		if ((err = db_exec(st, lazy ? "PRAGMA synchronous = NORMAL" :
		    "PRAGMA synchronous = FULL")) != STORE_OK)
			return err;
		st->sync_lowered = lazy;
	}
	room_before_write(st);
	if ((err = db_exec(st, "BEGIN IMMEDIATE")) != STORE_OK)
		return err;
	txn_opened(st);
	st->txn_lazy = lazy;
	return STORE_OK;
}

/* op_begin(), opening a lazy transaction when none is open. */
static enum store_err
op_open(struct store *st, int lazy)
{
	enum store_err	 err;

	/* A client's change never rides on the index's unsynced commit. */
	assert(!st->in_txn || !st->txn_lazy);
	if (!st->in_txn) {
		if ((err = txn_begin(st, lazy)) != STORE_OK)
			return err;
	} else if (txn_lost(st))
		return st->fault;
	return savepoint_begin(st, SP_OP);
}

/*
 * Opens the write transaction when none is open, then a savepoint for
 * one mutation.
 */
enum store_err
op_begin(struct store *st)
{
	return op_open(st, 0);
}

enum store_err
op_begin_lazy(struct store *st)
{
	return op_open(st, 1);
}

/* Runs one of a savepoint's statements (savepoint_stmts). */
static enum store_err
savepoint_run(struct store *st, enum stmt_id id)
{
	sqlite3_stmt	*s;

	errno = 0;	/* so that db_error() sees this statement's errno */
	if ((s = stmt(st, id)) == NULL)
		return STORE_IO;
	return step_done(st, s, stmt_sql[id]);
}

enum store_err
savepoint_begin(struct store *st, enum savepoint sp)
{
	return savepoint_run(st, savepoint_stmts[sp][0]);
}

/*
 * Ends savepoint sp: kept when err is STORE_OK, else undone.  Each
 * statement can fail by itself (SQLITE_NOMEM preparing it); a RELEASE
 * that fails undoes instead, and when the savepoint can be neither kept
 * nor undone the transaction is doomed: the group commit fails and rolls
 * back rather than commit a change its client was refused.  Returns err,
 * or what failed.
 */
enum store_err
savepoint_end(struct store *st, enum savepoint sp, enum store_err err)
{
	const enum stmt_id	*id = savepoint_stmts[sp];

	assert(st->in_txn);
	if (err == STORE_OK && (err = savepoint_run(st, id[1])) == STORE_OK)
		return STORE_OK;
	if (txn_lost(st))
		return err;
	if (savepoint_run(st, id[2]) != STORE_OK ||
	    savepoint_run(st, id[1]) != STORE_OK) {
		log_error("store.doomed", "savepoint=%s msg=\"neither kept "
		    "nor undone: the transaction rolls back\"",
		    stmt_sql[id[0]] + strlen("SAVEPOINT "));
		st->doomed = 1;
		st->fault = err;
	}
	return err;
}

/* Ends the mutation begun by op_begin(): kept when err is STORE_OK. */
enum store_err
op_end(struct store *st, enum store_err err)
{
	return savepoint_end(st, SP_OP, err);
}

/*
 * The transaction is over.  After a lazy one the level goes back up at
 * once, for whatever SQLite writes outside a transaction (else the next
 * txn_begin() does it).
 */
static void
txn_closed(struct store *st)
{
	st->in_txn = 0;
	st->txn_lazy = 0;
	if (st->sync_lowered &&
	    db_exec(st, "PRAGMA synchronous = FULL") == STORE_OK)
		st->sync_lowered = 0;
}

enum store_err
store_commit(struct store *st)
{
	enum store_err	 err;

	if (!st->in_txn)
		return STORE_OK;
	if (txn_lost(st)) {
		if (!sqlite3_get_autocommit(st->db))
			db_exec(st, "ROLLBACK");	/* doomed */
		txn_closed(st);
		stage_settle(st, 0);
		log_error("store.commit", "msg=\"the transaction was rolled "
		    "back after: %s\"", store_strerror(st->fault));
		return st->fault;
	}
	err = db_exec(st, "COMMIT");
	if (err != STORE_OK && !sqlite3_get_autocommit(st->db))
		db_exec(st, "ROLLBACK");
	txn_closed(st);
	stage_settle(st, err == STORE_OK);
	return err;
}

void
store_rollback(struct store *st)
{
	if (!st->in_txn)
		return;
	if (!sqlite3_get_autocommit(st->db))	/* SQLite's did it */
		db_exec(st, "ROLLBACK");
	txn_closed(st);
	stage_settle(st, 0);
}

int
store_txn_open(const struct store *st)
{
	return st->in_txn;
}

void
store_nowait(struct store *st)
{
	sqlite3_busy_timeout(st->db, st->busy_ms = 0);
}

void
store_set_max_messages(struct store *st, long max)
{
	st->max_messages = max;
}

void
store_set_quota(struct store *st, const struct store_usage *limit)
{
	st->quota = *limit;
}

enum store_err
store_write_try(struct store *st)
{
	int	 rc;

	if (st->in_txn)
		return STORE_OK;
	if (wal_writes_wait(st))
		return STORE_BUSY;	/* the checkpointer catches up */
	store_read_end(st);
	room_before_write(st);
	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return STORE_BUSY;
	if (rc != SQLITE_OK)
		return STORE_OK;	/* the write meets it and says why */
	txn_opened(st);
	return STORE_OK;
}

enum store_err
store_set_throwaway(struct store *st)
{
	return db_exec(st, "PRAGMA synchronous = OFF");
}

void
store_read_begin(struct store *st)
{
	if (st->in_txn || st->in_read)
		return;
	st->in_read = db_exec(st, "BEGIN DEFERRED") == STORE_OK;
}

void
store_read_end(struct store *st)
{
	struct store_blob_reader	*r;

	if (!st->in_read)
		return;
	st->in_read = 0;
	for (r = st->readers; r != NULL; r = r->next)
		chunk_release(r);
	if (!sqlite3_get_autocommit(st->db))
		db_exec(st, "COMMIT");
}

const char *
store_strerror(enum store_err err)
{
	switch (err) {
	case STORE_OK:
		return "ok";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_EXISTS:
		return "already exists";
	case STORE_INVALID:
		return "invalid name or value";
	case STORE_FULL:
		return "storage full";
	case STORE_BUSY:
		return "store busy";
	case STORE_LIMIT:
		return "mailbox full";
	case STORE_QUOTA:
		return "over quota";
	case STORE_IO:
		return "storage error";
	}
	return "unknown error";
}

/* Copies text column i into dst (cap bytes), "" for NULL. */
void
column_text(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
	const unsigned char	*t = sqlite3_column_text(s, i);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* Copies blob column i (exactly n bytes) into dst; returns 1 when there. */
int
column_id(sqlite3_stmt *s, int i, uint8_t *dst, size_t n)
{
	if (sqlite3_column_type(s, i) != SQLITE_BLOB ||
	    (size_t)sqlite3_column_bytes(s, i) != n)
		return 0;
	memcpy(dst, sqlite3_column_blob(s, i), n);
	return 1;
}

/* Copies hash column i into out; a NULL (a log older than hashes) is 0s. */
void
column_hash(sqlite3_stmt *s, int i, uint8_t out[LOG_HASH_LEN])
{
	if (sqlite3_column_type(s, i) == SQLITE_BLOB &&
	    sqlite3_column_bytes(s, i) == LOG_HASH_LEN)
		memcpy(out, sqlite3_column_blob(s, i), LOG_HASH_LEN);
	else
		memset(out, 0, LOG_HASH_LEN);
}

static void
hash_u64(struct sha256 *h, uint64_t v)
{
	uint8_t	 b[8];
	int	 i;

	for (i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
	crypto_sha256_update(h, b, sizeof(b));
}

/* A field with its length first (absent: all ones), so none run together. */
static void
hash_field(struct sha256 *h, const void *v, size_t n)
{
	hash_u64(h, v != NULL ? n : UINT64_MAX);
	if (v != NULL)
		crypto_sha256_update(h, v, n);
}

static void
hash_str(struct sha256 *h, const char *v)
{
	hash_field(h, v, v != NULL ? strlen(v) : 0);
}

/*
 * The running hash of the log after record r, made at time now: SHA-256
 * of the hash at the head and every field of r.  Two logs have the same
 * hash at a position only when every record up to there is the same,
 * which is how a replica's position is checked (sync.c).  Only the
 * master that writes a record hashes it; replicas keep what it said.
 */
static enum store_err
replog_chain(struct store *st, const struct replog_rec *r, int64_t now,
    uint8_t out[LOG_HASH_LEN])
{
	sqlite3_stmt	*s;
	struct sha256	*h;
	uint8_t		 prev[LOG_HASH_LEN];
	enum store_err	 err;

	if ((s = stmt(st, S_REPLOG_HEAD_HASH)) == NULL)
		return STORE_IO;
	if ((err = step_row(st, s, "log hash")) != STORE_OK)
		return err;
	column_hash(s, 0, prev);
	sqlite3_reset(s);
	if ((h = crypto_sha256_new()) == NULL)
		return STORE_IO;
	crypto_sha256_update(h, prev, sizeof(prev));
	hash_u64(h, (uint64_t)now);
	hash_str(h, rec_kind(r->type)->name);
	hash_str(h, rec_reason_name(st->reason));
	hash_str(h, r->user);
	hash_field(h, r->mailbox, MAILBOX_ID_LEN);
	hash_u64(h, r->uid);
	hash_field(h, r->guid, GUID_LEN);
	hash_u64(h, r->modseq);
	hash_u64(h, r->flags);
	hash_str(h, r->keywords);
	hash_u64(h, (uint64_t)r->internaldate);
	hash_str(h, r->name);
	hash_str(h, r->value);
	crypto_sha256_finish(h, out);
	return STORE_OK;
}

/*
 * Appends a replication record with the log's running hash after it;
 * called inside the mutation's savepoint.
 */
enum store_err
replog_append(struct store *st, const struct replog_rec *r)
{
	sqlite3_stmt	*s;
	uint8_t		 hash[LOG_HASH_LEN];
	int64_t		 now = r->time != 0 ? r->time : time(NULL);
	enum store_err	 err;

	if ((err = replog_chain(st, r, now, hash)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_REPLOG_ADD)) == NULL)
		return STORE_IO;
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_text(s, 2, rec_kind(r->type)->name, -1, SQLITE_STATIC);
	if (r->user != NULL)
		sqlite3_bind_text(s, 3, r->user, -1, SQLITE_STATIC);
	if (r->mailbox != NULL)
		sqlite3_bind_blob(s, 4, r->mailbox, MAILBOX_ID_LEN,
		    SQLITE_STATIC);
	if (r->uid != 0)
		sqlite3_bind_int64(s, 5, r->uid);
	if (r->guid != NULL)
		sqlite3_bind_blob(s, 6, r->guid, GUID_LEN, SQLITE_STATIC);
	if (r->modseq != 0)
		sqlite3_bind_int64(s, 7, (sqlite3_int64)r->modseq);
	sqlite3_bind_int64(s, 8, r->flags);
	if (r->keywords != NULL)
		sqlite3_bind_text(s, 9, r->keywords, -1, SQLITE_STATIC);
	if (r->internaldate != 0)
		sqlite3_bind_int64(s, 10, r->internaldate);
	if (r->name != NULL)
		sqlite3_bind_text(s, 11, r->name, -1, SQLITE_STATIC);
	if (r->value != NULL)
		sqlite3_bind_text(s, 12, r->value, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 13, hash, sizeof(hash), SQLITE_STATIC);
	sqlite3_bind_text(s, 14, rec_reason_name(st->reason), -1,
	    SQLITE_STATIC);
	return step_done(st, s, "replog append");
}

enum rec_reason
store_set_reason(struct store *st, enum rec_reason reason)
{
	enum rec_reason	 was = st->reason;

	st->reason = reason;
	return was;
}

/* Runs a statement of one row and one integer column; its value, or -1. */
int64_t
query_int64(struct store *st, enum stmt_id id)
{
	sqlite3_stmt	*s;
	int64_t		 v = -1;

	if ((s = stmt(st, id)) == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return v;
}

int64_t
store_replog_head(struct store *st)
{
	return query_int64(st, S_REPLOG_HEAD);
}

/* Creates the node row: a random node id and a first master epoch. */
static enum store_err
node_init(struct store *st)
{
	uint8_t		 node_id[16], epoch[8];
	sqlite3_stmt	*s;
	int		 rc;

	if (crypto_random(node_id, sizeof(node_id)) < 0 ||
	    crypto_random(epoch, sizeof(epoch)) < 0)
		return STORE_IO;
	rc = sqlite3_prepare_v2(st->db, "INSERT INTO node (one, node_id, "
	    "role, epoch, last_uidvalidity, created) "
	    "VALUES (1, ?1, 'master', ?2, 0, ?3)", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_error(st, rc, "node init");
	sqlite3_bind_blob(s, 1, node_id, sizeof(node_id), SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, epoch, sizeof(epoch), SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, time(NULL));
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, "node init");
}

/*
 * Whether the store's rows keep every foreign key: a step that rebuilds
 * tables runs with the checks off, so it is checked before it commits.
 */
static enum store_err
foreign_keys_kept(struct store *st)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(st->db, "PRAGMA foreign_key_check", -1,
	    &s, NULL)) != SQLITE_OK)
		return db_error(st, rc, "foreign key check");
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return STORE_OK;
	log_error("store.migrate", "msg=\"a row lost its foreign key\"");
	return rc == SQLITE_ROW ? STORE_INVALID : db_error(st, rc,
	    "foreign key check");
}

/*
 * Brings the schema from its stored version (PRAGMA user_version) to
 * SCHEMA_VERSION, one step per transaction, with foreign keys off (the
 * caller turns them on after).  A store newer than this binary is
 * refused rather than misread.
 */
static enum store_err
store_migrate(struct store *st)
{
	sqlite3_stmt	*s;
	enum store_err	 err;
	char		 sql[64];
	int		 version = 0;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s,
	    NULL) != SQLITE_OK)
		return db_error(st, sqlite3_errcode(st->db), "user_version");
	if (sqlite3_step(s) == SQLITE_ROW)
		version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (version > SCHEMA_VERSION) {
		log_error("store.open", "msg=\"store schema version %d is "
		    "newer than this binary's %d\"", version, SCHEMA_VERSION);
		return STORE_INVALID;
	}
	for (; version < SCHEMA_VERSION; version++) {
		if ((err = db_exec(st, "BEGIN IMMEDIATE")) != STORE_OK)
			return err;
		err = db_exec(st, store_migrations[version]);
		if (err == STORE_OK && version == 0)
			err = node_init(st);
		if (err == STORE_OK)
			err = foreign_keys_kept(st);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
		    version + 1);
		if (err == STORE_OK)
			err = db_exec(st, sql);
		if (err == STORE_OK)
			err = db_exec(st, "COMMIT");
		if (err != STORE_OK) {
			db_exec(st, "ROLLBACK");
			return err;
		}
		log_info("store.migrate", "version=%d", version + 1);
	}
	return STORE_OK;
}

/*
 * Before SQLite's first use in the process: a savepoint's undo (each
 * delivery and each target of one runs in a savepoint) stays in memory
 * up to STORE_STMT_JOURNAL_MEM, then goes to a temporary file.  With
 * SQLite's 64 KiB one delivery of 4 KiB (15 pages changed) created,
 * wrote and deleted a file.  No memory statistics (nothing reads
 * them): each of SQLite's allocations and frees took a global mutex
 * for them, ~5% of a STORE's CPU.  Later calls (a process that opens
 * stores again) are refused by SQLite and change nothing.
 */
static void
store_configure(void)
{
	static int	 done;

	if (done)
		return;
	done = 1;
	(void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL,
	    STORE_STMT_JOURNAL_MEM);
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

enum store_err
store_open(const char *dir, struct store **out)
{
	struct store	*st;
	char		 path[PATH_MAX];
	enum store_err	 err;
	int		 rc;

	*out = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("store.open", "dir=%s msg=%s", log_quote(dir),
		    log_quote(strerror(errno)));
		return STORE_IO;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, DB_FILE) >=
	    sizeof(path))
		return STORE_INVALID;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return STORE_IO;
	st->reserve_held = 1;	/* no reserve but store_room_reserve()'s */
	st->gc_more = 1;	/* a queue left by the last run */
	st->loose_more = 1;	/* pieces a kill left (store_stage.c) */
	st->copy_sweep = 1;	/* jobs a crash left (store_copy.c) */
	st->packed_cap = compressBound(BLOB_CHUNK_SIZE);
	st->raw = malloc(BLOB_CHUNK_SIZE);
	st->packed = malloc(st->packed_cap);
	store_configure();
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (st->raw == NULL || st->packed == NULL || rc != SQLITE_OK) {
		log_error("store.open", "path=%s msg=%s", log_quote(path),
		    log_quote(st->db ? sqlite3_errmsg(st->db) : "no memory"));
		store_close(st);
		return STORE_IO;
	}
	sqlite3_busy_timeout(st->db, st->busy_ms = STORE_BUSY_TIMEOUT_MS);
	/*
	 * WAL lets command-line readers run beside the server; FULL syncs
	 * the WAL on every commit, which is what makes a 250 durable.
	 */
	err = db_exec(st, "PRAGMA journal_mode = WAL");
	if (err == STORE_OK)
		err = db_exec(st, "PRAGMA synchronous = FULL");
	if (err == STORE_OK)
		err = wal_size_limit(st);
	/* Off while tables are rebuilt (schema_v9), on for everything else. */
	if (err == STORE_OK)
		err = db_exec(st, "PRAGMA foreign_keys = OFF");
	if (err == STORE_OK)
		err = store_migrate(st);
	if (err == STORE_OK)
		err = blob_form_load(st);
	if (err == STORE_OK)
		err = db_exec(st, "PRAGMA foreign_keys = ON");
	if (err != STORE_OK) {
		store_close(st);
		return err;
	}
	*out = st;
	return STORE_OK;
}

void
store_close(struct store *st)
{
	int	 i;

	if (st == NULL)
		return;
	store_rollback(st);
	store_checkpointer_stop(st);
	for (i = 0; i < NSTMT; i++)
		sqlite3_finalize(st->stmts[i]);
	for (i = 0; i < STORE_META_ALL; i++) {
		sqlite3_finalize(st->meta_stmts[i]);
		sqlite3_finalize(st->row_meta_stmts[i]);
	}
	for (i = 0; i < STORE_WEB_STMTS; i++)
		sqlite3_finalize(st->web_stmts[i]);
	sqlite3_close(st->db);
	free(st->raw);
	free(st->packed);
	free(st);
}

/*
 * Copies the WAL into the database and truncates it, on st's own
 * connection once the checkpointer has stopped; no write open.
 */
enum store_err
store_checkpoint(struct store *st)
{
	int	 rc;

	if (store_txn_open(st))
		return STORE_IO;
	store_checkpointer_stop(st);
	rc = sqlite3_wal_checkpoint_v2(st->db, NULL,
	    SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return rc == SQLITE_OK ? STORE_OK : db_error(st, rc, "checkpoint");
}

/* Opens the replica's batch savepoint (inside a write transaction). */
/*
 * A batch that opens the write transaction is that transaction: no
 * savepoint around it.  A savepoint would make every mutation's own
 * savepoint (op_begin()) keep the old bytes of each page it changes in
 * the statement journal until the batch ends; past SQLite's 64 KiB that
 * journal is a temporary file, written twice a page (11 pages a message
 * in a replica's catch-up, bench/RESULTS.md), where alone each
 * mutation's journal is dropped at its RELEASE and stays in memory.
 * (Keeping more of it in memory, SQLITE_CONFIG_STMTJRNL_SPILL, is no
 * way out: SQLite 3.40 fails with SQLITE_FULL when a journal spills
 * past a limit of 256 KiB or more; store_configure() keeps it below.)
 * Inside a transaction already open,
 * the savepoint it was.
 */
enum store_err
store_batch_begin(struct store *st)
{
	enum store_err	 err;

	st->batch_txn = 0;
	assert(!st->in_txn || !st->txn_lazy);	/* as op_open() */
	if (!st->in_txn) {
		if ((err = txn_begin(st, 0)) != STORE_OK)
			return err;
		st->batch_txn = 1;
		return STORE_OK;
	} else if (txn_lost(st))
		return st->fault;
	return savepoint_begin(st, SP_BATCH);
}

enum store_err
store_batch_end(struct store *st, enum store_err err)
{
	int	 own = st->batch_txn;

	assert(st->in_txn);
	st->batch_txn = 0;
	if (own && err == STORE_OK)
		return txn_lost(st) ? st->fault : STORE_OK;
	if (own) {
		store_rollback(st);
		return err;
	}
	return savepoint_end(st, SP_BATCH, err);
}

enum store_err
store_counter_add(struct store *st, const char *name, int64_t delta)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	if ((err = op_begin(st)) != STORE_OK)
		return err;
	if ((s = stmt(st, S_COUNTER_ADD)) == NULL)
		return op_end(st, STORE_IO);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, delta);
	return op_end(st, step_done(st, s, "counter add"));
}

enum store_err
store_counter_get(struct store *st, const char *name, int64_t *value)
{
	sqlite3_stmt	*s;
	enum store_err	 err;

	*value = 0;
	if ((s = stmt(st, S_COUNTER_GET)) == NULL)
		return STORE_IO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((err = step_row(st, s, "counter get")) == STORE_NOTFOUND)
		return STORE_OK;
	if (err != STORE_OK)
		return err;
	*value = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return STORE_OK;
}
