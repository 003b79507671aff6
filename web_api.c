/*
 * web_api.c — the JSON API under /api/v1/, shaped as Mailpit's so that
 * a test suite written against Mailpit runs against mailrepd by changing
 * its base URL (README, "Moving from Mailpit", lists the differences).
 *
 * Every user's mail is one list, newest first; a user who logged in
 * (web_auth.h) sees only theirs: every call makes its store filter
 * from req->user (request_filter), whatever the query asks, and a
 * message of another user is not found.  A message's ID is its
 * mailbox's uniqueid in hex, a dash and its UID: it names the same
 * message for ever, on every node.  Lists and raw messages are sent in
 * steps as the output drains (http_stream), WEB_BATCH messages or one
 * IO_CHUNK at a time, so a reply of any size holds bounded memory.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "http.h"
#include "imap_parse.h"
#include "imap_search.h"
#include "json.h"
#include "mime.h"
#include "proto.h"
#include "store.h"
#include "sync.h"
#include "web_api.h"
#include "web_message.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#define TERM_MAX_KEYS	64	/* bytes of one term's SEARCH keys */
#define TERM_MAX_ARGS	18	/* words of them, with a NOT */


/*
 * A list or a search being sent in steps.  A search's terms but
 * has:attachment are SEARCH keys (term_keys[]), run by the IMAP search's
 * matcher over each message of the list (imap_search.h): the same
 * matching, decoding and full-text index as IMAP SEARCH.
 */
struct listing {
	struct store_web_filter	 filter;	/* whose messages */
	struct store_web_pos	 pos;
	int64_t			 start;		/* skipped first */
	int64_t			 limit;		/* listed at most */
	int64_t			 listed;
	int64_t			 matched;	/* search: matches seen */
	int64_t			 total, unread;
	int			 done;		/* no more messages */
	struct search		*search;	/* NULL: a plain list */
	int			 attachment;	/* has:attachment 1, negated
						   -1, else 0 */
	size_t			 got, next;	/* search: the batch, tried */
	struct store_web_message batch[WEB_BATCH];
};

/* A raw message being sent in steps. */
struct raw {
	struct store_blob_reader *reader;
	uint64_t		 off, size;
};

/*
 * What each search term becomes: the SEARCH keys (RFC 3501 6.4.4) of a
 * prefix ("from:..."), of a word standing alone ("is:read"), and of
 * free text (the last row), "%" standing for the term's value.  Free
 * text is looked for in the subject, the addresses and the body, as
 * Mailpit does.  has:attachment has no keys: it reads the structure.
 */
static const struct {
	const char	*prefix;
	const char	*keys;
	int		 whole;		/* the whole word, no value */
	int		 day;		/* the value is a day */
} term_keys[] = {
	{ "from:", "FROM %", 0, 0 },
	{ "to:", "TO %", 0, 0 },
	{ "cc:", "CC %", 0, 0 },
	{ "bcc:", "BCC %", 0, 0 },
	{ "reply-to:", "HEADER REPLY-TO %", 0, 0 },
	{ "addressed:", "OR OR FROM % TO % OR OR CC % BCC % "
	    "HEADER REPLY-TO %", 0, 0 },
	{ "subject:", "SUBJECT %", 0, 0 },
	{ "message-id:", "HEADER MESSAGE-ID %", 0, 0 },
	{ "is:read", "SEEN", 1, 0 },
	{ "is:unread", "UNSEEN", 1, 0 },
	{ "before:", "BEFORE %", 0, 1 },
	{ "after:", "SINCE %", 0, 1 },
	{ "has:attachment", NULL, 1, 0 },
	{ "", "OR OR SUBJECT % OR FROM % TO % OR OR CC % BCC % BODY %", 0, 0 },
};

/* The byte two hex digits at p make, or -1 when they are not hex. */
static int
hex_byte(const char *p)
{
	int	 i, v = 0;

	for (i = 0; i < 2; i++) {
		if (!isxdigit((unsigned char)p[i]))
			return -1;
		v = v << 4 | (isdigit((unsigned char)p[i]) ? p[i] - '0' :
		    tolower((unsigned char)p[i]) - 'a' + 10);
	}
	return v;
}

void
web_message_id(const uint8_t *uniqueid, uint32_t uid, char *id)
{
	crypto_hex(uniqueid, MAILBOX_ID_LEN, id);
	snprintf(id + MAILBOX_ID_LEN * 2, WEB_ID_LEN + 1 - MAILBOX_ID_LEN * 2,
	    "-%u", uid);
}

