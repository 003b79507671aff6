/*
 * sync_recon_replica.c — full reconciliation, the replica's side: its
 * inventory, the chunks of messages the master asks for, and the START
 * that ends it (the master's side is sync_reconcile.c).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"

/* --- full reconciliation, replica side ------------------------------------------ */

static int
inv_collect(void *arg, const uint8_t *uniqueid)
{
	struct chan	*c = arg;
	uint8_t		(*grown)[MAILBOX_ID_LEN];

	if (c->ninv_ids == c->inv_cap) {
		c->inv_cap = c->inv_cap ? 2 * c->inv_cap : 64;
		if ((grown = reallocarray(c->inv_ids, c->inv_cap,
		    sizeof(*grown))) == NULL)
			return 1;
		c->inv_ids = grown;
	}
	memcpy(c->inv_ids[c->ninv_ids++], uniqueid, MAILBOX_ID_LEN);
	return 0;
}

/*
 * Sends the inventory, one INV_MAILBOX per mailbox (uniqueid, digest,
 * name, subscribed, user, uidvalidity, special use, uidnext, when a
 * client renamed it), in steps as the output drains, then INV_END.
 */
void
replica_send_inventory(struct session *s, struct chan *c)
{
	struct store		*st = s->srv->store;
	struct store_mailbox	 mb;
	char			 user[USER_MAX_NAME + 1];
	uint8_t			 out[MAILBOX_ID_LEN + GUID_LEN + 2 +
				    MAILBOX_MAX_NAME + 1 + 2 + USER_MAX_NAME +
				    8 + 2 + 16 + 8 + 8], digest[GUID_LEN];
	uint8_t			 one;
	struct wr		 w;
	enum store_err		 err;

	s->resume = 0;
	while (c->inv_sending && buf_used(&s->out) < OUTBUF_HIGH_WATER) {
		if (c->inv_i == c->ninv_ids) {
			chan_send(s, SF_INV_END, "", 0);
			c->inv_sending = 0;
			free(c->inv_ids);
			c->inv_ids = NULL;
			c->ninv_ids = c->inv_cap = 0;
			return;
		}
		if ((err = store_mailbox_by_uniqueid(st,
		    c->inv_ids[c->inv_i++], &mb, user)) == STORE_NOTFOUND)
			continue;	/* deleted since the list was made */
		if (err != STORE_OK) {
			/* left out, the master would take it for missing */
			session_close(s);
			return;
		}
		if (store_mailbox_digest(st, mb.id, digest) != STORE_OK) {
			session_close(s);
			return;
		}
		w = (struct wr){ out, 0, sizeof(out), 0 };
		wr_bytes(&w, mb.uniqueid, MAILBOX_ID_LEN);
		wr_bytes(&w, digest, GUID_LEN);
		wr_str(&w, mb.name);
		one = mb.subscribed != 0;
		wr_bytes(&w, &one, 1);
		wr_str(&w, user);
		wr_u64(&w, mb.uidvalidity);
		wr_str(&w, mb.special_use);
		wr_u64(&w, mb.uidnext);
		wr_u64(&w, (uint64_t)mb.named);
		chan_send(s, SF_INV_MAILBOX, out, w.n);
	}
	s->resume = c->inv_sending;
}

/* RECONCILE: the master cannot stream to us; it compares first. */
void
replica_reconcile(struct session *s, struct chan *c, const uint8_t *p,
    size_t n)
{
	uint8_t	 hash[LOG_HASH_LEN];

	if (head_decode(p, n, c->node_id, c->epoch, &c->recon_head,
	    hash) < 0 || inflateInit(&c->z) != Z_OK) {
		chan_bad(s, "bad RECONCILE");
		return;
	}
	c->z_ok = 1;
	c->state = CH_RECONCILE;
	c->last = 0;
	if (store_mailbox_ids(s->srv->store, inv_collect, c) != STORE_OK) {
		session_close(s);
		return;
	}
	c->inv_i = 0;
	c->inv_sending = 1;
	log_info("sync.reconcile.start", "master=%s head=%lld mailboxes=%zu "
	    "applied=%lld", s->peer, (long long)c->recon_head, c->ninv_ids,
	    (long long)c->applied);
	replica_send_inventory(s, c);
}

/* One entry of an INV_MSGS chunk; stops when the frame is full. */
struct want_ctx {
	struct wr	 w;
	uint64_t	 count;
	uint32_t	 last_uid;
	int		 full;
};

