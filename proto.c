/*
 * proto.c — sessions: buffers, reading, writing, group commit, timeouts.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "settings.h"
#include "store.h"
#include "tls.h"
#include "transport.h"
#include "web_events.h"

/*
 * Frees a session: a password check it still waits for, the protocol's
 * state, then the socket.
 */
static void
session_free(struct session *s)
{
	auth_cancel(s->id);
	if (s->ops->free != NULL)
		s->ops->free(s);
	transport_free(s->tp);
	close(s->fd);
	buf_free(&s->in);
	buf_free(&s->out);
	log_debug("session.close", "proto=%s id=%llu peer=%s", s->ops->name,
	    (unsigned long long)s->id, s->peer);
	free(s);
}

/* How many sessions a pool may hold. */
static unsigned
pool_limit(const struct server *srv, enum session_pool pool)
{
	return pool == POOL_REPL ? SYNC_MAX_PEERS :
	    (unsigned)srv->settings->max_connections;
}

/*
 * Sets a new session's buffers up: a protocol with a greeting stage
 * (proto_ops.established) gets PRELOGIN_IN_LIMIT of input until the
 * client is past it (session_grow), the others their full limits.
 */
static void
session_buffers(struct session *s)
{
	s->established = s->ops->established == NULL;
	buf_init(&s->in, s->established ? s->ops->in_limit :
	    PRELOGIN_IN_LIMIT);
	buf_init(&s->out, s->ops->out_limit);
}

/* The client got past login or greeting: the full limits from now on. */
static void
session_grow(struct session *s)
{
	if (s->established || s->io != SESSION_OPEN ||
	    !s->ops->established(s))
		return;
	s->established = 1;
	s->in.limit = s->ops->in_limit;
}

void
server_account(struct server *srv)
{
	const struct session	*s;

	srv->buffered = 0;
	for (s = srv->sessions; s != NULL; s = s->next)
		srv->buffered += s->in.cap + s->out.cap;
}

/* Links a new session in and counts it in its pool. */
static void
session_link(struct server *srv, struct session *s)
{
	s->opened = s->last_active = srv->now;
	s->next = srv->sessions;
	srv->sessions = s;
	srv->nsessions++;
	srv->pool_sessions[s->ops->pool]++;
}

int
session_backlogged(const struct session *s)
{
	const char	*lf;

	if (session_has_output(s))
		return 1;
	if (buf_used(&s->in) == 0)
		return 0;
	lf = memchr(buf_ptr(&s->in), '\n', buf_used(&s->in));
	return lf != NULL && memchr(lf + 1, '\n', buf_used(&s->in) -
	    (lf + 1 - buf_ptr(&s->in))) != NULL;
}

void
session_broken(struct session *s)
{
	s->in_eof = 1;
	buf_reset(&s->out);	/* the peer is gone: nothing to say */
	if (s->tp != NULL)
		transport_abort(s->tp);
	if (s->io == SESSION_OPEN)
		s->io = SESSION_CLOSING;
}

/*
 * TLS handshake slots.  Each kind of listener (a protocol, with implicit
 * TLS or STARTTLS) has --max-tls-handshakes slots of its own, so that
 * half-done handshakes on one cannot block another.  When a kind's slots
 * are full, its oldest half-done handshake gives its slot up: a real
 * client finishes in milliseconds, so only one that stalls loses it,
 * and stalling clients cannot keep a real one out.
 */
static void
handshake_slot(struct server *srv, const struct proto_ops *ops,
    int implicit)
{
	struct session	*s, *oldest = NULL;
	time_t		 since, first = 0;
	long		 n = 0;

	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->ops != ops || s->tls_start != implicit ||
		    s->io == SESSION_CLOSING || s->tp == NULL ||
		    !transport_handshaking(s->tp, &since))
			continue;
		n++;
		/* Sessions are listed newest first: <= keeps the oldest. */
		if (oldest == NULL || since <= first) {
			oldest = s;
			first = since;
		}
	}
	if (n < srv->settings->max_tls_handshakes || oldest == NULL)
		return;
	log_info("tls.evicted", "proto=%s id=%llu peer=%s msg=\"the oldest "
	    "handshake in progress gives its slot to a new one\"",
	    ops->name, (unsigned long long)oldest->id, oldest->peer);
	session_broken(oldest);
}

/*
 * TLS session slots (config.h: memory).  Every client session with a
 * TLS layer, handshaking or up, holds one of --max-tls-sessions;
 * replication peers are bounded by their own pool.  Returns 1 when a
 * slot is free, with *victim NULL, or can be had from the oldest
 * half-done handshake, named in *victim (a real client finishes in
 * milliseconds, as in handshake_slot()); 0 when every slot holds a
 * finished handshake.
 */
