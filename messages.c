/*
 * messages.c — `mailrepd messages [show]` and `mailrepd wait`.
 *
 * Everything here goes through the store API: users, then their
 * mailboxes, then each mailbox's messages in UID order with the header
 * fields the MIME pre-parse kept at delivery.  Nothing is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "crypto.h"
#include "json.h"
#include "messages.h"
#include "settings.h"
#include "store.h"

/* What to list, and how. */
struct filter {
	const char	*user;		/* --user, or NULL: every user */
	const char	*mailbox;	/* --mailbox, or NULL: every mailbox */
	uint32_t	 since;		/* --since UID: only UIDs above it */
	int		 json;
};

/* One walk's state: where it is and what it printed. */
struct walk {
	struct store		*st;
	const struct filter	*f;
	const char		*user;		/* being walked */
	const char		*mailbox;
	uint64_t		 count;		/* messages printed or counted */
	int			 print;		/* 0: only count */
	enum store_err		 err;
};

/* A list of names collected before walking (no nested statements). */
struct names {
	char	**v;
	size_t	  n;
};

static int
names_add(struct names *l, const char *name)
{
	char	**grown, *copy;

	if ((copy = strdup(name)) == NULL ||
	    (grown = reallocarray(l->v, l->n + 1, sizeof(*l->v))) == NULL) {
		free(copy);
		return -1;
	}
	l->v = grown;
	l->v[l->n++] = copy;
	return 0;
}

