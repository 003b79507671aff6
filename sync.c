
/*
 * sync.c — replication (ARCHITECTURE.md, "Replication"): the master
 * streams its log to each replica from the replica's position; the
 * replica checks every append and expunge by GUID, applies each batch in
 * one transaction with its applied position, and acknowledges.  See
 * sync.h for the frames.
 *
 * Channel security.  The channel is TLS 1.2 with ECDHE-PSK and
 * ChaCha20-Poly1305 (tls.c), the key derived from the secret file with
 * HKDF-SHA256; the replica is the TLS client.  Version 1 of this
 * protocol, on a clear channel, had its own HMAC challenge-response and
 * an HMAC on every frame.  Both are gone, because TLS-PSK does the same
 * work better:
 * - Authentication: each side's Finished message is keyed from the PSK
 *   and covers the whole handshake, both sides' fresh randoms and the
 *   ECDHE shares, so a peer without the secret fails the handshake
 *   (logged by both ends as sync.auth.failed) and never gets to send or
 *   read a frame.
 * - Integrity: every TLS record carries an AEAD tag under per-connection
 *   keys and an implicit sequence number, so a record altered,
 *   reordered, dropped, replayed or taken from another connection is
 *   rejected; a frame MAC under the same secret would add nothing.
 * - Confidentiality, which version 1 lacked; with forward secrecy from
 *   ECDHE, a secret that leaks later does not open recorded streams.
 * What stays is the identity and position exchange, HELLO then START:
 * the replica's node id, name, the master log it follows (node id and
 * epoch) and its applied position; the master's node id, epoch and
 * where it streams from.  That is replication state, not security, and
 * TLS has no place for it.  The HELLO also carries SYNC_VERSION so that
 * a later change of frames is refused plainly.
 *
 * The module's files: this one holds the setup, the tick, promote and
 * demote and the drain report; sync_chan.c the frame codec and the
 * channel; sync_master.c and sync_replica.c the two ends; sync_reconcile.c
 * and sync_recon_replica.c full reconciliation (each side);
 * sync_renumber.c the copies pushed to be renumbered; sync_status.c
 * `mailrepd status` and the `replica` commands.  sync_internal.h is what they share.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "guard.h"
#include "log.h"
#include "proto.h"
#include "settings.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"
#include "tls.h"

struct sync_repl repl;

/* --- setup, tick, promote, demote ------------------------------------------ */

/*
 * Reads the secret (one line, not readable by group or others) and sets
 * up TLS-PSK with the key HKDF-SHA256 derives from it.  Only the derived
 * key is kept, inside tls.c.  Returns 0, or -1 after saying why.
 */
static int
read_secret(const char *path)
{
	char		 line[SYNC_SECRET_MAX + 2], err[256];
	uint8_t		 psk[TLS_PSK_MAX];
	int		 rc, n;

	if ((n = settings_read_secret("repl-secret-file", path,
	    SYNC_SECRET_MIN, SYNC_SECRET_MAX, line, sizeof(line))) < 0)
		return -1;
	rc = -1;
	if (crypto_hkdf_sha256(line, (size_t)n, SYNC_PSK_INFO, psk,
	    sizeof(psk)) < 0)
		snprintf(err, sizeof(err), "cannot derive the TLS-PSK key");
	else
		rc = tls_psk_init(psk, sizeof(psk), SYNC_PSK_IDENTITY, err,
		    sizeof(err));
	explicit_bzero(line, sizeof(line));
	explicit_bzero(psk, sizeof(psk));
	if (rc < 0)
		fprintf(stderr, "mailrepd: setting 'repl-secret-file': %s\n",
		    err);
	return rc;
}

/*
 * Which master to follow: --replicate-from, or else the upstream that
 * `mailrepd demote` recorded in the store; "" for none.  Returns 0, or -1
 * after saying why (too long for the store's upstream; the store's node
 * row unread, which is no "none recorded": a demoted node would start
 * as a master, taking mail beside the one it follows).
 */