static int
tls_slot_find(const struct server *srv, struct session **victim)
{
	struct session	*s;
	time_t		 since, first = 0;
	long		 n = 0;

	*victim = NULL;
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (!s->tls_slot || s->io == SESSION_CLOSING)
			continue;
		n++;
		/* Sessions are listed newest first: <= keeps the oldest. */
		if (transport_handshaking(s->tp, &since) &&
		    (*victim == NULL || since <= first)) {
			*victim = s;
			first = since;
		}
	}
	if (n < srv->settings->max_tls_sessions) {
		*victim = NULL;
		return 1;
	}
	return *victim != NULL;
}

/* Takes a TLS slot (tls_slot_find()); returns 0 when none is left. */
static int
tls_slot_take(struct server *srv)
{
	struct session	*victim;

	if (!tls_slot_find(srv, &victim))
		return 0;
	if (victim != NULL) {
		log_info("tls.evicted", "proto=%s id=%llu peer=%s msg=\"the "
		    "oldest handshake in progress gives its TLS slot to a new "
		    "one\"", victim->ops->name,
		    (unsigned long long)victim->id, victim->peer);
		session_broken(victim);
	}
	return 1;
}

int
server_address_full(const struct server *srv, enum session_pool pool,
    const char *peer, int local)
{
	const struct session	*s;
	char			 addr[NET_PEER_LEN], other[NET_PEER_LEN];
	long			 count = 0;

	if (local)
		return 0;
	net_peer_address(peer, addr);
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->ops->pool != pool || s->local)
			continue;
		net_peer_address(s->peer, other);
		if (strcmp(addr, other) == 0 &&
		    ++count >= srv->settings->max_per_address)
			return 1;
	}
	return 0;
}

/*
 * Refuses a connection: the protocol's "busy" reply, unless it speaks
 * TLS from the first byte (a TLS client could not read it).
 */
static void
refuse(int fd, const struct proto_ops *ops, const char *peer,
    const char *why, int tls)
{
	log_warn("session.refused", "proto=%s peer=%s reason=%s", ops->name,
	    peer, why);
	if (!tls)
		(void)!write(fd, ops->busy_reply, strlen(ops->busy_reply));
	close(fd);
}

/*
 * Accepts every waiting connection on lfd.  Past max-connections of its
 * pool, or past max-per-address connections from one address (loopback
 * and unix clients exempt), the client gets the protocol's "busy" reply
 * and is closed at once.  With implicit TLS it takes a handshake slot
 * (handshake_slot) and starts its protocol (the greeting) only once the
 * handshake is done.
 */
static void
accept_all(struct server *srv, int lfd, const struct proto_ops *ops,
    int implicit)
{
	struct session	*s;
	char		 peer[NET_PEER_LEN];
	int		 fd, local, tls = implicit || ops->psk;

	while ((fd = net_accept(lfd, peer)) >= 0) {
		local = net_is_local(fd);
		if (srv->pool_sessions[ops->pool] >= pool_limit(srv,
		    ops->pool)) {
			refuse(fd, ops, peer, "max-connections", tls);
			continue;
		}
		if (server_address_full(srv, ops->pool, peer, local)) {
			refuse(fd, ops, peer, "max-per-address", tls);
			continue;
		}
		if (tls)
			handshake_slot(srv, ops, 1);
		if (tls && !ops->psk && !tls_slot_take(srv)) {
			refuse(fd, ops, peer, "max-tls-sessions", tls);
			continue;
		}
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			refuse(fd, ops, peer, "out-of-memory", tls);
			continue;
		}
		if ((s->tp = transport_new(fd)) == NULL || (tls &&
		    transport_switch(s->tp, ops->psk ?
		    TRANSPORT_TLS_PSK_SERVER : TRANSPORT_TLS, 0, NULL, 0,
		    srv->now) < 0)) {
			transport_free(s->tp);
			free(s);
			refuse(fd, ops, peer, tls ? "tls-setup" :
			    "out-of-memory", tls);
			continue;
		}
		s->tls_start = tls;
		s->tls_slot = tls && !ops->psk;
		s->srv = srv;
		s->ops = ops;
		s->fd = fd;
		s->id = ++srv->next_id;
		s->local = local;
		memcpy(s->peer, peer, sizeof(peer));
		session_buffers(s);
		session_link(srv, s);
		log_debug("session.open", "proto=%s id=%llu peer=%s tls=%d",
		    ops->name, (unsigned long long)s->id, peer, tls);
		if (!tls)
			ops->start(s);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_warn("accept", "proto=%s msg=%s", ops->name,
		    log_quote(strerror(errno)));
}

