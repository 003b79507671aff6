/*
 * sync.c — replication (DESIGN.md, "Replication"): the master streams its
 * log to each replica from the replica's position; the replica checks
 * every append and expunge by GUID, applies each batch in one
 * transaction with its applied position, and acknowledges.  See sync.h
 * for the frames.
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
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "crypto.h"
#include "guard.h"
#include "json.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "settings.h"
#include "spool.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"
#include "tls.h"

extern char **environ;

/* What this process knows about replication; one server per process. */
static struct {
	struct server	*srv;
	int		 replica;	/* following a master */
	char		 from[SYNC_UPSTREAM_MAX + 1]; /* its HOST:PORT */
	struct session	*upstream;	/* our connection to the master */
	time_t		 next_connect;
	int		 backoff;
	time_t		 last_purge;
	time_t		 last_quarantine;
} repl;

/* --- codec ----------------------------------------------------------------- */





int
sync_frame_peek(const uint8_t *p, size_t n, uint8_t *type, size_t *paylen,
    size_t *total)
{
	uint32_t	 len;

	if (n < SYNC_HDR_LEN)
		return 0;
	len = get32(p + 1);
	if (len > SYNC_MAX_FRAME)
		return -1;
	*type = p[0];
	*paylen = len;
	*total = SYNC_HDR_LEN + (size_t)len;
	return n >= *total ? 1 : 0;
}


void
wr_bytes(struct wr *w, const void *v, size_t n)
{
	if (w->full || w->cap - w->n < n) {
		w->full = 1;
		return;
	}
	memcpy(w->p + w->n, v, n);
	w->n += n;
}

void
wr_u64(struct wr *w, uint64_t v)
{
	uint8_t	 b[8];

	put64(b, v);
	wr_bytes(w, b, 8);
}

void
wr_str(struct wr *w, const char *s)
{
	size_t	 n = strlen(s);
	uint8_t	 b[2] = { (uint8_t)(n >> 8), (uint8_t)n };

	if (n > 0xffff) {
		w->full = 1;
		return;
	}
	wr_bytes(w, b, 2);
	wr_bytes(w, s, n);
}


const uint8_t *
rd_bytes(struct rd *r, size_t n)
{
	const uint8_t	*v;

	if (r->bad || r->n - r->off < n) {
		r->bad = 1;
		return NULL;
	}
	v = r->p + r->off;
	r->off += n;
	return v;
}

uint64_t
rd_u64(struct rd *r)
{
	const uint8_t	*v = rd_bytes(r, 8);

	return v ? get64(v) : 0;
}

uint8_t
rd_u8(struct rd *r)
{
	const uint8_t	*v = rd_bytes(r, 1);

	return v ? *v : 0;
}

