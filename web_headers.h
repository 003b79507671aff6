/*
 * web_headers.h — a message's header fields as Mailpit's API gives
 * them (web_headers.c).
 */
#ifndef MAILREPD_WEB_HEADERS_H
#define MAILREPD_WEB_HEADERS_H

#include <stddef.h>
#include <stdio.h>

struct http_request;
struct session;

/*
 * Writes a header block (len bytes, as received) as Mailpit's JSON:
 * {"Name":["value",...],...}, each name in Go's canonical form
 * ("Message-Id"), names in byte order, the values of one name in the
 * message's order, unfolded and trimmed, not RFC 2047 decoded.  Returns
 * 0, or -1 when memory ran out.
 */
int	web_headers_json(FILE *, const char *header, size_t len);

/* GET /api/v1/message/{ID}/headers: the message's top-level fields. */
void	web_api_headers(struct session *, const struct http_request *,
	    const char *arg);

#endif /* MAILREPD_WEB_HEADERS_H */
