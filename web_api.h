/*
 * web_api.h — the JSON API under /api/v1/ (web_api.c), for web.c's
 * route table.  Each answers one request; `arg` is the path segment a
 * route's "*" matched (a message ID), or NULL.
 */
#ifndef MAILREPD_WEB_API_H
#define MAILREPD_WEB_API_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"

struct http_request;
struct session;

/* A message's ID: its mailbox's uniqueid in hex, '-', its UID. */
#define WEB_ID_LEN	(MAILBOX_ID_LEN * 2 + 1 + 10)
/* Writes the ID of message uid of mailbox uniqueid (WEB_ID_LEN + 1). */
void	web_message_id(const uint8_t *uniqueid, uint32_t uid, char *id);

/*
 * GET /api/v1/messages?start=&limit=[&user=&mailbox=]: every user's
 * mail (or one user's, or one mailbox's), newest first.  A user who
 * logged in gets only their own, whatever user= says.
 */
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
 * body names, of those req may see; in committed batches.  Browsers'
 * requests must be same-origin (web.c).
 */
void	web_api_delete(struct session *, const struct http_request *,
	    const char *arg);
/*
 * PUT /api/v1/messages {"IDs":[...],"Read":true|false}: marks those
 * (no IDs: every message) read or unread, as DELETE does its batches.
 */
void	web_api_read(struct session *, const struct http_request *,
	    const char *arg);
/*
 * GET /api/v1/mailboxes: every user and their mailboxes, with counts
 * (a user who logged in: only theirs).
 */
void	web_api_mailboxes(struct session *, const struct http_request *,
	    const char *arg);
/*
 * Finds the message an ID names among those req may see (req->user's
 * own, or any for the admin view); replies 404 (and returns -1) if
 * none.
 */
int	web_api_find(struct session *, const struct http_request *req,
	    const char *id, struct store_web_message *);

/* Writes a reply about message m from the groups of its meta read. */
typedef int	web_message_writer(FILE *, struct store *,
		    const struct store_web_message *m,
		    const struct store_meta *meta);
/*
 * Finds message arg as web_api_find() does, reads its meta (`what`:
 * STORE_META_*), and replies 200 with the JSON write() makes (500 when
 * it returns -1, or the store fails).
 */
void	web_api_message_reply(struct session *, const struct http_request *,
	    const char *arg, unsigned what, web_message_writer *write);

#endif /* MAILREPD_WEB_API_H */
