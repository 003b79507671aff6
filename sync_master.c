/*
 * sync_master.c — the master side of replication: a replica's HELLO is
 * checked, then its log is streamed in batches from its position (or a
 * full reconciliation starts), and its ACKs are recorded
 * (sync_master_proto).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "settings.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"

/* --- master side ------------------------------------------------------------ */

static void
master_start(struct session *s)
{
	if (chan_new(s, 1) == NULL) {
		session_close(s);
		return;
	}
	chan_of(s)->state = CH_HELLO;
	log_debug("sync.accept", "peer=%s", s->peer);
}

/*
 * Writes what the master knows of this replica to the store.  One that
 * reconciles is known from the start, as reconciling: it has nothing of
 * this log until it streams, and needs the log from where the comparison
 * began (acked, for the purge).  While another process holds the write
 * lock it writes nothing, quietly: sync_tick() writes again once the
 * row is older than SYNC_STATUS_INTERVAL, and the purge also counts the
 * connected replicas' positions (log_needed()).
 */
void
master_store(struct session *s, int connected)
{
	struct chan		*c = chan_of(s);
	struct store_replica	 r;

	if (c == NULL || (c->state != CH_STREAM && c->state != CH_RECONCILE) ||
	    store_write_try(s->srv->store) == STORE_BUSY)
		return;
	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", c->name);
	memcpy(r.node_id, c->node_id, NODE_ID_LEN);
	r.reconciling = c->state == CH_RECONCILE;
	r.acked = r.reconciling ? c->recon_head : c->acked;
	r.last_seen = s->srv->now;
	r.connected = connected;
	if (store_replica_update(s->srv->store, &r) == STORE_OK) {
		c->stored_acked = c->acked;
		c->stored_at = s->srv->now;
	}
}

static void
master_free(struct session *s)
{
	struct chan	*c = chan_of(s);

	if (c != NULL && (c->state == CH_STREAM ||
	    c->state == CH_RECONCILE)) {
		log_info("sync.replica.gone", "name=%s peer=%s acked=%lld "
		    "reconciling=%d", log_quote(c->name), s->peer,
		    (long long)c->acked, c->state == CH_RECONCILE);
		master_store(s, 0);
	}
	chan_free(s);
}

/*
 * Closes the batch being sent: END with its last position and the log's
 * hash there, which the replica keeps with the position (a
 * reconciliation's records are no position in the log: zeros).
 */
static void
master_end_batch(struct session *s, struct chan *c)
{
	uint8_t	 b[8 + LOG_HASH_LEN];

	put64(b, (uint64_t)c->sent);
	if (c->state != CH_STREAM || store_replog_hash(s->srv->store,
	    c->sent, b + 8) != STORE_OK)
		memset(b + 8, 0, LOG_HASH_LEN);
	chan_send(s, SF_END, b, sizeof(b));
	assert(c->inflight < SYNC_WINDOW);
	c->inflight_end[c->inflight++] = c->sent;
	c->batch_n = c->batch_files = 0;
	c->batch_bytes = c->batch_mem = 0;
}

/*
 * Sends records and body chunks until the output is full, SYNC_WINDOW
 * batches are unacknowledged (each closed by END) or the log is
 * exhausted: the replica applies one batch while the next ones are on
 * their way, and the ACK of any of them frees its place.  Only
 * committed records are sent: nothing runs while a write transaction is
 * open (it could still roll back); s->resume brings us back.
 */
