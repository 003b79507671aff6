/*
 * sync_reconcile.c — full reconciliation, the master's side: a replica
 * the log cannot serve is compared with its master mailbox by mailbox,
 * and sent what it lacks.  The replica's side is sync_recon_replica.c;
 * the copies that travel back to be renumbered, sync_renumber.c.
 * ARCHITECTURE.md, "Replication".
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"

/* --- full reconciliation, master side ----------------------------------------- */

/*
 * A replica whose position this log cannot serve (another master or
 * epoch, or records purged since) is brought up to date by comparison,
 * never by a blind copy (ARCHITECTURE.md, "Full reconciliation"):
 *
 *	master				replica
 *	RECONCILE (head H)	->
 *				<-	INV_MAILBOX...	(uniqueid, digest)
 *				<-	INV_END
 *	records, END	->			every user, then per mailbox:
 *	INV_WANT (id, after)	->		create/rename/subscribe, and
 *				<-	INV_MSGS	for a digest that differs the
 *	records, END	->			messages compared chunk by chunk
 *	...
 *	START (H)		->		commits H as its position
 *				<-	ACK (H)
 *	records, END	->			the log from H, as usual
 *
 * The records are the log's own kinds, numbered 1, 2, ... for this run
 * only (so an ACK of their batches is no log position: only START's
 * ACK tells the master what of its log the replica holds), and the
 * replica applies them with the same GUID check as the log
 * (a same-uid different-guid pair becomes a conflict there, never an
 * overwrite).  Everything the master changes meanwhile is in its log
 * after H, and every record applies idempotently on top of what the
 * comparison sent, so streaming from H afterwards ends in the master's
 * state.  A replica that crashes half-way still follows its old position
 * and simply reconciles again.
 */

/* One mailbox of the replica's inventory, as the master keeps it. */
struct inv_mailbox {
	uint8_t		 uniqueid[MAILBOX_ID_LEN];
	uint8_t		 digest[GUID_LEN];
	int		 subscribed;
	int		 seen;		/* the master has it too */
	uint32_t	 uidvalidity, uidnext;
	int64_t		 named;		/* when a client renamed it there */
	char		 user[USER_MAX_NAME + 1];
	char		 special_use[16];
	char		*name;		/* malloc'd */
};

/* What one message of the chunk being compared needs on the replica. */
struct recon_action {
	uint32_t	 uid;
	int		 kind;
	uint8_t		 guid[GUID_LEN];	/* RA_EXPUNGE: the tombstone's */
	enum rec_reason	 reason;		/* RA_EXPUNGE: why it went */
};
#define RA_APPEND	1	/* the master's message (new there, or other) */
#define RA_FLAGS	2	/* same message, other flags */
#define RA_EXPUNGE	3	/* only there, and expunged here */

/* A subscribed name that no mailbox has (a deleted one's): sent too. */
struct recon_sub {
	const char	*user;		/* one of recon's users */
	char		*name;		/* malloc'd */
};

enum recon_phase {
	RP_INVENTORY,		/* receiving the replica's mailboxes */
	RP_USERS,		/* sending every user */
	RP_MAILBOX,		/* sending mailbox mb_i and its messages */
	RP_WAIT_LIST,		/* waiting for the replica's next chunk */
	RP_GONE_CHECK,		/* mailboxes only the replica has: adopt, */
	RP_GONE_WAIT,		/* (waiting for one's messages, gone_i) */
	RP_GONE,		/* then delete there those deleted here */
	RP_SUBSCRIBE,		/* the subscribed names that are no mailbox */
	RP_FINISH,		/* sent all; START once all is acknowledged */
	RP_STARTED,		/* START sent; reconciling until its ACK */
};

/*
 * A replica mailbox deleted here: does it hold mail this master never
 * saw (delivered there after the delete)?  Asked chunk by chunk.
 */
enum gone_verdict {
	GONE_ASK,		/* ask for its next chunk (RP_GONE_WAIT for it) */
	GONE_SEEN,		/* every message was here: delete it there */
	GONE_UNSEEN,		/* one never was: it survives */
};

struct recon {
	enum recon_phase	 phase;
	int64_t			 head;		/* START streams from here */
	int64_t			 seq;		/* this run's record numbers */
	struct inv_mailbox	*inv;		/* sorted by uniqueid */
	size_t			 ninv, invcap;
	char			**users;
	size_t			 nusers, user_i;
	uint8_t			(*mboxes)[MAILBOX_ID_LEN];
	size_t			 nmboxes, mb_i, mbcap;
	int			 plan_oom;	/* a list is short */
	struct recon_sub	*subs;
	size_t			 nsubs, sub_i;
	uint8_t			(*adopted)[MAILBOX_ID_LEN];
	size_t			 nadopted;
	/* mailbox mb_i */
	struct store_mailbox	 mb;
	char			 mb_user[USER_MAX_NAME + 1];
	struct inv_mailbox	*peer;		/* the replica's copy, or NULL */
	int			 need_create, need_rename, need_subscribe;
	int			 need_messages, more;
	uint32_t		 after;		/* compared up to this uid */
	struct recon_action	*act;		/* 2 * SYNC_RECON_CHUNK */
	size_t			 nact, act_i;
	size_t			 gone_i;
	enum gone_verdict	 gone;		/* of mailbox gone_i */
	uint32_t		 gone_after;	/* its messages seen up to */
	uint32_t		 unseen_uid;	/* the first one never here */
	uint8_t			 unseen_guid[GUID_LEN];
	/* what it did, for the log */
	unsigned long		 same, compared, sent_msgs, local_only;
};

void
recon_free(struct recon *r)
{
	size_t	 i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ninv; i++)
		free(r->inv[i].name);
	for (i = 0; i < r->nusers; i++)
		free(r->users[i]);
	for (i = 0; i < r->nsubs; i++)
		free(r->subs[i].name);
	free(r->subs);
	free(r->inv);
	free(r->users);
	free(r->mboxes);
	free(r->adopted);
	free(r->act);
	free(r);
}