static int
upstream_of(struct server *srv, char *out, size_t cap)
{
	const char		*from = srv->settings->replicate_from;
	struct store_node	 me;

	out[0] = '\0';
	if (from == NULL && store_node_get(srv->store, &me) != STORE_OK) {
		fprintf(stderr, "mailrepd: cannot read the node's role\n");
		return -1;
	}
	if (from == NULL && strcmp(me.role, "replica") == 0 &&
	    me.upstream[0] != '\0') {
		snprintf(out, cap, "%s", me.upstream);
		log_info("sync.upstream", "master=%s from=demote",
		    log_quote(out));
	} else if (from != NULL && strlen(from) >= cap) {
		fprintf(stderr, "mailrepd: setting 'replicate-from' is longer "
		    "than %zu bytes\n", cap - 1);
		return -1;
	} else if (from != NULL)
		snprintf(out, cap, "%s", from);
	return 0;
}

int
sync_setup(struct server *srv)
{
	const struct settings	*set = srv->settings;
	struct store_node	 me;
	char			 hex[NODE_ID_LEN * 2 + 1];
	const char		*role;

	memset(&repl, 0, sizeof(repl));
	repl.srv = srv;
	if (set->repl_sync_timeout > 0 && set->repl_listen == NULL) {
		fprintf(stderr, "mailrepd: setting 'repl-sync-timeout' needs "
		    "'repl-listen': no replica could acknowledge\n");
		return -1;
	}
	if (set->repl_dead_after <= 2 * set->repl_ping_interval) {
		fprintf(stderr, "mailrepd: setting 'repl-dead-after' (%ld) "
		    "must be more than twice 'repl-ping-interval' (%ld)\n",
		    set->repl_dead_after, set->repl_ping_interval);
		return -1;
	}
	if (upstream_of(srv, repl.from, sizeof(repl.from)) < 0)
		return -1;
	if (set->repl_listen == NULL && repl.from[0] == '\0')
		return 0;
	if (set->repl_secret_file == NULL) {
		fprintf(stderr, "mailrepd: setting 'repl-secret-file' is "
		    "needed with --repl-listen or --replicate-from%s\n",
		    set->replicate_from == NULL && set->repl_listen == NULL ?
		    " (this node follows the upstream `mailrepd demote` "
		    "recorded)" : "");
		return -1;
	}
	if (read_secret(set->repl_secret_file) < 0)
		return -1;
	if (repl.from[0] != '\0' && strrchr(repl.from, ':') == NULL) {
		fprintf(stderr, "mailrepd: setting 'replicate-from' wants "
		    "HOST:PORT, not '%s'\n", repl.from);
		return -1;
	}
	repl.replica = repl.from[0] != '\0';
	/*
	 * A batch holds up to SYNC_BATCH_MEM bytes of bodies and frees them
	 * all at once: keep that memory rather than give it back to the
	 * kernel and fault it in again every batch.
	 */
	if (repl.replica)
		mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
	role = repl.replica ? "replica" : "master";
	if (store_node_get(srv->store, &me) != STORE_OK) {
		fprintf(stderr, "mailrepd: cannot read the node's role\n");
		return -1;
	}
	/*
	 * A replica started as a master becomes one like `promote` makes
	 * it: a new epoch, so that nothing mistakes this log for the one it
	 * followed.
	 */
	if (!repl.replica && strcmp(me.role, "replica") == 0 &&
	    store_node_promote(srv->store) != STORE_OK) {
		fprintf(stderr, "mailrepd: cannot record the node's role\n");
		return -1;
	}
	if (store_node_set_role(srv->store, role) != STORE_OK ||
	    store_commit(srv->store) != STORE_OK ||
	    store_node_get(srv->store, &me) != STORE_OK) {
		fprintf(stderr, "mailrepd: cannot record the node's role\n");
		return -1;
	}
	crypto_hex(me.node_id, NODE_ID_LEN, hex);
	log_info("sync.role", "role=%s node=%s head=%lld applied=%lld", role,
	    hex, (long long)store_replog_head(srv->store),
	    (long long)me.applied);
	return 0;
}

int
sync_is_replica(void)
{
	return repl.replica;
}

int
sync_all_caught_up(struct server *srv, unsigned *nreplicas)
{
	struct session	*s;
	struct chan	*c;
	int64_t		 head = store_replog_head(srv->store);
	int		 all = head >= 0;	/* an unread head proves nothing */

	*nreplicas = 0;
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->ops != &sync_master_proto || s->io == SESSION_CLOSING ||
		    (c = chan_of(s)) == NULL || (c->state != CH_STREAM &&
		    c->state != CH_RECONCILE))
			continue;
		(*nreplicas)++;
		if (c->state == CH_RECONCILE || c->acked < head)
			all = 0;
	}
	return all;
}

