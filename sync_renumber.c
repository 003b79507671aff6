/*
 * sync_renumber.c — renumbering over the channel: the replica's copies
 * of conflicting or never-replicated messages travel to the master,
 * which gives them new UIDs, and the requests that settle the other
 * conflicts (RELOCATE, EXPUNGED).  ARCHITECTURE.md, "Replication".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "settings.h"
#include "spool.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"

static void	master_push_done(struct session *, struct chan *);

/* --- renumbering: the replica's copies travel to the master --------------------- */

/*
 * Under --conflict-policy renumber, a replica sends the master every
 * copy it keeps out of a conflict (and, in a reconciliation, every
 * message the master PULLs because only the replica has it); `conflicts
 * resolve` asks for one under policy keep.  PUSH carries the copy's
 * identity and attributes, PUSH_DATA its body; the master checks the
 * body against the GUID and renumbers (store_renumber()).  What that
 * changes reaches the replica as log records, the last of which
 * expunges the copy at its old uid and so resolves the conflict there.
 * A copy pushed twice (a reconnect, or a second replica with the same
 * copy) is renumbered once; the later pushes only log that expunge
 * again.  A master's message that a replica cannot place because the
 * uid named another message there (a reused UID: no copy to send) is
 * the other way round: RELOCATE asks the master to move its own message
 * above the replica's UIDNEXT.
 */

/*
 * A replica's UIDNEXT says which UIDs it gave out, so the master's new
 * UIDs go above it; a buggy or hostile peer (it holds the secret) could
 * name one that moves the master's, and so every node's, numbering to
 * the end of the UID space, where a mailbox takes no more mail (RFC
 * 3501: UIDs are 32-bit).  One past ours by more than a split could
 * give out, or within SYNC_UIDNEXT_JUMP_MAX of that end, is refused: the
 * link drops and nothing here changes.  A mailbox not here (one to take
 * in) has no numbering of ours to keep, only the end of the UID space.
 */
int
peer_uidnext_check(struct session *s, const uint8_t *uniqueid,
    uint64_t uidnext, const char *what)
{
	struct store_mailbox	 mb;
	enum store_err		 err;
	uint32_t		 ours = 0;

	err = store_mailbox_by_uniqueid(s->srv->store, uniqueid, &mb, NULL);
	if (err == STORE_OK)
		ours = mb.uidnext;
	else if (err != STORE_NOTFOUND) {
		session_close(s);
		return -1;
	}
	if (uidnext <= ours || (uidnext <= UINT32_MAX - SYNC_UIDNEXT_JUMP_MAX &&
	    (err == STORE_NOTFOUND || uidnext - ours <= SYNC_UIDNEXT_JUMP_MAX)))
		return 0;
	log_warn("sync.protocol", "peer=%s name=%s uidnext=%llu ours=%u "
	    "msg=\"bad %s: a UIDNEXT no split can reach\"", s->peer,
	    log_quote(chan_of(s)->name), (unsigned long long)uidnext, ours,
	    what);
	session_close(s);
	return -1;
}

/* PUSH on the master: a copy's header; its body follows. */
void
master_push_begin(struct session *s, struct chan *c, const uint8_t *p,
    size_t n)
{
	struct rd	 d = { p, n, 0, 0 };
	struct pending	*pd = &c->push;
	const uint8_t	*v;
	uint64_t	 uid, flags, size, above;

	if (c->cur != NULL)
		goto bad;
	memset(pd, 0, sizeof(*pd));
	if ((v = rd_bytes(&d, MAILBOX_ID_LEN)) != NULL)
		memcpy(pd->rec.mailbox, v, MAILBOX_ID_LEN);
	uid = rd_u64(&d);
	if ((v = rd_bytes(&d, GUID_LEN)) != NULL)
		memcpy(pd->rec.guid, v, GUID_LEN);
	flags = rd_u64(&d);
	pd->rec.internaldate = (int64_t)rd_u64(&d);
	size = rd_u64(&d);
	rd_str(&d, pd->rec.keywords, sizeof(pd->rec.keywords));
	above = rd_u64(&d);
	/* The copy is the replica's, so below its UIDNEXT. */
	if (d.bad || d.off != n || uid == 0 || uid >= above ||
	    flags > UINT32_MAX || above > UINT32_MAX ||
	    size > (uint64_t)s->srv->settings->max_message_size)
		goto bad;
	if (peer_uidnext_check(s, pd->rec.mailbox, above, "PUSH") < 0)
		return;
	pd->rec.uid = (uint32_t)uid;
	pd->rec.flags = (uint32_t)flags;
	pd->above = (uint32_t)above;
	pd->size = size;
	if ((pd->spool = spool_new(s->srv->settings->data_dir)) == NULL) {
		session_close(s);
		return;
	}
	c->cur = pd;
	c->body_left = size;
	if (size == 0)
		master_push_done(s, c);
	return;
bad:
	chan_bad(s, "bad PUSH");
}