void
server_accept(struct server *srv, int lfd, const struct proto_ops *ops)
{
	accept_all(srv, lfd, ops, 0);
}

void
server_accept_tls(struct server *srv, int lfd, const struct proto_ops *ops)
{
	accept_all(srv, lfd, ops, 1);
}

struct session *
session_new(struct server *srv, int fd, const struct proto_ops *ops,
    const char *peer)
{
	struct session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->tp = transport_new(fd)) == NULL || (ops->psk &&
	    transport_switch(s->tp, TRANSPORT_TLS_PSK_CLIENT, 0, NULL, 0,
	    srv->now) < 0)) {
		if (s != NULL)
			transport_free(s->tp);
		free(s);
		close(fd);
		return NULL;
	}
	s->tls_start = ops->psk;
	s->srv = srv;
	s->ops = ops;
	s->fd = fd;
	s->id = ++srv->next_id;
	s->local = net_is_local(fd);
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	session_buffers(s);
	session_link(srv, s);
	log_debug("session.open", "proto=%s id=%llu peer=%s", ops->name,
	    (unsigned long long)s->id, s->peer);
	if (!s->tls_start)
		ops->start(s);
	return s;
}

int
session_has_output(const struct session *s)
{
	return buf_used(&s->out) > 0 ||
	    (s->tp != NULL && transport_pending_output(s->tp));
}

/*
 * TLS failed, in the handshake or on a record after it (then only when
 * TLS says so: the error may be another layer's): says why (the
 * protocol's handler, or the log), and gives the connection up.
 * Returns 0, or -1 when a record error was not TLS's.
 */
static int
session_tls_failed(struct session *s, int handshake)
{
	char			 why[160];
	enum transport_tls_fail	 f;

	f = transport_tls_failure(s->tp, why, sizeof(why));
	if (!handshake && f == TRANSPORT_TLS_OK)
		return -1;
	if (s->ops->tls_failed != NULL)
		s->ops->tls_failed(s, why, f == TRANSPORT_TLS_WRONG_KEY);
	else
		log_info("tls.fail", "proto=%s id=%llu peer=%s msg=%s",
		    s->ops->name, (unsigned long long)s->id, s->peer,
		    log_quote(why));
	session_broken(s);
	return 0;
}

/*
 * Runs a TLS handshake on.  Returns 1 when none runs any more, 0 while
 * it waits, -1 when it failed (the session is then closing).  An
 * implicit-TLS session starts its protocol when its handshake is done.
 */
static int
session_handshake(struct session *s)
{
	char	 info[160];
	int	 rc;

	if (s->tp == NULL || (rc = transport_handshake(s->tp)) == 2)
		return 1;
	if (rc == 0)
		return 0;
	if (rc < 0) {
		(void)session_tls_failed(s, 1);
		return -1;
	}
	transport_tls_info(s->tp, info, sizeof(info));
	log_debug("tls.ok", "proto=%s id=%llu peer=%s tls=%s", s->ops->name,
	    (unsigned long long)s->id, s->peer, log_quote(info));
	s->last_active = s->srv->now;
	if (s->tls_start) {
		s->tls_start = 0;
		s->ops->start(s);
	}
	return 1;
}

/*
 * Whether the session waits for the others' buffers to shrink: every
 * session together holds more than SESSION_BUDGET, and this one at least
 * its fair share (config.h, memory).  Replication is never held back.
 */
static int
session_over_budget(const struct session *s)
{
	return !s->ops->full_duplex && s->srv->buffered > SESSION_BUDGET &&
	    buf_used(&s->in) + buf_used(&s->out) >= SESSION_FAIR_SHARE;
}

/*
 * Whether the queued output is above the high-water mark: the session
 * is then neither read nor given its buffered commands until the client
 * has taken some, so that a client pipelining commands without reading
 * the replies holds OUTBUF_HIGH_WATER and one reply, not the output
 * limit; the same when every session's buffers are over the budget and
 * this one holds its share.  A closing session counts as full: nothing
 * more is said.
 */
int
session_output_high(const struct session *s)
{
	return (!s->ops->full_duplex && buf_used(&s->out) >= (s->established ?
	    OUTBUF_HIGH_WATER : PRELOGIN_HIGH_WATER)) ||
	    session_over_budget(s) || s->io == SESSION_CLOSING;
}

