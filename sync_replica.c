/*
 * sync_replica.c — the replica side of replication: the connection to
 * the master, HELLO and START, receiving batches and their bodies,
 * checking each record by GUID and applying the batch in one
 * transaction, acknowledging, and --conflict-notify.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "guard.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "settings.h"
#include "spool.h"
#include "store.h"
#include "sync.h"
#include "sync_internal.h"

extern char **environ;

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
	    NULL || store_node_get(s->srv->store, &me) != STORE_OK) {
		session_close(s);
		return;
	}
	c->state = CH_START;
	c->applied = c->last = me.applied;
	/*
	 * This connection pushes every open copy once as it goes; the
	 * first round of pushing them again waits an interval, time for
	 * the master's renumbering of them to arrive.
	 */
	c->push_round = s->srv->now;
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

/* Feeds body bytes, as the frames cut them, to the spool. */
void
body_feed(struct chan *c, const uint8_t *p, size_t n)
{
	spool_add_bytes(c->cur->spool, p, n);
}

/* The body of c->cur is complete: check its GUID. */
int
body_finish(struct session *s, struct chan *c)
{
	char	 hex[GUID_HEX_LEN + 1];

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
	/* A body in progress is c->cur; a failed one closed the session. */
	for (i = 0; i < c->nbatch; i++)
		assert(!c->batch[i].has_body || c->batch[i].ready);
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

/*
 * The batch, or the position of the START that ended a reconciliation,
 * is committed and synced (ok), or not (the link closes: the master
 * sends it again).  ACK its position, then the copies to renumber.
 */
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

/*
 * A step of writing the batch's big bodies into the store, before its
 * END applies it (store_blob_stage(): 48 MiB written at once held the
 * replica's loop 190 ms).  Returns 1 while some are not all in (the END
 * waits, c->staging), or when the store failed (the link closes: the
 * master sends the batch again).
 */
static int
batch_staging(struct session *s, struct chan *c)
{
	enum store_err	 err = STORE_OK;
	size_t		 i;
	int		 whole = 1;

	for (i = 0; i < c->nbatch && whole && err == STORE_OK; i++)
		if (c->batch[i].has_body && c->batch[i].ready)
			err = store_blob_stage(s->srv->store, &c->batch[i].in,
			    &whole);
	if (err != STORE_OK) {
		log_error("sync.apply", "msg=%s", log_quote(
		    store_strerror(err)));
		session_close(s);
		return 1;
	}
	if (c->staging && whole)
		s->resume = 0;		/* replica_input() sets it again */
	c->staging = !whole;
	return !whole;
}

/*
 * Whether frame `type` commits what the channel gathered (a batch's END,
 * the START that ends a reconciliation) while another process holds the
 * store's write lock, or (an END) while the batch's big bodies are still
 * going into the store: then the frame stays buffered and runs again on
 * a later loop iteration (session_store_ready, or s->resume), the link
 * kept.
 */
static int
frame_waits(struct session *s, struct chan *c, uint8_t type)
{
	int	 end = type == SF_END && (c->state == CH_STREAM ||
		    c->state == CH_RECONCILE);

	if (!end && !(type == SF_START && c->state == CH_RECONCILE))
		return 0;
	if (!session_store_ready(s))
		return 1;
	return end && batch_staging(s, c);
}

static void
replica_input(struct session *s)
{
	struct chan	*c = chan_of(s);
	const uint8_t	*p;
	uint8_t		 type;
	size_t		 n, total;
	char		 why[128];

	/*
	 * A PULL's conflict (replica_pull) rides on the loop's group
	 * commit: undone, its copy would never be pushed.  The link ends,
	 * and the master asks again when it reconciles again.
	 */
	if (s->lost != STORE_OK) {
		log_warn("sync.lost", "master=%s msg=%s", s->peer,
		    log_quote("a group commit of a PULL failed: reconnecting"));
		session_close(s);
		return;
	}
	while (s->io == SESSION_OPEN &&
	    chan_next(s, &type, &p, &n, &total) == 1) {
		if (frame_waits(s, c, type))
			break;
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
		else if ((c->state == CH_RECONCILE || c->state == CH_STREAM) &&
		    type == SF_NEVER_HELD)
			replica_never_held(s, p, n);
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
	if (c->staging)
		s->resume = 1;	/* the END's next step (batch_staging) */
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

const struct proto_ops sync_replica_proto = {
	.name = "repl-upstream",
	.pool = POOL_REPL,
	.full_duplex = 1,
	.in_limit = SYNC_HDR_LEN + SYNC_MAX_FRAME + IO_CHUNK,
	.out_limit = OUTBUF_HIGH_WATER + 2 * SYNC_MAX_FRAME,
	.busy_reply = "",
	.start = replica_start,
	.input = replica_input,
	.committed = replica_committed,
	.timeout = NULL,	/* sync_tick() pings and drops dead peers */
	.free = replica_free,
	.wake = NULL,
	.psk = 1,
	.tls_failed = chan_tls_failed,
};

/* Opens the connection to the master, non-blocking. */
void
replica_connect(struct server *srv)
{
	const char	*spec = repl.from;
	struct addrinfo	 hints, *ai = NULL;
	char		 host[SYNC_UPSTREAM_MAX + 1], *colon;
	int		 fd, rc;

	snprintf(host, sizeof(host), "%s", spec);
	/* sync_setup() and sync_demote() took only a HOST:PORT. */
	colon = strrchr(host, ':');
	assert(colon != NULL);
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