/* The whole copy is here and hashes to its GUID: renumber it. */
static void
master_push_done(struct session *s, struct chan *c)
{
	struct pending	*pd = &c->push;
	enum store_err	 err;
	uint32_t	 new_uid;
	char		 hex[GUID_HEX_LEN + 1];

	if (body_finish(s, c) < 0) {
		spool_free(pd->spool);
		pd->spool = NULL;
		session_close(s);
		return;
	}
	crypto_hex(pd->rec.guid, GUID_LEN, hex);
	if (sync_is_replica()) {
		/*
		 * A relay: only the master numbers.  Renumbering here would
		 * move the copy, here and on the replica that pushed it, to
		 * a UID the master never gave; the replica keeps it open.
		 */
		log_warn("sync.renumber", "name=%s uid=%u guid=%s msg=\"this "
		    "node is a replica; its master must renumber it\"",
		    log_quote(c->name), pd->rec.uid, hex);
		spool_free(pd->spool);
		pd->spool = NULL;
		return;
	}
	err = store_renumber(s->srv->store, pd->rec.mailbox, pd->rec.uid,
	    pd->rec.guid, pd->rec.flags, pd->rec.keywords,
	    pd->rec.internaldate, &pd->in, pd->above, &new_uid);
	if (err == STORE_OK || err == STORE_EXISTS)
		log_info("sync.renumber", "name=%s uid=%u guid=%s new_uid=%u%s",
		    log_quote(c->name), pd->rec.uid, hex, new_uid,
		    err == STORE_EXISTS ? " again=1" : "");
	else
		log_warn("sync.renumber", "name=%s uid=%u guid=%s msg=%s",
		    log_quote(c->name), pd->rec.uid, hex,
		    log_quote(store_strerror(err)));
	spool_free(pd->spool);
	pd->spool = NULL;
}

/* PUSH_DATA on the master: a chunk of the copy's body. */
void
master_push_data(struct session *s, struct chan *c, const uint8_t *p,
    size_t n)
{
	if (c->cur != &c->push || n > c->body_left) {
		chan_bad(s, "PUSH_DATA out of place");
		return;
	}
	body_feed(c, p, n);
	c->body_left -= n;
	if (c->body_left == 0)
		master_push_done(s, c);
}

/*
 * RELOCATE on the master: (mailbox, uid, guid, the replica's UIDNEXT).
 * The replica used that uid for another message, so ours moves above
 * both sides' UIDNEXT (store_relocate()); the records reach the replica
 * like any other change and resolve its conflict.
 */
