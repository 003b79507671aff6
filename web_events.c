/*
 * web_events.c — the live event stream (web_events.h).
 *
 * Every change appends a record to the replication log in the same
 * transaction, on a master and on a replica applying its master's
 * batch alike, so the log is the one feed of what committed: after each
 * group commit (server_wake) the records past the feed's cursor become
 * events in a ring of SSE_RING_EVENTS, each an SSE frame made once and
 * sent to every stream that may see it.  Nothing is read while no
 * stream is open.
 *
 * Memory stays bounded whatever the streams do: the ring is fixed, a
 * stream writes only while its output is under the high-water mark, and
 * the kernel's buffer of its socket is fixed at SSE_SNDBUF.
 * A stream whose position fell out of the ring (a slow reader), or
 * whose events the feed skipped (the feed fell SSE_MAX_BEHIND records
 * behind, or the log was purged first), gets one "resync" event, after
 * which the page reloads its list; a reader that leaves the output
 * unread for HTTP_SEND_TIMEOUT is cut (http.c).  A frame's id is its
 * log position: a client reconnecting with Last-Event-ID goes on where
 * it stopped while the ring still holds it, or resyncs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "store.h"
#include "web_api.h"
#include "web_events.h"

/* One event: its log position, whose it is, and its SSE frame. */
struct event {
	int64_t	 seq;
	char	 user[USER_MAX_NAME + 1];	/* "": the admin view only */
	char	*frame;
	size_t	 len;
};

/* The feed every stream reads. */
static struct {
	unsigned	 streams;	/* open */
	int64_t		 cursor;	/* the last log record looked at */
	int64_t		 floor;		/* a stream at an earlier position
					   may have missed events */
	size_t		 first, count;	/* the ring's oldest, and how many */
	struct event	 ring[SSE_RING_EVENTS];
} feed;

/* One open stream. */
struct stream {
	int64_t		 pos;		/* the last position it was given */
	int		 all;		/* the admin view: every user's */
	char		 user[USER_MAX_NAME + 1];
	uint64_t	 users_gen;	/* the users when it logged in */
	time_t		 sent;		/* when it last sent something */
};

/* What a record becomes: its event's name, or NULL for none. */
static const char *const event_names[REC_NTYPES] = {
	[REC_USER_DEL] = "deleted",
	[REC_MAILBOX_DELETE] = "deleted",
	[REC_MESSAGE_APPEND] = "new",
	[REC_MESSAGE_FLAGS] = "flags",
	[REC_MESSAGE_EXPUNGE] = "expunge",
};

/* Frees every event: no stream is left. */
static void
feed_clear(void)
{
	size_t	 i;

	for (i = 0; i < feed.count; i++)
		free(feed.ring[(feed.first + i) % SSE_RING_EVENTS].frame);
	feed.first = feed.count = 0;
}

/* Adds an event (taking frame), dropping the oldest when the ring is full. */
static void
feed_push(int64_t seq, const char *user, char *frame, size_t len)
{
	struct event	*e;

	if (feed.count == SSE_RING_EVENTS) {
		e = &feed.ring[feed.first];
		if (e->seq > feed.floor)
			feed.floor = e->seq;
		free(e->frame);
		feed.first = (feed.first + 1) % SSE_RING_EVENTS;
		feed.count--;
	}
	e = &feed.ring[(feed.first + feed.count++) % SSE_RING_EVENTS];
	e->seq = seq;
	snprintf(e->user, sizeof(e->user), "%s", user);
	e->frame = frame;
	e->len = len;
}

/* The first event after position pos, or NULL. */
static const struct event *
feed_after(int64_t pos)
{
	const struct event	*e;
	size_t			 i;

	for (i = 0; i < feed.count; i++) {
		e = &feed.ring[(feed.first + i) % SSE_RING_EVENTS];
		if (e->seq > pos)
			return e;
	}
	return NULL;
}

/*
 * Writes a text field, cut to SSE_MAX_FIELD bytes on a UTF-8 character
 * boundary (a subject can be long; the page fetches the message).
 */