/* Reads an ID ("<32 hex>-<uid>"); 0, or -1 when it is not one. */
static int
parse_id(const char *id, uint8_t *uniqueid, uint32_t *uid)
{
	unsigned long	 n;
	char		*end;
	int		 i, byte;

	for (i = 0; i < MAILBOX_ID_LEN; i++) {
		if ((byte = hex_byte(id + 2 * i)) < 0)
			return -1;
		uniqueid[i] = (uint8_t)byte;
	}
	id += MAILBOX_ID_LEN * 2;
	if (*id++ != '-' || !isdigit((unsigned char)*id))
		return -1;
	n = strtoul(id, &end, 10);
	if (*end != '\0' || n == 0 || n > UINT32_MAX || end - id > 10)
		return -1;
	*uid = (uint32_t)n;
	return 0;
}

/*
 * A URL query value, %XX and '+' decoded, into out (size bytes).
 * Returns 0, or -1 when it is too long, holds a bad escape or a NUL.
 */
static int
url_decode(const char *s, size_t n, char *out, size_t size)
{
	size_t	 i, o = 0;
	int	 byte;

	for (i = 0; i < n; i++) {
		if (o + 1 >= size)
			return -1;
		if (s[i] == '+')
			out[o++] = ' ';
		else if (s[i] == '%') {
			if (i + 2 >= n || (byte = hex_byte(s + i + 1)) < 0)
				return -1;
			out[o++] = (char)byte;
			i += 2;
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return memchr(out, '\0', o) != NULL ? -1 : 0;
}

/*
 * The value of parameter name in query, decoded into out.  Returns 1
 * when found, 0 when absent, -1 when too long or not decodable.
 */
static int
query_param(const char *query, const char *name, char *out, size_t size)
{
	const char	*p = query;
	size_t		 n, len = strlen(name), eq;

	while (*p != '\0') {
		n = strcspn(p, "&");
		eq = strcspn(p, "=");
		if (eq < n && eq == len && strncmp(p, name, len) == 0)
			return url_decode(p + eq + 1, n - eq - 1, out, size) <
			    0 ? -1 : 1;
		p += n + (p[n] == '&');
	}
	return 0;
}

/* A number parameter within [0, max], def when absent; -1 when bad. */
static int64_t
number_param(const char *query, const char *name, int64_t def, int64_t max)
{
	char		 v[24], *end;
	long long	 n;
	int		 r;

	if ((r = query_param(query, name, v, sizeof(v))) == 0)
		return def;
	if (r < 0 || !isdigit((unsigned char)v[0]))
		return -1;
	n = strtoll(v, &end, 10);
	if (*end != '\0' || n < 0)
		return -1;
	return n > max ? max : n;
}

/* Writes t as Mailpit does: "2024-01-31T12:00:00.000Z". */
static void
json_time(FILE *f, int64_t t)
{
	char		 s[40];
	time_t		 tt = (time_t)t;
	struct tm	 tm;

	if (t < 0 || gmtime_r(&tt, &tm) == NULL) {
		fputs("null", f);
		return;
	}
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	fprintf(f, "\"%s\"", s);
}

/* Trims white space and one pair of quotes off [*s, *s + *n). */
static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)**s))
		(*s)++, (*n)--;
	while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
	if (*n >= 2 && (*s)[0] == '"' && (*s)[*n - 1] == '"')
		(*s)++, *n -= 2;
}

/* One address ("Name <a@b>" or "a@b") as {"Name":..,"Address":..}. */
static void
json_address(FILE *f, const char *s, size_t n)
{
	const char	*lt = memchr(s, '<', n), *gt, *name = s, *addr;
	size_t		 nlen = 0, alen;

	if (lt != NULL && (gt = memchr(lt, '>', n - (size_t)(lt - s))) !=
	    NULL) {
		nlen = (size_t)(lt - s);
		addr = lt + 1;
		alen = (size_t)(gt - addr);
	} else {
		addr = s;
		alen = n;
	}
	trim(&name, &nlen);
	trim(&addr, &alen);
	fputs("{\"Name\":", f);
	json_string(f, name, nlen);
	fputs(",\"Address\":", f);
	json_string(f, addr, alen);
	putc('}', f);
}

/* An address list, split at commas outside quotes and angle brackets. */
static void
json_addresses(FILE *f, const char *list)
{
	const char	*p = list, *start = list;
	int		 quoted = 0, angle = 0, first = 1;

	putc('[', f);
	for (; list != NULL; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '<' && !quoted)
			angle = 1;
		else if (*p == '>' && !quoted)
			angle = 0;
		if (*p != '\0' && (*p != ',' || quoted || angle))
			continue;
		if (strspn(start, " \t") < (size_t)(p - start)) {
			fputs(first ? "" : ",", f);
			json_address(f, start, (size_t)(p - start));
			first = 0;
		}
		if (*p == '\0')
			break;
		start = p + 1;
	}
	putc(']', f);
}