void
master_relocate(struct session *s, struct chan *c, const uint8_t *p,
    size_t n)
{
	enum store_err	 err;
	uint32_t	 uid, new_uid;
	char		 hex[GUID_HEX_LEN + 1];

	if (n != MAILBOX_ID_LEN + 4 + GUID_LEN + 4 ||
	    (uid = get32(p + MAILBOX_ID_LEN)) == 0) {
		chan_bad(s, "bad RELOCATE");
		return;
	}
	if (peer_uidnext_check(s, p, get32(p + MAILBOX_ID_LEN + 4 + GUID_LEN),
	    "RELOCATE") < 0)
		return;
	crypto_hex(p + MAILBOX_ID_LEN + 4, GUID_LEN, hex);
	if (sync_is_replica()) {
		/* A relay: only the master numbers; moving here diverges. */
		log_warn("sync.relocate", "name=%s uid=%u guid=%s msg=\"this "
		    "node is a replica; its master must move it\"",
		    log_quote(c->name), uid, hex);
		return;
	}
	err = store_relocate(s->srv->store, p, uid, p + MAILBOX_ID_LEN + 4,
	    get32(p + MAILBOX_ID_LEN + 4 + GUID_LEN), &new_uid);
	if (err == STORE_OK)
		log_warn("sync.relocate", "name=%s uid=%u guid=%s new_uid=%u "
		    "msg=\"uid used for another message there\"",
		    log_quote(c->name), uid, hex, new_uid);
	else if (err == STORE_INVALID) {
		/*
		 * Not a message this node gave that uid: nothing moves, and
		 * no record tells the replicas it left.  The link stays (a
		 * replica may ask a new master about its old master's), and
		 * the replica is told, so its conflict settles: no record of
		 * ours will ever move that message.
		 */
		log_warn("sync.relocate", "name=%s uid=%u guid=%s msg=\"not "
		    "this node's message at that uid: refused\"",
		    log_quote(c->name), uid, hex);
		chan_send(s, SF_NEVER_HELD, p, MAILBOX_ID_LEN + 4 + GUID_LEN);
	} else if (err != STORE_EXISTS && err != STORE_NOTFOUND)
		log_warn("sync.relocate", "name=%s uid=%u guid=%s msg=%s",
		    log_quote(c->name), uid, hex,
		    log_quote(store_strerror(err)));
}

/*
 * A replica renumbered away from uid the copy this master itself put at
 * uid by renumbering (another master numbered it again in between).  The
 * replica's copy at its other UID is the same message, and this master's
 * reconciliation expunges it there as such (renumbered_here() in
 * sync_reconcile.c); dropping ours as well would leave the message on no
 * node.  Ours moves up instead, as for RELOCATE: the expunge at uid
 * settles the replica's conflict and the append brings the message back.
 */
static void
master_renumbered_twice(struct session *s, struct chan *c,
    const struct store_mailbox *mb, uint32_t uid, const uint8_t *guid)
{
	enum store_err	 err;
	uint32_t	 new_uid = 0;
	char		 hex[GUID_HEX_LEN + 1];

	err = store_relocate(s->srv->store, mb->uniqueid, uid, guid, 0,
	    &new_uid);
	crypto_hex(guid, GUID_LEN, hex);
	log_warn("sync.expunged", "name=%s mailbox=%s uid=%u guid=%s "
	    "new_uid=%u result=%s msg=\"renumbered on the replica by another "
	    "master, and renumbered here before: the copy here moves up\"",
	    log_quote(c->name), log_quote(mb->name), uid, hex, new_uid,
	    store_strerror(err));
}

/*
 * EXPUNGED on the master: (mailbox, uid, guid, reason).  The replica
 * saw this very message at that uid and expunged it (store_apply.c,
 * uid_taken_before: the expunge wins), or holds it at another UID it
 * was renumbered to (relocate_ask), so ours is the older word and goes,
 * saying why; the record reaches every replica like any other change
 * and settles the one that asked.
 */