static void
master_send(struct session *s)
{
	struct chan	*c = chan_of(s);
	struct store	*st = s->srv->store;
	enum store_err	 err;
	uint8_t		*enc = c->item;
	size_t		 n;
	ssize_t		 got;
	uint64_t	 size = 0;
	int		 has_body;

	s->resume = 0;
	if ((c->state != CH_STREAM && c->state != CH_RECONCILE) ||
	    c->inflight == SYNC_WINDOW || s->io != SESSION_OPEN)
		return;
	if (store_txn_open(st)) {
		s->resume = 1;
		return;
	}
	while (buf_used(&s->out) < OUTBUF_HIGH_WATER && s->io ==
	    SESSION_OPEN) {
		if (c->body != NULL) {
			n = c->body_size - c->body_off < BLOB_CHUNK_SIZE ?
			    c->body_size - c->body_off : BLOB_CHUNK_SIZE;
			got = store_blob_read(c->body, c->body_off, enc, n);
			if (got != (ssize_t)n) {
				/* Gone under us: the replica retries. */
				log_warn("sync.body", "name=%s seq=%lld msg=\""
				    "body unreadable mid-way\"",
				    log_quote(c->name), (long long)c->sent);
				session_close(s);
				return;
			}
			if (chan_send_deflated(s, SF_DATA, enc, n) < 0)
				return;
			c->body_off += n;
			if (c->body_off == c->body_size) {
				store_blob_close(c->body);
				c->body = NULL;
			}
			continue;
		}
		if (c->batch_n >= SYNC_BATCH_RECORDS ||
		    c->batch_files >= SYNC_BATCH_FILES ||
		    c->batch_mem >= SYNC_BATCH_MEM ||
		    c->batch_bytes >= SYNC_BATCH_BYTES) {
			master_end_batch(s, c);
			if (c->inflight == SYNC_WINDOW)
				return;
			continue;
		}
		err = c->state == CH_RECONCILE ? recon_next(s, c) :
		    store_replog_next(st, c->sent, &c->rec);
		if (err == STORE_NOTFOUND) {
			if (c->batch_n > 0)
				master_end_batch(s, c);
			if (c->state != CH_RECONCILE || s->io != SESSION_OPEN)
				return;
			recon_finish(s, c);
			return;
		}
		if (err != STORE_OK) {
			session_close(s);
			return;
		}
		has_body = 0;
		err = rec_kind(c->rec.type)->body && c->rec.has_guid ?
		    store_blob_open(st, c->rec.guid, &c->body, &size) :
		    STORE_NOTFOUND;
		if (err != STORE_OK && err != STORE_NOTFOUND) {
			/* Sent without it, the replica would lack it. */
			session_close(s);
			return;
		}
		if (err == STORE_OK) {
			has_body = 1;
			c->body_size = size;
			c->body_off = 0;
			if (size == 0) {
				store_blob_close(c->body);
				c->body = NULL;
			}
		}
		if ((n = sync_rec_encode(&c->rec, has_body, size, enc,
		    SYNC_MAX_ITEM)) == 0 ||
		    chan_send_deflated(s, SF_RECORD, enc, n) < 0) {
			session_close(s);
			return;
		}
		c->sent = c->rec.seq;
		c->batch_n++;
		c->batch_files += has_body && size > SPOOL_MEM_MAX;
		c->batch_mem += has_body ? body_mem(size) : 0;
		c->batch_bytes += size;
	}
	s->resume = 1;
}

/*
 * A reconciliation's own changes (a UIDNEXT raised, a mailbox adopted,
 * made again or renamed, a copy renumbered) ride on the loop's group
 * commit, and what it sends and plans next stands on them.  Should that
 * commit fail (s->lost), they are undone: the reconciliation ends, and
 * the replica, which committed nothing of it as its position, comes
 * back and reconciles again.  1 when it ended.
 */
static int
master_recon_lost(struct session *s, struct chan *c)
{
	if (c->state != CH_RECONCILE || s->lost == STORE_OK)
		return 0;
	log_warn("sync.reconcile.lost", "name=%s peer=%s msg=%s",
	    log_quote(c->name), s->peer, log_quote("a group commit of its "
	    "changes failed: the replica reconciles again"));
	session_close(s);
	return 1;
}

/* master_send(), unless a reconciliation lost its changes; marks its own. */
static void
master_produce(struct session *s)
{
	struct chan	*c = chan_of(s);

	if (master_recon_lost(s, c))
		return;
	master_send(s);
	if (c->state == CH_RECONCILE && s->io == SESSION_OPEN &&
	    store_txn_open(s->srv->store))
		session_wrote(s);
}

/* Whether this node follows the node `id` (as a replica, now). */
static int
follows_node(const struct store_node *me, const uint8_t *id)
{
	struct chan	*up;

	if (!repl.replica)
		return 0;
	if (me->has_master && memcmp(me->master_id, id, NODE_ID_LEN) == 0)
		return 1;
	return repl.upstream != NULL && (up = chan_of(repl.upstream)) !=
	    NULL && up->state != CH_START &&
	    memcmp(up->node_id, id, NODE_ID_LEN) == 0;
}

/*
 * Whether the replica that sent HELLO may follow this node: not this
 * node itself (a copy of its data directory), not the node this one
 * follows (a cycle, which would bounce records for ever), not a second
 * replica under the name of a connected one (replicas are known by node
 * id; a name is a label and must say which one).  The same node coming
 * again replaces its old session (it restarted before that one was found
 * dead).  Returns NULL, or why not, logged.
 */