/* A Message-ID without its angle brackets, as Mailpit gives it. */
static void
json_message_id(FILE *f, const char *id)
{
	size_t	 n;

	if (id == NULL) {
		fputs("\"\"", f);
		return;
	}
	n = strlen(id);
	trim(&id, &n);
	if (n >= 2 && id[0] == '<' && id[n - 1] == '>')
		id++, n -= 2;
	json_string(f, id, n);
}

/* The fields a list entry and a whole message share, without braces. */
static void
json_summary(FILE *f, const struct store_web_message *m,
    const struct store_meta *meta)
{
	char	 id[WEB_ID_LEN + 1];

	web_message_id(m->uniqueid, m->uid, id);
	fprintf(f, "\"ID\":\"%s\",\"MessageID\":", id);
	json_message_id(f, meta->message_id);
	fprintf(f, ",\"Read\":%s,\"From\":", m->flags & FLAG_SEEN ? "true" :
	    "false");
	if (meta->from != NULL && *meta->from != '\0')
		json_address(f, meta->from, strlen(meta->from));
	else
		fputs("{\"Name\":\"\",\"Address\":\"\"}", f);
	fputs(",\"To\":", f);
	json_addresses(f, meta->to);
	fputs(",\"Cc\":[],\"Bcc\":[],\"ReplyTo\":[],\"Subject\":", f);
	json_str(f, meta->subject != NULL ? meta->subject : "");
	fputs(",\"Created\":", f);
	json_time(f, m->internaldate);
	fputs(",\"Date\":", f);
	json_time(f, meta->sent_date);
	fprintf(f, ",\"Tags\":[],\"Size\":%llu,\"Username\":",
	    (unsigned long long)m->size);
	json_str(f, m->user);
	fputs(",\"Mailbox\":", f);
	json_str(f, m->mailbox);
}

/*
 * Day s ("YYYY-MM-DD" or "YYYY/MM/DD", UTC) as SEARCH writes a date
 * ("1-Feb-2024") into out (12 bytes); -1 when s is no such day.
 */
static int
search_day(const char *s, char *out)
{
	struct tm	 tm;
	char		 day[11], back[11], *end;
	time_t		 t;
	size_t		 i;

	if (strlen(s) != 10)
		return -1;
	for (i = 0; i < 10; i++)
		day[i] = s[i] == '/' ? '-' : s[i];
	day[10] = '\0';
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(day, "%Y-%m-%d", &tm)) == NULL || *end != '\0')
		return -1;
	t = timegm(&tm);
	if (gmtime_r(&t, &tm) == NULL || strftime(back, sizeof(back),
	    "%Y-%m-%d", &tm) != 10 || strcmp(back, day) != 0)
		return -1;	/* February 30th, or not written in full */
	/* %b: the program never leaves the C locale. */
	return strftime(out, 12, "%d-%b-%Y", &tm) > 0 ? 0 : -1;
}

/*
 * Appends the keys of one term to args (*n of them so far): the words
 * of keys, copied into words (as long, which must outlive the args,
 * as must val) as atoms, each "%" as the string val; NOT first when
 * negated.
 */
