/*
 * http.c — the HTTP/1.1 session: request parsing, keep-alive,
 * pipelining, replies made in steps, and the timers of a connection.
 *
 * A request is taken only once its head (and its Content-Length body)
 * has fully arrived; the parse is strict, as a proxy in front could
 * otherwise read the same bytes as another request than we do
 * (request smuggling): one space between the request-line's parts, no
 * folded header lines, no white space before a header's colon, one
 * Content-Length and no Transfer-Encoding.  Whatever the parse refuses
 * gets its status and the connection closes, since where the next
 * request would start is then unknown.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "proto.h"
#include "web_auth.h"

/*
 * Every reply says: no caching, no sniffing, no framing, no referrer,
 * a Content-Security-Policy that loads nothing (the page's own reply
 * names what it may load in its extra headers) and that only this
 * origin may load it (a message's cid: image, which the sandboxed frame
 * loads from an origin of its own, says otherwise in its extra headers).
 */
#define HTTP_SECURITY_HEADERS						\
	"Cache-Control: no-store\r\n"					\
	"X-Content-Type-Options: nosniff\r\n"				\
	"X-Frame-Options: DENY\r\n"					\
	"Referrer-Policy: no-referrer\r\n"
#define HTTP_DEFAULT_CORP						\
	"Cross-Origin-Resource-Policy: same-origin\r\n"

#define HTTP_DEFAULT_CSP						\
	"Content-Security-Policy: default-src 'none'; "			\
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n"

/* What the parse of a head found, before the request is built. */
struct http_head {
	struct http_request	 req;
	int64_t			 content_length;	/* -1: none */
	int			 close;			/* Connection: close */
	int			 te;			/* Transfer-Encoding */
};

struct http_session {
	time_t		 request_since;	/* first byte of the request being
					   received, 0: none */
	unsigned	 requests;	/* taken on this connection */
	int		 minor;		/* HTTP/1.minor of the request */
	int		 close_after;	/* close once this reply is out */
	int		 head_only;	/* HEAD: the head of the reply only */
	int		 chunked;	/* the reply in steps is chunked */
	char		*head;		/* a copy of the request's head,
					   parsed, while its body arrives */
	size_t		 head_len;
	struct http_head parsed;	/* what the head says */
	http_step_fn	*step;		/* a reply in steps, or NULL */
	int		 waiting;	/* its step said HTTP_STEP_WAIT */
	struct web_auth	*auth;		/* web_auth.c's, or NULL */
	http_change_fn	*change;	/* a change in batches, or NULL */
	void		(*change_done)(struct session *, void *, int);
	void		*ctx;		/* of step or change */
	void		(*ctx_free)(void *);
};

static const char *const method_names[HTTP_NMETHODS] = {
	[HTTP_GET] = "GET",
	[HTTP_HEAD] = "HEAD",
	[HTTP_POST] = "POST",
	[HTTP_PUT] = "PUT",
	[HTTP_PATCH] = "PATCH",
	[HTTP_DELETE] = "DELETE",
	[HTTP_OPTIONS] = "OPTIONS",
};

/* Each status's reason, and the header an error of it carries. */
static const struct {
	int		 status;
	const char	*reason;
	const char	*error_header;
} reasons[] = {
	{ 200, "OK", NULL }, { 204, "No Content", NULL },
	{ 400, "Bad Request", NULL },
	{ 401, "Unauthorized",
	    "WWW-Authenticate: Basic realm=\"mailrepd\", charset=\"UTF-8\"\r\n" },
	{ 403, "Forbidden", NULL }, { 404, "Not Found", NULL },
	{ 405, "Method Not Allowed", "Allow: GET, HEAD, DELETE\r\n" },
	{ 408, "Request Timeout", NULL },
	{ 413, "Content Too Large", NULL }, { 414, "URI Too Long", NULL },
	{ 431, "Request Header Fields Too Large", NULL },
	{ 500, "Internal Server Error", NULL },
	{ 501, "Not Implemented", NULL },
	{ 503, "Service Unavailable", "Retry-After: 2\r\n" },
	{ 505, "HTTP Version Not Supported", NULL },
};

static int	header_host(struct http_head *, const char *);
static int	header_origin(struct http_head *, const char *);
static int	header_fetch_site(struct http_head *, const char *);
static int	header_content_length(struct http_head *, const char *);
static int	header_transfer_encoding(struct http_head *, const char *);
static int	header_connection(struct http_head *, const char *);
static int	header_authorization(struct http_head *, const char *);
static int	header_last_event_id(struct http_head *, const char *);