/* Reads a string into dst (cap bytes with its NUL); refuses NUL bytes. */
void
rd_str(struct rd *r, char *dst, size_t cap)
{
	const uint8_t	*b = rd_bytes(r, 2), *v;
	size_t		 n;

	if (b == NULL)
		return;
	n = (size_t)b[0] << 8 | b[1];
	if (n >= cap || (v = rd_bytes(r, n)) == NULL ||
	    memchr(v, '\0', n) != NULL) {
		r->bad = 1;
		return;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/*
 * A record on the wire: seq, time, its kind's name (record.h), why it
 * was made (a byte, enum rec_reason: since protocol version 3), which
 * optional parts follow, then its fields.
 */
size_t
sync_rec_encode(const struct store_replog_rec *r, int has_body,
    uint64_t bodysize, uint8_t *out, size_t cap)
{
	struct wr	 w = { out, 0, cap, 0 };
	uint8_t		 bits = (r->has_mailbox ? 1 : 0) |
			    (r->has_guid ? 2 : 0) | (has_body ? 4 : 0);
	uint8_t		 reason = (uint8_t)r->reason;

	wr_u64(&w, (uint64_t)r->seq);
	wr_u64(&w, (uint64_t)r->time);
	wr_str(&w, rec_kind(r->type)->name);
	wr_bytes(&w, &reason, 1);
	wr_bytes(&w, &bits, 1);
	wr_str(&w, r->user);
	if (r->has_mailbox)
		wr_bytes(&w, r->mailbox, MAILBOX_ID_LEN);
	wr_u64(&w, r->uid);
	if (r->has_guid)
		wr_bytes(&w, r->guid, GUID_LEN);
	wr_u64(&w, r->modseq);
	wr_u64(&w, r->flags);
	wr_str(&w, r->keywords);
	wr_u64(&w, (uint64_t)r->internaldate);
	wr_str(&w, r->name);
	wr_str(&w, r->value);
	if (has_body)
		wr_u64(&w, bodysize);
	return w.full ? 0 : w.n;
}

int
sync_rec_decode(const uint8_t *p, size_t n, struct store_replog_rec *r,
    int *has_body, uint64_t *bodysize)
{
	struct rd	 d = { p, n, 0, 0 };
	const uint8_t	*v;
	uint64_t	 uid, flags;
	uint8_t		 bits, reason;
	unsigned	 needs = 0;
	char		 type[32];

	memset(r, 0, offsetof(struct store_replog_rec, keywords));
	r->keywords[0] = r->name[0] = r->value[0] = '\0';
	*has_body = 0;
	*bodysize = 0;
	r->seq = (int64_t)rd_u64(&d);
	r->time = (int64_t)rd_u64(&d);
	rd_str(&d, type, sizeof(type));
	reason = rd_u8(&d);
	bits = rd_u8(&d);
	rd_str(&d, r->user, sizeof(r->user));
	if ((r->has_mailbox = (bits & 1) != 0) &&
	    (v = rd_bytes(&d, MAILBOX_ID_LEN)) != NULL)
		memcpy(r->mailbox, v, MAILBOX_ID_LEN);
	uid = rd_u64(&d);
	if ((r->has_guid = (bits & 2) != 0) &&
	    (v = rd_bytes(&d, GUID_LEN)) != NULL)
		memcpy(r->guid, v, GUID_LEN);
	r->modseq = rd_u64(&d);
	flags = rd_u64(&d);
	rd_str(&d, r->keywords, sizeof(r->keywords));
	r->internaldate = (int64_t)rd_u64(&d);
	rd_str(&d, r->name, sizeof(r->name));
	rd_str(&d, r->value, sizeof(r->value));
	if ((*has_body = (bits & 4) != 0))
		*bodysize = rd_u64(&d);
	if (d.bad || d.off != n || (bits & ~7) != 0 || r->seq <= 0 ||
	    uid > UINT32_MAX || flags > UINT32_MAX ||
	    *bodysize > (uint64_t)1 << 40 || reason >= REC_NREASONS ||
	    rec_type_by_name(type, &r->type) < 0)
		return -1;
	r->uid = (uint32_t)uid;
	r->flags = (uint32_t)flags;
	r->reason = (enum rec_reason)reason;
	needs = rec_kind(r->type)->needs;
	if (((needs & REC_NEED_USER) && r->user[0] == '\0') ||
	    ((needs & REC_NEED_MAILBOX) && !r->has_mailbox) ||
	    ((needs & REC_NEED_GUID) && !r->has_guid) ||
	    ((needs & REC_NEED_UID) && (r->uid == 0 ||
	    r->uid == UINT32_MAX)) ||
	    ((needs & REC_NEED_NAME) && r->name[0] == '\0') ||
	    ((needs & REC_NEED_VALUE) && r->value[0] == '\0') ||
	    (*has_body && !rec_kind(r->type)->body))
		return -1;
	return 0;
}

/* --- the channel, common to both ends --------------------------------------- */


/* Queues one frame. */
void
chan_send(struct session *s, uint8_t type, const void *payload, size_t n)
{
	struct chan	*c = chan_of(s);
	uint8_t		 hdr[SYNC_HDR_LEN];

	hdr[0] = type;
	put32(hdr + 1, (uint32_t)n);
	session_write(s, hdr, sizeof(hdr));
	session_write(s, payload, n);
	c->last_tx = s->srv->now;
}

void
chan_send_head(struct session *s, uint8_t type, int64_t pos)
{
	struct store_node	 me;
	uint8_t			 b[SYNC_HEAD_LEN];

	if (store_node_get(s->srv->store, &me) != STORE_OK) {
		session_close(s);
		return;
	}
	memcpy(b, me.node_id, NODE_ID_LEN);
	memcpy(b + NODE_ID_LEN, me.epoch, EPOCH_LEN);
	put64(b + NODE_ID_LEN + EPOCH_LEN, (uint64_t)pos);
	/* Unknown (purged past retention): zeros, which a resume refuses. */
	if (store_replog_hash(s->srv->store, pos, b + SYNC_HEAD_LEN -
	    LOG_HASH_LEN) != STORE_OK)
		memset(b + SYNC_HEAD_LEN - LOG_HASH_LEN, 0, LOG_HASH_LEN);
	chan_send(s, type, b, sizeof(b));
}

int
head_decode(const uint8_t *p, size_t n, uint8_t *node_id, uint8_t *epoch,
    int64_t *pos, uint8_t *hash)
{
	if (n != SYNC_HEAD_LEN)
		return -1;
	memcpy(node_id, p, NODE_ID_LEN);
	memcpy(epoch, p + NODE_ID_LEN, EPOCH_LEN);
	*pos = (int64_t)get64(p + NODE_ID_LEN + EPOCH_LEN);
	memcpy(hash, p + SYNC_HEAD_LEN - LOG_HASH_LEN, LOG_HASH_LEN);
	return *pos < 0 ? -1 : 0;
}

/* Deflates one item through the session's stream and sends it. */
static int
chan_send_deflated(struct session *s, uint8_t type, const void *p, size_t n)
{
	struct chan	*c = chan_of(s);

	c->z.next_in = (Bytef *)(uintptr_t)p;
	c->z.avail_in = (uInt)n;
	c->z.next_out = c->zout;
	c->z.avail_out = SYNC_MAX_FRAME;
	if (deflate(&c->z, Z_SYNC_FLUSH) != Z_OK || c->z.avail_in != 0 ||
	    c->z.avail_out == 0) {
		log_error("sync.deflate", "peer=%s", s->peer);
		session_close(s);
		return -1;
	}
	chan_send(s, type, c->zout, SYNC_MAX_FRAME - c->z.avail_out);
	return 0;
}

/* Inflates a frame's payload into c->item; returns its length or -1. */
static ssize_t
chan_inflate(struct chan *c, const uint8_t *p, size_t n)
{
	int	 rc;

	c->z.next_in = (Bytef *)(uintptr_t)p;
	c->z.avail_in = (uInt)n;
	c->z.next_out = c->item;
	c->z.avail_out = SYNC_MAX_ITEM;
	rc = inflate(&c->z, Z_SYNC_FLUSH);
	if ((rc != Z_OK && rc != Z_BUF_ERROR) || c->z.avail_in != 0)
		return -1;
	/* A full buffer might hide more: an item is smaller than that. */
	if (c->z.avail_out == 0)
		return -1;
	return (ssize_t)(SYNC_MAX_ITEM - c->z.avail_out);
}

static void
chan_refuse(struct session *s, const char *why)
{
	chan_send(s, SF_REFUSE, why, strlen(why));
	session_close(s);
}

/*
 * Takes the next complete frame off the input: returns 1 with its type
 * and payload (valid until consumed), 0 when more is needed, -1 (session
 * closed, logged) for a bad frame.
 */
static int
chan_next(struct session *s, uint8_t *type, const uint8_t **payload,
    size_t *n, size_t *total)
{
	struct chan	*c = chan_of(s);
	const uint8_t	*p = (const uint8_t *)buf_ptr(&s->in);
	int		 rc;

	rc = sync_frame_peek(p, buf_used(&s->in), type, n, total);
	if (rc < 0) {
		log_warn("sync.protocol", "peer=%s msg=\"frame too long\"",
		    s->peer);
		session_close(s);
		return -1;
	}
	if (rc == 0)
		return 0;
	*payload = p + SYNC_HDR_LEN;
	c->last_rx = s->srv->now;
	return 1;
}

static struct chan *
chan_new(struct session *s, int master)
{
	struct chan	*c;
	int		 one = 1;

	/* Small frames (END, ACK) must not wait for Nagle and delayed ACKs. */
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->item = malloc(SYNC_MAX_ITEM)) == NULL ||
	    (c->zout = malloc(SYNC_MAX_FRAME)) == NULL) {
		if (c != NULL) {
			free(c->item);
			free(c);
		}
		return NULL;
	}
	c->master = master;
	c->started = c->last_rx = c->last_tx = s->srv->now;
	s->proto = c;
	return c;
}