/* The log cannot serve this replica: compare instead (see above). */
void
recon_start(struct session *s, struct chan *c)
{
	struct recon	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->act = calloc(2 * SYNC_RECON_CHUNK, sizeof(*r->act))) == NULL ||
	    deflateInit(&c->z, BLOB_ZLIB_LEVEL) != Z_OK) {
		recon_free(r);
		session_close(s);
		return;
	}
	c->z_ok = 1;
	c->recon = r;
	c->state = CH_RECONCILE;
	c->sent = c->acked = 0;
	r->phase = RP_INVENTORY;
	if ((r->head = store_replog_shippable(s->srv->store)) < 0) {
		/* Not knowing what may ship, ship nothing: again later. */
		session_close(s);
		return;
	}
	c->recon_head = r->head;	/* the log is kept from here */
	chan_send_head(s, SF_RECONCILE, r->head);
	log_info("sync.reconcile.start", "name=%s peer=%s head=%lld",
	    log_quote(c->name), s->peer, (long long)r->head);
}

/*
 * INV_MAILBOX: one replica mailbox, kept until the plan is made.  Its
 * UIDNEXT will raise ours (recon_plan, recon_adopt): one no split can
 * reach drops the link (returns 0 then, the frame taken).
 */
static int
recon_inventory(struct session *s, struct recon *r, const uint8_t *p,
    size_t n)
{
	struct rd		 d = { p, n, 0, 0 };
	struct inv_mailbox	*grown, *m;
	const uint8_t		*id, *digest;
	char			 name[MAILBOX_MAX_NAME + 1];
	char			 user[USER_MAX_NAME + 1], special_use[16];
	uint64_t		 uidvalidity, uidnext, named;
	int			 subscribed;

	id = rd_bytes(&d, MAILBOX_ID_LEN);
	digest = rd_bytes(&d, GUID_LEN);
	rd_str(&d, name, sizeof(name));
	subscribed = rd_u8(&d) != 0;
	rd_str(&d, user, sizeof(user));
	uidvalidity = rd_u64(&d);
	rd_str(&d, special_use, sizeof(special_use));
	uidnext = rd_u64(&d);
	named = rd_u64(&d);
	if (d.bad || d.off != n || r->ninv == SYNC_RECON_MAX_MAILBOXES ||
	    uidvalidity == 0 || uidvalidity > UINT32_MAX ||
	    uidnext > UINT32_MAX || named > INT64_MAX)
		return -1;
	if (peer_uidnext_check(s, id, uidnext, "INV_MAILBOX") < 0)
		return 0;
	if (r->ninv == r->invcap) {
		r->invcap = r->invcap ? 2 * r->invcap : 64;
		if ((grown = reallocarray(r->inv, r->invcap,
		    sizeof(*grown))) == NULL)
			return -1;
		r->inv = grown;
	}
	m = &r->inv[r->ninv];
	memcpy(m->uniqueid, id, MAILBOX_ID_LEN);
	memcpy(m->digest, digest, GUID_LEN);
	m->subscribed = subscribed;
	m->seen = 0;
	m->uidvalidity = (uint32_t)uidvalidity;
	m->uidnext = (uint32_t)uidnext;
	m->named = (int64_t)named;
	memcpy(m->user, user, sizeof(m->user));
	memcpy(m->special_use, special_use, sizeof(m->special_use));
	if ((m->name = strdup(name)) == NULL)
		return -1;
	r->ninv++;
	return 0;
}

static int
inv_cmp(const void *a, const void *b)
{
	return memcmp(((const struct inv_mailbox *)a)->uniqueid,
	    ((const struct inv_mailbox *)b)->uniqueid, MAILBOX_ID_LEN);
}

static int
plan_user(void *arg, const char *name, int64_t created)
{
	struct recon	*r = arg;
	char		**grown;

	(void)created;
	if ((grown = reallocarray(r->users, r->nusers + 1,
	    sizeof(*grown))) == NULL)
		return r->plan_oom = 1;
	r->users = grown;
	if ((r->users[r->nusers] = strdup(name)) == NULL)
		return r->plan_oom = 1;
	r->nusers++;
	return 0;
}

static int
plan_mailbox(void *arg, const uint8_t *uniqueid)
{
	struct recon	*r = arg;
	uint8_t		(*grown)[MAILBOX_ID_LEN];
	size_t		 cap;

	if (r->nmboxes == r->mbcap) {
		cap = r->mbcap ? 2 * r->mbcap : 64;
		if ((grown = reallocarray(r->mboxes, cap,
		    sizeof(*grown))) == NULL)
			return r->plan_oom = 1;
		r->mboxes = grown;
		r->mbcap = cap;
	}
	memcpy(r->mboxes[r->nmboxes++], uniqueid, MAILBOX_ID_LEN);
	return 0;
}

/* Adds user_i's subscribed name without a mailbox to the plan. */
static int
plan_subscription(void *arg, const char *name)
{
	struct recon		*r = arg;
	struct recon_sub	*grown;

	if ((grown = reallocarray(r->subs, r->nsubs + 1,
	    sizeof(*grown))) == NULL)
		return r->plan_oom = 1;
	r->subs = grown;
	if ((r->subs[r->nsubs].name = strdup(name)) == NULL)
		return r->plan_oom = 1;
	r->subs[r->nsubs++].user = r->users[r->user_i];
	return 0;
}

/* INV_END: the inventory is complete; list what this side has. */
static int
recon_plan(struct session *s, struct recon *r)
{
	struct inv_mailbox	 key = { 0 }, *m;
	size_t			 i;

	if (r->ninv > 0)
		qsort(r->inv, r->ninv, sizeof(*r->inv), inv_cmp);
	/* A list cut short would read as users and mailboxes deleted. */
	if (store_user_foreach(s->srv->store, plan_user, r) != STORE_OK ||
	    store_mailbox_ids(s->srv->store, plan_mailbox, r) != STORE_OK ||
	    r->plan_oom)
		return -1;
	for (r->user_i = 0; r->user_i < r->nusers; r->user_i++)
		if (store_subscribed_absent(s->srv->store,
		    r->users[r->user_i], plan_subscription, r) != STORE_OK ||
		    r->plan_oom)
			return -1;
	r->user_i = 0;
	for (i = 0; i < r->nmboxes && r->ninv > 0; i++) {
		memcpy(key.uniqueid, r->mboxes[i], MAILBOX_ID_LEN);
		if ((m = bsearch(&key, r->inv, r->ninv, sizeof(*r->inv),
		    inv_cmp)) == NULL)
			continue;
		m->seen = 1;
		/*
		 * UIDs the replica gave out while split off stay taken; a
		 * relay's UIDNEXT is its master's alone.
		 */
		if (!sync_is_replica() && store_mailbox_raise_uidnext(
		    s->srv->store, m->uniqueid, m->uidnext) != STORE_OK)
			return -1;
	}
	log_info("sync.reconcile.plan", "peer=%s replica_mailboxes=%zu "
	    "users=%zu mailboxes=%zu subscriptions=%zu", s->peer, r->ninv,
	    r->nusers, r->nmboxes, r->nsubs);
	r->phase = RP_USERS;
	return 0;
}