/*
 * The header fields a request's handling looks at; each handler returns
 * 0, or the status that refuses the request.  The rest are skipped.
 */
static const struct {
	const char	*name;
	int		(*take)(struct http_head *, const char *value);
} headers[] = {
	{ "host", header_host },
	{ "origin", header_origin },
	{ "sec-fetch-site", header_fetch_site },
	{ "content-length", header_content_length },
	{ "transfer-encoding", header_transfer_encoding },
	{ "connection", header_connection },
	{ "authorization", header_authorization },
	{ "last-event-id", header_last_event_id },
};

const char *
http_method_name(enum http_method m)
{
	return m < HTTP_NMETHODS ? method_names[m] : "?";
}

/* The index of status in reasons[], or -1. */
static int
reason_index(int status)
{
	int	 i;

	for (i = 0; i < (int)(sizeof(reasons) / sizeof(*reasons)); i++)
		if (reasons[i].status == status)
			return i;
	return -1;
}

static const char *
reason(int status)
{
	int	 i = reason_index(status);

	return i >= 0 ? reasons[i].reason : "Unknown";
}

/* A second Host (two names for one request) is refused. */
static int
header_host(struct http_head *h, const char *v)
{
	if (h->req.host != NULL)
		return 400;
	h->req.host = v;
	return 0;
}

static int
header_origin(struct http_head *h, const char *v)
{
	if (h->req.origin != NULL)
		return 400;
	h->req.origin = v;
	return 0;
}

static int
header_fetch_site(struct http_head *h, const char *v)
{
	h->req.fetch_site = v;
	return 0;
}

/* Two sets of credentials for one request are refused. */
static int
header_authorization(struct http_head *h, const char *v)
{
	if (h->req.authorization != NULL)
		return 400;
	h->req.authorization = v;
	return 0;
}

static int
header_last_event_id(struct http_head *h, const char *v)
{
	h->req.last_event_id = v;
	return 0;
}

/* Digits only, once: "+5", "5, 5" and a second field are refused. */
static int
header_content_length(struct http_head *h, const char *v)
{
	int64_t	 n = 0;

	if (h->content_length >= 0 || *v == '\0')
		return 400;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return 400;
		if (n > HTTP_MAX_BODY)
			return 413;
		n = n * 10 + (*v - '0');
	}
	h->content_length = n;
	return n > HTTP_MAX_BODY ? 413 : 0;
}

/* No request of ours has a chunked body: refused, never guessed at. */
static int
header_transfer_encoding(struct http_head *h, const char *v)
{
	(void)v;
	h->te = 1;
	return 501;
}

static int
header_connection(struct http_head *h, const char *v)
{
	const char	*p = v;
	size_t		 n;

	while (*p != '\0') {
		p += strspn(p, " \t,");
		n = strcspn(p, " \t,");
		if (n == 5 && strncasecmp(p, "close", 5) == 0)
			h->close = 1;
		p += n;
	}
	return 0;
}

/* A token character (RFC 9110 5.6.2). */
static int
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * Parses the request line in place (line: NUL-terminated, without its
 * line ending).  Returns 0 or the status that refuses it.
 */