void
master_expunged(struct session *s, struct chan *c, const uint8_t *p,
    size_t n)
{
	struct store		*st = s->srv->store;
	struct store_mailbox	 mb;
	enum store_err		 err;
	uint32_t		 uid, from;
	char			 hex[GUID_HEX_LEN + 1];

	if (n != MAILBOX_ID_LEN + 4 + GUID_LEN + 1 ||
	    (uid = get32(p + MAILBOX_ID_LEN)) == 0 ||
	    p[n - 1] >= REC_NREASONS) {
		log_warn("sync.protocol", "peer=%s name=%s msg=\"bad "
		    "EXPUNGED\"", s->peer, log_quote(c->name));
		session_close(s);
		return;
	}
	crypto_hex(p + MAILBOX_ID_LEN + 4, GUID_LEN, hex);
	if (sync_is_replica()) {
		/* A relay: its master decides, and its log brings it. */
		log_warn("sync.expunged", "name=%s uid=%u guid=%s msg=\"this "
		    "node is a replica; its master must expunge it\"",
		    log_quote(c->name), uid, hex);
		return;
	}
	if (store_mailbox_by_uniqueid(st, p, &mb, NULL) != STORE_OK)
		return;
	/*
	 * Whether the copy was renumbered here must be known: taken for
	 * "no", a failed look-up would drop the very message the
	 * renumbering keeps.  The replica asks again when it reconnects.
	 */
	from = 0;
	if (p[n - 1] == REASON_RENUMBER && (err = store_renumbered_from(st,
	    p, uid, p + MAILBOX_ID_LEN + 4, &from)) != STORE_OK) {
		log_warn("sync.expunged", "name=%s mailbox=%s uid=%u guid=%s "
		    "result=%s msg=\"not known whether renumbered here: "
		    "the copy stays\"", log_quote(c->name),
		    log_quote(mb.name), uid, hex, store_strerror(err));
		session_close(s);
		return;
	}
	if (from != 0) {
		master_renumbered_twice(s, c, &mb, uid, p + MAILBOX_ID_LEN + 4);
		return;
	}
	err = store_drop_copy(st, p, uid, p + MAILBOX_ID_LEN + 4,
	    (enum rec_reason)p[n - 1]);
	if (err == STORE_NOTFOUND) {
		/*
		 * Gone here already: its expunge, logged again, settles the
		 * replica (which may have compared after that record).  No
		 * tombstone of it here: it was never here at uid (one of a
		 * master the replica followed before), and only that replica
		 * is told, so its conflict closes.
		 */
		if (store_expunge_relog(st, p, uid, p + MAILBOX_ID_LEN + 4) ==
		    STORE_NOTFOUND)
			chan_send(s, SF_NEVER_HELD, p, MAILBOX_ID_LEN + 4 +
			    GUID_LEN);
		return;
	}
	log_warn("sync.expunged", "name=%s mailbox=%s uid=%u guid=%s "
	    "result=%s msg=\"expunged or renumbered on the replica since "
	    "this copy was made: the copy here goes\"", log_quote(c->name),
	    log_quote(mb.name), uid, hex, store_strerror(err));
}

/*
 * PULL on the replica: the master lacks our message at this uid.  It is
 * kept out of the master's numbering like a conflict copy (recorded,
 * alerted), and pushed under policy renumber.
 */
void
replica_pull(struct session *s, struct chan *c, const uint8_t *p, size_t n)
{
	struct store_conflict	 k;
	struct store_mailbox	 mb;
	enum store_err		 err;

	(void)c;
	if (n != MAILBOX_ID_LEN + 4 + GUID_LEN) {
		chan_bad(s, "bad PULL");
		return;
	}
	memset(&k, 0, sizeof(k));
	memcpy(k.mailbox, p, MAILBOX_ID_LEN);
	k.uid = get32(p + MAILBOX_ID_LEN);
	memcpy(k.local_guid, p + MAILBOX_ID_LEN + 4, GUID_LEN);
	snprintf(k.op, sizeof(k.op), "message.local");
	/*
	 * A mailbox gone has nothing to keep.  A PULL not recorded is a
	 * copy never pushed: on a store error the link ends, and the
	 * master asks again when it reconciles again.
	 */
	if ((err = store_mailbox_by_uniqueid(s->srv->store, k.mailbox, &mb,
	    k.user)) != STORE_OK) {
		if (err != STORE_NOTFOUND)
			session_close(s);
		return;
	}
	snprintf(k.mailbox_name, sizeof(k.mailbox_name), "%s", mb.name);
	if ((err = store_conflict_add(s->srv->store, &k)) == STORE_OK) {
		conflict_notify(s, &k);
		session_wrote(s);	/* undone by the commit: replica_input */
	} else if (err != STORE_EXISTS)
		session_close(s);
}

/*
 * NEVER_HELD on the replica: (mailbox, uid, guid).  Our RELOCATE or
 * EXPUNGED named a message this master never held at that uid (one of a
 * master we followed before): nothing of the master's will move or
 * expunge it, and we hold no copy of it at that uid, so its conflict is
 * over.  That other master keeps the message and brings it to this one
 * when they meet.
 */
