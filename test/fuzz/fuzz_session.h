/*
 * fuzz_session.h — drives one session of a protocol from fuzzer bytes,
 * as the event loop would; shared by the session fuzz targets.
 *
 * The first byte chooses how the rest is cut into reads; each read runs
 * the protocol and the group commit, and what the session wrote is
 * dropped (the client read it).  srv must hold the store and settings.
 */
#ifndef MAILREPD_FUZZ_SESSION_H
#define MAILREPD_FUZZ_SESSION_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "proto.h"

static void
fuzz_session(struct server *srv, const struct proto_ops *ops,
    const uint8_t *data, size_t size)
{
	struct session	 s;
	size_t		 step, off, n;

	if (size == 0)
		return;
	step = 1 + data[0] % 64;
	memset(&s, 0, sizeof(s));
	s.srv = srv;
	s.ops = ops;
	s.fd = -1;
	s.local = 1;		/* this machine's: HTTP's admin view, no login */
	s.established = ops->established == NULL;
	buf_init(&s.in, ops->in_limit);
	buf_init(&s.out, ops->out_limit);
	srv->sessions = &s;
	srv->nsessions = 1;
	srv->now = time(NULL);
	ops->start(&s);
	for (off = 1; off < size && s.io != SESSION_CLOSING; off += n) {
		n = size - off < step ? size - off : step;
		if (buf_append(&s.in, data + off, n) < 0)
			break;
		session_process(&s);
		server_commit(srv);
		while (session_wants_processing(&s) && buf_used(&s.in) > 0 &&
		    s.io == SESSION_OPEN) {
			size_t before = buf_used(&s.in);

			session_process(&s);
			server_commit(srv);
			if (buf_used(&s.in) == before)
				break;
		}
		buf_reset(&s.out);	/* the client read it */
	}
	server_commit(srv);
	ops->free(&s);
	buf_free(&s.in);
	buf_free(&s.out);
	srv->sessions = NULL;
	srv->nsessions = 0;
}

#endif /* MAILREPD_FUZZ_SESSION_H */
