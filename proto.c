/*
 * proto.c — sessions: buffers, reading, writing, group commit, timeouts.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "settings.h"
#include "store.h"
#include "tls.h"
#include "transport.h"

/* Frees a session: the protocol's state first, then the socket. */
static void
session_free(struct session *s)
{
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

/*
 * Accepts every waiting connection on lfd.  Past max-connections the
 * client gets the protocol's "busy" reply and is closed at once; with
 * implicit TLS, past max-tls-handshakes too, without a word (a TLS
 * client could not read one).  An implicit-TLS session starts its
 * protocol (the greeting) only once the handshake is done.
 */
static void
accept_all(struct server *srv, int lfd, const struct proto_ops *ops, int tls)
{
	struct session	*s;
	char		 peer[NET_PEER_LEN];
	int		 fd;

	while ((fd = net_accept(lfd, peer)) >= 0) {
		if (srv->nsessions >= (unsigned)srv->settings->max_connections) {
			log_warn("session.refused", "proto=%s peer=%s "
			    "reason=max-connections", ops->name, peer);
			if (!tls)
				(void)!write(fd, ops->busy_reply,
				    strlen(ops->busy_reply));
			close(fd);
			continue;
		}
		if (tls && transport_handshakes() >=
		    (unsigned)srv->settings->max_tls_handshakes) {
			log_warn("session.refused", "proto=%s peer=%s "
			    "reason=max-tls-handshakes", ops->name, peer);
			close(fd);
			continue;
		}
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			close(fd);
			continue;
		}
		if ((s->tp = transport_new(fd)) == NULL || (tls &&
		    transport_switch(s->tp, TRANSPORT_TLS, 0, NULL, 0,
		    srv->now) < 0)) {
			log_warn("session.refused", "proto=%s peer=%s "
			    "reason=%s", ops->name, peer, tls ? "tls-setup" :
			    "out-of-memory");
			transport_free(s->tp);
			free(s);
			close(fd);
			continue;
		}
		s->tls_start = tls;
		s->srv = srv;
		s->ops = ops;
		s->fd = fd;
		s->id = ++srv->next_id;
		s->local = net_is_local(fd);
		s->last_active = srv->now;
		memcpy(s->peer, peer, sizeof(peer));
		buf_init(&s->in, ops->in_limit);
		buf_init(&s->out, ops->out_limit);
		s->next = srv->sessions;
		srv->sessions = s;
		srv->nsessions++;
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
	    (s->tp = transport_new(fd)) == NULL) {
		free(s);
		close(fd);
		return NULL;
	}
	s->srv = srv;
	s->ops = ops;
	s->fd = fd;
	s->id = ++srv->next_id;
	s->local = net_is_local(fd);
	s->last_active = srv->now;
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	buf_init(&s->in, ops->in_limit);
	buf_init(&s->out, ops->out_limit);
	s->next = srv->sessions;
	srv->sessions = s;
	srv->nsessions++;
	log_debug("session.open", "proto=%s id=%llu peer=%s", ops->name,
	    (unsigned long long)s->id, s->peer);
	ops->start(s);
	return s;
}

int
session_has_output(const struct session *s)
{
	return buf_used(&s->out) > 0 ||
	    (s->tp != NULL && transport_pending_output(s->tp));
}

/* Marks the connection dead: nothing more is read or written. */
static void
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
	transport_tls_info(s->tp, info, sizeof(info));
	if (rc < 0) {
		log_info("tls.fail", "proto=%s id=%llu peer=%s msg=%s",
		    s->ops->name, (unsigned long long)s->id, s->peer,
		    log_quote(info));
		session_broken(s);
		return -1;
	}
	log_debug("tls.ok", "proto=%s id=%llu peer=%s tls=%s", s->ops->name,
	    (unsigned long long)s->id, s->peer, log_quote(info));
	s->last_active = s->srv->now;
	if (s->tls_start) {
		s->tls_start = 0;
		s->ops->start(s);
	}
	return 1;
}

