/*
 * web_events.h — the live event stream, GET /api/v1/events
 * (web_events.c): Server-Sent Events announcing new messages, flag
 * changes, expunges and deleted mailboxes and users as they commit,
 * whoever made them (LMTP, IMAP, the HTTP API, a replica's applied
 * batch).
 */
#ifndef MAILREPD_WEB_EVENTS_H
#define MAILREPD_WEB_EVENTS_H

struct http_request;
struct server;
struct session;

/*
 * Turns what was committed since the last call into events for the
 * open streams; nothing while none is open.  Called from server_wake()
 * (after each group commit, and once a second for other processes'
 * changes); does a bounded step and asks for another wake if more is
 * left.
 */
void	web_events_collect(struct server *);

/* GET /api/v1/events: opens a stream (the route table's handler). */
void	web_events_serve(struct session *, const struct http_request *,
	    const char *arg);

#endif /* MAILREPD_WEB_EVENTS_H */