static void
term_args(struct imap_arg *args, size_t *n, const char *keys, char *words,
    char *val, int neg)
{
	struct imap_arg	*a;
	char		*w, *save;

	if (neg) {
		a = &args[(*n)++];
		a->type = IMAP_ARG_ATOM;
		a->str = "NOT";
		a->len = 3;
	}
	snprintf(words, TERM_MAX_KEYS, "%s", keys);
	for (w = strtok_r(words, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		a = &args[(*n)++];
		a->type = w[0] == '%' ? IMAP_ARG_STRING : IMAP_ARG_ATOM;
		a->str = w[0] == '%' ? val : w;
		a->len = strlen(a->str);
	}
}

/* The row of term_keys a word of the query begins with (free text last). */
static size_t
term_kind(const char *q)
{
	size_t	 k, plen;

	for (k = 0; k < nitems(term_keys) - 1; k++) {
		plen = strlen(term_keys[k].prefix);
		if (strncasecmp(q, term_keys[k].prefix, plen) == 0 &&
		    (!term_keys[k].whole || q[plen] == '\0' ||
		    q[plen] == ' ' || q[plen] == '\t'))
			break;
	}
	return k;
}

/*
 * Splits a search query into terms (words, "quoted phrases" and the
 * prefixes of term_keys; "-" or "!" before one excludes what it
 * matches) and compiles them into l->search, every term to match.
 * Returns 0, or -1 with why set when there are too many terms, a date
 * is no day, or SEARCH refuses them.
 */
static int
parse_query(struct store *st, struct listing *l, const char *q,
    char *why, size_t whylen)
{
	/* Each term's value, and its keys' words. */
	char		(*vals)[WEB_MAX_QUERY + 1];
	char		(*words)[TERM_MAX_KEYS];
	char		 day[12];
	struct imap_arg	*args;
	const char	*w;
	size_t		 n, k, nterms = 0, nargs = 0, pre;
	int		 neg, r = -1;

	vals = calloc(WEB_MAX_TERMS, sizeof(*vals));
	words = calloc(WEB_MAX_TERMS, sizeof(*words));
	args = calloc(WEB_MAX_TERMS * TERM_MAX_ARGS + 1, sizeof(*args));
	snprintf(why, whylen, "out of memory");
	while (vals != NULL && words != NULL && args != NULL) {
		q += strspn(q, " \t");
		if (*q == '\0') {
			r = 0;
			break;
		}
		snprintf(why, whylen, "more than %d terms", WEB_MAX_TERMS);
		if (nterms == WEB_MAX_TERMS)
			break;
		neg = (*q == '-' || *q == '!') && q[1] != '\0' &&
		    q[1] != ' ' && q[1] != '\t';
		q += neg;
		k = term_kind(q);
		pre = strlen(term_keys[k].prefix);
		w = q + pre;
		if (*w == '"') {
			n = strcspn(++w, "\"");
			q = w + n + (w[n] == '"');
		} else {
			n = strcspn(w, " \t");
			q = w + n;
		}
		snprintf(vals[nterms], sizeof(*vals), "%.*s", (int)n, w);
		if (term_keys[k].keys == NULL) {
			l->attachment = neg ? -1 : 1;
			continue;
		}
		snprintf(why, whylen, "%s needs a day such as 2024-04-01",
		    term_keys[k].prefix);
		if (term_keys[k].day) {
			if (search_day(vals[nterms], day) < 0)
				break;
			snprintf(vals[nterms], sizeof(*vals), "%s", day);
		}
		term_args(args, &nargs, term_keys[k].keys, words[nterms],
		    vals[nterms], neg);
		nterms++;
	}
	if (r == 0 && nargs == 0)
		term_args(args, &nargs, "ALL", words[0], vals[0], 0);
	if (r == 0 && (l->search = search_rows_new(st, args, nargs, why,
	    whylen)) == NULL)
		r = -1;
	free(vals);
	free(words);
	free(args);
	return r;
}
/* The listing's last step: the counts after the messages. */
static void
list_tail(struct session *s, struct listing *l)
{
	char	 tail[128];
	int	 n;

	n = snprintf(tail, sizeof(tail), "],\"count\":%lld,"
	    "\"messages_count\":%lld}\n", (long long)l->listed,
	    (long long)(l->search != NULL ? l->matched : l->total));
	http_send(s, tail, (size_t)n);
}

/*
 * Message m of a list, or a match of a search: counted, and written to
 * f when it falls within start and limit (a plain list skipped its
 * start over the index) and passes has:attachment.  Returns 0, or -1
 * on a store error.  A message expunged meanwhile is left out.
 */
static int
list_entry(struct store *st, struct listing *l,
    const struct store_web_message *m, FILE *f)
{
	struct store_meta	 meta;
	enum store_err		 err;
	int			 attached;

	if (l->search != NULL && l->attachment == 0 &&
	    (l->matched++ < l->start || l->listed >= l->limit))
		return 0;	/* counted, not shown: nothing to read */
	memset(&meta, 0, sizeof(meta));
	if ((err = store_message_meta(st, m->guid, STORE_META_SEARCH |
	    (l->attachment != 0 ? STORE_META_STRUCT : 0), &meta)) != STORE_OK)
		return err == STORE_NOTFOUND ? 0 : -1;
	if (l->attachment != 0) {
		attached = meta.bodystructure != NULL &&
		    strcasestr(meta.bodystructure, "(\"attachment\"") != NULL;
		if (attached != (l->attachment > 0) ||
		    l->matched++ < l->start || l->listed >= l->limit) {
			store_meta_free(&meta);
			return 0;
		}
	}
	fputs(l->listed++ > 0 ? ",{" : "{", f);
	json_summary(f, m, &meta);
	fputs(",\"Attachments\":0,\"Snippet\":\"\"}", f);
	store_meta_free(&meta);
	return 0;
}

/*
 * One step of a plain list: WEB_SKIP_STEP positions of its start
 * skipped over the index, or the next batch of messages.  Returns 1
 * when the list is done, 0 when a step more is wanted, -1 on an error.
 */
static int
list_batch(struct session *s, struct listing *l, FILE *f)
{
	size_t			 got, i, want;
	int64_t			 skip;

	if (l->start > 0 && !l->done) {
		skip = l->start < WEB_SKIP_STEP ? l->start : WEB_SKIP_STEP;
		if (store_web_skip(s->srv->store, &l->filter, &l->pos, skip,
		    &l->done) != STORE_OK)
			return -1;
		l->start -= skip;
		return 0;
	}
	want = (size_t)(l->limit - l->listed < WEB_BATCH ?
	    l->limit - l->listed : WEB_BATCH);
	if (l->done || want == 0)
		return 1;
	if (store_web_page(s->srv->store, &l->filter, &l->pos, l->batch,
	    want, &got) != STORE_OK)
		return -1;
	for (i = 0; i < got; i++)
		if (list_entry(s->srv->store, l, &l->batch[i], f) < 0)
			return -1;
	l->done = got < want;
	return got == 0;
}

/*
 * One step of a search: the index read, then each message of the list
 * tried (the matcher may stop in the middle of one when the step's
 * time is up, and go on from there next step) and its entry written
 * when it matches.  Returns as list_batch().
 */
static int
search_batch(struct session *s, struct listing *l, FILE *f)
{
	const struct store_web_message	*m;
	struct store_message		 row;
	int				 r;

	search_rows_step(l->search);
	if (!search_rows_ready(l->search))
		return 0;
	do {
		if (l->next == l->got) {
			if (l->done)
				return 1;
			if (store_web_page(s->srv->store, &l->filter, &l->pos,
			    l->batch, WEB_BATCH, &l->got) != STORE_OK)
				return -1;
			l->next = 0;
			l->done = l->got < WEB_BATCH;
			continue;
		}
		m = &l->batch[l->next];
		memset(&row, 0, sizeof(row));
		row.uid = m->uid;
		memcpy(row.guid, m->guid, GUID_LEN);
		row.flags = m->flags;
		row.internaldate = m->internaldate;
		row.size = m->size;
		if ((r = search_rows_try(l->search, m->mailbox_id, &row,
		    m->blob_id)) == 2)
			return 0;
		l->next++;
		if (r < 0 || (r > 0 && list_entry(s->srv->store, l, m, f) < 0))
			return -1;
	} while (search_rows_time_left(l->search));
	return 0;
}

/*
 * One step of a list or a search, its entries sent together; the
 * counts once it is done.
 */
static int
list_run(struct session *s, struct listing *l)
{
	char	*text = NULL;
	size_t	 len = 0;
	FILE	*f;
	int	 r;

	if ((f = http_memstream(&text, &len)) == NULL)
		return -1;
	r = l->search != NULL ? search_batch(s, l, f) : list_batch(s, l, f);
	if (fclose(f) != 0) {
		free(text);
		return -1;
	}
	if (r >= 0 && len > 0)
		http_send(s, text, len);
	free(text);
	if (r == 1)
		list_tail(s, l);
	return r;
}

/* list_run() in one read snapshot: its look-ups share one lock. */
static int
list_step(struct session *s, void *ctx)
{
	int	 r;

	store_read_begin(s->srv->store);
	r = list_run(s, ctx);
	store_read_end(s->srv->store);
	return r;
}

/*
 * The filter of what req may see: a user who logged in, only their
 * own mail; the admin view (req->user NULL), every user's.
 */
static void
request_filter(const struct http_request *req, struct store_web_filter *f)
{
	memset(f, 0, sizeof(*f));
	if (req->user != NULL)
		snprintf(f->user, sizeof(f->user), "%s", req->user);
}

/*
 * Replies to a look-up that found nothing (404, saying what) or failed
 * (503: a failed look-up is no "no such"); returns -1.
 */
static int
lookup_failed(struct session *s, enum store_err err, const char *what)
{
	if (err == STORE_NOTFOUND)
		http_error(s, 404, what);
	else
		http_error(s, 503, "the store cannot be read now, try again");
	return -1;
}

/*
 * The filter a request's user= and mailbox= parameters name (absent:
 * every user's, every mailbox's) within what req may see: a user who
 * logged in is held to their own, whatever user= says.  Replies 400 or
 * 404 and returns -1 when they are bad or name nobody.
 */
static int
read_filter(struct session *s, const struct http_request *req,
    struct store_web_filter *f)
{
	struct store_mailbox	 mb;
	enum store_err		 err;
	char			 user[USER_MAX_NAME + 1];
	char			 mailbox[MAILBOX_MAX_NAME + 1];
	int			 ru, rm;

	request_filter(req, f);
	ru = query_param(req->query, "user", user, sizeof(user));
	rm = query_param(req->query, "mailbox", mailbox, sizeof(mailbox));
	if (ru < 0 || rm < 0 || (rm > 0 && ru == 0 && req->user == NULL)) {
		http_error(s, 400, "bad user or mailbox (a mailbox needs "
		    "its user)");
		return -1;
	}
	if (ru > 0 && req->user == NULL && (err = store_user_find(
	    s->srv->store, user, f->user)) != STORE_OK)
		return lookup_failed(s, err, "no such user");
	if (rm > 0) {
		if ((err = store_mailbox_get(s->srv->store, f->user, mailbox,
		    &mb)) != STORE_OK)
			return lookup_failed(s, err, "no such mailbox");
		f->mailbox_id = mb.id;
	}
	return 0;
}

static void
listing_free(void *arg)
{
	struct listing	*l = arg;

	search_rows_free(l->search);
	free(l);
}

/* Starts a list (no query) or a search reply in steps. */
static void
list_start(struct session *s, const struct http_request *req, int search)
{
	struct listing	*l;
	char		 head[160], q[WEB_MAX_QUERY + 1], why[160];
	int		 n, r = 0;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		http_error(s, 500, "out of memory");
		return;
	}
	store_web_top(&l->pos);
	l->start = number_param(req->query, "start", 0, INT64_MAX / 2);
	l->limit = number_param(req->query, "limit", WEB_DEFAULT_LIMIT,
	    WEB_MAX_LIMIT);
	snprintf(why, sizeof(why), "bad start, limit or query");
	if (search && (r = query_param(req->query, "query", q,
	    sizeof(q))) == 0)
		snprintf(why, sizeof(why), "query is missing");
	if (l->start < 0 || l->limit < 0 || r < 0 || (search && (r == 0 ||
	    parse_query(s->srv->store, l, q, why, sizeof(why)) < 0))) {
		listing_free(l);
		http_error(s, 400, why);
		return;
	}
	if (l->limit == 0)
		l->limit = WEB_DEFAULT_LIMIT;
	if (read_filter(s, req, &l->filter) < 0) {
		listing_free(l);
		return;
	}
	if (store_web_count(s->srv->store, &l->filter, &l->total,
	    &l->unread) != STORE_OK) {
		listing_free(l);
		http_error(s, 500, "cannot read the store");
		return;
	}
	n = snprintf(head, sizeof(head), "{\"total\":%lld,\"unread\":%lld,"
	    "\"start\":%lld,\"tags\":[],\"messages\":[",
	    (long long)l->total, (long long)l->unread, (long long)l->start);
	http_stream(s, 200, "application/json", -1, NULL, list_step, l,
	    listing_free);
	http_send(s, head, (size_t)n);
}