/* Asks the replica for its messages of mailbox mb_i after r->after. */
static void
recon_want(struct session *s, struct recon *r)
{
	uint8_t	 b[MAILBOX_ID_LEN + 4];

	memcpy(b, r->mb.uniqueid, MAILBOX_ID_LEN);
	put32(b + MAILBOX_ID_LEN, r->after);
	chan_send(s, SF_INV_WANT, b, sizeof(b));
	r->phase = RP_WAIT_LIST;
}

/* One entry of the replica's chunk, pointing into the frame. */
struct inv_msg {
	uint32_t	 uid;
	uint32_t	 flags;
	const uint8_t	*guid;
	char		 keywords[STORE_MAX_KEYWORDS];
};

/* The merge of the master's messages with the replica's chunk. */
struct merge {
	struct session	*s;
	struct recon	*r;
	struct rd	 d;		/* the replica's entries still unread */
	size_t		 left;		/* how many */
	struct inv_msg	 e;		/* the current one, when have */
	int		 have;
	int		 count;		/* master messages seen */
	uint32_t	 last_uid;
	int		 failed;	/* a store look-up failed */
};

static void
merge_read(struct merge *m)
{
	m->have = 0;
	if (m->left == 0)
		return;
	m->left--;
	m->e.uid = (uint32_t)rd_u64(&m->d);
	m->e.flags = (uint32_t)rd_u64(&m->d);
	m->e.guid = rd_bytes(&m->d, GUID_LEN);
	rd_str(&m->d, m->e.keywords, sizeof(m->e.keywords));
	m->have = !m->d.bad;
}

static void
merge_action(struct recon *r, int kind, uint32_t uid, const uint8_t *guid)
{
	struct recon_action	*a;

	assert(r->nact < 2 * SYNC_RECON_CHUNK);
	a = &r->act[r->nact++];
	a->kind = kind;
	a->uid = uid;
	a->reason = REASON_RECONCILE;
	if (guid != NULL)
		memcpy(a->guid, guid, GUID_LEN);
}

/*
 * Whether the replica's (uid, guid) of mailbox uniqueid is a copy that
 * was renumbered, and lives here at its new UID already: this master
 * renumbered it (another replica brought it first), or it took the
 * message from a record that said from which UID it was renumbered
 * (record.h), streamed or in a reconciliation, or this master was the
 * replica of that renumbering.  Then it kept the tombstone of its
 * own message at uid, the other one of the pair, and holds this one
 * higher up; the node that held this one at uid may come back from a
 * copy made before the renumbering.  A uid renumbered here names no
 * message here any more, so a copy of a message this mailbox holds is
 * no message this master lacks.  Nor is a copy of a message this master
 * holds at the UID it gave a renumbered copy of it: a message that only
 * one node held and that was renumbered twice (this master came back
 * from a copy made before its first renumbering, and the node it came
 * from did too) reaches a replica of the first at another UID than the
 * second gave it, and is the same message, not a second one.  1 or 0;
 * -1 when a look-up failed (no answer to act on).
 */
static int
renumbered_here(struct store *st, const uint8_t *uniqueid, uint32_t uid,
    const uint8_t *guid)
{
	enum rec_reason	 reason;
	int		 yes = 0;

	if (store_was_renumbered(st, uniqueid, uid, guid, &yes) != STORE_OK)
		return -1;
	if (!yes && store_renumbered_held(st, uniqueid, guid, &yes) !=
	    STORE_OK)
		return -1;
	if (yes)
		return 1;
	if (store_tombstone_reason(st, uniqueid, uid, &reason) != STORE_OK)
		return -1;
	if (reason == REASON_RENUMBER && store_mailbox_holds(st, uniqueid,
	    guid, &yes) != STORE_OK)
		return -1;
	return yes;
}

/*
 * A uid only the replica has: expunged here (the same guid's tombstone)
 * means expunge it there, for the reason the tombstone keeps, and so
 * does a copy renumbered already (renumbered_here: it lives at its new
 * UID, which this comparison copies), as renumbering, which the
 * mass-delete guard does not count; otherwise this master never had it
 * (it came to an old master and never left), so the replica is asked
 * for it (PULL) and keeps it until this master has it under a new UID.
 * A relay asks for nothing: only the master numbers.  A store look-up
 * that fails decides nothing: m->failed, and the comparison fails.
 */