short
session_poll_events(const struct session *s)
{
	short	 ev = 0;
	int	 want = s->tp != NULL ? transport_wants(s->tp) : 0;

	if ((want & TRANSPORT_WANT_READ) || (s->io == SESSION_OPEN &&
	    !s->in_eof && !s->paused && buf_room(&s->in) > 0 &&
	    !session_output_high(s) &&
	    (s->tp == NULL || transport_readable(s->tp))))
		ev |= POLLIN;
	if (session_has_output(s) || (want & TRANSPORT_WANT_WRITE))
		ev |= POLLOUT;
	return ev;
}

/* Whether cleartext waits inside the transport with room to take it. */
static int
session_pending_input(const struct session *s)
{
	return s->tp != NULL && !s->in_eof && buf_room(&s->in) > 0 &&
	    transport_pending_input(s->tp);
}

/*
 * Whether the protocol has work: buffered input, or a reply made in steps
 * whose next step may run now that the output has drained.
 */
int
session_wants_processing(const struct session *s)
{
	if (s->io != SESSION_OPEN || s->tls_start || s->paused)
		return 0;
	if (session_output_high(s))
		return 0;
	if (s->store_retry != 0)
		return s->srv->now_ms >= s->store_retry;
	return s->resume || buf_used(&s->in) > 0 || s->in_eof ||
	    session_pending_input(s);
}

/*
 * Reads once into the input buffer: from the socket, or from the
 * transport's layers (which may hold decrypted or inflated input that
 * poll() cannot see).
 */
static void
session_fill(struct session *s)
{
	size_t	 room;
	ssize_t	 n;
	char	*p;

	if (s->in_eof || (p = buf_reserve(&s->in, IO_CHUNK, &room)) == NULL)
		return;
	n = s->tp != NULL ? transport_read(s->tp, p, room) :
	    read(s->fd, p, room);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		/* A record that does not decrypt, an alert, a bad record. */
		if (errno == EPROTO && s->tp != NULL &&
		    session_tls_failed(s, 0) == 0)
			return;
		s->in_eof = 1;
		buf_reset(&s->out);	/* the peer is gone: nothing to say */
		if (s->tp != NULL)
			transport_abort(s->tp);
	} else if (n == 0) {
		s->in_eof = 1;
	} else {
		buf_commit(&s->in, n);
		s->last_active = s->srv->now;
	}
}

/*
 * Runs the protocol on what is buffered.  A protocol that leaves the
 * input buffer full without a reply is broken or under attack; either
 * way the session cannot go on.
 */
void
session_process(struct session *s)
{
	size_t	 before;

	if (s->io != SESSION_OPEN || s->tls_start)
		return;
	if (session_pending_input(s))
		session_fill(s);
	s->store_retry = 0;
	session_grow(s);
	before = buf_used(&s->in);
	s->ops->input(s);
	session_grow(s);	/* a login or greeting pipelined with more */
	/* A command taken: what is left is waited for from now. */
	if (buf_used(&s->in) == 0)
		s->waiting_since = 0;
	else if (buf_used(&s->in) < before || s->waiting_since == 0)
		s->waiting_since = s->srv->now;
	if (s->store_retry != 0)
		return;		/* a command waits for the write lock */
	if (s->io == SESSION_OPEN && s->in_eof && !s->resume)
		session_close(s);
	else if (s->io == SESSION_OPEN && buf_room(&s->in) == 0 &&
	    !s->resume && !session_output_high(s)) {
		log_warn("session.stuck", "proto=%s peer=%s", s->ops->name,
		    s->peer);
		session_close(s);
	}
}

int
session_read(struct session *s)
{
	if (session_handshake(s) <= 0 || s->tls_start)
		return 0;
	if (s->io == SESSION_OPEN && s->tp != NULL &&
	    !transport_readable(s->tp))
		return 0;	/* STARTTLS: the reply is not out yet */
	session_fill(s);
	return 1;
}

void
session_on_writable(struct session *s)
{
	ssize_t	 n;

	if (session_handshake(s) <= 0)
		return;
	while (buf_used(&s->out) > 0) {
		if (s->tp != NULL)
			n = transport_write(s->tp, buf_ptr(&s->out),
			    buf_used(&s->out));
		else
			n = write(s->fd, buf_ptr(&s->out), buf_used(&s->out));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				session_broken(s);
			return;
		}
		if (n == 0)
			break;		/* the layers below are full */
		buf_consume(&s->out, n);
		s->last_active = s->srv->now;
		/* A STARTTLS reply is out: the handshake may begin. */
		if (session_handshake(s) <= 0)
			return;
	}
	if (s->tp != NULL && transport_flush(s->tp) < 0)
		session_broken(s);
}