static void
pending_clear(struct chan *c)
{
	size_t	 i;

	for (i = 0; i < c->nbatch; i++)
		spool_free(c->batch[i].spool);
	c->nbatch = 0;
	c->batch_mem = 0;
	c->cur = NULL;
	c->body_left = 0;
	c->linelen = 0;
	free(c->conflicts);
	c->conflicts = NULL;
	c->nconflicts = 0;
}

static void
chan_free(struct session *s)
{
	struct chan	*c = chan_of(s);

	if (c == NULL)
		return;
	if (c->z_ok)
		(void)(c->master ? deflateEnd(&c->z) : inflateEnd(&c->z));
	if (c->body != NULL)
		store_blob_close(c->body);
	pending_clear(c);
	if (c->push_body != NULL)
		store_blob_close(c->push_body);
	spool_free(c->push.spool);
	recon_free(c->recon);
	free(c->inv_ids);
	free(c->batch);
	free(c->line);
	free(c->item);
	free(c->zout);
	free(c);
	s->proto = NULL;
}

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
 * began (acked, for the purge).
 */
void
master_store(struct session *s, int connected)
{
	struct chan		*c = chan_of(s);
	struct store_replica	 r;

	if (c == NULL || (c->state != CH_STREAM && c->state != CH_RECONCILE))
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
 * What a body of size bytes holds in the replica's memory until its
 * batch is applied: its spool's buffer (spool.c), at most SPOOL_MEM_MAX.
 */
static uint64_t
body_mem(uint64_t size)
{
	return size < SPOOL_MEM_MAX ? size : SPOOL_MEM_MAX;
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
master_produce(struct session *s)
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
			if (c->state == CH_RECONCILE)
				return;
			continue;	/* streaming now, from the head */
		}
		if (err != STORE_OK) {
			session_close(s);
			return;
		}
		has_body = 0;
		if (rec_kind(c->rec.type)->body &&
		    c->rec.has_guid && store_blob_open(st, c->rec.guid,
		    &c->body, &size) == STORE_OK) {
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
	if (d.bad || d.off != n || v == NULL || applied < 0 ||
	    store_node_get(st, &me) != STORE_OK) {
		chan_refuse(s, "bad HELLO");
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
				session_close(s);
				break;
			}
			c->acked = ack;
			server_repl_acked(s->srv, ack);	/* held replies */
			c->inflight -= k + 1;
			memmove(c->inflight_end, c->inflight_end + k + 1,
			    (size_t)c->inflight * sizeof(c->inflight_end[0]));
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_PUSH) {
			master_push_begin(s, c, p, n);
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_PUSH_DATA) {
			master_push_data(s, c, p, n);
		} else if ((c->state == CH_STREAM || c->state ==
		    CH_RECONCILE) && type == SF_RELOCATE) {
			master_relocate(s, c, p, n);
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

static void
master_wake(struct session *s)
{
	master_produce(s);
}

static void
chan_committed(struct session *s, int ok)
{
	(void)s;
	(void)ok;
}

static void
chan_timeout(struct session *s)
{
	/* Idle timeouts are sync_tick()'s business (pings, dead peers). */
	(void)s;
}

static const struct proto_ops sync_replica_proto;

/*
 * TLS failed on the channel (proto_ops.tls_failed).  In the handshake
 * with wrong_key, the peer holds another secret: sync.auth.failed, on
 * both ends.  After it, a record did not decrypt (changed on the way, or
 * an alert): the batch in progress is dropped with the connection, the
 * replica reconnects and is sent it again from its applied position.
 */
static void
chan_tls_failed(struct session *s, const char *why, int wrong_key)
{
	int		 replica = s->ops == &sync_replica_proto;
	const char	*peer = replica ? "master" : "peer";

	if (wrong_key)
		log_warn("sync.auth.failed", "%s=%s reason=\"wrong secret: "
		    "the TLS-PSK handshake failed\" msg=%s", peer, s->peer,
		    log_quote(why));
	else if (chan_of(s) == NULL)
		log_info("sync.handshake.failed", "%s=%s msg=%s", peer,
		    s->peer, log_quote(why));
	else
		log_warn("sync.tls.failed", "%s=%s msg=%s action=%s", peer,
		    s->peer, log_quote(why), replica ? "reconnect" : "drop");
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
	.committed = chan_committed,
	.timeout = chan_timeout,
	.free = master_free,
	.wake = master_wake,
	.psk = 1,
	.tls_failed = chan_tls_failed,
};

/* --- replica side ----------------------------------------------------------- */

/*
 * TLS is up (the master holds the key): say who we are, which master
 * log we follow and where we are in it.
 */
static void
replica_start(struct session *s)
{
	struct chan		*c;
	struct store_node	 me;
	uint8_t			 out[1 + NODE_ID_LEN + 1 + NODE_ID_LEN +
				    EPOCH_LEN + 8 + LOG_HASH_LEN + 2 + 255];
	struct wr		 w = { out, 0, sizeof(out), 0 };
	uint8_t			 version = SYNC_VERSION, has_master;
	char			 name[256];

	if ((c = chan_new(s, 0)) == NULL ||
	    (c->batch = calloc(SYNC_BATCH_RECORDS, sizeof(*c->batch))) ==
	    NULL || (c->line = malloc(SYNC_LINE_MAX)) == NULL ||
	    store_node_get(s->srv->store, &me) != STORE_OK) {
		session_close(s);
		return;
	}
	c->state = CH_START;
	c->applied = c->last = me.applied;
	has_master = (uint8_t)me.has_master;
	wr_bytes(&w, &version, 1);
	wr_bytes(&w, me.node_id, NODE_ID_LEN);
	wr_bytes(&w, &has_master, 1);
	wr_bytes(&w, me.master_id, NODE_ID_LEN);
	wr_bytes(&w, me.master_epoch, EPOCH_LEN);
	wr_u64(&w, (uint64_t)me.applied);
	wr_bytes(&w, me.applied_hash, LOG_HASH_LEN);
	snprintf(name, sizeof(name), "%s", s->srv->settings->name);
	wr_str(&w, name);
	chan_send(s, SF_HELLO, out, w.n);
}

/* START arrived: the master's identity, and it streams after applied. */
static void
replica_started(struct session *s, struct chan *c, const uint8_t *p,
    size_t n)
{
	uint8_t	 hash[LOG_HASH_LEN];
	int64_t	 pos;
	char	 info[160];

	if (head_decode(p, n, c->node_id, c->epoch, &pos, hash) < 0 ||
	    pos != c->applied || inflateInit(&c->z) != Z_OK) {
		log_warn("sync.protocol", "peer=%s msg=\"bad START\"", s->peer);
		session_close(s);
		return;
	}
	c->z_ok = 1;
	c->state = CH_STREAM;
	session_tls_info(s, info, sizeof(info));
	log_info("sync.streaming", "master=%s from=%lld tls=%s", s->peer,
	    (long long)c->applied, log_quote(info));
}

/* Feeds body bytes to the spool, as lines (bounded), for the MIME parse. */
void
body_feed(struct chan *c, const uint8_t *p, size_t n)
{
	const uint8_t	*lf;
	size_t		 take;

	while (n > 0) {
		lf = memchr(p, '\n', n);
		take = lf ? (size_t)(lf - p) + 1 : n;
		if (take > SYNC_LINE_MAX - c->linelen)
			take = SYNC_LINE_MAX - c->linelen;
		memcpy(c->line + c->linelen, p, take);
		c->linelen += take;
		p += take;
		n -= take;
		if (c->line[c->linelen - 1] == '\n' ||
		    c->linelen == SYNC_LINE_MAX) {
			spool_add_line(c->cur->spool, c->line, c->linelen);
			c->linelen = 0;
		}
	}
}

/* The body of c->cur is complete: check its GUID. */
int
body_finish(struct session *s, struct chan *c)
{
	char	 hex[GUID_HEX_LEN + 1];

	if (c->linelen > 0)
		spool_add_line(c->cur->spool, c->line, c->linelen);
	c->linelen = 0;
	if (spool_finish(c->cur->spool, &c->cur->in) < 0) {
		log_error("sync.spool", "msg=%s", log_quote(strerror(errno)));
		return -1;
	}
	if (memcmp(c->cur->in.guid, c->cur->rec.guid, GUID_LEN) != 0) {
		crypto_hex(c->cur->rec.guid, GUID_LEN, hex);
		log_warn("sync.body.corrupt", "peer=%s seq=%lld guid=%s "
		    "msg=\"body does not hash to its GUID; batch rejected\"",
		    s->peer, (long long)c->cur->rec.seq, hex);
		return -1;
	}
	c->cur->ready = 1;
	c->cur = NULL;
	return 0;
}

/*
 * Applies one record of the batch, or holds it when its user is paused
 * (guard.h); the GUID check is the store's.  A conflict is recorded and
 * remembered for --conflict-notify after the commit.
 */
static enum store_err
apply_one(struct session *s, struct chan *c, struct pending *pd)
{
	struct store_conflict	*grown, k;
	const struct store_blob_in *body = pd->has_body ? &pd->in : NULL;
	enum store_err		 err;
	int			 conflict, held;

	if ((held = guard_hold(s->srv, &pd->rec, body)) != 0)
		return held > 0 ? STORE_OK : STORE_IO;
	err = rec_apply(s->srv->store, &pd->rec, body, &conflict, &k);
	/* A user or mailbox that is not (or no longer) here: nothing to do. */
	if (err == STORE_NOTFOUND)
		err = STORE_OK;
	if (err != STORE_OK || !conflict || store_conflict_add(s->srv->store,
	    &k) != STORE_OK || (grown = reallocarray(c->conflicts,
	    c->nconflicts + 1, sizeof(*grown))) == NULL)
		return err;
	c->conflicts = grown;
	c->conflicts[c->nconflicts++] = k;
	return err;
}

/*
 * END arrived: the whole batch is here and checked; apply it at once,
 * recording the position and the master's log hash there.
 */
static void
replica_apply(struct session *s, struct chan *c, int64_t end,
    const uint8_t *hash)
{
	struct store	*st = s->srv->store;
	enum store_err	 err;
	size_t		 i;

	if (c->cur != NULL || end != c->last || c->nbatch == 0) {
		log_warn("sync.protocol", "peer=%s msg=\"batch end at %lld, "
		    "expected %lld\"", s->peer, (long long)end,
		    (long long)c->last);
		session_close(s);
		return;
	}
	for (i = 0; i < c->nbatch; i++)
		if (c->batch[i].has_body && !c->batch[i].ready) {
			session_close(s);
			return;
		}
	/* Deletes need a sane size: else their user's records are held. */
	guard_batch_start(s->srv);
	for (i = 0; i < c->nbatch; i++)
		guard_batch_add(s->srv, &c->batch[i].rec);
	if ((err = store_batch_begin(st)) != STORE_OK) {
		session_close(s);
		return;
	}
	if (guard_batch_check(s->srv) < 0)
		err = STORE_IO;
	for (i = 0; i < c->nbatch && err == STORE_OK; i++)
		err = apply_one(s, c, &c->batch[i]);
	/* A reconciliation's records are no position in the log. */
	if (err == STORE_OK && c->state == CH_STREAM)
		err = store_node_applied(st, c->node_id, c->epoch, end,
		    hash);
	if ((err = store_batch_end(st, err)) != STORE_OK) {
		log_error("sync.apply", "seq=%lld msg=%s", (long long)end,
		    log_quote(store_strerror(err)));
		session_close(s);
		return;
	}
	c->batch_end = end;
	session_wait_commit(s);
}

/* Runs --conflict-notify with the conflict in the environment. */
void
conflict_notify(struct session *s, const struct store_conflict *k)
{
	const char	*cmd = s->srv->settings->conflict_notify;
	char		 local[GUID_HEX_LEN + 1], master[GUID_HEX_LEN + 1];
	char		 mbox[MAILBOX_ID_LEN * 2 + 1], *env[8], **envp;
	char		*argv[] = { "/bin/sh", "-c", NULL, NULL };
	size_t		 n = 0, i;
	pid_t		 pid;

	crypto_hex(k->local_guid, GUID_LEN, local);
	crypto_hex(k->master_guid, GUID_LEN, master);
	crypto_hex(k->mailbox, MAILBOX_ID_LEN, mbox);
	log_warn("conflict", "mailbox=%s uid=%u local_guid=%s master_guid=%s "
	    "user=%s op=%s seq=%lld", log_quote(k->mailbox_name), k->uid,
	    local, master, log_quote(k->user), k->op,
	    (long long)k->master_seq);
	if (cmd == NULL || *cmd == '\0')
		return;
	if (asprintf(&env[0], "MAILREPD_CONFLICT_USER=%s", k->user) < 0 ||
	    asprintf(&env[1], "MAILREPD_CONFLICT_MAILBOX=%s",
	    k->mailbox_name) < 0 ||
	    asprintf(&env[2], "MAILREPD_CONFLICT_UID=%u", k->uid) < 0 ||
	    asprintf(&env[3], "MAILREPD_CONFLICT_LOCAL_GUID=%s", local) < 0 ||
	    asprintf(&env[4], "MAILREPD_CONFLICT_MASTER_GUID=%s",
	    master) < 0 ||
	    asprintf(&env[5], "MAILREPD_CONFLICT_MAILBOX_ID=%s", mbox) < 0 ||
	    asprintf(&env[6], "MAILREPD_CONFLICT_OP=%s", k->op) < 0)
		return;
	env[7] = NULL;
	while (environ[n] != NULL)
		n++;
	if ((envp = calloc(n + 8, sizeof(*envp))) != NULL) {
		memcpy(envp, environ, n * sizeof(*envp));
		memcpy(envp + n, env, 8 * sizeof(*envp));
		argv[2] = (char *)cmd;
		if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, envp) != 0)
			log_warn("conflict.notify", "msg=%s",
			    log_quote(strerror(errno)));
		free(envp);
	}
	for (i = 0; i < 7; i++)
		free(env[i]);
}

