/*
 * store_check.c — `mailrepd check`: SQLite's own integrity check, SQL
 * checks of the IMAP invariants and the counters store.c keeps, and
 * every blob's bytes against its GUID.  Read-only; a check that could
 * not run is an error, never a clean bill.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "config.h"
#include "crypto.h"
#include "store.h"
#include "store_internal.h"

/*
 * A copy a COPY in steps made and has not shown (store_copy.c): the
 * next start undoes it.
 */
#define STAGED(g)	" EXISTS (SELECT 1 FROM copy_job j WHERE j.target = " \
			g ".mailbox_id AND " g ".uid >= j.uid_lo AND " \
			"j.expunging = 0)"

/* SQL checks of the IMAP invariants; each returns rows that break one. */
static const char *const invariant_checks[] = {
	"SELECT 'mailbox ' || m.name || ': uid ' || g.uid || "
	"' not below uidnext ' || m.uidnext FROM message g "
	"JOIN mailbox m ON m.id = g.mailbox_id WHERE g.uid >= m.uidnext "
	"AND NOT" STAGED("g"),
	"SELECT 'mailbox ' || m.name || ': modseq ' || g.modseq || "
	"' above highestmodseq' FROM message g "
	"JOIN mailbox m ON m.id = g.mailbox_id "
	"WHERE g.modseq > m.highestmodseq AND NOT" STAGED("g"),
	"SELECT 'message in mailbox ' || g.mailbox_id || ' uid ' || g.uid || "
	"' refers to a missing blob' FROM message g "
	"WHERE NOT EXISTS (SELECT 1 FROM blob WHERE id = g.blob_id)",
	"SELECT 'blob ' || hex(guid) || ' has ' || n || ' rows of bytes for ' "
	"|| size || ' bytes' FROM (SELECT b.guid, b.size, "
	"(SELECT count(*) FROM chunk WHERE blob_id = b.id) + "
	"(SELECT count(*) FROM piece WHERE id BETWEEN b.id << 24 AND "
	"(b.id << 24) + 16777215) AS n, CASE WHEN b.id < f.first_blob "
	"THEN (b.size + 65535) / 65536 ELSE b.size / 65536 + "
	"(b.size % 65536 + 799) / 800 END AS want "
	"FROM blob b, piece_form f) WHERE n != want",
	/* Loose pieces (store_stage.c) have no blob row until written. */
	"SELECT 'piece ' || id || ' of a missing blob' FROM piece p "
	"WHERE NOT EXISTS (SELECT 1 FROM blob WHERE id = p.id >> 24) AND "
	"NOT EXISTS (SELECT 1 FROM piece_loose WHERE blob_id = p.id >> 24)",
	/*
	 * Renumbering's leftovers (a user may hold the same bytes twice;
	 * these are the copies renumbering should have removed): a copy
	 * this master renumbered still at its old UID beside its new one,
	 * and an open conflict's copy beside the same message elsewhere.
	 */
	"SELECT 'mailbox ' || mb.name || ': message ' || hex(r.guid) || "
	"' held twice, at uid ' || r.uid || ' and renumbered at uid ' || "
	"r.new_uid FROM renumbered r JOIN mailbox mb ON "
	"mb.uniqueid = r.mailbox JOIN message g ON g.mailbox_id = mb.id AND "
	"g.uid = r.uid JOIN message n ON n.mailbox_id = mb.id AND "
	"n.uid = r.new_uid AND n.blob_id = g.blob_id JOIN blob b ON "
	"b.id = g.blob_id AND b.guid = r.guid WHERE r.new_uid != 0",
	"SELECT 'mailbox ' || mb.name || ': message ' || hex(k.local_guid) || "
	"' held twice, at uid ' || k.uid || ' (conflict ' || k.id || "
	"', open) and at uid ' || n.uid FROM conflict k JOIN mailbox mb ON "
	"mb.uniqueid = k.mailbox JOIN message g ON g.mailbox_id = mb.id AND "
	"g.uid = k.uid JOIN blob b ON b.id = g.blob_id AND "
	"b.guid = k.local_guid JOIN message n ON n.mailbox_id = mb.id AND "
	"n.blob_id = g.blob_id AND n.uid != g.uid WHERE k.resolved != 1",
	/* The counters kept (v15) against a full count. */
	"SELECT 'mailbox ' || m.name || ': kept ' || m.nmessages || "
	"' messages, ' || m.nunseen || ' unseen, ' || m.nbytes || "
	"' bytes; counted ' || c.n || ', ' || c.unseen || ', ' || c.bytes "
	"FROM mailbox m JOIN (SELECT mb.id AS id, count(g.uid) AS n, "
	"coalesce(sum(g.flags & 1 = 0), 0) AS unseen, "
	"coalesce(sum(b.size), 0) AS bytes FROM mailbox mb "
	"LEFT JOIN message g ON g.mailbox_id = mb.id AND g.uid < mb.uidnext "
	"LEFT JOIN blob b ON b.id = g.blob_id GROUP BY mb.id) c "
	"ON c.id = m.id WHERE m.nmessages != c.n OR "
	"m.nunseen != c.unseen OR m.nbytes != c.bytes",
};