void
server_clock(struct server *srv)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	srv->now = time(NULL);
	srv->now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Hands a held (or never held) session its committed change. */
static void
hold_release(struct session *s)
{
	if (s->io == SESSION_WAIT_REPL)
		s->srv->hold.held--;
	s->io = SESSION_OPEN;
	s->replicate = 0;
	s->ops->committed(s, 1);
}

/*
 * Whether a reply to a change that reached log position pos must wait:
 * a timeout is set, the master is holding, and no replica has pos yet
 * (pos -1, a log head that could not be read, no replica is known to
 * have).  While not holding after a timeout, a reply that would have
 * waited is counted as sent unreplicated.
 */
static int
hold_needed(struct server *srv, int64_t pos)
{
	if (srv->settings->repl_sync_timeout == 0 ||
	    (pos >= 0 && srv->hold.acked >= pos))
		return 0;
	if (srv->hold.async) {
		srv->hold.n_unreplicated++;
		return 0;
	}
	return 1;
}

/*
 * After a timeout: holds again once a replica has acknowledged, since
 * the timeout, a position within SYNC_RESUME_LAG records of the log head
 * before this commit; a replica that is still down never does.
 */
static void
hold_maybe_resume(struct server *srv)
{
	struct repl_hold	*h = &srv->hold;

	if (!h->async || !h->acked_since || h->head - h->acked >
	    SYNC_RESUME_LAG)
		return;
	h->async = h->acked_since = 0;
	log_info("sync.resumed", "acked=%lld head=%lld msg=\"a replica "
	    "caught up: replies wait for it again\"", (long long)h->acked,
	    (long long)h->head);
}

/*
 * Releases the held replies whose position a replica has acknowledged;
 * one held at an unknown position (-1: the log head could not be read
 * after its commit) takes the head as it is now, which is at least its
 * own, when it can be read.  When the first of the others has timed
 * out, logs it, stops holding (struct repl_hold) and releases them all:
 * they would time out too.
 */
static void
hold_check(struct server *srv)
{
	struct repl_hold	*h = &srv->hold;
	struct session		*s;
	int64_t			 late = INT64_MIN;	/* none timed out */
	unsigned		 n = 0;

	if (h->held == 0)
		return;
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->io != SESSION_WAIT_REPL)
			continue;
		if (s->repl_pos < 0)
			s->repl_pos = store_replog_head(srv->store);
		if (s->repl_pos >= 0 && h->acked >= s->repl_pos) {
			h->n_acked++;
			hold_release(s);
		} else if (srv->now_ms >= s->repl_deadline &&
		    late == INT64_MIN)
			late = s->repl_pos;
	}
	if (late == INT64_MIN)
		return;
	h->async = 1;
	h->acked_since = 0;
	h->n_timeouts++;
	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->io == SESSION_WAIT_REPL) {
			n++;
			h->n_unreplicated++;
			hold_release(s);
		}
	log_warn("sync.timeout", "pos=%lld acked=%lld timeout_ms=%ld "
	    "released=%u msg=\"no replica acknowledged in time: replies go "
	    "out unreplicated until one catches up\"", (long long)late,
	    (long long)h->acked, srv->settings->repl_sync_timeout, n);
}

/*
 * Adds the counts to the store's counters, at most once a second, in
 * the transaction about to be committed (one opens when none is).
 */
static void
hold_store(struct server *srv)
{
	struct repl_hold	*h = &srv->hold;
	struct store		*st = srv->store;

	if ((h->n_acked | h->n_timeouts | h->n_unreplicated) == 0 ||
	    h->stored_at == srv->now)
		return;
	h->stored_at = srv->now;
	if ((h->n_acked == 0 || store_counter_add(st, "sync_acked",
	    h->n_acked) == STORE_OK) && (h->n_timeouts == 0 ||
	    store_counter_add(st, "sync_timeouts", h->n_timeouts) ==
	    STORE_OK) && (h->n_unreplicated == 0 || store_counter_add(st,
	    "sync_unreplicated", h->n_unreplicated) == STORE_OK))
		h->n_acked = h->n_timeouts = h->n_unreplicated = 0;
}

const long long server_commit_bounds_us[SERVER_COMMIT_BUCKETS] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 250000, 1000000,
};

/* Counts a group commit that took us microseconds (/metrics). */
static void
commit_timed(struct server *srv, long long us)
{
	size_t	 i = 0;

	while (i < SERVER_COMMIT_BUCKETS && us > server_commit_bounds_us[i])
		i++;
	srv->commits[i]++;
	srv->commit_us += (uint64_t)(us > 0 ? us : 0);
}

