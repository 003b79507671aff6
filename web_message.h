/*
 * web_message.h — one message's body for the web API (web_message.c):
 * its text, sanitized HTML and attachments, and the routes that serve
 * them.
 */
#ifndef MAILREPD_WEB_MESSAGE_H
#define MAILREPD_WEB_MESSAGE_H

#include <stdio.h>

struct http_request;
struct session;
struct store;
struct store_web_message;

/*
 * Writes the body fields of GET /api/v1/message/{ID} (Mailpit's):
 * ,"Text":..,"HTML":..,"Inline":[],"Attachments":[{PartID, FileName,
 * ContentType, ContentID, Size}].  Returns 0, or -1 when the store or
 * memory failed (f then holds part of them).
 */
int	web_message_json(FILE *, struct store *,
	    const struct store_web_message *);
/*
 * GET /api/v1/message/{ID}/html[?remote=1]: the HTML sanitized, as a
 * document under a policy that runs nothing and loads nothing from
 * elsewhere (with remote=1: images, fonts and style sheets over http(s)).
 */
void	web_api_html(struct session *, const struct http_request *,
	    const char *arg);
/*
 * GET /api/v1/message/{ID}/part/{PartID}: a part decoded, as a download
 * (Content-Disposition: attachment); arg is "ID/PartID".
 */
void	web_api_part(struct session *, const struct http_request *,
	    const char *arg);
/*
 * GET /api/v1/message/{ID}/cid/{Content-ID}: the image of this message
 * whose Content-ID is the one given (%-escaped), decoded, for the HTML
 * (RFC 2392 cid: URLs); 404 when it is none, or not an image of a type
 * a browser shows (PNG, GIF, JPEG, WebP, BMP, AVIF, SVG).
 */
void	web_api_cid(struct session *, const struct http_request *,
	    const char *arg);

#endif /* MAILREPD_WEB_MESSAGE_H */