void
web_api_list(struct session *s, const struct http_request *req,
    const char *arg)
{
	(void)arg;
	list_start(s, req, 0);
}

void
web_api_search(struct session *s, const struct http_request *req,
    const char *arg)
{
	(void)arg;
	list_start(s, req, 1);
}

int
web_api_find(struct session *s, const struct http_request *req,
    const char *id, struct store_web_message *m)
{
	struct store_web_filter	 f;
	enum store_err		 err = STORE_NOTFOUND;
	uint8_t			 uniqueid[MAILBOX_ID_LEN];
	uint32_t		 uid;

	request_filter(req, &f);
	if (id == NULL || parse_id(id, uniqueid, &uid) < 0 ||
	    (err = store_web_get(s->srv->store, &f, uniqueid, uid, m)) !=
	    STORE_OK)
		return lookup_failed(s, err, "no such message");
	return 0;
}

void
web_api_message_reply(struct session *s, const struct http_request *req,
    const char *arg, unsigned what, web_message_writer *write)
{
	struct store_web_message m;
	struct store_meta	 meta;
	char			*text = NULL;
	size_t			 len = 0;
	FILE			*f;
	int			 ok;

	if (web_api_find(s, req, arg, &m) < 0)
		return;
	memset(&meta, 0, sizeof(meta));
	if (store_message_meta(s->srv->store, m.guid, what, &meta) !=
	    STORE_OK || (f = http_memstream(&text, &len)) == NULL) {
		store_meta_free(&meta);
		http_error(s, 500, "cannot read the message");
		return;
	}
	ok = write(f, s->srv->store, &m, &meta) == 0;
	store_meta_free(&meta);
	if (fclose(f) != 0 || !ok) {
		free(text);
		http_error(s, 500, "out of memory");
		return;
	}
	http_reply(s, 200, "application/json", text, len, NULL);
	free(text);
}