static void
merge_replica_only(struct merge *m)
{
	struct store	*st = m->s->srv->store;
	uint8_t		 gone[GUID_LEN], b[MAILBOX_ID_LEN + 4 + GUID_LEN];
	char		 hex[GUID_HEX_LEN + 1];
	enum store_err	 err;
	enum rec_reason	 reason;
	int		 again;

	err = store_tombstone_guid(st, m->r->mb.uniqueid, m->e.uid, gone);
	if (err == STORE_OK && memcmp(gone, m->e.guid, GUID_LEN) == 0) {
		if (store_tombstone_reason(st, m->r->mb.uniqueid, m->e.uid,
		    &reason) != STORE_OK) {
			m->failed = 1;
			return;
		}
		merge_action(m->r, RA_EXPUNGE, m->e.uid, m->e.guid);
		m->r->act[m->r->nact - 1].reason = reason;
		return;
	}
	if ((err != STORE_OK && err != STORE_NOTFOUND) ||
	    (again = renumbered_here(st, m->r->mb.uniqueid, m->e.uid,
	    m->e.guid)) < 0) {
		m->failed = 1;
		return;
	}
	if (again) {
		merge_action(m->r, RA_EXPUNGE, m->e.uid, m->e.guid);
		m->r->act[m->r->nact - 1].reason = REASON_RENUMBER;
		return;
	}
	m->r->local_only++;
	crypto_hex(m->e.guid, GUID_LEN, hex);
	if (sync_is_replica()) {
		/* A relay: only its master may take it in and number it. */
		log_warn("sync.reconcile.local_only", "peer=%s mailbox=%s "
		    "uid=%u guid=%s msg=\"only on the replica; this node is a "
		    "replica: left to its master\"", m->s->peer,
		    log_quote(m->r->mb.name), m->e.uid, hex);
		return;
	}
	log_warn("sync.reconcile.local_only", "peer=%s mailbox=%s uid=%u "
	    "guid=%s msg=\"only on the replica: asked for it\"", m->s->peer,
	    log_quote(m->r->mb.name), m->e.uid, hex);
	memcpy(b, m->r->mb.uniqueid, MAILBOX_ID_LEN);
	put32(b + MAILBOX_ID_LEN, m->e.uid);
	memcpy(b + MAILBOX_ID_LEN + 4, m->e.guid, GUID_LEN);
	chan_send(m->s, SF_PULL, b, sizeof(b));
}

/* One master message against the replica's entries (uid order). */
static int
merge_one(void *arg, const struct store_message *msg)
{
	struct merge	*m = arg;

	while (m->have && m->e.uid < msg->uid && !m->failed) {
		merge_replica_only(m);
		merge_read(m);
	}
	if (m->failed)
		return 1;	/* the comparison fails */
	if (m->have && m->e.uid == msg->uid) {
		if (memcmp(m->e.guid, msg->guid, GUID_LEN) != 0)
			merge_action(m->r, RA_APPEND, msg->uid, NULL);
		else if (m->e.flags != msg->flags || strcmp(m->e.keywords,
		    msg->keywords ? msg->keywords : "") != 0)
			merge_action(m->r, RA_FLAGS, msg->uid, NULL);
		merge_read(m);
	} else
		merge_action(m->r, RA_APPEND, msg->uid, NULL);
	m->last_uid = msg->uid;
	return ++m->count == SYNC_RECON_CHUNK;
}

/*
 * Compares the master's messages of mailbox mb_i in (after, hi] with the
 * replica's n entries there (p, n bytes), at most SYNC_RECON_CHUNK of
 * the master's: when there are more, the chunk ends at the last one
 * taken and the rest of the replica's entries come again next time.
 */
static int
recon_compare(struct session *s, struct recon *r, const uint8_t *p,
    size_t len, size_t n, uint32_t hi, int last)
{
	struct merge	 m = { s, r, { p, len, 0, 0 }, n, { 0 }, 0, 0, 0, 0 };

	r->nact = r->act_i = 0;
	merge_read(&m);
	if (store_message_range(s->srv->store, r->mb.id, r->after, hi,
	    SYNC_RECON_CHUNK, merge_one, &m) != STORE_OK || m.d.bad ||
	    m.failed)
		return -1;
	if (m.count == SYNC_RECON_CHUNK && m.last_uid < hi) {
		hi = m.last_uid;
		last = 0;
	}
	while (m.have && m.e.uid <= hi && !m.failed) {
		merge_replica_only(&m);
		merge_read(&m);
	}
	if (m.d.bad || m.failed)
		return -1;
	r->compared += (unsigned long)m.count;
	r->after = hi;
	r->more = !last;
	r->phase = RP_MAILBOX;
	return 0;
}

/* INV_MSGS: the replica's chunk of the mailbox asked for. */
static int
recon_list(struct session *s, struct recon *r, const uint8_t *p, size_t n)
{
	struct rd	 d = { p, n, 0, 0 };
	const uint8_t	*id;
	uint32_t	 after, hi, count;
	int		 last;

	id = rd_bytes(&d, MAILBOX_ID_LEN);
	after = (uint32_t)rd_u64(&d);
	hi = (uint32_t)rd_u64(&d);
	last = rd_u8(&d);
	count = (uint32_t)rd_u64(&d);
	if (d.bad || r->phase != RP_WAIT_LIST || memcmp(id, r->mb.uniqueid,
	    MAILBOX_ID_LEN) != 0 || after != r->after || hi <= after ||
	    count > SYNC_RECON_CHUNK)
		return -1;
	return recon_compare(s, r, p + d.off, n - d.off, count, hi, last);
}

/* Fills c->rec with one record of the type, for mailbox mb_i. */
static void
recon_record(struct chan *c, enum rec_type type)
{
	struct recon	*r = c->recon;

	memset(&c->rec, 0, sizeof(c->rec));
	c->rec.seq = ++r->seq;
	c->rec.time = time(NULL);
	c->rec.type = type;
	c->rec.reason = REASON_RECONCILE;
	snprintf(c->rec.user, sizeof(c->rec.user), "%s", r->mb_user);
	c->rec.has_mailbox = 1;
	memcpy(c->rec.mailbox, r->mb.uniqueid, MAILBOX_ID_LEN);
	snprintf(c->rec.name, sizeof(c->rec.name), "%s", r->mb.name);
	if (type == REC_MAILBOX_RENAME)
		c->rec.internaldate = r->mb.named;
}

/*
 * A message record for action act_i: 1, or 0 when it is gone meanwhile,
 * -1 when the store failed.
 */