void
replica_never_held(struct session *s, const uint8_t *p, size_t n)
{
	enum store_err	 err;
	char		 hex[GUID_HEX_LEN + 1];

	if (n != MAILBOX_ID_LEN + 4 + GUID_LEN) {
		chan_bad(s, "bad NEVER_HELD");
		return;
	}
	err = store_conflict_never_held(s->srv->store, p,
	    get32(p + MAILBOX_ID_LEN), p + MAILBOX_ID_LEN + 4);
	crypto_hex(p + MAILBOX_ID_LEN + 4, GUID_LEN, hex);
	log_info("sync.never_held", "uid=%u guid=%s result=%s "
	    "msg=\"the master never held it at that uid: the conflict is "
	    "over\"", get32(p + MAILBOX_ID_LEN), hex, store_strerror(err));
}

static void	expunged_send(struct session *, const struct store_conflict *,
		    enum rec_reason);

/*
 * Conflict k is the master's message at a uid used here for another
 * (APPLY_REUSED): asks the master to move it above our UIDNEXT.  The
 * conflict stays open until the record that expunges it there arrives.
 * When this mailbox holds that very message at another UID already (it
 * was renumbered here after the master's copy was made, a master
 * restored from an older copy, say), moving the master's up would make
 * it twice: the master's goes instead, as renumbering, and ours (which
 * the master lacks at its uid) reaches it by the usual PULL.
 */
static void
relocate_ask(struct session *s, const struct store_conflict *k)
{
	struct store_mailbox	 mb;
	uint8_t			 b[MAILBOX_ID_LEN + 4 + GUID_LEN + 4];
	enum store_err		 err;
	int			 holds;

	err = store_mailbox_by_uniqueid(s->srv->store, k->mailbox, &mb, NULL);
	if (err == STORE_NOTFOUND) {
		/* The mailbox is gone from here: nothing left to place. */
		(void)store_conflict_set_state(s->srv->store, k->id,
		    CONFLICT_RESOLVED);
		return;
	}
	if (err != STORE_OK)
		return;		/* unread: open until the next time */
	/* Asked nothing on a guess: the conflict stays open for next time. */
	if (store_mailbox_holds(s->srv->store, k->mailbox, k->master_guid,
	    &holds) != STORE_OK)
		return;
	if (holds) {
		expunged_send(s, k, REASON_RENUMBER);
		return;
	}
	memcpy(b, k->mailbox, MAILBOX_ID_LEN);
	put32(b + MAILBOX_ID_LEN, k->uid);
	memcpy(b + MAILBOX_ID_LEN + 4, k->master_guid, GUID_LEN);
	put32(b + MAILBOX_ID_LEN + 4 + GUID_LEN, mb.uidnext);
	chan_send(s, SF_RELOCATE, b, sizeof(b));
	log_info("sync.relocate.ask", "mailbox=%s uid=%u conflict=%lld "
	    "uidnext=%u", log_quote(mb.name), k->uid, (long long)k->id,
	    mb.uidnext);
}

/*
 * Asks the master to expunge its message of conflict k (the master's
 * guid at k's uid), saying why.  The conflict stays open until the
 * record that expunges it there arrives.
 */
static void
expunged_send(struct session *s, const struct store_conflict *k,
    enum rec_reason reason)
{
	uint8_t	 b[MAILBOX_ID_LEN + 4 + GUID_LEN + 1];

	memcpy(b, k->mailbox, MAILBOX_ID_LEN);
	put32(b + MAILBOX_ID_LEN, k->uid);
	memcpy(b + MAILBOX_ID_LEN + 4, k->master_guid, GUID_LEN);
	b[sizeof(b) - 1] = (uint8_t)reason;
	chan_send(s, SF_EXPUNGED, b, sizeof(b));
	log_info("sync.expunged.tell", "mailbox=%s uid=%u conflict=%lld "
	    "reason=%s", log_quote(k->mailbox_name), k->uid,
	    (long long)k->id, rec_reason_name(reason));
}

/*
 * Conflict k is the master's message that was expunged here
 * (APPLY_EXPUNGED): the master expunges it too, for the reason our
 * tombstone keeps.
 */
static void
expunged_tell(struct session *s, const struct store_conflict *k)
{
	enum rec_reason	 reason;

	/* The reason decides what the master does: none sent on a guess. */
	if (store_tombstone_reason(s->srv->store, k->mailbox, k->uid,
	    &reason) == STORE_OK)
		expunged_send(s, k, reason);
}