/* GET /api/v1/message/{ID}'s JSON: its summary, then its body. */
static int
message_json(FILE *f, struct store *st, const struct store_web_message *m,
    const struct store_meta *meta)
{
	int	 r;

	putc('{', f);
	json_summary(f, m, meta);
	r = web_message_json(f, st, m);
	fputs("}\n", f);
	return r;
}

void
web_api_message(struct session *s, const struct http_request *req,
    const char *arg)
{
	web_api_message_reply(s, req, arg, STORE_META_SEARCH, message_json);
}

static void
raw_free(void *ctx)
{
	struct raw	*r = ctx;

	store_blob_close(r->reader);
	free(r);
}

/* One IO_CHUNK of the raw message. */
static int
raw_step(struct session *s, void *ctx)
{
	struct raw	*r = ctx;
	char		 chunk[IO_CHUNK];
	ssize_t		 got;

	if (r->off >= r->size)
		return 1;
	if ((got = store_blob_read(r->reader, r->off, chunk,
	    sizeof(chunk))) <= 0)
		return -1;
	http_send(s, chunk, (size_t)got);
	r->off += (uint64_t)got;
	return 0;
}

void
web_api_raw(struct session *s, const struct http_request *req,
    const char *arg)
{
	struct store_web_message m;
	struct raw		*r;

	if (web_api_find(s, req, arg, &m) < 0)
		return;
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    store_blob_open(s->srv->store, m.guid, &r->reader, &r->size) !=
	    STORE_OK) {
		free(r);
		http_error(s, 500, "cannot read the message");
		return;
	}
	http_stream(s, 200, "text/plain; charset=utf-8", (int64_t)r->size,
	    NULL, raw_step, r, raw_free);
}

