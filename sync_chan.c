/*
 * sync_chan.c — the replication channel, common to both ends: the frame
 * and record codec (sync.h's sync_frame_peek, sync_rec_encode and
 * sync_rec_decode, the wr_ and rd_ cursors), framing, compression, and
 * the channel's life (new, next frame, refuse, TLS failure, free).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <zlib.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "spool.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"

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
	uint32_t	 from;
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
	    ((needs & REC_VALUE_FROM) && (rec_from_value(r->value, &from) <
	    0 || from >= r->uid)) || (*has_body && !rec_kind(r->type)->body))
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
int
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
ssize_t
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

void
chan_refuse(struct session *s, const char *why)
{
	chan_send(s, SF_REFUSE, why, strlen(why));
	session_close(s);
}

/*
 * A frame the protocol does not allow here: said in the log, with the
 * peer's name when it gave one, and the connection dropped.  What was
 * applied stays; a replica reconnects from its committed position.
 */
void
chan_bad(struct session *s, const char *what)
{
	struct chan	*c = chan_of(s);

	log_warn("sync.protocol", "peer=%s name=%s msg=%s", s->peer,
	    log_quote(c != NULL ? c->name : ""), log_quote(what));
	session_close(s);
}

/*
 * Takes the next complete frame off the input: returns 1 with its type
 * and payload (valid until consumed), 0 when more is needed, -1 (session
 * closed, logged) for a bad frame.
 */
int
chan_next(struct session *s, uint8_t *type, const uint8_t **payload,
    size_t *n, size_t *total)
{
	struct chan	*c = chan_of(s);
	const uint8_t	*p = (const uint8_t *)buf_ptr(&s->in);
	int		 rc;

	rc = sync_frame_peek(p, buf_used(&s->in), type, n, total);
	if (rc < 0) {
		chan_bad(s, "frame too long");
		return -1;
	}
	if (rc == 0)
		return 0;
	*payload = p + SYNC_HDR_LEN;
	c->last_rx = s->srv->now;
	return 1;
}

struct chan *
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

void
pending_clear(struct chan *c)
{
	size_t	 i;

	for (i = 0; i < c->nbatch; i++) {
		store_blob_unstage(&c->batch[i].in);	/* reads the spool */
		spool_free(c->batch[i].spool);
	}
	c->nbatch = 0;
	c->staging = 0;
	c->batch_mem = 0;
	c->cur = NULL;
	c->body_left = 0;
	free(c->conflicts);
	c->conflicts = NULL;
	c->nconflicts = 0;
}

void
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
	free(c->item);
	free(c->zout);
	free(c);
	s->proto = NULL;
}

/*
 * TLS failed on the channel (proto_ops.tls_failed).  In the handshake
 * with wrong_key, the peer holds another secret: sync.auth.failed, on
 * both ends.  After it, a record did not decrypt (changed on the way, or
 * an alert): the batch in progress is dropped with the connection, the
 * replica reconnects and is sent it again from its applied position.
 */
void
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