static void
replica_committed(struct session *s, int ok)
{
	struct chan	*c = chan_of(s);
	uint8_t		 b[8];
	size_t		 i;

	if (!ok) {
		session_close(s);
		return;
	}
	if (c->state == CH_STREAM)
		c->applied = c->batch_end;
	for (i = 0; i < c->nconflicts; i++)
		conflict_notify(s, &c->conflicts[i]);
	pending_clear(c);
	if (c->quiet_commit) {
		c->quiet_commit = 0;
		return;
	}
	put64(b, (uint64_t)c->batch_end);
	chan_send(s, SF_ACK, b, sizeof(b));
	repl.backoff = 0;
	replica_push(s, c);
}

/* One streamed frame: a record, a body chunk or the end of the batch. */
static void
replica_stream(struct session *s, struct chan *c, uint8_t type,
    const uint8_t *p, size_t n)
{
	struct pending	*pd;
	ssize_t		 len;

	if (type == SF_PING)
		return;
	if (type == SF_END && n == 8 + LOG_HASH_LEN) {
		replica_apply(s, c, (int64_t)get64(p), p + 8);
		return;
	}
	if ((type != SF_RECORD && type != SF_DATA) ||
	    (len = chan_inflate(c, p, n)) < 0)
		goto bad;
	if (type == SF_DATA) {
		if (c->cur == NULL || (uint64_t)len > c->body_left)
			goto bad;
		body_feed(c, c->item, (size_t)len);
		c->body_left -= (uint64_t)len;
		if (c->body_left == 0 && body_finish(s, c) < 0)
			session_close(s);
		return;
	}
	if (c->cur != NULL || c->nbatch == SYNC_BATCH_RECORDS)
		goto bad;
	pd = &c->batch[c->nbatch];
	memset(pd, 0, sizeof(*pd));
	if (sync_rec_decode(c->item, (size_t)len, &pd->rec, &pd->has_body,
	    &pd->size) < 0 || pd->rec.seq != c->last + 1)
		goto bad;
	c->nbatch++;
	c->last = pd->rec.seq;
	/* A master sends no more than this: the replica's memory bound. */
	if (pd->has_body && (c->batch_mem += body_mem(pd->size)) >
	    SYNC_BATCH_MEM + SPOOL_MEM_MAX)
		goto bad;
	if (pd->has_body) {
		if ((pd->spool = spool_new_deferred(
		    s->srv->settings->data_dir)) == NULL) {
			session_close(s);
			return;
		}
		c->cur = pd;
		c->body_left = pd->size;
		c->linelen = 0;
		if (pd->size == 0 && body_finish(s, c) < 0)
			session_close(s);
	}
	return;
bad:
	log_warn("sync.protocol", "peer=%s type=%d msg=\"bad stream frame; "
	    "batch dropped\"", s->peer, type);
	session_close(s);
}