static void
names_free(struct names *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
collect_user(void *arg, const char *name, int64_t created)
{
	(void)created;
	return names_add(arg, name) < 0;
}

static int
collect_mailbox(void *arg, const struct store_mailbox *m)
{
	return names_add(arg, m->name) < 0;
}

/* Writes t as "2024-01-31T12:00:00Z" (JSON: quoted) or null/"-". */
static void
print_time(FILE *out, int64_t t, int json)
{
	char		 s[32];
	time_t		 tt = (time_t)t;
	struct tm	 tm;

	if (t < 0 || gmtime_r(&tt, &tm) == NULL) {
		fputs(json ? "null" : "-", out);
		return;
	}
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(out, json ? "\"%s\"" : "%s", s);
}

/* A header field for the text listing: tabs and line ends as spaces. */
static void
print_field(FILE *out, const char *s)
{
	if (s == NULL || *s == '\0') {
		fputs("-", out);
		return;
	}
	for (; *s != '\0'; s++)
		putc(*s == '\t' || *s == '\r' || *s == '\n' ? ' ' : *s, out);
}

static void
print_flags(FILE *out, uint32_t flags, const char *keywords)
{
	static const struct {
		uint32_t	 bit;
		const char	*name;
	} names[] = {
		{ FLAG_SEEN, "\\\\Seen" }, { FLAG_ANSWERED, "\\\\Answered" },
		{ FLAG_FLAGGED, "\\\\Flagged" }, { FLAG_DELETED, "\\\\Deleted" },
		{ FLAG_DRAFT, "\\\\Draft" },
	};
	const char	*p = keywords, *sep = "";
	size_t		 i, n;

	putc('[', out);
	for (i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (flags & names[i].bit) {
			fprintf(out, "%s\"%s\"", sep, names[i].name);
			sep = ",";
		}
	while (p != NULL && *p != '\0') {
		n = strcspn(p, " ");
		if (n > 0) {
			fputs(sep, out);
			json_string(out, p, n);
			sep = ",";
		}
		p += n;
		p += strspn(p, " ");
	}
	putc(']', out);
}

/*
 * Prints one message: a JSON object, or one tab-separated line (user,
 * mailbox, uid, date, size, from, subject).  m may be NULL (a message
 * shown by GUID, outside any mailbox).  Returns 0 or -1.
 */
static int
print_message(struct store *st, const char *user, const char *mailbox,
    const struct store_message *m, const uint8_t *guid, int json,
    FILE *out)
{
	struct store_meta	 meta;
	char			 hex[GUID_HEX_LEN + 1];

	memset(&meta, 0, sizeof(meta));
	if (store_message_meta(st, guid, STORE_META_ALL, &meta) != STORE_OK)
		return -1;
	crypto_hex(guid, GUID_LEN, hex);
	if (!json) {
		fprintf(out, "%s\t%s\t", user ? user : "-",
		    mailbox ? mailbox : "-");
		if (m != NULL)
			fprintf(out, "%" PRIu32, m->uid);
		else
			fputs("-", out);
		putc('\t', out);
		print_time(out, meta.sent_date, 0);
		fprintf(out, "\t%" PRIu64 "\t", meta.size);
		print_field(out, meta.from);
		putc('\t', out);
		print_field(out, meta.subject);
		putc('\n', out);
		store_meta_free(&meta);
		return 0;
	}
	fputs("{\"user\":", out);
	json_str(out, user);
	fputs(",\"mailbox\":", out);
	json_str(out, mailbox);
	if (m != NULL)
		fprintf(out, ",\"uid\":%" PRIu32, m->uid);
	else
		fputs(",\"uid\":null", out);
	fprintf(out, ",\"guid\":\"%s\",\"from\":", hex);
	json_str(out, meta.from);
	fputs(",\"to\":", out);
	json_str(out, meta.to);
	fputs(",\"subject\":", out);
	json_str(out, meta.subject);
	fputs(",\"date\":", out);
	print_time(out, meta.sent_date, 1);
	fputs(",\"message_id\":", out);
	json_str(out, meta.message_id);
	fputs(",\"received\":", out);
	print_time(out, m ? m->internaldate : -1, 1);
	fprintf(out, ",\"size\":%" PRIu64 ",\"flags\":", meta.size);
	if (m != NULL)
		print_flags(out, m->flags, m->keywords);
	else
		fputs("null", out);
	store_meta_free(&meta);
	return 0;
}

static int
walk_message(void *arg, const struct store_message *m)
{
	struct walk	*w = arg;

	if (m->uid <= w->f->since)
		return 0;
	if (w->print) {
		if (w->f->json)
			fputs(w->count ? ",\n" : "\n", stdout);
		if (print_message(w->st, w->user, w->mailbox, m, m->guid,
		    w->f->json, stdout) < 0) {
			w->err = STORE_IO;
			return 1;
		}
		if (w->f->json)
			putc('}', stdout);
	}
	w->count++;
	return 0;
}

/* Walks one user's mailboxes (or the one asked for). */
static enum store_err
walk_user(struct walk *w, const char *user)
{
	struct names		 boxes = { NULL, 0 };
	struct store_mailbox	 mb;
	enum store_err		 err;
	size_t			 i;

	w->user = user;
	if (w->f->mailbox != NULL) {
		err = store_mailbox_get(w->st, user, w->f->mailbox, &mb);
		if (err == STORE_NOTFOUND)
			return STORE_OK;
		if (err != STORE_OK || names_add(&boxes, mb.name) < 0)
			return err != STORE_OK ? err : STORE_IO;
	} else if ((err = store_mailbox_foreach(w->st, user, collect_mailbox,
	    &boxes)) != STORE_OK) {
		names_free(&boxes);
		return err;
	}
	for (i = 0; i < boxes.n && w->err == STORE_OK; i++) {
		w->mailbox = boxes.v[i];
		if ((err = store_mailbox_get(w->st, user, boxes.v[i],
		    &mb)) == STORE_OK)
			err = store_message_foreach(w->st, mb.id,
			    walk_message, w);
		if (err != STORE_OK && err != STORE_NOTFOUND)
			w->err = err;
	}
	names_free(&boxes);
	w->mailbox = NULL;
	return w->err;
}

/*
 * Walks every message the filter selects, printing each (print) or only
 * counting them into w->count.
 */
static enum store_err
walk_store(struct walk *w)
{
	struct names	 users = { NULL, 0 };
	char		 canon[USER_MAX_NAME + 1];
	enum store_err	 err;
	size_t		 i;

	w->count = 0;
	w->err = STORE_OK;
	if (w->f->user != NULL) {
		err = store_user_find(w->st, w->f->user, canon);
		if (err == STORE_NOTFOUND)
			return STORE_OK;	/* nothing (yet) */
		if (err == STORE_OK)
			err = walk_user(w, canon);
		w->user = NULL;		/* it pointed at canon */
		return err;
	}
	if ((err = store_user_foreach(w->st, collect_user, &users)) !=
	    STORE_OK) {
		names_free(&users);
		return err;
	}
	for (i = 0; i < users.n && err == STORE_OK; i++)
		err = walk_user(w, users.v[i]);
	names_free(&users);
	return err;
}

/* Parses a whole non-negative number into *out; 0 or -1. */
static int
parse_number(const char *s, unsigned long long max, unsigned long long *out)
{
	char			*end;
	unsigned long long	 v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * Prints every selected message: a JSON array (one object per line) or
 * tab-separated lines.  Returns the exit status.
 */
static int
list_messages(struct store *st, const struct filter *f)
{
	struct walk	 w;
	enum store_err	 err;

	memset(&w, 0, sizeof(w));
	w.st = st;
	w.f = f;
	w.print = 1;
	if (f->json)
		putc('[', stdout);
	err = walk_store(&w);
	if (f->json)
		fputs(w.count ? "\n]\n" : "]\n", stdout);
	if (err != STORE_OK) {
		fprintf(stderr, "mailrepd: messages: %s\n",
		    store_strerror(err));
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * The exit status of `messages show` after err; a store error other
 * than "not found" (said by the caller) is said here: the message may
 * well be there.
 */
static int
show_failed(enum store_err err)
{
	if (err != STORE_NOTFOUND)
		fprintf(stderr, "mailrepd: messages show: cannot read the "
		    "store: %s\n", store_strerror(err));
	return 1;
}

/*
 * `messages show ID`: ID is a GUID (64 hex digits) or a UID in --user's
 * --mailbox (INBOX by default).  Without --json the message's bytes are
 * written as stored; with it, the listing's object plus "raw".
 */
static int
show_message(struct store *st, const struct filter *f, const char *id)
{
	struct store_mailbox		 mb;
	struct store_message		 m;
	struct store_blob_reader	*r;
	uint8_t				 guid[GUID_LEN];
	const char			*mailbox = f->mailbox ? f->mailbox :
					    "INBOX";
	char				 canon[USER_MAX_NAME + 1], buf[8192];
	unsigned long long		 uid;
	uint64_t			 size, off = 0;
	ssize_t				 n;
	int				 by_uid;
	enum store_err			 err;

	memset(&mb, 0, sizeof(mb));
	memset(&m, 0, sizeof(m));
	canon[0] = '\0';
	by_uid = strlen(id) != GUID_HEX_LEN;
	if (by_uid) {
		if (parse_number(id, UINT32_MAX, &uid) < 0 || uid == 0) {
			fprintf(stderr, "mailrepd: messages show: '%s' is "
			    "neither a UID nor a GUID (64 hex digits)\n", id);
			return 2;
		}
		if (f->user == NULL) {
			fprintf(stderr, "mailrepd: messages show UID needs "
			    "--user (or give the GUID)\n");
			return 2;
		}
		if ((err = store_user_find(st, f->user, canon)) == STORE_OK &&
		    (err = store_mailbox_get(st, canon, mailbox, &mb)) ==
		    STORE_OK)
			err = store_message_get(st, mb.id, (uint32_t)uid, &m);
		if (err == STORE_NOTFOUND)
			fprintf(stderr, "mailrepd: messages show: no message "
			    "%llu in '%s' of user '%s'\n", uid, mailbox,
			    f->user);
		if (err != STORE_OK)
			return show_failed(err);
		memcpy(guid, m.guid, GUID_LEN);
	} else if (crypto_unhex(id, guid, GUID_LEN) < 0) {
		fprintf(stderr, "mailrepd: messages show: '%s' is not a "
		    "GUID\n", id);
		return 2;
	}
	if ((err = store_blob_open(st, guid, &r, &size)) == STORE_NOTFOUND)
		fprintf(stderr, "mailrepd: messages show: no message %s\n",
		    id);
	if (err != STORE_OK)
		return show_failed(err);
	if (f->json && print_message(st, by_uid ? canon : NULL, by_uid ?
	    mb.name : NULL, by_uid ? &m : NULL, guid, 1, stdout) == 0)
		fputs(",\"raw\":\"", stdout);
	else if (f->json) {
		store_blob_close(r);
		return 1;
	}
	/*
	 * JSON: each chunk is escaped on its own; a UTF-8 sequence split
	 * across chunks would turn into U+FFFD, so chunks end at a line.
	 */
	while ((n = store_blob_read(r, off, buf, sizeof(buf))) > 0) {
		size_t	 len = (size_t)n;

		if (f->json) {
			char	*lf = memrchr(buf, '\n', len);

			if (lf != NULL && off + len < size)
				len = lf - buf + 1;
			json_escape(stdout, buf, len);
		} else
			fwrite(buf, 1, len, stdout);
		off += len;
	}
	store_blob_close(r);
	if (f->json)
		fputs("\"}\n", stdout);
	if (n < 0) {
		fprintf(stderr, "mailrepd: messages show: read error\n");
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static void
messages_usage(FILE *f, const struct cmd_option *opts, int n)
{
	fprintf(f, "usage: mailrepd messages --data DIR [--user U] "
	    "[--mailbox M] [--since UID] [--json]\n"
	    "       mailrepd messages show UID --user U [--mailbox M] "
	    "--data DIR [--json]\n"
	    "       mailrepd messages show GUID --data DIR [--json]\n\n"
	    "Lists what arrived, user by user and mailbox by mailbox in "
	    "UID order: one\nline per message (user, mailbox, uid, date, "
	    "size, from, subject), or with\n--json one array of objects "
	    "(user, mailbox, uid, guid, from, to, subject,\ndate, "
	    "message_id, received, size, flags).  'show' prints one "
	    "message as\nstored, or with --json its object plus \"raw\".  "
	    "Works while the server\nruns.\n\nOptions:\n");
	settings_usage_options(f, opts, n);
}

int
messages_main(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "user", 1, "only this user's messages", NULL },
		{ "mailbox", 1, "only this mailbox (show: default INBOX)",
		    NULL },
		{ "since", 1, "only messages with a UID above this one", NULL },
		{ "json", 0, "print JSON", NULL },
		{ "help", 0, "show this help", NULL },
	};
	const int		 nopts = sizeof(opts) / sizeof(*opts);
	struct settings		 set;
	struct filter		 f;
	struct store		*st;
	char			*pos[2];
	unsigned long long	 since = 0;
	int			 npos = 2, rc;

	if (settings_parse(&set, argc, argv, 2, opts, nopts, pos, &npos) <
	    0) {
		settings_free(&set);
		return 2;
	}
	if (opts[4].value != NULL) {
		messages_usage(stdout, opts, nopts);
		settings_free(&set);
		return 0;
	}
	if ((npos != 0 && (npos != 2 || strcmp(pos[0], "show") != 0)) ||
	    (opts[2].value != NULL &&
	    parse_number(opts[2].value, UINT32_MAX, &since) < 0)) {
		messages_usage(stderr, opts, nopts);
		settings_free(&set);
		return 2;
	}
	memset(&f, 0, sizeof(f));
	f.user = opts[0].value;
	f.mailbox = opts[1].value;
	f.since = (uint32_t)since;
	f.json = opts[3].value != NULL;
	if ((st = admin_open_store(&set, 0)) == NULL) {
		settings_free(&set);
		return EXIT_USAGE;
	}
	rc = npos == 2 ? show_message(st, &f, pos[1]) : list_messages(st, &f);
	store_close(st);
	settings_free(&set);
	return rc;
}

/* Seconds on the monotonic clock. */
static double
now_seconds(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
wait_usage(FILE *f, const struct cmd_option *opts, int n)
{
	fprintf(f, "usage: mailrepd wait --data DIR [--user U] [--mailbox M] "
	    "[--count N]\n                     [--timeout SECONDS] [--json]\n\n"
	    "Waits until the store holds at least N messages (default 1) for "
	    "the user\n(default: all users) in the mailbox (default: all), "
	    "looking every %d ms.\nReturns as soon as they are there (with "
	    "--json it then prints them as\n'mailrepd messages --json' "
	    "does); after --timeout seconds (default %d)\nit says what it "
	    "found and exits 1.  A store or user that does not exist\nyet "
	    "is waited for too.\n\nOptions:\n", WAIT_POLL_MS,
	    WAIT_DEFAULT_TIMEOUT);
	settings_usage_options(f, opts, n);
}

/* Opens the store once its database exists; NULL until then. */
static struct store *
wait_open(const struct settings *set)
{
	struct store	*st;
	struct stat	 sb;
	char		 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/mailrepd.db", set->data_dir);
	if (stat(path, &sb) < 0 || store_open(set->data_dir, &st) !=
	    STORE_OK)
		return NULL;
	return st;
}

int
messages_wait(int argc, char **argv)
{
	struct cmd_option opts[] = {
		{ "user", 1, "count this user's messages", NULL },
		{ "mailbox", 1, "count only this mailbox", NULL },
		{ "count", 1, "how many messages to wait for [1]", NULL },
		{ "timeout", 1, "seconds to wait, fractions allowed", NULL },
		{ "json", 0, "print the messages (JSON) once they are there",
		    NULL },
		{ "help", 0, "show this help", NULL },
	};
	const int		 nopts = sizeof(opts) / sizeof(*opts);
	const struct timespec	 pause = { 0, WAIT_POLL_MS * 1000000L };
	struct settings		 set;
	struct filter		 f;
	struct walk		 w;
	struct store		*st = NULL;
	unsigned long long	 count = 1;
	double			 timeout = WAIT_DEFAULT_TIMEOUT, t0, left;
	char			*end;
	int			 npos = 0, rc = 1, found = 0;

	if (settings_parse(&set, argc, argv, 2, opts, nopts, NULL, &npos) <
	    0) {
		settings_free(&set);
		return 2;
	}
	if (opts[5].value != NULL) {
		wait_usage(stdout, opts, nopts);
		settings_free(&set);
		return 0;
	}
	if (opts[3].value != NULL) {
		errno = 0;
		timeout = strtod(opts[3].value, &end);
		if (errno != 0 || end == opts[3].value || *end != '\0' ||
		    !(timeout >= 0 && timeout <= WAIT_MAX_TIMEOUT)) {
			fprintf(stderr, "mailrepd: --timeout wants seconds from "
			    "0 to %d, not '%s'\n", WAIT_MAX_TIMEOUT,
			    opts[3].value);
			settings_free(&set);
			return 2;
		}
	}
	if (opts[2].value != NULL && (parse_number(opts[2].value,
	    UINT32_MAX, &count) < 0 || count == 0)) {
		fprintf(stderr, "mailrepd: --count wants a whole number "
		    "above 0, not '%s'\n", opts[2].value);
		settings_free(&set);
		return 2;
	}
	memset(&f, 0, sizeof(f));
	f.user = opts[0].value;
	f.mailbox = opts[1].value;
	f.json = opts[4].value != NULL;
	memset(&w, 0, sizeof(w));
	w.f = &f;
	t0 = now_seconds();
	for (;;) {
		if (st == NULL)
			st = wait_open(&set);
		if (st != NULL) {
			w.st = st;
			if (walk_store(&w) == STORE_OK && w.count >= count) {
				found = 1;
				break;
			}
		}
		left = timeout - (now_seconds() - t0);
		if (left <= 0)
			break;
		nanosleep(&pause, NULL);
	}
	if (found) {
		rc = f.json ? list_messages(st, &f) : 0;
		if (!f.json)
			printf("%" PRIu64 " message%s after %.2f s\n", w.count,
			    w.count == 1 ? "" : "s", now_seconds() - t0);
	} else if (st == NULL)
		fprintf(stderr, "mailrepd: wait: timed out after %g s: no "
		    "store in '%s'\n", timeout, set.data_dir);
	else
		fprintf(stderr, "mailrepd: wait: timed out after %g s: %" PRIu64
		    " of %llu message%s%s%s%s%s%s in '%s'\n", timeout, w.count,
		    count, count == 1 ? "" : "s",
		    f.user ? " for user '" : "", f.user ? f.user : "",
		    f.user ? "'" : "", f.mailbox ? " in mailbox " : "",
		    f.mailbox ? f.mailbox : "", set.data_dir);
	store_close(st);
	settings_free(&set);
	return rc;
}