static int
recon_message(struct session *s, struct chan *c, struct recon_action *a)
{
	struct recon		*r = c->recon;
	struct store_message	 m;
	uint32_t		 from = 0;

	if (a->kind == RA_EXPUNGE) {
		recon_record(c, REC_MESSAGE_EXPUNGE);
		/* It relays the tombstone's delete, which says why. */
		c->rec.reason = a->reason;
		c->rec.uid = a->uid;
		c->rec.has_guid = 1;
		memcpy(c->rec.guid, a->guid, GUID_LEN);
		return 1;
	}
	switch (store_message_get(s->srv->store, r->mb.id, a->uid, &m)) {
	case STORE_OK:
		break;
	case STORE_NOTFOUND:
		return 0;	/* expunged since: the log says so */
	default:
		return -1;	/* never skipped as if expunged */
	}
	recon_record(c, a->kind == RA_APPEND ? REC_MESSAGE_APPEND :
	    REC_MESSAGE_FLAGS);
	c->rec.uid = m.uid;
	c->rec.has_guid = 1;
	memcpy(c->rec.guid, m.guid, GUID_LEN);
	c->rec.modseq = m.modseq;
	c->rec.flags = m.flags;
	snprintf(c->rec.keywords, sizeof(c->rec.keywords), "%s",
	    m.keywords ? m.keywords : "");
	c->rec.internaldate = m.internaldate;
	/* An append's time is its save date, which the replica keeps. */
	if (a->kind == RA_APPEND)
		c->rec.time = m.savedate;
	/* Where a renumbering moved it from travels with it (record.h). */
	if (a->kind == RA_APPEND) {
		if (store_renumbered_from(s->srv->store, r->mb.uniqueid,
		    m.uid, m.guid, &from) != STORE_OK)
			return -1;
		rec_from_text(from, c->rec.value);
	}
	r->sent_msgs += a->kind == RA_APPEND;
	return 1;
}

/*
 * A client renamed the replica's copy of mailbox r->mb after this
 * master's name was given (this master came back from an older copy,
 * or that rename never reached it before a failover): the newer name
 * wins, so this master takes it, and its log brings it to the other
 * replicas.  A relay (a replica itself) renames nothing: the newer
 * name stays on the replica, left to its master.  Returns 1 when the
 * names are the same now, or the replica's is left; 0 when this
 * master's name stands (it is the newer, or the replica's is taken
 * here by another mailbox, or refused); -1 when the look-up of that
 * name or the rename failed in the store (the comparison fails rather
 * than overwrite the newer name).
 */
static int
recon_adopt_name(struct session *s, struct recon *r,
    const struct inv_mailbox *peer)
{
	struct store		*st = s->srv->store;
	struct store_mailbox	 other;
	enum store_apply	 what;
	enum store_err		 err;

	if (peer->named > r->mb.named && sync_is_replica()) {
		log_warn("sync.reconcile.rename", "peer=%s user=%s mailbox=%s "
		    "to=%s msg=\"renamed on the replica after this name was "
		    "given; this node is a replica: left to its master\"",
		    s->peer, log_quote(r->mb_user), log_quote(r->mb.name),
		    log_quote(peer->name));
		return 1;
	}
	if (peer->named <= r->mb.named)
		return 0;
	if ((err = store_mailbox_get(st, r->mb_user, peer->name, &other)) !=
	    STORE_NOTFOUND)
		return err == STORE_OK ? 0 : -1;	/* taken, or not known */
	err = store_apply_mailbox_rename(st, r->mb.uniqueid, peer->name,
	    peer->named, &what);
	log_warn("sync.reconcile.rename", "peer=%s user=%s mailbox=%s to=%s "
	    "result=%s msg=\"renamed on the replica after this name was "
	    "given: the newer name wins\"", s->peer, log_quote(r->mb_user),
	    log_quote(r->mb.name), log_quote(peer->name),
	    store_strerror(err));
	if (err == STORE_EXISTS || err == STORE_INVALID || err == STORE_LIMIT)
		return 0;	/* refused: this master's name stands */
	/* A store that failed decided nothing: the reconciliation ends. */
	if (err != STORE_OK || store_mailbox_by_uniqueid(st, r->mb.uniqueid,
	    &r->mb, r->mb_user) != STORE_OK)
		return -1;
	return 1;
}

/*
 * Opens mailbox mb_i: what its replica copy lacks.  Returns 0 to go on,
 * 1 when the mailbox is gone meanwhile (skip it), or -1 when the store
 * failed: skipping it then would leave the replica without its changes
 * and believing it caught up.
 */
static int
recon_open_mailbox(struct session *s, struct recon *r)
{
	struct inv_mailbox	 key = { 0 }, *peer;
	uint8_t			 digest[GUID_LEN];
	enum store_err		 err;
	int			 adopted;

	if ((err = store_mailbox_by_uniqueid(s->srv->store, r->mboxes[r->mb_i],
	    &r->mb, r->mb_user)) != STORE_OK)
		return err == STORE_NOTFOUND ? 1 : -1;
	memcpy(key.uniqueid, r->mb.uniqueid, MAILBOX_ID_LEN);
	peer = r->ninv == 0 ? NULL : bsearch(&key, r->inv, r->ninv,
	    sizeof(*r->inv), inv_cmp);
	r->peer = peer;
	r->after = 0;
	r->more = 1;
	r->nact = r->act_i = 0;
	/* A new UIDVALIDITY (a restored master's) goes as a create too. */
	r->need_create = peer == NULL || peer->uidvalidity !=
	    r->mb.uidvalidity;
	r->need_rename = 0;
	if (peer != NULL && strcmp(peer->name, r->mb.name) != 0) {
		if ((adopted = recon_adopt_name(s, r, peer)) < 0)
			return -1;
		r->need_rename = !adopted;
	}
	/*
	 * The name's subscription is the master's.  A create only ever
	 * subscribes: an unsubscribed mailbox made there also goes with
	 * an unsubscribe, for the replica may still hold its name's
	 * subscription (a deleted mailbox's stays).
	 */
	r->need_subscribe = (r->need_create && r->mb.subscribed == 0) ||
	    (peer != NULL && peer->subscribed != (r->mb.subscribed != 0));
	r->need_messages = 1;
	if (peer != NULL) {
		if (store_mailbox_digest(s->srv->store, r->mb.id, digest) ==
		    STORE_OK && memcmp(digest, peer->digest, GUID_LEN) == 0) {
			r->need_messages = 0;
			r->same++;
		}
	}
	return 0;
}

/*
 * Moves to the first mailbox from mb_i on that is still there.  Returns
 * 0, or -1 when the store failed.
 */
static int
recon_seek_mailbox(struct session *s, struct recon *r)
{
	int	 rc;

	while (r->mb_i < r->nmboxes && (rc = recon_open_mailbox(s, r)) != 0) {
		if (rc < 0)
			return -1;
		r->mb_i++;
	}
	return 0;
}