/*
 * The master's first frame names it: never follow this node itself, nor
 * a node that follows this node (a cycle, which would bounce records for
 * ever).  Returns 1, logged, when it must not be followed.
 */
static int
master_refused(struct session *s, const uint8_t *p, size_t n)
{
	struct store_node	 me;
	struct session		*t;
	struct chan		*o;
	char			 hex[NODE_ID_LEN * 2 + 1];

	if (n < NODE_ID_LEN)
		return 0;	/* a bad frame: its handler says so */
	crypto_hex(p, NODE_ID_LEN, hex);
	if (store_node_get(s->srv->store, &me) == STORE_OK &&
	    memcmp(me.node_id, p, NODE_ID_LEN) == 0) {
		log_warn("sync.cycle", "master=%s node=%s msg=\"the master is "
		    "this node (a copy of its data directory?); not following "
		    "it\"", s->peer, hex);
		return 1;
	}
	for (t = s->srv->sessions; t != NULL; t = t->next)
		if (t->ops == &sync_master_proto && t->io != SESSION_CLOSING &&
		    (o = chan_of(t)) != NULL && o->state != CH_HELLO &&
		    memcmp(o->node_id, p, NODE_ID_LEN) == 0) {
			log_warn("sync.cycle", "master=%s node=%s name=%s "
			    "msg=\"the master follows this node: replication "
			    "cycle; not following it\"", s->peer, hex,
			    log_quote(o->name));
			return 1;
		}
	return 0;
}

