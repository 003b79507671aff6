/*
 * http.h — HTTP/1.1 sessions on the shared session layer (proto.h).
 *
 * http.c parses requests (every length bounded by config.h's HTTP_*
 * limits: bad input gets 400, 413, 414, 431, 501 or 505 and the
 * connection closes), keeps connections alive, answers pipelined
 * requests in order, and times out slow senders (408) and readers.  What
 * a request asks for is web.c's business: web_handle() answers each one
 * with http_reply(), or with http_stream() for a reply made in steps
 * as the output drains (like an IMAP FETCH), so that memory stays bounded
 * whatever the reply's size.
 */
#ifndef MAILREPD_HTTP_H
#define MAILREPD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct session;

extern const struct proto_ops http_proto;

enum http_method {
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PUT,
	HTTP_PATCH,
	HTTP_DELETE,
	HTTP_OPTIONS,
	HTTP_NMETHODS
};

/*
 * One request, as parsed.  The strings point into the session's input
 * buffer and are valid only during web_handle(): a reply made in steps
 * copies what it needs.
 */
struct http_request {
	enum http_method	 method;
	const char		*path;		/* "/api/v1/messages" */
	const char		*query;		/* after '?', or "" */
	const char		*host;		/* Host:, or NULL */
	const char		*origin;	/* Origin:, or NULL */
	const char		*fetch_site;	/* Sec-Fetch-Site:, or NULL */
	const char		*authorization;	/* Authorization:, or NULL */
	const char		*last_event_id;	/* Last-Event-ID:, or NULL */
	/*
	 * Set by web.c once it knows who asks: the one user whose mail the
	 * request may see, or NULL for every user's (the admin view).
	 */
	const char		*user;
	const char		*body;		/* Content-Length bytes */
	size_t			 body_len;
};

/*
 * One step of a reply made in steps: writes a bounded piece with
 * http_send() and returns 0 for more, 1 when done, -1 when it cannot go
 * on (the connection is then cut: the status line went out long ago),
 * or HTTP_STEP_WAIT when it has nothing to send now: it is asked again
 * after the next group commit or within a second (an event stream).
 */
#define HTTP_STEP_WAIT	2
typedef int	http_step_fn(struct session *, void *ctx);

/* The method's name ("GET"). */
const char *http_method_name(enum http_method);

/*
 * A whole reply: status, Content-Type, body, and extra header lines
 * (each ending in CRLF; NULL for none).  Every reply carries the
 * security headers (Content-Security-Policy and friends); an extra
 * Content-Security-Policy or Cross-Origin-Resource-Policy replaces the
 * default one.
 */
void	http_reply(struct session *, int status, const char *type,
	    const void *body, size_t len, const char *extra);
/*
 * A change made in batches, each committed (and, with
 * --repl-sync-timeout, replicated) before the next: change(ctx) writes
 * one bounded batch and returns 0 when it wrote one, 1 when nothing is
 * left, -1 on a store error; then done(ctx, ok) replies, and
 * ctx_free(ctx) runs.
 */
typedef int	http_change_fn(struct session *, void *ctx);
void	http_change(struct session *, http_change_fn *change,
	    void (*done)(struct session *, void *ctx, int ok), void *ctx,
	    void (*ctx_free)(void *));
/* A short error reply, in JSON: {"error":"..."}. */
void	http_error(struct session *, int status, const char *message);
/*
 * Starts a reply made in steps: the head now (Content-Length when length
 * is known, chunked otherwise), then step(ctx) each time the output has
 * room, until it returns 1 or -1; ctx_free(ctx) then (or when the
 * session goes first).
 */
void	http_stream(struct session *, int status, const char *type,
	    int64_t length, const char *extra, http_step_fn *step, void *ctx,
	    void (*ctx_free)(void *));
/* Body bytes of a reply made in steps (framed as a chunk if chunked). */
void	http_send(struct session *, const void *, size_t);
/*
 * A memory stream for a reply's text (open_memstream(3)) that only the
 * loop's thread writes: its writes take no lock.  NULL without memory.
 */
FILE	*http_memstream(char **text, size_t *len);

/*
 * Whether the reply in steps is an event stream waiting for news
 * (its step said HTTP_STEP_WAIT): a drain ends it at once.
 */
int	http_stream_waiting(const struct session *);

/*
 * web.c: answers one request (a route table look-up) and returns 0, or
 * returns WEB_WAIT, having answered nothing, when it cannot answer yet
 * (a password being checked, a refusal being held): the request stays
 * buffered, the session is paused, and web_auth.c unpauses it to have
 * the request taken again.
 */
#define WEB_WAIT	1
int	web_handle(struct session *, const struct http_request *);

/*
 * web_auth.c's state of the connection (who logged in), NULL until a
 * request needs it; http.c frees it with the session.
 */
struct web_auth;
struct web_auth	**http_auth_slot(struct session *);

#endif /* MAILREPD_HTTP_H */