/* A DELETE or a PUT (read or unread) being made in batches. */
struct batch_change {
	int			 remove;	/* DELETE; else PUT */
	int			 read;		/* PUT: \Seen set or cleared */
	struct store_web_filter	 filter;	/* whose messages */
	struct store_web_pos	 pos;		/* every message: the last done */
	size_t			 n, next;	/* IDs given, and done */
	struct {
		uint8_t		 uniqueid[MAILBOX_ID_LEN];
		uint32_t	 uid;
	}			*ids;		/* NULL: every message */
	struct store_web_message batch[WEB_DELETE_BATCH];
};

static void
batch_change_free(void *ctx)
{
	struct batch_change	*c = ctx;

	free(c->ids);
	free(c);
}

/* Sets or clears \Seen on one message, its keywords kept. */
static enum store_err
set_read(struct store *st, const struct store_web_message *m, int read)
{
	struct store_message	 msg;
	char			 kw[STORE_MAX_KEYWORDS];
	uint32_t		 flags;
	uint64_t		 modseq;
	enum store_err		 err;

	if ((err = store_message_get(st, m->mailbox_id, m->uid, &msg)) !=
	    STORE_OK)
		return err == STORE_NOTFOUND ? STORE_OK : err;
	flags = read ? msg.flags | FLAG_SEEN : msg.flags & ~FLAG_SEEN;
	if (flags == msg.flags)
		return STORE_OK;
	snprintf(kw, sizeof(kw), "%s", msg.keywords);
	return store_message_set_flags(st, m->mailbox_id, m->uid, flags, kw,
	    &modseq);
}

/*
 * One batch: the next WEB_DELETE_BATCH IDs given (those gone already
 * are skipped), or the next messages from the newest down, as they were
 * when the request came (mail arriving meanwhile is newer and stays).
 */
static int
change_step(struct session *s, void *ctx)
{
	struct batch_change	*c = ctx;
	struct store		*st = s->srv->store;
	size_t			 got = 0, i;
	enum store_err		 err;

	if (c->ids != NULL) {
		/* One gone is skipped; one unread fails the change. */
		for (; got < WEB_DELETE_BATCH && c->next < c->n; c->next++)
			if ((err = store_web_get(st, &c->filter,
			    c->ids[c->next].uniqueid, c->ids[c->next].uid,
			    &c->batch[got])) == STORE_OK)
				got++;
			else if (err != STORE_NOTFOUND)
				return -1;
	} else if (store_web_page(st, &c->filter, &c->pos, c->batch,
	    WEB_DELETE_BATCH, &got) != STORE_OK)
		return -1;
	for (i = 0; i < got; i++) {
		err = c->remove ? store_message_expunge(st,
		    c->batch[i].mailbox_id, c->batch[i].uid) :
		    set_read(st, &c->batch[i], c->read);
		if (err != STORE_OK)
			return -1;
	}
	return got > 0 ? 0 : c->ids != NULL && c->next < c->n ? 0 : 1;
}

static void
change_done(struct session *s, void *ctx, int ok)
{
	(void)ctx;
	if (ok)
		http_reply(s, 200, "text/plain; charset=utf-8", "ok", 2, NULL);
	else
		http_error(s, 500, "the store could not change them");
}

/* Skips JSON white space and one ':' at *p. */
static const char *
json_gap(const char *p, const char *end)
{
	while (p < end && strchr(" \t\r\n:", *p) != NULL)
		p++;
	return p;
}

/*
 * Reads {"IDs":["...",...]} into c->ids: every string in the array
 * after "IDs" must be an ID.  No body, or no "IDs": every message.
 * Returns 0, or -1 when the body is not such an object.
 */