static void
replica_input(struct session *s)
{
	struct chan	*c = chan_of(s);
	const uint8_t	*p;
	uint8_t		 type;
	size_t		 n, total;
	char		 why[128];

	while (s->io == SESSION_OPEN &&
	    chan_next(s, &type, &p, &n, &total) == 1) {
		if (type == SF_REFUSE) {
			snprintf(why, sizeof(why), "%.*s", (int)(n < 100 ? n :
			    100), (const char *)p);
			log_warn("sync.refused", "master=%s reason=%s",
			    s->peer, log_quote(why));
			session_close(s);
		} else if (c->state == CH_START && (type == SF_START ||
		    type == SF_RECONCILE) && master_refused(s, p, n))
			session_close(s);
		else if (c->state == CH_START && type == SF_START)
			replica_started(s, c, p, n);
		else if (c->state == CH_START && type == SF_RECONCILE)
			replica_reconcile(s, c, p, n);
		else if (c->state == CH_RECONCILE && type == SF_INV_WANT)
			replica_want(s, c, p, n);
		else if ((c->state == CH_RECONCILE || c->state == CH_STREAM) &&
		    type == SF_PULL)
			replica_pull(s, c, p, n);
		else if (c->state == CH_RECONCILE && type == SF_START)
			replica_reconciled(s, c, p, n);
		else if (c->state == CH_STREAM || c->state == CH_RECONCILE)
			replica_stream(s, c, type, p, n);
		else {
			log_warn("sync.protocol", "peer=%s type=%d "
			    "msg=\"unexpected frame\"", s->peer, type);
			session_close(s);
		}
		buf_consume(&s->in, total);
	}
	if (c->inv_sending)
		replica_send_inventory(s, c);
	else
		replica_push(s, c);
}

static void
replica_free(struct session *s)
{
	struct chan	*c = chan_of(s);

	if (c != NULL && c->state == CH_STREAM)
		log_info("sync.disconnected", "master=%s applied=%lld",
		    s->peer, (long long)c->applied);
	chan_free(s);
	if (repl.upstream == s)
		repl.upstream = NULL;
	if (repl.backoff < SYNC_RECONNECT_MAX)
		repl.backoff = repl.backoff == 0 ? SYNC_RECONNECT_MIN :
		    repl.backoff * 2;
	if (repl.backoff > SYNC_RECONNECT_MAX)
		repl.backoff = SYNC_RECONNECT_MAX;
	repl.next_connect = s->srv->now + repl.backoff;
}

static const struct proto_ops sync_replica_proto = {
	.name = "repl-upstream",
	.pool = POOL_REPL,
	.full_duplex = 1,
	.in_limit = SYNC_HDR_LEN + SYNC_MAX_FRAME + IO_CHUNK,
	.out_limit = OUTBUF_HIGH_WATER + 2 * SYNC_MAX_FRAME,
	.busy_reply = "",
	.start = replica_start,
	.input = replica_input,
	.committed = replica_committed,
	.timeout = chan_timeout,
	.free = replica_free,
	.wake = NULL,
	.psk = 1,
	.tls_failed = chan_tls_failed,
};