/*
 * Runs a query whose every row is a problem, reporting each and adding
 * it to *problems.  A query that cannot run is an error, not "no
 * problem": a check that did not look must not say the store is sound.
 */
static enum store_err
check_query(struct store *st, const char *sql,
    void (*report)(void *, const char *), void *arg, uint64_t *problems)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) !=
	    SQLITE_OK)
		return db_error(st, rc, "check");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		report(arg, (const char *)sqlite3_column_text(s, 0));
		++*problems;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, "check");
}

/* SQLite's own check: each line other than "ok" is a problem. */
static enum store_err
check_integrity(struct store *st, void (*report)(void *, const char *),
    void *arg, uint64_t *problems)
{
	sqlite3_stmt	*s;
	const char	*msg;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check", -1, &s,
	    NULL)) != SQLITE_OK)
		return db_error(st, rc, "integrity_check");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		msg = (const char *)sqlite3_column_text(s, 0);
		if (msg == NULL || strcmp(msg, "ok") != 0) {
			report(arg, msg != NULL ? msg : "no answer");
			++*problems;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc,
	    "integrity_check");
}

enum store_err
store_check(struct store *st, void (*report)(void *, const char *),
    void *arg, uint64_t *blobs, uint64_t *problems)
{
	sqlite3_stmt	*s;
	char		 why[128], line[256], hex[GUID_HEX_LEN + 1];
	uint8_t		 guid[GUID_LEN];
	enum store_err	 err;
	size_t		 i;
	int		 rc;

	_Static_assert(BLOB_CHUNK_SIZE == 65536 && BLOB_PIECE_SIZE == 800 &&
	    BLOB_PIECE_BITS == 24, "invariant_checks assumes 64 KiB chunks "
	    "and pieces of 800 bytes at 24 bits");
	*blobs = *problems = 0;
	if ((err = check_integrity(st, report, arg, problems)) != STORE_OK)
		return err;
	for (i = 0; i < sizeof(invariant_checks) /
	    sizeof(invariant_checks[0]); i++)
		if ((err = check_query(st, invariant_checks[i], report, arg,
		    problems)) != STORE_OK)
			return err;
	if ((rc = sqlite3_prepare_v2(st->db, "SELECT guid FROM blob", -1, &s,
	    NULL)) != SQLITE_OK)
		return db_error(st, rc, "blob walk");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(s, 0) != GUID_LEN) {
			report(arg, "blob with a malformed GUID");
			++*problems;
			continue;
		}
		memcpy(guid, sqlite3_column_blob(s, 0), GUID_LEN);
		++*blobs;
		if (!blob_verify(st, guid, why, sizeof(why))) {
			crypto_hex(guid, GUID_LEN, hex);
			snprintf(line, sizeof(line), "blob %s: %s", hex, why);
			report(arg, line);
			++*problems;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? STORE_OK : db_error(st, rc, "blob walk");
}