static int
parse_ids(struct batch_change *c, const char *body, size_t len)
{
	const char	*p, *end = body + len, *q;
	char		 id[WEB_ID_LEN + 1];
	size_t		 max = len / 8 + 1;

	if (len == 0 || (p = memmem(body, len, "\"IDs\"", 5)) == NULL)
		return len == 0 || memchr(body, '{', len) != NULL ? 0 : -1;
	p = json_gap(p + 5, end);
	if (p == end || *p++ != '[' ||
	    (c->ids = calloc(max, sizeof(*c->ids))) == NULL)
		return -1;
	for (;;) {
		while (p < end && strchr(" \t\r\n,", *p) != NULL)
			p++;
		if (p < end && *p == ']')
			return 0;
		if (p == end || *p++ != '"' ||
		    (q = memchr(p, '"', (size_t)(end - p))) == NULL ||
		    (size_t)(q - p) > WEB_ID_LEN || c->n == max)
			return -1;
		memcpy(id, p, (size_t)(q - p));
		id[q - p] = '\0';
		if (parse_id(id, c->ids[c->n].uniqueid, &c->ids[c->n].uid) < 0)
			return -1;
		c->n++;
		p = q + 1;
	}
}

/* Reads "Read":true or false; 0, or -1 when it is missing or bad. */
static int
parse_read(struct batch_change *c, const char *body, size_t len)
{
	const char	*p, *end = body + len;

	if (len == 0 || (p = memmem(body, len, "\"Read\"", 6)) == NULL)
		return -1;
	p = json_gap(p + 6, end);
	if (end - p >= 4 && memcmp(p, "true", 4) == 0)
		c->read = 1;
	else if (end - p < 5 || memcmp(p, "false", 5) != 0)
		return -1;
	return 0;
}

/* Starts a DELETE or PUT of /api/v1/messages. */
static void
change_start(struct session *s, const struct http_request *req, int remove)
{
	struct batch_change	*c;

	if (sync_is_replica()) {
		http_error(s, 403, "this node is a read-only replica");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		http_error(s, 500, "out of memory");
		return;
	}
	c->remove = remove;
	request_filter(req, &c->filter);
	store_web_top(&c->pos);
	if (parse_ids(c, req->body, req->body_len) < 0 || (!remove &&
	    parse_read(c, req->body, req->body_len) < 0)) {
		batch_change_free(c);
		http_error(s, 400, remove ? "the body is not {\"IDs\":[...]}" :
		    "the body is not {\"IDs\":[...],\"Read\":true|false}");
		return;
	}
	http_change(s, change_step, change_done, c, batch_change_free);
}

void
web_api_delete(struct session *s, const struct http_request *req,
    const char *arg)
{
	(void)arg;
	change_start(s, req, 1);
}

void
web_api_read(struct session *s, const struct http_request *req,
    const char *arg)
{
	(void)arg;
	change_start(s, req, 0);
}

/* Users and their mailboxes being listed (GET /api/v1/mailboxes). */
struct mailbox_walk {
	FILE		*f;
	struct store	*st;
	size_t		 listed;	/* users and mailboxes */
	size_t		 in_user;	/* the user's mailboxes */
	int		 err;
};

static int
mailbox_entry(void *arg, const struct store_mailbox *mb)
{
	struct mailbox_walk	*w = arg;

	if (w->listed++ >= WEB_MAX_MAILBOXES)
		return 1;
	fputs(w->in_user++ > 0 ? ",{\"Name\":" : "{\"Name\":", w->f);
	json_str(w->f, mb->name);
	fprintf(w->f, ",\"Total\":%u,\"Unread\":%u}", mb->messages,
	    mb->unseen);
	return 0;
}

static int
user_entry(void *arg, const char *name, int64_t created)
{
	struct mailbox_walk	*w = arg;

	(void)created;
	if (w->listed >= WEB_MAX_MAILBOXES)
		return 1;
	fputs(w->listed++ > 0 ? ",{\"Name\":" : "{\"Name\":", w->f);
	json_str(w->f, name);
	fputs(",\"Mailboxes\":[", w->f);
	w->in_user = 0;
	if (store_mailbox_foreach(w->st, name, mailbox_entry, w) != STORE_OK)
		w->err = 1;
	fputs("]}", w->f);
	return w->err;
}

void
web_api_mailboxes(struct session *s, const struct http_request *req,
    const char *arg)
{
	struct mailbox_walk	 w;
	char			*text = NULL;
	size_t			 len = 0;

	(void)arg;
	memset(&w, 0, sizeof(w));
	w.st = s->srv->store;
	if ((w.f = http_memstream(&text, &len)) == NULL) {
		http_error(s, 500, "out of memory");
		return;
	}
	fputs("{\"users\":[", w.f);
	if (req->user != NULL)
		user_entry(&w, req->user, 0);
	else if (store_user_foreach(w.st, user_entry, &w) != STORE_OK)
		w.err = 1;
	fprintf(w.f, "],\"truncated\":%s}\n", w.listed >= WEB_MAX_MAILBOXES ?
	    "true" : "false");
	if (fclose(w.f) != 0 || w.err) {
		free(text);
		http_error(s, 500, "cannot read the store");
		return;
	}
	http_reply(s, 200, "application/json", text, len, NULL);
	free(text);
}