/* Opens the connection to the master, non-blocking. */
static void
replica_connect(struct server *srv)
{
	const char	*spec = repl.from;
	struct addrinfo	 hints, *ai = NULL;
	char		 host[256], *colon;
	int		 fd, rc;

	snprintf(host, sizeof(host), "%s", spec);
	if ((colon = strrchr(host, ':')) == NULL)
		return;
	*colon = '\0';
	if (host[0] == '[' && colon > host && colon[-1] == ']') {
		colon[-1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		log_warn("sync.connect", "master=%s msg=%s", log_quote(spec),
		    log_quote(gai_strerror(rc)));
		repl.next_connect = srv->now + SYNC_RECONNECT_MAX;
		return;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		repl.next_connect = srv->now + SYNC_RECONNECT_MIN;
		return;
	}
	repl.upstream = session_new(srv, fd, &sync_replica_proto, spec);
}

/* --- setup, tick, status ------------------------------------------------------ */

/*
 * Reads the secret (one line, not readable by group or others) and sets
 * up TLS-PSK with the key HKDF-SHA256 derives from it.  Only the derived
 * key is kept, inside tls.c.  Returns 0, or -1 after saying why.
 */
static int
read_secret(const char *path)
{
	struct stat	 sb;
	char		 line[SYNC_SECRET_MAX + 2], err[256];
	uint8_t		 psk[TLS_PSK_MAX];
	FILE		*f;
	size_t		 n;
	int		 rc;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "mailrepd: setting 'repl-secret-file': cannot "
		    "read '%s': %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &sb) < 0 || (sb.st_mode & 077) != 0) {
		fprintf(stderr, "mailrepd: setting 'repl-secret-file': '%s' "
		    "must not be readable by group or others (chmod 600)\n",
		    path);
		fclose(f);
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n < SYNC_SECRET_MIN || n > SYNC_SECRET_MAX) {
		fprintf(stderr, "mailrepd: setting 'repl-secret-file': the "
		    "secret in '%s' must be one line of %d to %d bytes\n",
		    path, SYNC_SECRET_MIN, SYNC_SECRET_MAX);
		return -1;
	}
	rc = -1;
	if (crypto_hkdf_sha256(line, n, SYNC_PSK_INFO, psk, sizeof(psk)) < 0)
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
 * after saying why (too long for the store's upstream).
 */
static int
upstream_of(struct server *srv, char *out, size_t cap)
{
	const char		*from = srv->settings->replicate_from;
	struct store_node	 me;

	out[0] = '\0';
	if (from == NULL && store_node_get(srv->store, &me) == STORE_OK &&
	    strcmp(me.role, "replica") == 0 && me.upstream[0] != '\0') {
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
	int		 all = 1;

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
	(void)store_replica_foreach(srv->store, behind_one, &x);
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

/* The lowest position some replica still needs from this log. */
static int
needed_by(void *arg, const struct store_replica *r)
{
	int64_t	*low = arg;

	if (r->acked < *low)
		*low = r->acked;
	return 0;
}

/*
 * Purges what no replica needs any more: records every known replica
 * (and every one connected, reconciling ones from the head they started
 * at) has acknowledged, and records past --repl-log-retention, after
 * which their replica reconciles in full.  Bounded per run.
 */
static void
sync_purge(struct server *srv)
{
	struct session	*s;
	struct chan	*c;
	int64_t		 low = store_replog_head(srv->store), purged, total = 0;
	int		 i;

	if (store_replica_foreach(srv->store, needed_by, &low) != STORE_OK)
		return;
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->ops != &sync_master_proto || (c = chan_of(s)) == NULL)
			continue;
		if (c->state == CH_STREAM && c->acked < low)
			low = c->acked;
		if (c->state == CH_RECONCILE && c->recon_head < low)
			low = c->recon_head;
	}
	for (i = 0; i < SYNC_PURGE_MAX; i++) {
		if (store_replog_purge(srv->store, low, srv->now -
		    srv->settings->repl_log_retention, &purged) != STORE_OK)
			return;
		total += purged;
		if (purged < SYNC_PURGE_BATCH)
			break;
	}
	if (total > 0)
		log_debug("sync.purge", "records=%lld upto=%lld first=%lld",
		    (long long)total, (long long)low,
		    (long long)store_replog_first(srv->store));
}

void
sync_tick(struct server *srv)
{
	struct session	*s;
	struct chan	*c;
	int64_t		 left;
	int		 status;

	while (waitpid(-1, &status, WNOHANG) > 0)
		;
	guard_replay(srv);
	if (srv->now - repl.last_purge >= SYNC_PURGE_INTERVAL) {
		repl.last_purge = srv->now;
		sync_purge(srv);
	}
	if (repl.replica && repl.upstream == NULL &&
	    srv->now >= repl.next_connect)
		replica_connect(srv);
	if (srv->now - repl.last_quarantine >= SYNC_QUARANTINE_INTERVAL) {
		repl.last_quarantine = srv->now;
		if (store_quarantine_purge(srv->store, srv->now -
		    srv->settings->quarantine_days * 86400, &left) == STORE_OK)
			log_debug("sync.quarantine", "kept=%lld",
			    (long long)left);
	}
	for (s = srv->sessions; s != NULL; s = s->next) {
		if ((s->ops != &sync_master_proto &&
		    s->ops != &sync_replica_proto) || s->io == SESSION_CLOSING ||
		    (c = chan_of(s)) == NULL)
			continue;
		if (c->state != CH_STREAM && c->state != CH_RECONCILE) {
			if (srv->now - c->started > SYNC_HANDSHAKE_TIMEOUT) {
				log_warn("sync.handshake", "peer=%s msg=\"timed "
				    "out\"", s->peer);
				session_close(s);
			}
			continue;
		}
		if (srv->now - c->last_rx > SYNC_DEAD_AFTER) {
			log_warn("sync.dead", "peer=%s msg=\"silent for %d s\"",
			    s->peer, SYNC_DEAD_AFTER);
			session_close(s);
			continue;
		}
		if (srv->now - c->last_tx >= SYNC_PING_INTERVAL &&
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

/* --- mailrepd status ---------------------------------------------------------- */

/*
 * The synchronous-replication counters (proto.c): replies released by a
 * replica's ACK, hold timeouts, and replies sent without an ACK.
 */
#define SYNC_COUNTERS(st)						\
	(long long)store_counter_get((st), "sync_acked"),		\
	(long long)store_counter_get((st), "sync_timeouts"),		\
	(long long)store_counter_get((st), "sync_unreplicated")

struct status_ctx {
	int	 json;
	int	 n;
	int64_t	 head;
	time_t	 now;
};

/*
 * Whether a replica as the store knows it is connected now: the master
 * writes connected replicas every SYNC_STATUS_INTERVAL, so a row older
 * than a few of those is a master that stopped without saying so.
 */
static int
replica_up(const struct store_replica *r, time_t now)
{
	return r->connected && now - r->last_seen <= 3 * SYNC_STATUS_INTERVAL;
}

static int
status_replica(void *arg, const struct store_replica *r)
{
	struct status_ctx	*x = arg;
	char			 hex[NODE_ID_LEN * 2 + 1];
	int			 up = replica_up(r, x->now);

	crypto_hex(r->node_id, NODE_ID_LEN, hex);
	if (x->json) {
		/* A replica names itself (--name): escape it. */
		printf("%s{\"name\":", x->n++ ? "," : "");
		json_str(stdout, r->name);
		printf(",\"node_id\":\"%s\",\"acked\":%lld,\"lag\":%lld,"
		    "\"last_seen\":%lld,\"age\":%lld,\"connected\":%s,"
		    "\"reconciling\":%s}", hex, (long long)r->acked,
		    (long long)(x->head - r->acked), (long long)r->last_seen,
		    (long long)(x->now - r->last_seen), up ? "true" : "false",
		    r->reconciling ? "true" : "false");
	} else
		printf("replica %s node=%s acked=%lld lag=%lld records "
		    "last_seen=%llds_ago %s%s\n", r->name, hex,
		    (long long)r->acked, (long long)(x->head - r->acked),
		    (long long)(x->now - r->last_seen),
		    up ? "connected" : "disconnected",
		    r->reconciling ? " reconciling" : "");
	return 0;
}

static int
status_conflict(void *arg, const struct store_conflict *k)
{
	struct status_ctx	*x = arg;
	char			 l[GUID_HEX_LEN + 1], m[GUID_HEX_LEN + 1];

	crypto_hex(k->local_guid, GUID_LEN, l);
	crypto_hex(k->master_guid, GUID_LEN, m);
	if (x->json) {
		printf("%s{\"user\":", x->n++ ? "," : "");
		json_str(stdout, k->user);
		printf(",\"mailbox\":");
		json_str(stdout, k->mailbox_name);
		printf(",\"uid\":%u,\"local_guid\":\"%s\",\"master_guid\":"
		    "\"%s\",\"op\":\"%s\"}", k->uid, l, m, k->op);
	} else
		printf("conflict mailbox=%s uid=%u local_guid=%s "
		    "master_guid=%s user=%s\n", k->mailbox_name, k->uid, l, m,
		    k->user);
	return 0;
}

int
sync_status(int argc, char **argv)
{
	struct cmd_option	 opts[] = {
		{ "json", 0, "print one JSON object", NULL },
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct store		*st;
	struct store_node	 me;
	struct status_ctx	 x = { 0, 0, 0, 0 };
	char			 id[NODE_ID_LEN * 2 + 1], ep[EPOCH_LEN * 2 + 1];
	char			 mid[NODE_ID_LEN * 2 + 1], mep[EPOCH_LEN * 2 + 1];
	int			 npos = 0, rc = 1;

	if (settings_parse(&set, argc, argv, 2, opts, 2, NULL, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[1].value != NULL) {
		printf("usage: mailrepd status [--json] --data DIR\n\nRole, "
		    "node id, log head, replicas and their lag; on a replica "
		    "its master,\napplied position and conflicts.  Works on a "
		    "running or stopped node.\n\n");
		settings_usage_options(stdout, opts, 2);
		settings_free(&set);
		return 0;
	}
	x.json = opts[0].value != NULL;
	x.now = time(NULL);
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return EXIT_USAGE;
	}
	if (store_node_get(st, &me) != STORE_OK)
		goto out;
	x.head = store_replog_head(st);
	crypto_hex(me.node_id, NODE_ID_LEN, id);
	crypto_hex(me.epoch, EPOCH_LEN, ep);
	crypto_hex(me.master_id, NODE_ID_LEN, mid);
	crypto_hex(me.master_epoch, EPOCH_LEN, mep);
	if (x.json) {
		printf("{\"role\":\"%s\",\"node_id\":\"%s\",\"epoch\":\"%s\","
		    "\"log_head\":%lld,\"log_first\":%lld,", me.role, id, ep,
		    (long long)x.head, (long long)store_replog_first(st));
		if (me.has_master)
			printf("\"master\":{\"node_id\":\"%s\",\"epoch\":\"%s\","
			    "\"applied\":%lld},", mid, mep,
			    (long long)me.applied);
		printf("\"sync\":{\"acked\":%lld,\"timeouts\":%lld,"
		    "\"unreplicated\":%lld},", SYNC_COUNTERS(st));
		guard_status(st, 1);
		control_status_node(st, &me, 1);
		printf("\"conflicts_open\":%lld,\"replicas\":[",
		    (long long)store_conflict_count(st, NULL));
		store_replica_foreach(st, status_replica, &x);
		printf("],\"conflicts\":[");
		x.n = 0;
		store_conflict_foreach(st, status_conflict, &x);
		printf("]}\n");
	} else {
		printf("role %s\nnode %s\nepoch %s\nlog head %lld\n", me.role,
		    id, ep, (long long)x.head);
		if (me.has_master)
			printf("master %s epoch %s applied %lld\n", mid, mep,
			    (long long)me.applied);
		printf("sync acked %lld timeouts %lld unreplicated %lld\n",
		    SYNC_COUNTERS(st));
		guard_status(st, 0);
		control_status_node(st, &me, 0);
		printf("conflicts %lld open\n",
		    (long long)store_conflict_count(st, NULL));
		store_replica_foreach(st, status_replica, &x);
		store_conflict_foreach(st, status_conflict, &x);
	}
	rc = 0;
out:
	store_close(st);
	settings_free(&set);
	return rc;
}

/* --- mailrepd replica forget ---------------------------------------------- */

/* The replicas that `forget` names (by name, or by node id in hex). */
struct forget_ctx {
	const char		*which;
	int			 matches;
	struct store_replica	 r;
};

static int
forget_match(void *arg, const struct store_replica *r)
{
	struct forget_ctx	*x = arg;
	char			 hex[NODE_ID_LEN * 2 + 1];

	crypto_hex(r->node_id, NODE_ID_LEN, hex);
	if (strcmp(r->name, x->which) == 0 ||
	    strcasecmp(hex, x->which) == 0) {
		x->matches++;
		x->r = *r;
	}
	return 0;
}

/*
 * `mailrepd replica forget NAME|NODEID`: a replica gone for good (rebuilt
 * under a new node id, or retired) stops counting: a drain no longer
 * waits for it and the log is purged past it.  A connected replica is
 * not forgotten (it would be known again at once).  Works on a running
 * or stopped node.
 */
static int
replica_forget(int argc, char **argv)
{
	struct cmd_option	 opts[] = {
		{ "help", 0, "show this help", NULL },
	};
	struct settings		 set;
	struct store		*st;
	struct forget_ctx	 x;
	char			*pos[2], hex[NODE_ID_LEN * 2 + 1];
	int			 npos = 2, rc = 1;

	if (settings_parse(&set, argc, argv, 2, opts, 1, pos, &npos) < 0) {
		settings_free(&set);
		return 2;
	}
	if (opts[0].value != NULL || npos != 2) {
		fprintf(opts[0].value ? stdout : stderr, "usage: mailrepd "
		    "replica forget NAME|NODEID --data DIR\n\nThe master "
		    "forgets a replica that is gone for good (see `mailrepd "
		    "status`):\na drain no longer waits for it and the log is "
		    "purged past it.  A\nreplica that comes back is known again "
		    "(reconciled once the log\nis purged past it).  Not for a "
		    "connected replica.\n\n");
		settings_usage_options(opts[0].value ? stdout : stderr, opts,
		    1);
		settings_free(&set);
		return opts[0].value ? 0 : 2;
	}
	memset(&x, 0, sizeof(x));
	x.which = pos[1];
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return 1;
	}
	if (store_replica_foreach(st, forget_match, &x) != STORE_OK)
		fprintf(stderr, "mailrepd replica forget: cannot read the "
		    "replicas\n");
	else if (x.matches == 0)
		fprintf(stderr, "mailrepd replica forget: no replica '%s' "
		    "(see mailrepd status)\n", x.which);
	else if (x.matches > 1)
		fprintf(stderr, "mailrepd replica forget: %d replicas are "
		    "named '%s': give the node id\n", x.matches, x.which);
	else if (replica_up(&x.r, time(NULL)))
		fprintf(stderr, "mailrepd replica forget: replica '%s' is "
		    "connected: stop it first\n", x.which);
	else if (store_replica_forget(st, x.r.node_id) != STORE_OK ||
	    store_commit(st) != STORE_OK)
		fprintf(stderr, "mailrepd replica forget: cannot update the "
		    "store\n");
	else {
		crypto_hex(x.r.node_id, NODE_ID_LEN, hex);
		printf("forgot replica %s node %s (acked %lld)\n", x.r.name,
		    hex, (long long)x.r.acked);
		rc = 0;
	}
	store_close(st);
	settings_free(&set);
	return rc;
}

static const struct {
	const char	*name;
	int		(*run)(int, char **);
} replica_commands[] = {
	{ "resume", guard_resume_main },
	{ "forget", replica_forget },
};

int
sync_replica_main(int argc, char **argv)
{
	size_t	 i;

	for (i = 0; argc >= 3 && i < sizeof(replica_commands) /
	    sizeof(*replica_commands); i++)
		if (strcmp(argv[2], replica_commands[i].name) == 0)
			return replica_commands[i].run(argc, argv);
	fprintf(argc >= 3 && strcmp(argv[2], "--help") == 0 ? stdout : stderr,
	    "usage: mailrepd replica resume [--allow-deletes] --data DIR\n"
	    "       mailrepd replica forget NAME|NODEID --data DIR\n");
	return argc >= 3 && strcmp(argv[2], "--help") == 0 ? 0 : 2;
}