static int
want_one(void *arg, const struct store_message *m)
{
	struct want_ctx	*x = arg;
	const char	*kw = m->keywords ? m->keywords : "";

	if (x->w.cap - x->w.n < 8 + 8 + GUID_LEN + 2 + strlen(kw)) {
		x->full = 1;
		return 1;
	}
	wr_u64(&x->w, m->uid);
	wr_u64(&x->w, m->flags);
	wr_bytes(&x->w, m->guid, GUID_LEN);
	wr_str(&x->w, kw);
	x->count++;
	x->last_uid = m->uid;
	return 0;
}

/*
 * INV_WANT (uniqueid, after): our messages of that mailbox after the
 * uid, at most SYNC_RECON_CHUNK and one frame's worth, with the highest
 * uid the chunk covers (all of them when it is the last).
 */
void
replica_want(struct session *s, struct chan *c, const uint8_t *p, size_t n)
{
	struct store_mailbox	 mb;
	char			 user[USER_MAX_NAME + 1];
	struct want_ctx		 x = { { c->zout, 0, SYNC_MAX_FRAME, 0 }, 0,
				    0, 0 };
	struct wr		 h = { c->zout, 0, SYNC_MAX_FRAME, 0 };
	uint32_t		 after;
	uint8_t			 last;
	enum store_err		 err;
	const size_t		 hdr = MAILBOX_ID_LEN + 8 + 8 + 1 + 8;

	if (n != MAILBOX_ID_LEN + 4) {
		chan_bad(s, "bad INV_WANT");
		return;
	}
	after = get32(p + MAILBOX_ID_LEN);
	x.w.n = hdr;
	/* A mailbox gone since has no messages; a store error ends it all. */
	if ((err = store_mailbox_by_uniqueid(s->srv->store, p, &mb, user)) ==
	    STORE_OK && store_message_range(s->srv->store, mb.id, after,
	    UINT32_MAX, SYNC_RECON_CHUNK, want_one, &x) != STORE_OK)
		err = STORE_IO;
	if (err != STORE_OK && err != STORE_NOTFOUND) {
		session_close(s);
		return;
	}
	last = !x.full && x.count < SYNC_RECON_CHUNK;
	wr_bytes(&h, p, MAILBOX_ID_LEN);
	wr_u64(&h, after);
	wr_u64(&h, last ? UINT32_MAX : x.last_uid);
	wr_bytes(&h, &last, 1);
	wr_u64(&h, x.count);
	assert(h.n == hdr && !x.w.full);
	chan_send(s, SF_INV_MSGS, c->zout, x.w.n);
}

/*
 * START after a reconciliation: everything the master compared is
 * applied; from now on we follow its log from the head it started at,
 * recorded in the store before anything streamed is applied, and
 * acknowledged (replica_committed) once that is synced: the master
 * streams only then, and counts us as holding its log only then.
 */
void
replica_reconciled(struct session *s, struct chan *c, const uint8_t *p,
    size_t n)
{
	struct store	*st = s->srv->store;
	enum store_err	 err;
	int64_t		 head;
	uint8_t		 id[NODE_ID_LEN], epoch[EPOCH_LEN], hash[LOG_HASH_LEN];
	char		 info[160];

	if (head_decode(p, n, id, epoch, &head, hash) < 0 ||
	    memcmp(id, c->node_id, NODE_ID_LEN) != 0 ||
	    memcmp(epoch, c->epoch, EPOCH_LEN) != 0 ||
	    head != c->recon_head || c->nbatch != 0 || c->inv_sending) {
		chan_bad(s, "bad START after reconciliation");
		return;
	}
	if (store_batch_begin(st) != STORE_OK) {
		session_close(s);
		return;
	}
	err = store_node_applied(st, c->node_id, c->epoch, head, hash);
	if (store_batch_end(st, err) != STORE_OK) {
		session_close(s);
		return;
	}
	log_info("sync.reconcile.done", "master=%s from=%lld records=%lld",
	    s->peer, (long long)head, (long long)c->last);
	session_tls_info(s, info, sizeof(info));
	log_info("sync.streaming", "master=%s from=%lld reconciled=1 tls=%s",
	    s->peer, (long long)head, log_quote(info));
	c->state = CH_STREAM;
	c->last = c->batch_end = head;
	session_wait_commit(s);
}