/*
 * The next record of mailbox mb_i into c->rec: 1 when there is one, 0
 * when the mailbox is done or the replica's chunk must come first, -1
 * when the store failed.
 */
static int
recon_mailbox_next(struct session *s, struct chan *c)
{
	struct recon	*r = c->recon;
	int		 k;

	if (r->need_create) {
		r->need_create = 0;
		recon_record(c, REC_MAILBOX_CREATE);
		c->rec.uid = r->mb.uidvalidity;
		c->rec.flags = r->mb.subscribed != 0;
		snprintf(c->rec.value, sizeof(c->rec.value), "%s",
		    r->mb.special_use);
		return 1;
	}
	if (r->need_rename) {
		r->need_rename = 0;
		recon_record(c, REC_MAILBOX_RENAME);
		return 1;
	}
	if (r->need_subscribe) {
		r->need_subscribe = 0;
		recon_record(c, REC_USER_SUBSCRIBE);
		c->rec.flags = r->mb.subscribed != 0;
		return 1;
	}
	while (r->act_i < r->nact)
		if ((k = recon_message(s, c, &r->act[r->act_i++])) != 0)
			return k;
	if (!r->need_messages || !r->more)
		return 0;
	if (r->peer != NULL)
		recon_want(s, r);
	else if (recon_compare(s, r, NULL, 0, 0, UINT32_MAX, 1) < 0)
		session_close(s);
	else
		return recon_mailbox_next(s, c);
	return 0;
}

/*
 * A user record for user_i: user.add carries the password hash.  Returns
 * 1 with the record, 0 when the user was deleted since (the log says
 * so), -1 when the store failed.
 */
static int
recon_user(struct session *s, struct chan *c, const char *name)
{
	char		*pw;
	enum store_err	 err;

	if ((err = store_user_password(s->srv->store, name, &pw)) != STORE_OK)
		return err == STORE_NOTFOUND ? 0 : -1;
	memset(&c->rec, 0, sizeof(c->rec));
	c->rec.seq = ++c->recon->seq;
	c->rec.time = time(NULL);
	c->rec.type = REC_USER_ADD;
	c->rec.reason = REASON_RECONCILE;
	snprintf(c->rec.user, sizeof(c->rec.user), "%s", name);
	snprintf(c->rec.value, sizeof(c->rec.value), "%s", pw);
	free(pw);
	return 1;
}

/*
 * Creates here, with its identity and UIDVALIDITY, a replica mailbox
 * this master never had (created on an old master during a split), under
 * another name when this one is taken; its messages are then compared
 * like any other mailbox's (all PULLed).  Returns 0, or -1 when its
 * owner is not here (it stays on the replica, logged).
 */
static int
recon_adopt(struct session *s, struct recon *r, struct inv_mailbox *m)
{
	struct store_mailbox	 mb;
	enum store_apply	 what;
	enum store_err		 err;
	enum rec_reason		 was;
	uint8_t			(*grown)[MAILBOX_ID_LEN];
	char			 hex[MAILBOX_ID_LEN * 2 + 1];
	char			 name[MAILBOX_MAX_NAME + 1];

	crypto_hex(m->uniqueid, MAILBOX_ID_LEN, hex);
	snprintf(name, sizeof(name), "%s", m->name);
	if (store_mailbox_get(s->srv->store, m->user, name, &mb) == STORE_OK)
		snprintf(name, sizeof(name), "%.*s-%.8s", MAILBOX_MAX_NAME - 9,
		    m->name, hex);
	if ((grown = reallocarray(r->adopted, r->nadopted + 1,
	    sizeof(*grown))) == NULL)
		return -1;
	r->adopted = grown;
	was = store_set_reason(s->srv->store, REASON_RECONCILE);
	err = store_apply_mailbox_create(s->srv->store, m->user, m->uniqueid,
	    name, m->uidvalidity, m->special_use, m->subscribed, &what);
	(void)store_set_reason(s->srv->store, was);
	if (err != STORE_OK || what != APPLY_DONE) {
		log_warn("sync.reconcile.local_mailbox", "peer=%s user=%s "
		    "mailbox=%s id=%s msg=\"only on the replica, and cannot "
		    "be created here; kept there\"", s->peer,
		    log_quote(m->user), log_quote(m->name), hex);
		return -1;
	}
	if (store_mailbox_raise_uidnext(s->srv->store, m->uniqueid,
	    m->uidnext) != STORE_OK)
		return -1;
	log_info("sync.reconcile.adopt", "peer=%s user=%s mailbox=%s as=%s "
	    "id=%s", s->peer, log_quote(m->user), log_quote(m->name),
	    log_quote(name), hex);
	memcpy(r->adopted[r->nadopted++], m->uniqueid, MAILBOX_ID_LEN);
	return 0;
}

/*
 * A mailbox deleted here that took mail on the replica this master never
 * saw (acknowledged there after the delete, during a split) survives:
 * it is made again here under its identity and UIDVALIDITY, past every
 * UID either side gave out, and compared like an adopted one (what this
 * master deleted goes there too, the rest is renumbered here).  The
 * conflict is recorded, resolved, for `conflicts list`.
 */
static void
recon_revive(struct session *s, struct recon *r, struct inv_mailbox *m)
{
	struct store_conflict	 k;
	char			 hex[GUID_HEX_LEN + 1];

	crypto_hex(r->unseen_guid, GUID_LEN, hex);
	log_warn("sync.reconcile.revive", "peer=%s user=%s mailbox=%s "
	    "uid=%u guid=%s msg=\"deleted here, but took mail there this "
	    "node never saw: made again\"", s->peer, log_quote(m->user),
	    log_quote(m->name), r->unseen_uid, hex);
	if (recon_adopt(s, r, m) < 0)
		return;
	memset(&k, 0, sizeof(k));
	snprintf(k.user, sizeof(k.user), "%s", m->user);
	memcpy(k.mailbox, m->uniqueid, MAILBOX_ID_LEN);
	snprintf(k.mailbox_name, sizeof(k.mailbox_name), "%s", m->name);
	k.uid = r->unseen_uid;
	memcpy(k.local_guid, r->unseen_guid, GUID_LEN);
	snprintf(k.op, sizeof(k.op), "mailbox.delete");
	if (store_conflict_add(s->srv->store, &k) == STORE_OK)
		(void)store_conflict_set_state(s->srv->store, k.id,
		    CONFLICT_RESOLVED);
}