struct behind_ctx {
	int64_t		 head;
	unsigned	 n;
};

static int
behind_one(void *arg, const struct store_replica *r)
{
	struct behind_ctx	*x = arg;
	char			 hex[NODE_ID_LEN * 2 + 1];

	if (r->acked >= x->head && !r->reconciling)
		return 0;
	x->n++;
	crypto_hex(r->node_id, NODE_ID_LEN, hex);
	log_warn("drain.replica.behind", "name=%s node=%s acked=%lld head=%lld "
	    "lag=%lld connected=%d reconciling=%d", log_quote(r->name), hex,
	    (long long)r->acked, (long long)x->head,
	    (long long)(x->head - r->acked), r->connected, r->reconciling);
	return 0;
}

unsigned
sync_drain_report(struct server *srv)
{
	struct behind_ctx	 x;
	struct session		*s;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->ops == &sync_master_proto)
			master_store(s, 1);
	if (store_txn_open(srv->store))
		(void)store_commit(srv->store);
	x.head = store_replog_head(srv->store);
	x.n = 0;
	/* What cannot be read cannot say failing over is safe. */
	if (x.head < 0 || store_replica_foreach(srv->store, behind_one,
	    &x) != STORE_OK) {
		log_error("drain.replica.unknown", "msg=\"cannot read the log "
		    "head or the replicas: counted as behind\"");
		x.n++;
	}
	return x.n;
}

int
sync_promote(struct server *srv)
{
	struct store_node	 me;
	char			 hex[EPOCH_LEN * 2 + 1];

	if (!repl.replica)
		return 1;
	if (store_txn_open(srv->store))
		(void)store_commit(srv->store);
	if (store_node_promote(srv->store) != STORE_OK ||
	    store_commit(srv->store) != STORE_OK ||
	    store_node_get(srv->store, &me) != STORE_OK) {
		log_error("sync.promote", "msg=\"cannot record the new role\"");
		return -1;
	}
	repl.replica = 0;
	repl.from[0] = '\0';
	if (repl.upstream != NULL)
		session_close(repl.upstream);
	crypto_hex(me.epoch, EPOCH_LEN, hex);
	log_info("sync.promote", "role=master epoch=%s applied=%lld head=%lld",
	    hex, (long long)me.applied, (long long)store_replog_head(srv->store));
	return 0;
}

/*
 * Closes every replica session that follows this node (a demoted node
 * stops serving its log to them); returns how many there were.
 */
static unsigned
close_replica_sessions(struct server *srv)
{
	struct session	*s;
	unsigned	 n = 0;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->ops == &sync_master_proto && s->io != SESSION_CLOSING) {
			session_close(s);
			n++;
		}
	return n;
}

int
sync_demote(struct server *srv, const char *spec, const char *secret_file)
{
	struct store_node	 me;
	int			 was_master = !repl.replica;
	unsigned		 closed;

	if (strrchr(spec, ':') == NULL || strlen(spec) > SYNC_UPSTREAM_MAX) {
		log_error("sync.demote", "master=%s msg=\"wants HOST:PORT\"",
		    log_quote(spec));
		return -1;
	}
	if (!tls_psk_available() && (secret_file == NULL ||
	    read_secret(secret_file) < 0)) {
		log_error("sync.demote", "master=%s msg=\"no replication "
		    "secret: give --repl-secret-file\"", log_quote(spec));
		return -1;
	}
	if (store_txn_open(srv->store))
		(void)store_commit(srv->store);
	if (store_node_demote(srv->store, spec) != STORE_OK ||
	    store_commit(srv->store) != STORE_OK ||
	    store_node_get(srv->store, &me) != STORE_OK) {
		log_error("sync.demote", "msg=\"cannot record the new role\"");
		return -1;
	}
	/* From here on IMAP is read-only and LMTP answers 451. */
	repl.replica = 1;
	snprintf(repl.from, sizeof(repl.from), "%s", spec);
	closed = close_replica_sessions(srv);
	if (repl.upstream != NULL)
		session_close(repl.upstream);
	repl.upstream = NULL;	/* the old one is reaped on its own */
	repl.backoff = 0;
	repl.next_connect = srv->now;
	mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);	/* as sync_setup */
	log_info("sync.demote", "role=replica master=%s was=%s "
	    "replicas_closed=%u head=%lld", log_quote(spec), was_master ?
	    "master" : "replica", closed,
	    (long long)store_replog_head(srv->store));
	replica_connect(srv);
	return 0;
}