static void
json_field(FILE *f, const char *name, const char *v)
{
	size_t	 n = v != NULL ? strlen(v) : 0;

	if (n > SSE_MAX_FIELD) {
		n = SSE_MAX_FIELD;
		while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	fprintf(f, ",\"%s\":", name);
	json_string(f, v != NULL ? v : "", n);
}

/* A new message's summary: who sent it and its subject. */
static void
json_new(FILE *f, struct store *st, const struct store_replog_rec *r)
{
	struct store_meta	 meta;

	memset(&meta, 0, sizeof(meta));
	if (!r->has_guid || store_message_meta(st, r->guid,
	    STORE_META_SEARCH, &meta) != STORE_OK)
		memset(&meta, 0, sizeof(meta));
	json_field(f, "Subject", meta.subject);
	json_field(f, "From", meta.from);
	store_meta_free(&meta);
}

/*
 * Makes the event of one log record, if it has one: whose it is (the
 * mailbox's owner, looked up now; a mailbox gone since leaves it to
 * the admin view), then its frame.
 */
static void
event_of(struct store *st, const struct store_replog_rec *r)
{
	struct store_mailbox	 mb;
	char			 user[USER_MAX_NAME + 1], id[WEB_ID_LEN + 1];
	char			*frame = NULL;
	const char		*name = event_names[r->type];
	size_t			 len = 0;
	FILE			*f;

	if (name == NULL)
		return;
	snprintf(user, sizeof(user), "%s", r->user);
	memset(&mb, 0, sizeof(mb));
	if (r->has_mailbox && store_mailbox_by_uniqueid(st, r->mailbox, &mb,
	    user) != STORE_OK)
		snprintf(mb.name, sizeof(mb.name), "%s", r->name);
	if ((f = http_memstream(&frame, &len)) == NULL)
		return;
	fprintf(f, "id: %lld\nevent: %s\ndata: {\"Type\":\"%s\"",
	    (long long)r->seq, name, name);
	if (r->uid != 0 && r->has_mailbox) {
		web_message_id(r->mailbox, r->uid, id);
		json_field(f, "ID", id);
	}
	json_field(f, "User", user);
	fputs(",\"Mailbox\":", f);
	json_str(f, r->type == REC_USER_DEL ? NULL : mb.name);
	if (r->type == REC_MESSAGE_APPEND)
		json_new(f, st, r);
	if (r->type == REC_MESSAGE_FLAGS)
		fprintf(f, ",\"Read\":%s,\"Flagged\":%s,\"Deleted\":%s",
		    r->flags & FLAG_SEEN ? "true" : "false",
		    r->flags & FLAG_FLAGGED ? "true" : "false",
		    r->flags & FLAG_DELETED ? "true" : "false");
	fputs("}\n\n", f);
	if (fclose(f) != 0) {
		free(frame);
		return;
	}
	feed_push(r->seq, user, frame, len);
}

void
web_events_collect(struct server *srv)
{
	struct store		*st = srv->store;
	struct store_replog_rec	*r;
	int64_t			 head, first;
	enum store_err		 err = STORE_OK;
	int			 n;

	if (feed.streams == 0 || store_txn_open(st) ||
	    (head = store_replog_head(st)) <= feed.cursor)
		return;
	if (head - feed.cursor > SSE_MAX_BEHIND) {
		log_warn("http.events.skip", "records=%lld msg=\"the event feed "
		    "fell behind; every stream resyncs\"",
		    (long long)(head - feed.cursor));
		feed.cursor = feed.floor = head;
		return;
	}
	if ((first = store_replog_first(st)) > feed.cursor + 1)
		feed.floor = first - 1;		/* purged before we looked */
	if ((r = malloc(sizeof(*r))) == NULL)
		return;
	for (n = 0; n < SSE_COLLECT_STEP &&
	    (err = store_replog_next(st, feed.cursor, r)) == STORE_OK; n++) {
		feed.cursor = r->seq;
		event_of(st, r);
	}
	free(r);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		log_warn("http.events.skip", "err=%s msg=\"the log cannot be "
		    "read; every stream resyncs\"", store_strerror(err));
	/*
	 * Unreadable, or purged before we looked: skipped (not tried
	 * again every iteration), and the streams resync.
	 */
	if (err != STORE_OK && feed.cursor < head)
		feed.cursor = feed.floor = head;
	else if (feed.cursor < head)
		server_timer(srv, srv->now_ms);		/* the rest, soon */
}

/* Writes frame to the stream's client. */
static void
stream_send(struct session *s, struct stream *st, const char *frame,
    size_t len)
{
	http_send(s, frame, len);
	st->sent = s->srv->now;
}

/*
 * One step of a stream: its next event, a resync when it missed some,
 * or, with nothing to send, a keep-alive comment every SSE_KEEPALIVE
 * seconds.  A user's stream ends when the users change (a password, a
 * deletion): its client reconnects and logs in again.
 */
static int
stream_step(struct session *s, void *ctx)
{
	struct stream		*st = ctx;
	const struct event	*e;
	char			 frame[96];
	int			 n;

	if (!st->all && st->users_gen !=
	    store_users_generation(s->srv->store))
		return 1;
	if (st->pos < feed.floor) {
		n = snprintf(frame, sizeof(frame), "id: %lld\nevent: resync\n"
		    "data: {\"Type\":\"resync\"}\n\n", (long long)feed.cursor);
		st->pos = feed.cursor;
		stream_send(s, st, frame, (size_t)n);
		return 0;
	}
	if ((e = feed_after(st->pos)) == NULL) {
		if (s->srv->now - st->sent >= SSE_KEEPALIVE)
			stream_send(s, st, ":\n\n", 3);
		return HTTP_STEP_WAIT;
	}
	st->pos = e->seq;
	if (st->all || strcmp(e->user, st->user) == 0)
		stream_send(s, st, e->frame, e->len);
	return 0;
}

static void
stream_free(void *ctx)
{
	free(ctx);
	if (--feed.streams == 0)
		feed_clear();
}

/*
 * Where a reconnecting client (Last-Event-ID) goes on: after the
 * position it names when nothing since is lost, else from before the
 * floor, which makes its first event a resync.
 */
static int64_t
resume_at(const char *last_event_id)
{
	char		*end;
	long long	 id;

	if (last_event_id == NULL)
		return feed.cursor;
	id = strtoll(last_event_id, &end, 10);
	if (*last_event_id == '\0' || *end != '\0' || id < feed.floor ||
	    id > feed.cursor)
		return feed.floor - 1;
	return id;
}

void
web_events_serve(struct session *s, const struct http_request *req,
    const char *arg)
{
	static const char	 retry[] = "retry: 3000\n\n";
	struct stream		*st;

	(void)arg;
	if (feed.streams >= SSE_MAX_CLIENTS) {
		http_error(s, 503, "too many event streams");
		return;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		http_error(s, 503, "out of memory");
		return;
	}
	/*
	 * The head the last commit left: a change another session made in
	 * this iteration is not committed yet, and is this stream's news.
	 */
	if (feed.streams++ == 0)
		feed.cursor = feed.floor = store_txn_open(s->srv->store) ?
		    s->srv->hold.head : store_replog_head(s->srv->store);
	st->all = req->user == NULL;
	snprintf(st->user, sizeof(st->user), "%s", st->all ? "" : req->user);
	st->users_gen = store_users_generation(s->srv->store);
	st->pos = resume_at(req->last_event_id);
	st->sent = s->srv->now;
	net_send_buffer(s->fd, SSE_SNDBUF);
	log_info("http.events", "id=%llu peer=%s user=%s streams=%u",
	    (unsigned long long)s->id, s->peer, log_quote(st->all ?
	    "(admin)" : st->user), feed.streams);
	http_stream(s, 200, "text/event-stream; charset=utf-8", -1, NULL,
	    stream_step, st, stream_free);
	http_send(s, retry, sizeof(retry) - 1);
}