static int
parse_request_line(struct http_session *hs, struct http_head *h, char *line)
{
	char	*target, *version, *q;
	size_t	 i, n;

	if ((target = strchr(line, ' ')) == NULL)
		return 400;
	*target++ = '\0';
	if ((version = strchr(target, ' ')) == NULL)
		return 400;
	*version++ = '\0';
	if ((n = strlen(line)) == 0 || n > HTTP_MAX_METHOD)
		return 400;
	for (i = 0; i < n; i++)
		if (!tchar((unsigned char)line[i]))
			return 400;
	for (i = 0; i < HTTP_NMETHODS; i++)
		if (strcmp(line, method_names[i]) == 0)
			break;
	if (i == HTTP_NMETHODS)
		return 501;
	h->req.method = (enum http_method)i;
	if (target[0] != '/')
		return 400;
	for (q = target; *q != '\0'; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			return 400;
	if ((q = strchr(target, '?')) != NULL)
		*q++ = '\0';
	h->req.path = target;
	h->req.query = q != NULL ? q : "";
	if (strncmp(version, "HTTP/", 5) != 0 || version[5] < '0' ||
	    version[5] > '9' || version[6] != '.' || version[7] < '0' ||
	    version[7] > '9' || version[8] != '\0')
		return 400;
	if (version[5] != '1')
		return 505;
	hs->minor = version[7] - '0';
	return 0;
}

/*
 * Parses one header line in place: "name: value" with optional white
 * space around the value.  Returns 0 or the refusing status.
 */
static int
parse_header(struct http_head *h, char *line)
{
	char	*colon, *v, *end;
	size_t	 i;

	if (*line == ' ' || *line == '\t')
		return 400;		/* obsolete line folding */
	if ((colon = strchr(line, ':')) == NULL || colon == line)
		return 400;
	for (v = line; v < colon; v++)
		if (!tchar((unsigned char)*v))
			return 400;	/* "Host :" and the like */
	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (end = v; *end != '\0'; end++)
		if (((unsigned char)*end < 0x20 && *end != '\t') ||
		    (unsigned char)*end == 0x7f)
			return 400;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	for (i = 0; i < sizeof(headers) / sizeof(*headers); i++)
		if (strcasecmp(line, headers[i].name) == 0)
			return headers[i].take(h, v);
	return 0;
}

/*
 * Parses the head (len bytes at p, ending with its empty line) in place.
 * Returns 0 or the refusing status.
 */
static int
parse_head(struct http_session *hs, struct http_head *h, char *p,
    size_t len)
{
	char	*end = p + len, *line, *lf;
	size_t	 n;
	int	 status, count = 0;

	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	for (line = p; line < end; line = lf + 1) {
		lf = memchr(line, '\n', (size_t)(end - line));
		if (lf == NULL)
			return 400;
		n = (size_t)(lf - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (memchr(line, '\0', n) != NULL ||
		    memchr(line, '\r', n) != NULL)
			return 400;	/* a NUL or a bare CR inside */
		line[n] = '\0';
		if (line == p)
			status = parse_request_line(hs, h, line);
		else if (*line == '\0')
			break;
		else if (++count > HTTP_MAX_HEADERS)
			status = 431;
		else
			status = parse_header(h, line);
		if (status != 0)
			return status;
	}
	if (hs->minor >= 1 && h->req.host == NULL)
		return 400;
	return 0;
}

/* Whether this reply is the connection's last. */
static int
closing(struct session *s, struct http_session *hs)
{
	if (s->srv->draining || hs->requests >= HTTP_MAX_KEEPALIVE ||
	    hs->minor == 0)
		hs->close_after = 1;
	return hs->close_after;
}

/* The status line and headers; length -1: chunked (or until close). */
static void
write_head(struct session *s, int status, const char *type, int64_t length,
    const char *extra)
{
	struct http_session	*hs = s->proto;

	session_printf(s, "HTTP/1.1 %d %s\r\n", status, reason(status));
	if (type != NULL)
		session_printf(s, "Content-Type: %s\r\n", type);
	if (length >= 0)
		session_printf(s, "Content-Length: %lld\r\n",
		    (long long)length);
	else if (hs->minor >= 1)
		session_printf(s, "Transfer-Encoding: chunked\r\n");
	else
		hs->close_after = 1;	/* HTTP/1.0: the end is the close */
	session_printf(s, "%s%s%s%s%s\r\n", closing(s, hs) ?
	    "Connection: close\r\n" : "", HTTP_SECURITY_HEADERS,
	    extra != NULL && strstr(extra, "Content-Security-Policy:") !=
	    NULL ? "" : HTTP_DEFAULT_CSP, extra != NULL &&
	    strstr(extra, "Cross-Origin-Resource-Policy:") != NULL ? "" :
	    HTTP_DEFAULT_CORP, extra != NULL ? extra : "");
	hs->chunked = length < 0 && hs->minor >= 1;
}

/* The reply is out: close the connection if it was its last. */
static void
reply_done(struct session *s)
{
	struct http_session	*hs = s->proto;

	if (hs->close_after && s->io == SESSION_OPEN)
		session_close(s);
}

void
http_reply(struct session *s, int status, const char *type,
    const void *body, size_t len, const char *extra)
{
	struct http_session	*hs = s->proto;

	write_head(s, status, type, (int64_t)len, extra);
	if (!hs->head_only)
		session_write(s, body, len);
	reply_done(s);
}

void
http_error(struct session *s, int status, const char *message)
{
	char	*text = NULL;
	size_t	 len = 0;
	FILE	*f;
	int	 i;

	if ((f = http_memstream(&text, &len)) == NULL) {
		session_broken(s);
		return;
	}
	fputs("{\"error\":", f);
	json_str(f, message);
	fputs("}\n", f);
	if (fclose(f) != 0) {
		free(text);
		session_broken(s);
		return;
	}
	i = reason_index(status);
	http_reply(s, status, "application/json", text, len, i >= 0 ?
	    reasons[i].error_header : NULL);
	free(text);
}

FILE *
http_memstream(char **text, size_t *len)
{
	FILE	*f;

	if ((f = open_memstream(text, len)) != NULL)
		(void)__fsetlocking(f, FSETLOCKING_BYCALLER);
	return f;
}

void
http_send(struct session *s, const void *p, size_t len)
{
	struct http_session	*hs = s->proto;

	if (len == 0 || hs->head_only)
		return;
	if (hs->chunked)
		session_printf(s, "%zx\r\n", len);
	session_write(s, p, len);
	if (hs->chunked)
		session_write(s, "\r\n", 2);
}

/* Ends a reply in steps or a change, and frees its state. */
static void
stream_end(struct session *s, struct http_session *hs)
{
	if (hs->ctx_free != NULL)
		hs->ctx_free(hs->ctx);
	hs->step = NULL;
	hs->waiting = 0;
	hs->change = NULL;
	hs->ctx = NULL;
	hs->ctx_free = NULL;
	s->resume = 0;
}

void
http_stream(struct session *s, int status, const char *type, int64_t length,
    const char *extra, http_step_fn *step, void *ctx,
    void (*ctx_free)(void *))
{
	struct http_session	*hs = s->proto;

	write_head(s, status, type, length, extra);
	hs->step = step;
	hs->ctx = ctx;
	hs->ctx_free = ctx_free;
	if (hs->head_only) {
		stream_end(s, hs);
		reply_done(s);
	}
}

void
http_change(struct session *s, http_change_fn *change,
    void (*done)(struct session *, void *, int), void *ctx,
    void (*ctx_free)(void *))
{
	struct http_session	*hs = s->proto;

	hs->change = change;
	hs->change_done = done;
	hs->ctx = ctx;
	hs->ctx_free = ctx_free;
	s->resume = 1;		/* http_input runs its first batch */
}

/* The change is over: its reply, then its state goes. */
static void
change_end(struct session *s, struct http_session *hs, int ok)
{
	hs->change = NULL;
	s->resume = 0;
	hs->change_done(s, hs->ctx, ok);
	stream_end(s, hs);
}

/*
 * Writes the change's next batch and waits for its commit, or ends it.
 * Another process holding the store's lock: tried again STORE_RETRY_MS
 * later (session_store_ready).
 */
static void
change_run(struct session *s, struct http_session *hs)
{
	int	 r;

	if (!session_store_ready(s))
		return;
	if ((r = hs->change(s, hs->ctx)) == 0)
		session_wait_replicated(s);
	else
		change_end(s, hs, r > 0);
}

/* A batch is committed (ok), or not: the next one, or the end. */
static void
http_committed(struct session *s, int ok)
{
	struct http_session	*hs = s->proto;

	if (hs == NULL || hs->change == NULL)
		return;
	if (!ok)
		change_end(s, hs, 0);
	else
		s->resume = 1;
}

/*
 * Runs the reply in steps while the output has room, for HTTP_STEP_USEC
 * at most: a search that sends little, or a deep page's skip, goes on
 * next iteration.  Returns 1 when it is done (the next request may be
 * taken), 0 when it waits for the output to drain or the next
 * iteration (resume), or the connection is cut.
 */
static int
stream_steps(struct session *s, struct http_session *hs)
{
	long long	 end = log_clock_us() + HTTP_STEP_USEC;
	int		 r = 0;

	while (s->io == SESSION_OPEN && !session_output_high(s) &&
	    (r = hs->step(s, hs->ctx)) == 0 && log_clock_us() < end)
		;
	hs->waiting = r == HTTP_STEP_WAIT;
	if (hs->waiting) {
		s->resume = 0;		/* http_wake asks it again */
		return 0;
	}
	if (r == 0 && s->io == SESSION_OPEN) {
		s->resume = 1;
		return 0;
	}
	if (r < 0) {
		log_warn("http.stream", "id=%llu peer=%s msg=\"reply cut "
		    "short\"", (unsigned long long)s->id, s->peer);
		stream_end(s, hs);
		session_broken(s);
		return 0;
	}
	if (hs->chunked)
		session_write(s, "0\r\n\r\n", 5);
	stream_end(s, hs);
	reply_done(s);
	return s->io == SESSION_OPEN;
}

/* Refuses the request being received with status and closes. */
static void
refuse(struct session *s, struct http_session *hs, int status,
    const char *why)
{
	log_info("http.refused", "id=%llu peer=%s status=%d reason=%s",
	    (unsigned long long)s->id, s->peer, status, why);
	hs->close_after = 1;
	hs->head_only = 0;
	http_error(s, status, why);
}

/* Where the head ends (after its empty line), or 0 when not yet. */
static size_t
head_end(const char *p, size_t used)
{
	const char	*lf = p;
	size_t		 left = used;

	while ((lf = memchr(lf, '\n', left)) != NULL) {
		lf++;
		left = used - (size_t)(lf - p);
		if (left >= 1 && lf[0] == '\n')
			return (size_t)(lf - p) + 1;
		if (left >= 2 && lf[0] == '\r' && lf[1] == '\n')
			return (size_t)(lf - p) + 2;
	}
	return 0;
}

/*
 * Finds, copies and parses the head of the next request into hs->head
 * (the parse writes into its copy: the input buffer may move while the
 * body arrives).  Returns 1 when it is parsed, 0 when it waits for input
 * or was refused.
 */
static int
take_head(struct session *s, struct http_session *hs)
{
	char	*p;
	size_t	 used, head, skip;
	int	 status;

	p = buf_ptr(&s->in);
	used = buf_used(&s->in);
	/* Empty lines before a request are ignored (RFC 9112 2.2). */
	for (skip = 0; skip < used && (p[skip] == '\r' || p[skip] == '\n');
	    skip++)
		;
	buf_consume(&s->in, skip);
	p += skip;
	if ((used -= skip) == 0) {
		hs->request_since = 0;
		return 0;
	}
	if (hs->request_since == 0)
		hs->request_since = s->srv->now;
	if (memchr(p, '\n', used < HTTP_MAX_REQUEST_LINE ? used :
	    HTTP_MAX_REQUEST_LINE) == NULL && used >= HTTP_MAX_REQUEST_LINE) {
		refuse(s, hs, 414, "request line too long");
		return 0;
	}
	if ((head = head_end(p, used < HTTP_MAX_HEAD ? used :
	    HTTP_MAX_HEAD)) == 0) {
		if (used >= HTTP_MAX_HEAD)
			refuse(s, hs, 431, "request head too large");
		return 0;
	}
	if ((hs->head = malloc(head)) == NULL) {
		session_broken(s);
		return 0;
	}
	memcpy(hs->head, p, head);
	hs->head_len = head;
	if ((status = parse_head(hs, &hs->parsed, hs->head, head)) != 0) {
		refuse(s, hs, status, status == 431 ? "too many header "
		    "fields" : status == 413 ? "request body too large" :
		    status == 501 ? "not implemented" : status == 505 ?
		    "HTTP version not supported" : "bad request");
		return 0;
	}
	return 1;
}

/* Forgets the request taken (its head copy). */
static void
request_free(struct http_session *hs)
{
	free(hs->head);
	hs->head = NULL;
	hs->head_len = 0;
	hs->request_since = 0;
}

/*
 * Takes the next request if it has fully arrived, and answers it.
 * Returns 1 when one was taken and more may be, 0 when it waits for
 * input or the output, or the connection is closing.
 */
static int
take_request(struct session *s, struct http_session *hs)
{
	struct http_request	*req = &hs->parsed.req;

	if (hs->head == NULL && !take_head(s, hs))
		return 0;
	if (s->io != SESSION_OPEN)
		return 0;
	req->body_len = hs->parsed.content_length > 0 ?
	    (size_t)hs->parsed.content_length : 0;
	if (buf_used(&s->in) - hs->head_len < req->body_len)
		return 0;		/* the body is still on its way */
	req->body = buf_ptr(&s->in) + hs->head_len;
	hs->requests++;
	hs->close_after = hs->parsed.close;
	hs->head_only = req->method == HTTP_HEAD;
	log_debug("http.request", "id=%llu method=%s path=%s",
	    (unsigned long long)s->id, http_method_name(req->method),
	    log_quote(req->path));
	if (web_handle(s, req) == WEB_WAIT) {
		hs->requests--;		/* taken again when unpaused */
		return 0;
	}
	buf_consume(&s->in, hs->head_len + req->body_len);
	request_free(hs);
	return s->io == SESSION_OPEN;
}

/*
 * Takes every request buffered (pipelining), in order: a reply in
 * steps runs to its end before the next request is looked at.
 */
static void
http_input(struct session *s)
{
	struct http_session	*hs = s->proto;

	while (s->io == SESSION_OPEN && !session_output_high(s)) {
		if (hs->change != NULL) {
			change_run(s, hs);
			return;
		}
		if (hs->step != NULL) {
			if (!stream_steps(s, hs))
				return;
		} else if (!take_request(s, hs))
			return;
	}
	if (hs->step != NULL && !hs->waiting && s->io == SESSION_OPEN)
		s->resume = 1;
}

int
http_stream_waiting(const struct session *s)
{
	const struct http_session	*hs = s->proto;

	return hs != NULL && hs->step != NULL && hs->waiting;
}

struct web_auth **
http_auth_slot(struct session *s)
{
	struct http_session	*hs = s->proto;

	return &hs->auth;
}

static void
http_start(struct session *s)
{
	if ((s->proto = calloc(1, sizeof(struct http_session))) == NULL)
		session_broken(s);
}

/*
 * After a group commit and once a second: an event stream waiting for
 * news looks again; a held login refusal may go out (web_auth.c).  Once
 * a second: a request that takes longer than HTTP_REQUEST_TIMEOUT
 * to arrive (a client trickling bytes) gets 408; a reply left unread
 * HTTP_SEND_TIMEOUT cuts the connection; an idle keep-alive connection
 * closes after HTTP_KEEPALIVE_TIMEOUT.
 */
static void
http_wake(struct session *s)
{
	struct http_session	*hs = s->proto;
	time_t			 now = s->srv->now;

	if (hs == NULL)
		return;
	if (hs->waiting && !session_output_high(s))
		(void)stream_steps(s, hs);
	if (hs->auth != NULL)
		web_auth_wake(s);
	if (s->paused || s->io != SESSION_OPEN)
		return;		/* a login being checked or held */
	if (hs->step == NULL && hs->request_since != 0 &&
	    now - hs->request_since > HTTP_REQUEST_TIMEOUT)
		refuse(s, hs, 408, "request timeout");
	else if (session_has_output(s) &&
	    now - s->last_active > HTTP_SEND_TIMEOUT)
		session_broken(s);
	else if (hs->step == NULL && buf_used(&s->in) == 0 &&
	    !session_has_output(s) &&
	    now - s->last_active > HTTP_KEEPALIVE_TIMEOUT)
		session_close(s);
}

static void
http_timeout(struct session *s)
{
	session_close(s);
}

/*
 * Drain: an idle connection closes now, and so does an event stream
 * (its end is written: a client reconnects elsewhere); a request
 * finishes first.
 */
static int
http_drain(struct session *s)
{
	struct http_session	*hs = s->proto;

	if (hs != NULL && hs->waiting) {
		if (hs->chunked)
			session_write(s, "0\r\n\r\n", 5);
		stream_end(s, hs);
	}
	if (hs != NULL && (hs->step != NULL || hs->change != NULL ||
	    buf_used(&s->in) > 0))
		return 0;
	session_close(s);
	return 1;
}

static void
http_free(struct session *s)
{
	struct http_session	*hs = s->proto;

	if (hs == NULL)
		return;
	stream_end(s, hs);
	request_free(hs);
	web_auth_free(hs->auth);
	free(hs);
	s->proto = NULL;
}

const struct proto_ops http_proto = {
	.name = "http",
	.pool = POOL_HTTP,
	.in_limit = HTTP_MAX_HEAD + HTTP_MAX_BODY,
	.out_limit = HTTP_OUT_LIMIT,
	.busy_reply = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
	    "Content-Length: 0\r\n\r\n",
	.start = http_start,
	.input = http_input,
	.committed = http_committed,
	.checked = web_auth_checked,
	.timeout = http_timeout,
	.free = http_free,
	.wake = http_wake,
	.drain = http_drain,
};