static const char *
hello_refusal(struct session *s, const struct store_node *me)
{
	struct chan	*c = chan_of(s), *o;
	struct session	*t;
	const char	*why = NULL, *event = "sync.replica.refused";
	char		 hex[NODE_ID_LEN * 2 + 1], other[NODE_ID_LEN * 2 + 1];

	crypto_hex(c->node_id, NODE_ID_LEN, hex);
	other[0] = '\0';
	if (memcmp(c->node_id, me->node_id, NODE_ID_LEN) == 0)
		why = "the replica has this node's id (a copy of its data "
		    "directory?)";
	else if (follows_node(me, c->node_id)) {
		why = "replication cycle: this node follows that replica";
		event = "sync.cycle";
	}
	for (t = s->srv->sessions; why == NULL && t != NULL; t = t->next) {
		if (t == s || t->ops != &sync_master_proto ||
		    t->io == SESSION_CLOSING || (o = chan_of(t)) == NULL ||
		    o->state == CH_HELLO)
			continue;
		if (memcmp(o->node_id, c->node_id, NODE_ID_LEN) == 0) {
			log_info("sync.replica.replaced", "name=%s node=%s "
			    "peer=%s old_peer=%s", log_quote(c->name), hex,
			    s->peer, t->peer);
			session_close(t);
		} else if (strcmp(o->name, c->name) == 0) {
			crypto_hex(o->node_id, NODE_ID_LEN, other);
			why = "name already in use by a connected replica; give "
			    "each replica its own --name";
		}
	}
	if (why != NULL)
		log_warn(event, "name=%s node=%s peer=%s%s%s reason=%s",
		    log_quote(c->name), hex, s->peer, other[0] ? " other=" :
		    "", other, log_quote(why));
	return why;
}

/*
 * Whether the replica's position (applied, with the log's hash there)
 * is in this log: same node and epoch, every record after it still
 * here, and the same hash at it.  A different hash means the log it
 * applied is not this one (this node was restored from an older copy,
 * say): logged, and then it is compared in full, never streamed past.
 */
static int
hello_resumable(struct session *s, const struct store_node *me,
    const uint8_t *follows_id, int64_t applied, const uint8_t *hash)
{
	struct chan	*c = chan_of(s);
	struct store	*st = s->srv->store;
	int64_t		 head = store_replog_head(st);
	int64_t		 first = store_replog_first(st);
	uint8_t		 mine[LOG_HASH_LEN];
	char		 hex[NODE_ID_LEN * 2 + 1], a[17], b[17];
	int		 follows;

	follows = follows_id != NULL && memcmp(follows_id, me->node_id,
	    NODE_ID_LEN) == 0 && memcmp(follows_id + NODE_ID_LEN, me->epoch,
	    EPOCH_LEN) == 0;
	crypto_hex(c->node_id, NODE_ID_LEN, hex);
	if (!follows || applied > head || applied + 1 < (first == 0 ?
	    head + 1 : first)) {
		log_info("sync.reconcile.needed", "name=%s node=%s "
		    "applied=%lld head=%lld first=%lld follows=%d",
		    log_quote(c->name), hex, (long long)applied,
		    (long long)head, (long long)first, follows);
		return 0;
	}
	if (store_replog_hash(st, applied, mine) == STORE_OK &&
	    memcmp(mine, hash, LOG_HASH_LEN) == 0)
		return 1;
	crypto_hex(hash, 8, a);
	crypto_hex(mine, 8, b);
	log_warn("sync.log.diverged", "name=%s node=%s applied=%lld "
	    "replica_hash=%s hash=%s head=%lld msg=\"the replica applied "
	    "another log at this position (was this node restored from a "
	    "backup?); reconciling\"", log_quote(c->name), hex,
	    (long long)applied, a, b, (long long)head);
	return 0;
}

/*
 * HELLO arrived (over TLS: the replica holds the key): check the
 * version, learn who the replica is and what it follows, refuse it
 * when it may not follow this node, then decide where to stream from.
 */