/* What the known replicas need of the log, as their rows say. */
struct need {
	int64_t		 low;		/* the lowest position acknowledged */
	int		 reconciling;	/* some replica is reconciling */
};

static int
needed_by(void *arg, const struct store_replica *r)
{
	struct need	*n = arg;

	if (r->acked < n->low)
		n->low = r->acked;
	n->reconciling |= r->reconciling;
	return 0;
}

/*
 * The lowest log position some replica still needs, from n->low down:
 * every known replica's acknowledged one, and every connected one's (a
 * reconciling one from the head it started at); n->reconciling says
 * whether a reconciliation runs, either way (this node a master or a
 * replica) or is left unfinished by a known replica.  -1 on a store
 * error.
 */
static int
log_needed(struct server *srv, struct need *n)
{
	struct session	*s;
	struct chan	*c;

	if (store_replica_foreach(srv->store, needed_by, n) != STORE_OK)
		return -1;
	for (s = srv->sessions; s != NULL; s = s->next) {
		if ((s->ops != &sync_master_proto &&
		    s->ops != &sync_replica_proto) || (c = chan_of(s)) == NULL)
			continue;
		if (c->state == CH_RECONCILE)
			n->reconciling = 1;
		if (s->ops != &sync_master_proto)
			continue;
		if (c->state == CH_STREAM && c->acked < n->low)
			n->low = c->acked;
		if (c->state == CH_RECONCILE && c->recon_head < n->low)
			n->low = c->recon_head;
	}
	return 0;
}

/*
 * Purges what no replica needs any more: records every known replica
 * (and every one connected, reconciling ones from the head they started
 * at) has acknowledged, and records past --repl-log-retention, after
 * which their replica reconciles in full.  One step: statements of
 * SYNC_PURGE_BATCH records until SYNC_PURGE_STEP_MS has passed, since
 * deleting 10,000 records costs the loop about 16 ms of CPU time.
 * Returns 1 when more may go (the last statement was full), else 0.
 */
static int
sync_purge(struct server *srv)
{
	struct need	 n = { store_replog_head(srv->store), 0 };
	int64_t		 purged, end = server_clock_ms() + SYNC_PURGE_STEP_MS;

	if (log_needed(srv, &n) < 0)
		return 0;
	do {
		if (store_replog_purge(srv->store, n.low, srv->now -
		    srv->settings->repl_log_retention, &purged) != STORE_OK)
			return 0;
		repl.purged += purged;
	} while (purged == SYNC_PURGE_BATCH && server_clock_ms() < end);
	if (purged == SYNC_PURGE_BATCH)
		return 1;
	if (repl.purged > 0)
		log_debug("sync.purge", "records=%lld upto=%lld first=%lld",
		    (long long)repl.purged, (long long)n.low,
		    (long long)store_replog_first(srv->store));
	repl.purged = 0;
	return 0;
}

int
sync_purge_step(struct server *srv)
{
	if (!repl.purging && srv->now - repl.last_purge >=
	    SYNC_PURGE_INTERVAL) {
		repl.last_purge = srv->now;
		repl.purging = 1;
	}
	/* Held by another process, the write lock is tried again later. */
	if (!repl.purging || store_write_try(srv->store) == STORE_BUSY)
		return 0;
	repl.purging = sync_purge(srv);
	return repl.purging;
}