/*
 * INV_MSGS for the deleted mailbox gone_i: a message with no tombstone
 * of the same uid and guid here is mail this master never saw.
 */
static int
recon_gone_list(struct session *s, struct recon *r, const uint8_t *p,
    size_t n)
{
	struct inv_mailbox	*m = &r->inv[r->gone_i];
	struct merge		 g = { s, r, { p, n, 0, 0 }, 0, { 0 }, 0, 0, 0, 0 };
	const uint8_t		*id;
	uint8_t			 gone[GUID_LEN];
	enum store_err		 err;
	uint32_t		 after, hi;
	int			 last;

	if ((id = rd_bytes(&g.d, MAILBOX_ID_LEN)) == NULL ||
	    memcmp(id, m->uniqueid, MAILBOX_ID_LEN) != 0)
		return -1;
	after = (uint32_t)rd_u64(&g.d);
	hi = (uint32_t)rd_u64(&g.d);
	last = rd_u8(&g.d);
	g.left = (size_t)rd_u64(&g.d);
	if (g.d.bad || after != r->gone_after || hi <= after ||
	    g.left > SYNC_RECON_CHUNK)
		return -1;
	r->gone = last ? GONE_SEEN : GONE_ASK;
	for (merge_read(&g); g.have; merge_read(&g)) {
		err = store_tombstone_guid(s->srv->store, m->uniqueid, g.e.uid,
		    gone);
		if (err != STORE_OK && err != STORE_NOTFOUND)
			return -1;	/* unread is not unseen */
		if (err == STORE_OK && memcmp(gone, g.e.guid, GUID_LEN) == 0)
			continue;
		r->gone = GONE_UNSEEN;
		r->unseen_uid = g.e.uid;
		memcpy(r->unseen_guid, g.e.guid, GUID_LEN);
		break;
	}
	if (g.d.bad)
		return -1;
	r->gone_after = hi;
	r->phase = RP_GONE_CHECK;
	return 0;
}

/*
 * A replica mailbox a relay (a replica itself) would take in or make
 * again: only its master may, so it stays on the replica as it is,
 * neither created here nor deleted there, until the replica meets a
 * master.
 */
static void
recon_leave(struct session *s, struct inv_mailbox *m, const char *why)
{
	char	 hex[MAILBOX_ID_LEN * 2 + 1];

	crypto_hex(m->uniqueid, MAILBOX_ID_LEN, hex);
	log_warn("sync.reconcile.local_mailbox", "peer=%s user=%s mailbox=%s "
	    "id=%s msg=\"%s; this node is a replica: left to its master\"",
	    s->peer, log_quote(m->user), log_quote(m->name), hex, why);
}

/*
 * A replica mailbox this master does not have: never replicated, it is
 * adopted here.  Deleted here (its tombstone), its messages are asked
 * for first: one never seen here means it survives (recon_revive());
 * all of them seen leave it for RP_GONE, which deletes it there.  The
 * deletes go after every check, together, so the replica's mass-delete
 * guard weighs them in one batch.  A relay adopts and revives nothing
 * (recon_leave()).  Returns 0 when done with it, -1 while waiting for
 * the replica.
 */
static int
recon_gone_check(struct session *s, struct recon *r, struct inv_mailbox *m)
{
	uint8_t		 b[MAILBOX_ID_LEN + 4];
	int		 deleted;

	if (store_mailbox_was_deleted(s->srv->store, m->uniqueid,
	    &deleted) != STORE_OK) {
		/* Neither adopted nor deleted on a guess: try again later. */
		session_close(s);
		return -1;
	}
	if (!deleted) {
		if (sync_is_replica())
			recon_leave(s, m, "only on the replica");
		else
			(void)recon_adopt(s, r, m);
		return 0;
	}
	switch (r->gone) {
	case GONE_ASK:
		memcpy(b, m->uniqueid, MAILBOX_ID_LEN);
		put32(b + MAILBOX_ID_LEN, r->gone_after);
		chan_send(s, SF_INV_WANT, b, sizeof(b));
		r->phase = RP_GONE_WAIT;
		return -1;
	case GONE_UNSEEN:
		if (sync_is_replica())
			recon_leave(s, m, "deleted here, but took mail there "
			    "this node never saw");
		else
			recon_revive(s, r, m);
		m->seen = 1;
		break;
	case GONE_SEEN:
		break;
	}
	return 0;
}

/*
 * The delete record for replica mailbox m when it was deleted here: 1,
 * else 0; -1 when the store cannot say.
 */
static int
recon_gone_delete(struct session *s, struct chan *c, struct inv_mailbox *m)
{
	int	 deleted;

	if (store_mailbox_was_deleted(s->srv->store, m->uniqueid,
	    &deleted) != STORE_OK)
		return -1;
	if (!deleted)
		return 0;
	memset(&c->rec, 0, sizeof(c->rec));
	c->rec.seq = ++c->recon->seq;
	c->rec.time = time(NULL);
	c->rec.type = REC_MAILBOX_DELETE;
	c->rec.reason = REASON_RECONCILE;
	snprintf(c->rec.user, sizeof(c->rec.user), "%s", m->user);
	c->rec.has_mailbox = 1;
	memcpy(c->rec.mailbox, m->uniqueid, MAILBOX_ID_LEN);
	snprintf(c->rec.name, sizeof(c->rec.name), "%s", m->name);
	return 1;
}

/*
 * After the replica-only mailboxes: the adopted ones come first in the
 * list of mailboxes to compare (their names are settled before any
 * other mailbox's), then every mailbox this master had.
 */
static int
recon_list_adopted(struct recon *r)
{
	uint8_t	(*all)[MAILBOX_ID_LEN];

	if (r->nadopted == 0)
		return 0;
	if ((all = calloc(r->nadopted + r->nmboxes, sizeof(*all))) == NULL)
		return -1;
	memcpy(all, r->adopted, r->nadopted * sizeof(*all));
	if (r->nmboxes > 0)
		memcpy(all + r->nadopted, r->mboxes, r->nmboxes *
		    sizeof(*all));
	free(r->mboxes);
	r->mboxes = all;
	r->nmboxes += r->nadopted;
	r->mbcap = r->nmboxes;
	return 0;
}