/*
 * Commits the store when a change is pending, then tells every session
 * that waited whether its change is durable: at once, or (a change that
 * wrote log records, with --repl-sync-timeout) once a replica has it.
 * Replies go out only after this, so no client hears "done" before the
 * fsync.  A session whose step wrote without waiting (session_wrote)
 * keeps a failed commit's error in s->lost.  Then the held replies whose
 * time has come.
 */
void
server_commit(struct server *srv)
{
	struct session	*s;
	int		 ok = 1, wrote = store_txn_open(srv->store);
	int64_t		 pos = srv->hold.head;
	long long	 t0;

	hold_store(srv);
	srv->commit_err = STORE_OK;
	if (store_txn_open(srv->store)) {
		t0 = log_clock_us();
		srv->commit_err = store_commit(srv->store);
		commit_timed(srv, log_clock_us() - t0);
		ok = srv->commit_err == STORE_OK;
		if (!ok)
			log_error("store.commit", "msg=\"group commit failed; "
			    "waiting clients get a temporary error\"");
	}
	if (ok && wrote) {
		hold_maybe_resume(srv);
		/* unread, the head is none a replica can be shown to have */
		if ((pos = store_replog_head(srv->store)) >= 0)
			srv->hold.head = pos;
	}
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->wrote && !ok && s->lost == STORE_OK)
			s->lost = srv->commit_err;
		s->wrote = 0;
		if (s->io != SESSION_WAIT_COMMIT)
			continue;
		if (ok && s->replicate && hold_needed(srv, pos)) {
			s->io = SESSION_WAIT_REPL;
			s->repl_pos = pos;
			s->repl_deadline = srv->now_ms +
			    srv->settings->repl_sync_timeout;
			srv->hold.held++;
		} else if (ok)
			hold_release(s);
		else {
			s->io = SESSION_OPEN;
			s->replicate = 0;
			s->ops->committed(s, 0);
		}
	}
	if (ok && wrote)
		server_wake(srv);	/* the replication sessions send it */
	hold_check(srv);
}

void
server_repl_acked(struct server *srv, int64_t pos)
{
	if (pos > srv->hold.acked)
		srv->hold.acked = pos;
	if (srv->hold.async)
		srv->hold.acked_since = 1;
}

long
server_hold_wait_ms(const struct server *srv)
{
	const struct session	*s;
	int64_t			 first = -1;

	if (srv->hold.held == 0)
		return -1;
	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->io == SESSION_WAIT_REPL && (first < 0 ||
		    s->repl_deadline < first))
			first = s->repl_deadline;
	if (first < 0)
		return -1;
	return first <= srv->now_ms ? 0 : (long)(first - srv->now_ms);
}

int64_t
server_clock_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
server_timer(struct server *srv, int64_t at_ms)
{
	if (srv->timer_ms == 0 || at_ms < srv->timer_ms)
		srv->timer_ms = at_ms;
}

/*
 * Lets every open session that asked for it look for news; what was
 * committed becomes the event streams' events first (one hook for IDLE,
 * the streams and the replication sessions).
 */
void
server_wake(struct server *srv)
{
	struct session	*s;

	web_events_collect(srv);

	/* Not one whose protocol waits for its TLS handshake to start. */
	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->io == SESSION_OPEN && !s->tls_start &&
		    s->ops->wake != NULL)
			s->ops->wake(s);
}

/* auth_results() callback: one check's result to its session. */
static void
password_checked(void *arg, uint64_t id, int match)
{
	struct server	*srv = arg;
	struct session	*s;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->id == id)
			break;
	if (s != NULL && s->io == SESSION_OPEN && s->ops->checked != NULL)
		s->ops->checked(s, match);
}

void
server_auth_results(struct server *srv)
{
	auth_results(password_checked, srv, srv->now_ms);
}

/*
 * Times out idle sessions.  A closing session whose client stopped
 * reading would otherwise wait for its output to drain for ever: past
 * the same timeout its output is dropped, so that server_reap frees it.
 */
/*
 * Whether a session has spent longer than --prelogin-timeout since it
 * connected without getting past its greeting stage: measured from the
 * connection, so that a client sending a byte now and then cannot hold
 * a slot for the whole idle timeout without logging in.
 */
static int
session_prelogin_expired(const struct session *s)
{
	return s->ops->established != NULL && !s->tls_start &&
	    s->srv->now - s->opened > s->srv->settings->prelogin_timeout &&
	    !s->ops->established(s);
}