static void
master_hello(struct session *s, const uint8_t *p, size_t n)
{
	struct chan		*c = chan_of(s);
	struct store		*st = s->srv->store;
	struct store_node	 me;
	struct rd		 d = { p, n, 0, 0 };
	const uint8_t		*v, *hash;
	uint8_t			 version;
	int			 has_master;
	int64_t			 applied;
	const char		*why;
	char			 info[160];

	if ((version = rd_u8(&d)) != SYNC_VERSION) {
		log_warn("sync.protocol", "peer=%s version=%u want=%d "
		    "msg=\"replica speaks another protocol version\"",
		    s->peer, version, SYNC_VERSION);
		chan_refuse(s, "protocol version not supported");
		return;
	}
	if ((v = rd_bytes(&d, NODE_ID_LEN)) != NULL)
		memcpy(c->node_id, v, NODE_ID_LEN);
	has_master = rd_u8(&d);
	v = rd_bytes(&d, NODE_ID_LEN + EPOCH_LEN);
	applied = (int64_t)rd_u64(&d);
	hash = rd_bytes(&d, LOG_HASH_LEN);
	rd_str(&d, c->name, sizeof(c->name));
	if (d.bad || d.off != n || v == NULL || applied < 0) {
		log_warn("sync.protocol", "peer=%s msg=\"bad HELLO\"",
		    s->peer);
		chan_refuse(s, "bad HELLO");
		return;
	}
	if (store_node_get(st, &me) != STORE_OK) {
		session_close(s);
		return;
	}
	if ((why = hello_refusal(s, &me)) != NULL) {
		chan_refuse(s, why);
		return;
	}
	/*
	 * Stream only when the replica follows this very log up to its
	 * position.  A new replica, one of another master, epoch or log,
	 * and one whose records were purged are compared in full instead:
	 * never a blind copy.
	 */
	if (!hello_resumable(s, &me, has_master ? v : NULL, applied, hash)) {
		recon_start(s, c);
		master_store(s, 1);
		master_produce(s);
		return;
	}
	if (deflateInit(&c->z, BLOB_ZLIB_LEVEL) != Z_OK) {
		session_close(s);
		return;
	}
	c->z_ok = 1;
	c->state = CH_STREAM;
	c->sent = c->acked = applied;
	chan_send_head(s, SF_START, applied);
	session_tls_info(s, info, sizeof(info));
	log_info("sync.replica.connected", "name=%s peer=%s from=%lld "
	    "head=%lld tls=%s", log_quote(c->name), s->peer,
	    (long long)applied, (long long)store_replog_head(st),
	    log_quote(info));
	master_store(s, 1);
	master_produce(s);
}

static void
master_input(struct session *s)
{
	struct chan		*c = chan_of(s);
	const uint8_t		*p;
	uint8_t			 type;
	size_t			 n, total;
	int64_t			 ack;
	int			 k, deferred = 0;

	if (master_recon_lost(s, c))
		return;
	while (s->io == SESSION_OPEN &&
	    chan_next(s, &type, &p, &n, &total) == 1) {
		/*
		 * A chunk is compared with committed state only: an open
		 * transaction could still roll back a tombstone.
		 */
		if (c->state == CH_RECONCILE && type == SF_INV_MSGS &&
		    store_txn_open(s->srv->store)) {
			deferred = 1;
			break;
		}
		if (c->state == CH_HELLO && type == SF_HELLO) {
			master_hello(s, p, n);
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_ACK && n == 8) {
			ack = (int64_t)get64(p);
			/* An ACK names the END of a batch in flight. */
			for (k = 0; k < c->inflight &&
			    c->inflight_end[k] != ack; k++)
				;
			if (k == c->inflight) {
				chan_bad(s, "ACK of no batch in flight");
				break;
			}
			c->inflight -= k + 1;
			memmove(c->inflight_end, c->inflight_end + k + 1,
			    (size_t)c->inflight * sizeof(c->inflight_end[0]));
			if (c->state == CH_RECONCILE)
				recon_acked(s, c, ack);
			else {
				c->acked = ack;
				server_repl_acked(s->srv, ack);	/* held */
			}
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_PUSH) {
			master_push_begin(s, c, p, n);
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_PUSH_DATA) {
			master_push_data(s, c, p, n);
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_RELOCATE) {
			master_relocate(s, c, p, n);
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_EXPUNGED) {
			master_expunged(s, c, p, n);
		} else if (((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_PING) ||
		    (c->state == CH_RECONCILE && recon_input(s, c, type, p,
		    n) == 0)) {
			/* a keep-alive, or the inventory (taken) */
		} else {
			log_warn("sync.protocol", "peer=%s name=%s type=%d "
			    "state=%d msg=\"unexpected frame\"", s->peer,
			    log_quote(c->name), type, (int)c->state);
			session_close(s);
		}
		buf_consume(&s->in, total);
	}
	master_produce(s);
	if (deferred)
		s->resume = 1;
}

const struct proto_ops sync_master_proto = {
	.name = "repl",
	.pool = POOL_REPL,
	.full_duplex = 1,
	.in_limit = SYNC_HDR_LEN + SYNC_MAX_FRAME + IO_CHUNK,
	.out_limit = OUTBUF_HIGH_WATER + 2 * SYNC_MAX_FRAME,
	.busy_reply = "",
	.start = master_start,
	.input = master_input,
	.committed = NULL,	/* it never waits for a commit */
	.timeout = NULL,	/* sync_tick() pings and drops dead peers */
	.free = master_free,
	.wake = master_produce,	/* news: new records to send */
	.psk = 1,
	.tls_failed = chan_tls_failed,
};
