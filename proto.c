/*
 * proto.c — sessions: buffers, reading, writing, group commit, timeouts.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "settings.h"
#include "store.h"

/* Frees a session: the protocol's state first, then the socket. */
static void
session_free(struct session *s)
{
	if (s->ops->free != NULL)
		s->ops->free(s);
	close(s->fd);
	buf_free(&s->in);
	buf_free(&s->out);
	log_debug("session.close", "proto=%s id=%llu peer=%s", s->ops->name,
	    (unsigned long long)s->id, s->peer);
	free(s);
}

/*
 * Accepts every waiting connection on lfd.  Past max-connections the
 * client gets the protocol's "busy" reply and is closed at once.
 */
void
server_accept(struct server *srv, int lfd, const struct proto_ops *ops)
{
	struct session	*s;
	char		 peer[NET_PEER_LEN];
	int		 fd;

	while ((fd = net_accept(lfd, peer)) >= 0) {
		if (srv->nsessions >= (unsigned)srv->settings->max_connections) {
			log_warn("session.refused", "proto=%s peer=%s "
			    "reason=max-connections", ops->name, peer);
			(void)!write(fd, ops->busy_reply,
			    strlen(ops->busy_reply));
			close(fd);
			continue;
		}
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			close(fd);
			continue;
		}
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
		log_debug("session.open", "proto=%s id=%llu peer=%s",
		    ops->name, (unsigned long long)s->id, peer);
		ops->start(s);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_warn("accept", "proto=%s msg=%s", ops->name,
		    log_quote(strerror(errno)));
}

short
session_poll_events(const struct session *s)
{
	short	 ev = 0;

	if (s->io == SESSION_OPEN && !s->in_eof && buf_room(&s->in) > 0)
		ev |= POLLIN;
	if (buf_used(&s->out) > 0)
		ev |= POLLOUT;
	return ev;
}

/*
 * Whether the protocol has work: buffered input, or a reply made in steps
 * whose next step may run now that the output has drained.
 */
int
session_wants_processing(const struct session *s)
{
	if (s->io != SESSION_OPEN)
		return 0;
	if (s->resume)
		return buf_used(&s->out) < OUTBUF_HIGH_WATER;
	return buf_used(&s->in) > 0 || s->in_eof;
}

/*
 * Runs the protocol on what is buffered.  A protocol that leaves the
 * input buffer full without a reply is broken or under attack; either
 * way the session cannot go on.
 */
void
session_process(struct session *s)
{
	if (s->io != SESSION_OPEN)
		return;
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
	size_t	 room;
	ssize_t	 n;
	char	*p;

	if ((p = buf_reserve(&s->in, IO_CHUNK, &room)) == NULL)
		return;
	n = read(s->fd, p, room);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		s->in_eof = 1;
		buf_reset(&s->out);	/* the peer is gone: nothing to say */
	} else if (n == 0) {
		s->in_eof = 1;
	} else {
		buf_commit(&s->in, n);
		s->last_active = s->srv->now;
	}
	session_process(s);
}

void
session_on_writable(struct session *s)
{
	ssize_t	 n;

	while (buf_used(&s->out) > 0) {
		n = write(s->fd, buf_ptr(&s->out), buf_used(&s->out));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				buf_reset(&s->out);
				s->in_eof = 1;
				if (s->io == SESSION_OPEN)
					s->io = SESSION_CLOSING;
			}
			return;
		}
		buf_consume(&s->out, n);
		s->last_active = s->srv->now;
	}
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

	for (s = srv->sessions; s != NULL; s = s->next) {
		if (srv->now - s->last_active <= idle)
			continue;
		if (s->io == SESSION_OPEN) {
			s->ops->timeout(s);
			s->last_active = srv->now;	/* time to say so */
		} else if (s->io == SESSION_CLOSING)
			buf_reset(&s->out);
	}
}

/* Frees sessions that are closing and have nothing left to write. */
void
server_reap(struct server *srv)
{
	struct session	**sp = &srv->sessions, *s;

	while ((s = *sp) != NULL) {
		if (s->io == SESSION_CLOSING && buf_used(&s->out) == 0) {
			*sp = s->next;
			srv->nsessions--;
			session_free(s);
		} else
			sp = &s->next;
	}
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

void
session_write(struct session *s, const void *p, size_t n)
{
	if (s->io == SESSION_CLOSING && s->in_eof)
		return;
	if (buf_append(&s->out, p, n) < 0) {
		log_warn("session.output", "proto=%s peer=%s msg=\"output "
		    "limit reached\"", s->ops->name, s->peer);
		buf_reset(&s->out);
		s->io = SESSION_CLOSING;
	}
}

void
session_printf(struct session *s, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		log_warn("session.output", "proto=%s peer=%s msg=\"output "
		    "limit reached\"", s->ops->name, s->peer);
		buf_reset(&s->out);
		s->io = SESSION_CLOSING;
	}
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