/* Conflicts the master settles by a request rather than a copy. */
static const struct {
	const char	*op;
	void		(*ask)(struct session *, const struct store_conflict *);
} conflict_asks[] = {
	{ "message.reused", relocate_ask },
	{ "message.expunged", expunged_tell },
};

/* Opens conflict k's copy and sends its PUSH; 0, or -1 to skip it. */
static int
push_start(struct session *s, struct chan *c, const struct store_conflict *k)
{
	struct store		*st = s->srv->store;
	struct store_mailbox	 mb;
	struct store_message	 m;
	char			 user[USER_MAX_NAME + 1];
	uint8_t			 out[MAILBOX_ID_LEN + 8 + GUID_LEN + 8 * 3 +
				    2 + STORE_MAX_KEYWORDS + 8];
	struct wr		 w = { out, 0, sizeof(out), 0 };
	enum store_err		 err;
	uint64_t		 size;
	size_t			 i;

	for (i = 0; i < sizeof(conflict_asks) / sizeof(*conflict_asks); i++)
		if (strcmp(k->op, conflict_asks[i].op) == 0) {
			conflict_asks[i].ask(s, k);
			return -1;
		}
	if ((err = store_mailbox_by_uniqueid(st, k->mailbox, &mb, user)) ==
	    STORE_OK)
		err = store_message_get(st, mb.id, k->uid, &m);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		return -1;	/* not known: the next round asks again */
	if (err == STORE_NOTFOUND || memcmp(m.guid, k->local_guid,
	    GUID_LEN) != 0) {
		/* The copy is gone from here: nothing left to keep. */
		(void)store_conflict_set_state(st, k->id, CONFLICT_RESOLVED);
		return -1;
	}
	wr_bytes(&w, k->mailbox, MAILBOX_ID_LEN);
	wr_u64(&w, k->uid);
	wr_bytes(&w, k->local_guid, GUID_LEN);
	wr_u64(&w, m.flags);
	wr_u64(&w, (uint64_t)m.internaldate);
	wr_u64(&w, m.size);
	wr_str(&w, m.keywords ? m.keywords : "");
	wr_u64(&w, mb.uidnext);
	if (w.full || store_blob_open(st, k->local_guid, &c->push_body,
	    &size) != STORE_OK)
		return -1;
	c->push_size = size;
	c->push_off = 0;
	chan_send(s, SF_PUSH, out, w.n);
	log_info("sync.push", "mailbox=%s uid=%u conflict=%lld size=%llu",
	    log_quote(mb.name), k->uid, (long long)k->id,
	    (unsigned long long)size);
	return 0;
}

/*
 * Sends the copies to renumber, one after another, as the output
 * drains; this connection's pushes go in conflict order, each once.
 */
void
replica_push(struct session *s, struct chan *c)
{
	struct store_conflict	 k;
	enum store_err		 err;
	size_t			 n;
	int			 open_too = s->srv->settings->conflict_policy ==
				    CONFLICT_POLICY_RENUMBER;

	if ((c->state != CH_STREAM && c->state != CH_RECONCILE) ||
	    c->inv_sending || s->io != SESSION_OPEN)
		return;
	while (buf_used(&s->out) < OUTBUF_HIGH_WATER) {
		if (c->push_body != NULL) {
			n = c->push_size - c->push_off < BLOB_CHUNK_SIZE ?
			    c->push_size - c->push_off : BLOB_CHUNK_SIZE;
			if (n > 0 && store_blob_read(c->push_body,
			    c->push_off, c->zout, n) != (ssize_t)n) {
				session_close(s);
				return;
			}
			if (n > 0)
				chan_send(s, SF_PUSH_DATA, c->zout, n);
			c->push_off += n;
			if (c->push_off == c->push_size) {
				store_blob_close(c->push_body);
				c->push_body = NULL;
			}
			continue;
		}
		if ((err = store_conflict_next(s->srv->store, c->push_after,
		    open_too, &k)) != STORE_OK) {
			/*
			 * Failed, the write transaction may be lost, and a
			 * PULL recorded in it with it: the link ends, the
			 * next reconciliation asks again.
			 */
			if (err != STORE_NOTFOUND)
				session_close(s);
			return;
		}
		c->push_after = k.id;
		(void)push_start(s, c, &k);
	}
	s->resume = 1;
}