/*
 * Growth: one bounded step of the purge of tombstones, renumbered
 * copies, resolved conflicts and quarantine (store_purge_step()).
 *
 * Why a tombstone may go when it goes.  Reconciliation (DESIGN.md,
 * sync_reconcile.c) reads this node's tombstones to tell a uid that only
 * a replica holds and that was expunged here (the replica expunges it)
 * from one this node never saw (appended here at a new UID); a mailbox
 * tombstone likewise tells a mailbox deleted here from one never
 * replicated, and a renumbered row tells a replica's conflicting copy
 * that was renumbered already from a new one (without it a copy pushed
 * again would be appended twice).  Each of them matters only to a node
 * that has not yet applied the record that made it: one that has, holds
 * neither the message nor the mailbox nor the copy at its old uid.  So:
 * - it stays until every known replica has acknowledged that record
 *   (logpos, see schema_v10): a replica that is stopped, behind, or
 *   whose log was purged past retention (it will reconcile in full)
 *   holds them all back; `mailrepd replica forget` lets one go;
 * - nothing of them goes while a reconciliation runs, in either
 *   direction, or a known replica left one unfinished: it walks both
 *   sides' tombstones, and a replica reconciling is known only by the
 *   head it started at;
 * - and it stays for --tombstone-retention besides: the nodes this one
 *   does not know as replicas (the old master coming back after a hard
 *   failover, a node restored from an old backup) and QRESYNC clients
 *   that were away are served for that long.  Past it, such a node's
 *   message with no tombstone here is taken for mail never replicated
 *   and appended at a new UID: an expunge undone, never mail lost.
 * QRESYNC and a session's view stay exact past a purge: each mailbox
 * keeps the highest MODSEQ purged (tombs_purged), and a client asking
 * from before it is told of every UID that is not there (imap_mailbox.c).
 * Resolved conflicts are an operator's record only, kept for
 * --conflict-retention; quarantine for --quarantine-days.
 */
static void
sync_housekeep(struct server *srv)
{
	struct need		 n = { INT64_MAX, 0 };
	struct store_purge	 p;
	struct store_purged	 out;
	const struct settings	*set = srv->settings;

	if (log_needed(srv, &n) < 0)
		return;
	p.acked = n.low;
	p.keep_tombs = n.reconciling;
	p.tombs_before = srv->now - set->tombstone_retention;
	p.conflicts_before = srv->now - set->conflict_retention;
	p.quarantine_before = srv->now - set->quarantine_days * 86400;
	if (store_purge_step(srv->store, &p, &out) != STORE_OK)
		return;
	if (out.expunged + out.mailbox_gone + out.renumbered + out.conflict +
	    out.quarantine > 0)
		log_debug("store.purge", "expunged=%lld mailbox_gone=%lld "
		    "renumbered=%lld conflict=%lld quarantine=%lld acked=%lld",
		    (long long)out.expunged, (long long)out.mailbox_gone,
		    (long long)out.renumbered, (long long)out.conflict,
		    (long long)out.quarantine, (long long)n.low);
}

void
sync_tick(struct server *srv)
{
	const struct settings	*set = srv->settings;
	struct session		*s;
	struct chan		*c;
	int			 status;

	while (waitpid(-1, &status, WNOHANG) > 0)
		;
	if (srv->now - repl.last_wal_check >= STORE_WAL_CHECK_INTERVAL) {
		repl.last_wal_check = srv->now;
		store_wal_trim(srv->store);
	}
	guard_replay(srv);
	if (repl.replica && repl.upstream == NULL &&
	    srv->now >= repl.next_connect)
		replica_connect(srv);
	if (srv->now - repl.last_housekeep >= STORE_PURGE_INTERVAL &&
	    store_write_try(srv->store) != STORE_BUSY) {
		repl.last_housekeep = srv->now;
		sync_housekeep(srv);
	}
	for (s = srv->sessions; s != NULL; s = s->next) {
		if ((s->ops != &sync_master_proto &&
		    s->ops != &sync_replica_proto) || s->io == SESSION_CLOSING ||
		    (c = chan_of(s)) == NULL)
			continue;
		if (c->state != CH_STREAM && c->state != CH_RECONCILE) {
			if (srv->now - c->started >
			    set->repl_handshake_timeout) {
				log_warn("sync.handshake", "peer=%s msg=\"timed "
				    "out\"", s->peer);
				session_close(s);
			}
			continue;
		}
		if (srv->now - c->last_rx > set->repl_dead_after) {
			log_warn("sync.dead", "peer=%s msg=\"silent for %ld s\"",
			    s->peer, set->repl_dead_after);
			/* Gone: what is queued for it would never drain. */
			session_broken(s);
			continue;
		}
		if (srv->now - c->last_tx >= set->repl_ping_interval &&
		    s->io == SESSION_OPEN)
			chan_send(s, SF_PING, "", 0);
		if (c->master && srv->now - c->stored_at >=
		    SYNC_STATUS_INTERVAL)
			master_store(s, 1);
		/* Copies not resolved yet go again, and new requests go. */
		if (!c->master && c->push_body == NULL &&
		    srv->now - c->push_round >= SYNC_STATUS_INTERVAL) {
			c->push_round = srv->now;
			c->push_after = 0;
			replica_push(s, c);
		}
	}
}