/*
 * A subscription whose mailbox is gone into c->rec.  One the replica
 * has and this master does not stays there: deletes need evidence.
 */
static void
recon_subscription(struct chan *c, const struct recon_sub *sub)
{
	memset(&c->rec, 0, sizeof(c->rec));
	c->rec.seq = ++c->recon->seq;
	c->rec.time = time(NULL);
	c->rec.type = REC_USER_SUBSCRIBE;
	c->rec.reason = REASON_RECONCILE;
	c->rec.flags = 1;
	snprintf(c->rec.user, sizeof(c->rec.user), "%s", sub->user);
	snprintf(c->rec.name, sizeof(c->rec.name), "%s", sub->name);
}

/*
 * The next reconciliation record into c->rec: STORE_OK, or
 * STORE_NOTFOUND when there is none to send now (waiting for the
 * replica, or all sent).
 */
enum store_err
recon_next(struct session *s, struct chan *c)
{
	struct recon		*r = c->recon;
	struct inv_mailbox	*m;
	int			 k;

	for (;;) {
		switch (r->phase) {
		case RP_INVENTORY:
		case RP_WAIT_LIST:
		case RP_GONE_WAIT:
		case RP_FINISH:
		case RP_STARTED:
			return STORE_NOTFOUND;
		case RP_USERS:
			if (r->user_i < r->nusers) {
				k = recon_user(s, c, r->users[r->user_i++]);
				if (k != 0)
					return k > 0 ? STORE_OK : STORE_IO;
				break;
			}
			r->phase = RP_GONE_CHECK;
			break;
		case RP_MAILBOX:
			if (r->mb_i == r->nmboxes) {
				r->phase = RP_SUBSCRIBE;
				break;
			}
			if ((k = recon_mailbox_next(s, c)) != 0)
				return k > 0 ? STORE_OK : STORE_IO;
			if (r->phase == RP_WAIT_LIST || s->io != SESSION_OPEN)
				return STORE_NOTFOUND;
			r->mb_i++;
			if (recon_seek_mailbox(s, r) < 0)
				return STORE_IO;
			break;
		case RP_GONE:
			if (r->gone_i == r->ninv) {
				if (recon_list_adopted(r) < 0)
					return STORE_IO;
				r->phase = RP_MAILBOX;
				r->mb_i = 0;
				if (recon_seek_mailbox(s, r) < 0)
					return STORE_IO;
				break;
			}
			m = &r->inv[r->gone_i++];
			if (!m->seen && (k = recon_gone_delete(s, c, m)) != 0)
				return k > 0 ? STORE_OK : STORE_IO;
			break;
		case RP_SUBSCRIBE:
			if (r->sub_i == r->nsubs) {
				r->phase = RP_FINISH;
				break;
			}
			recon_subscription(c, &r->subs[r->sub_i++]);
			return STORE_OK;
		case RP_GONE_CHECK:
			if (r->gone_i == r->ninv) {
				r->gone_i = 0;
				r->phase = RP_GONE;
				break;
			}
			m = &r->inv[r->gone_i];
			if (!m->seen && recon_gone_check(s, r, m) < 0)
				return STORE_NOTFOUND;
			r->gone_i++;
			r->gone = GONE_ASK;
			r->gone_after = 0;
			break;
		}
	}
}

/*
 * All sent and acknowledged: START at the head the comparison began
 * from, in flight like a batch.  The replica commits that position and
 * ACKs it; until then it holds nothing of this log as far as anyone
 * here knows (its commit may fail, or it may die first), so it stays
 * reconciling for drain, synchronous mode and the purge.
 */
void
recon_finish(struct session *s, struct chan *c)
{
	struct recon	*r = c->recon;

	if (r == NULL || r->phase != RP_FINISH || c->inflight > 0)
		return;
	chan_send_head(s, SF_START, r->head);
	c->inflight_end[c->inflight++] = r->head;
	r->phase = RP_STARTED;
	log_info("sync.reconcile.done", "name=%s peer=%s mailboxes=%zu "
	    "same=%lu compared=%lu copied=%lu local_only=%lu records=%lld "
	    "from=%lld", log_quote(c->name), s->peer, r->nmboxes, r->same,
	    r->compared, r->sent_msgs, r->local_only, (long long)r->seq,
	    (long long)r->head);
}

/*
 * An ACK during reconciliation, of END position ack (the batch in
 * flight up to it is off the window already).  A batch's position is
 * this run's record number, not a log position: it changes nothing
 * else.  START's ACK says the replica committed the head: it holds the
 * log up to there, and streams from it.
 */
void
recon_acked(struct session *s, struct chan *c, int64_t ack)
{
	struct recon	*r = c->recon;
	char		 info[160];

	if (r->phase != RP_STARTED)
		return;
	assert(ack == r->head && c->inflight == 0);
	c->sent = c->acked = ack;
	c->state = CH_STREAM;
	recon_free(r);
	c->recon = NULL;
	server_repl_acked(s->srv, ack);		/* held replies */
	session_tls_info(s, info, sizeof(info));
	log_info("sync.replica.connected", "name=%s peer=%s from=%lld "
	    "reconciled=1 tls=%s", log_quote(c->name), s->peer,
	    (long long)c->sent, log_quote(info));
	master_store(s, 1);
}

/* A frame during reconciliation (ACKs and pings are handled as usual). */
int
recon_input(struct session *s, struct chan *c, uint8_t type,
    const uint8_t *p, size_t n)
{
	struct recon	*r = c->recon;

	if (type == SF_INV_MAILBOX && r->phase == RP_INVENTORY)
		return recon_inventory(s, r, p, n);
	if (type == SF_INV_END && r->phase == RP_INVENTORY && n == 0)
		return recon_plan(s, r);
	if (type == SF_INV_MSGS && r->phase == RP_GONE_WAIT)
		return recon_gone_list(s, r, p, n);
	if (type == SF_INV_MSGS)
		return recon_list(s, r, p, n);
	return -1;
}
