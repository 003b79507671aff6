/*
 * web_api.h — the JSON API under /api/v1/ (web_api.c), for web.c's
 * route table.  Each answers one request; `arg` is the path segment a
 * route's "*" matched (a message ID), or NULL.
 */
#ifndef MAILREPD_WEB_API_H
#define MAILREPD_WEB_API_H

#include <stdint.h>

#include "store.h"

struct http_request;
struct session;

/* A message's ID: its mailbox's uniqueid in hex, '-', its UID. */
#define WEB_ID_LEN	(MAILBOX_ID_LEN * 2 + 1 + 10)
/* Writes the ID of message uid of mailbox uniqueid (WEB_ID_LEN + 1). */
void	web_message_id(const uint8_t *uniqueid, uint32_t uid, char *id);

/* GET /api/v1/messages?start=&limit=: every user's mail, newest first. */
void	web_api_list(struct session *, const struct http_request *,
	    const char *arg);
/* GET /api/v1/search?query=&start=&limit=: the same, filtered. */
void	web_api_search(struct session *, const struct http_request *,
	    const char *arg);
/* GET /api/v1/message/{ID}: one message's summary and text. */
void	web_api_message(struct session *, const struct http_request *,
	    const char *arg);
/* GET /api/v1/message/{ID}/raw: its bytes as stored. */
void	web_api_raw(struct session *, const struct http_request *,
	    const char *arg);
/*
 * DELETE /api/v1/messages: every message, or those a {"IDs":[...]}
 * body names; in committed batches.  Browsers' requests must be
 * same-origin (web.c).
 */
void	web_api_delete(struct session *, const struct http_request *,
	    const char *arg);

#endif /* MAILREPD_WEB_API_H */