/*
 * Whether input has sat in the buffer for longer than the idle timeout
 * without making a whole command: a client sending a byte now and then
 * (which keeps last_active fresh) still has to finish a command within
 * the idle timeout, RFC 3501's 30-minute autologout.  Input held back
 * by the server (a reply waiting, the output full) does not count.
 */
static int
session_trickling(const struct session *s)
{
	return s->waiting_since != 0 && buf_used(&s->in) > 0 &&
	    s->io == SESSION_OPEN && !s->paused && !session_output_high(s) &&
	    s->srv->now - s->waiting_since > s->srv->settings->idle_timeout;
}

void
server_timeouts(struct server *srv)
{
	struct session	*s;
	long		 idle = srv->settings->idle_timeout;
	time_t		 since;

	for (s = srv->sessions; s != NULL; s = s->next) {
		/* A quiet session gives its empty buffers back. */
		if (srv->now > s->last_active) {
			buf_shrink(&s->in);
			buf_shrink(&s->out);
		}
		if (s->tp != NULL && transport_handshaking(s->tp, &since) &&
		    srv->now - since > srv->settings->tls_handshake_timeout) {
			log_info("tls.timeout", "proto=%s id=%llu peer=%s",
			    s->ops->name, (unsigned long long)s->id, s->peer);
			session_broken(s);
			continue;
		}
		if (srv->now - s->last_active <= idle &&
		    !session_prelogin_expired(s) && !session_trickling(s))
			continue;
		if (s->io == SESSION_OPEN && !s->tls_start) {
			if (s->ops->timeout != NULL)
				s->ops->timeout(s);
			s->last_active = srv->now;	/* time to say so */
		} else if (s->io == SESSION_CLOSING || s->tls_start)
			session_broken(s);
	}
}

/* Frees sessions that are closing and have nothing left to write. */
void
server_reap(struct server *srv)
{
	struct session	**sp = &srv->sessions, *s;

	while ((s = *sp) != NULL) {
		if (s->io == SESSION_CLOSING && !session_has_output(s)) {
			*sp = s->next;
			srv->nsessions--;
			srv->pool_sessions[s->ops->pool]--;
			session_free(s);
		} else
			sp = &s->next;
	}
}

unsigned
server_drain(struct server *srv)
{
	struct session	*s;
	unsigned	 busy = 0;

	srv->draining = 1;
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->ops->drain == NULL)
			continue;	/* replication: the drain waits for it */
		if (s->tls_start && s->io != SESSION_CLOSING)
			session_broken(s);	/* no protocol spoken yet */
		if (s->io == SESSION_OPEN)
			(void)s->ops->drain(s);
		if (s->io != SESSION_CLOSING || session_has_output(s))
			busy++;
	}
	return busy;
}

void
server_close_all(struct server *srv)
{
	struct session	*s;

	while ((s = srv->sessions) != NULL) {
		srv->sessions = s->next;
		session_free(s);
	}
	srv->nsessions = 0;
	memset(srv->pool_sessions, 0, sizeof(srv->pool_sessions));
}

size_t
session_line_max(const struct session *s, size_t max)
{
	return max < s->in.limit ? max : s->in.limit - 1;
}

enum line_status
session_getline(struct session *s, size_t max, char **line, size_t *len,
    size_t *used, int *crlf)
{
	char	*p = buf_ptr(&s->in), *lf;
	size_t	 avail = buf_used(&s->in), scan;

	max = session_line_max(s, max);
	scan = avail < max ? avail : max;
	if ((lf = memchr(p, '\n', scan)) == NULL)
		return avail >= max ? LINE_TOO_LONG : LINE_MORE;
	*used = lf - p + 1;
	*crlf = lf > p && lf[-1] == '\r';
	*len = lf - p - *crlf;
	p[*len] = '\0';
	*line = p;
	return LINE_OK;
}

/*
 * Drops the output of a session that went past its limit, and the
 * connection: what the protocol writes after this (the rest of the
 * reply that did not fit) would reach the client without its start.
 */
static void
output_overflow(struct session *s)
{
	log_warn("session.output", "proto=%s peer=%s msg=\"output "
	    "limit reached\"", s->ops->name, s->peer);
	session_broken(s);
}

void
session_write(struct session *s, const void *p, size_t n)
{
	if (s->io == SESSION_CLOSING && s->in_eof)
		return;
	if (buf_append(&s->out, p, n) < 0)
		output_overflow(s);
}