short
session_poll_events(const struct session *s)
{
	short	 ev = 0;
	int	 want = s->tp != NULL ? transport_wants(s->tp) : 0;

	if ((want & TRANSPORT_WANT_READ) || (s->io == SESSION_OPEN &&
	    !s->in_eof && !s->paused && buf_room(&s->in) > 0 &&
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
	if (s->resume)
		return buf_used(&s->out) < OUTBUF_HIGH_WATER;
	return buf_used(&s->in) > 0 || s->in_eof || session_pending_input(s);
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
	if (s->io != SESSION_OPEN || s->tls_start)
		return;
	if (session_pending_input(s))
		session_fill(s);
	s->ops->input(s);
	if (s->io == SESSION_OPEN && s->in_eof && !s->resume)
		session_close(s);
	else if (s->io == SESSION_OPEN && buf_room(&s->in) == 0 &&
	    !s->resume) {
		log_warn("session.stuck", "proto=%s peer=%s", s->ops->name,
		    s->peer);
		session_close(s);
	}
}

void
session_on_readable(struct session *s)
{
	if (session_handshake(s) <= 0 || s->tls_start)
		return;
	if (s->io == SESSION_OPEN && s->tp != NULL &&
	    !transport_readable(s->tp))
		return;		/* STARTTLS: the reply is not out yet */
	session_fill(s);
	session_process(s);
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

/*
 * Commits the store when a change is pending, then tells every session
 * that waited whether its change is durable.  Replies go out only after
 * this, so no client hears "done" before the fsync.
 */
void
server_commit(struct server *srv)
{
	struct session	*s;
	int		 ok;

	if (!store_txn_open(srv->store))
		return;
	ok = store_commit(srv->store) == STORE_OK;
	if (!ok)
		log_error("store.commit", "msg=\"group commit failed; "
		    "waiting clients get a temporary error\"");
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (s->io != SESSION_WAIT_COMMIT)
			continue;
		s->io = SESSION_OPEN;
		s->ops->committed(s, ok);
	}
	if (ok)
		server_wake(srv);
}

/* Lets every open session that asked for it look for news. */
void
server_wake(struct server *srv)
{
	struct session	*s;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->io == SESSION_OPEN && s->ops->wake != NULL)
			s->ops->wake(s);
}

/*
 * Times out idle sessions.  A closing session whose client stopped
 * reading would otherwise wait for its output to drain for ever: past
 * the same timeout its output is dropped, so that server_reap frees it.
 */
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
		if (srv->now - s->last_active <= idle)
			continue;
		if (s->io == SESSION_OPEN && !s->tls_start) {
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
}

enum line_status
session_getline(struct session *s, size_t max, char **line, size_t *len,
    size_t *used, int *crlf)
{
	char	*p = buf_ptr(&s->in), *lf;
	size_t	 avail = buf_used(&s->in), scan;

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

/* Drops the output of a session that went past its limit, and closes it. */
static void
output_overflow(struct session *s)
{
	log_warn("session.output", "proto=%s peer=%s msg=\"output "
	    "limit reached\"", s->ops->name, s->peer);
	buf_reset(&s->out);
	s->io = SESSION_CLOSING;
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

	va_start(ap, fmt);
	rc = buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	if (rc < 0)
		output_overflow(s);
}

void
session_wait_commit(struct session *s)
{
	assert(s->io == SESSION_OPEN);
	s->io = SESSION_WAIT_COMMIT;
}

void
session_close(struct session *s)
{
	s->io = SESSION_CLOSING;
}

int
session_can_starttls(const struct session *s)
{
	return s->tp != NULL && tls_available() &&
	    !transport_secure(s->tp) && !transport_compressed(s->tp) &&
	    !transport_handshaking(s->tp, NULL) &&
	    transport_handshakes() <
	    (unsigned)s->srv->settings->max_tls_handshakes;
}

int
session_start_tls(struct session *s, size_t keep)
{
	size_t	 n = buf_used(&s->in) > keep ? buf_used(&s->in) - keep : 0;

	if (!session_can_starttls(s) || transport_switch(s->tp,
	    TRANSPORT_TLS, buf_used(&s->out), NULL, 0, s->srv->now) < 0) {
		session_close(s);
		return -1;
	}
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

int
session_compressed(const struct session *s)
{
	return s->tp != NULL && transport_compressed(s->tp);
}