char *
session_reserve(struct session *s, size_t want, size_t *got)
{
	char	*p;

	*got = 0;
	if (s->io == SESSION_CLOSING && s->in_eof)
		return NULL;
	if ((p = buf_reserve(&s->out, want, got)) == NULL) {
		output_overflow(s);
		return NULL;
	}
	if (*got > want)
		*got = want;
	return p;
}

void
session_commit(struct session *s, size_t n)
{
	buf_commit(&s->out, n);
}

void
session_printf(struct session *s, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	/* As session_write: nothing more for a peer that is gone. */
	if (s->io == SESSION_CLOSING && s->in_eof)
		return;
	va_start(ap, fmt);
	rc = buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	if (rc < 0)
		output_overflow(s);
}

/*
 * A session that is closing (its output went past the limit, or it was
 * told to go) has no one left to answer: its change still commits with
 * the group, and it does not wait.
 */
void
session_wait_commit(struct session *s)
{
	if (s->io == SESSION_CLOSING)
		return;
	assert(s->io == SESSION_OPEN && s->ops->committed != NULL);
	s->io = SESSION_WAIT_COMMIT;
}

void
session_wait_replicated(struct session *s)
{
	session_wait_commit(s);
	if (s->io == SESSION_WAIT_COMMIT)
		s->replicate = 1;
}

void
session_wrote(struct session *s)
{
	s->wrote = 1;
}

int
session_store_ready(struct session *s)
{
	if (store_write_try(s->srv->store) != STORE_BUSY)
		return 1;
	s->store_retry = s->srv->now_ms + STORE_RETRY_MS;
	server_timer(s->srv, s->store_retry);
	return 0;
}

void
session_close(struct session *s)
{
	s->io = SESSION_CLOSING;
}

int
session_can_starttls(const struct session *s)
{
	struct session	*victim;

	return s->tp != NULL && tls_available() &&
	    !transport_secure(s->tp) && !transport_compressed(s->tp) &&
	    !transport_handshaking(s->tp, NULL) &&
	    tls_slot_find(s->srv, &victim);
}

int
session_start_tls(struct session *s, size_t keep)
{
	size_t	 n = buf_used(&s->in) > keep ? buf_used(&s->in) - keep : 0;

	if (session_can_starttls(s))
		handshake_slot(s->srv, s->ops, 0);
	if (!session_can_starttls(s) || !tls_slot_take(s->srv) ||
	    transport_switch(s->tp, TRANSPORT_TLS, buf_used(&s->out), NULL,
	    0, s->srv->now) < 0) {
		session_close(s);
		return -1;
	}
	s->tls_slot = 1;
	if (n > 0)
		log_warn("tls.injection", "proto=%s id=%llu peer=%s "
		    "dropped=%zu msg=\"input after STARTTLS, before the "
		    "handshake\"", s->ops->name, (unsigned long long)s->id,
		    s->peer, n);
	if (keep == 0)
		buf_reset(&s->in);
	else
		s->in.len -= n;	/* drop the tail, keep the command */
	return 0;
}

int
session_start_compress(struct session *s)
{
	size_t	 n = buf_used(&s->in);

	if (s->tp == NULL || transport_switch(s->tp, TRANSPORT_DEFLATE,
	    buf_used(&s->out), buf_ptr(&s->in), n, s->srv->now) < 0) {
		session_close(s);
		return -1;
	}
	buf_consume(&s->in, n);
	return 0;
}

int
session_secure(const struct session *s)
{
	return s->tp != NULL && transport_secure(s->tp);
}

void
session_tls_info(struct session *s, char *buf, size_t len)
{
	if (s->tp == NULL)
		snprintf(buf, len, "no TLS");
	else
		transport_tls_info(s->tp, buf, len);
}

int
session_compressed(const struct session *s)
{
	return s->tp != NULL && transport_compressed(s->tp);
}

/*
 * Closing sessions count too: their zlib states live until they are
 * freed, and a client could otherwise LOGOUT, never read the BYE and
 * compress again on a new connection.  The slot is taken when COMPRESS
 * is answered, not when the reply has gone out, so that sessions asking
 * in the same loop iteration cannot pass the limit together.
 */
int
session_take_compress_slot(struct session *s)
{
	const struct session	*o;
	long			 n = 0;

	for (o = s->srv->sessions; o != NULL; o = o->next)
		n += o->compress_slot;
	if (n >= s->srv->settings->max_compress_sessions) {
		log_warn("compress.refused", "proto=%s id=%llu peer=%s "
		    "reason=max-compress-sessions", s->ops->name,
		    (unsigned long long)s->id, s->peer);
		return 0;
	}
	s->compress_slot = 1;
	return 1;
}
