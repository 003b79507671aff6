/*
 * test_imap_fetch.c — FETCH and UID FETCH on a real store in a temp dir,
 * through a session whose view is built by hand (no SELECT), with the
 * output drained between steps as a client reading would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "imap.h"
#include "imap_parse.h"
#include "imap_session.h"
#include "proto.h"
#include "spool.h"
#include "store.h"
#include "unit_faults.h"

#define INTERNALDATE	1700000000	/* 14-Nov-2023 22:13:20 +0000 */

#define HEADER_SIMPLE \
	    "From: Alice <alice@example.org>\r\n" \
	    "To: bob@example.com\r\n" \
	    "Subject: a folded\r\n" \
	    " subject line\r\n" \
	    "X-Empty:\r\n" \
	    "\r\n"

static const char msg_simple[] = HEADER_SIMPLE "Hello\r\n";

static const char msg_mixed[] =
	    "From: outer@example.com\r\n"
	    "Subject: fwd\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	    "\r\n"
	    "preamble\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "See attached.\r\n"
	    "--b1\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "From: inner@example.com\r\n"
	    "Subject: original\r\n"
	    "\r\n"
	    "inner body\r\n"
	    "--b1--\r\n";

struct fixture {
	char			 dir[64];
	struct server		 srv;
	struct session		*s;
	struct imap_session	*ims;
	struct imap_view	*v;
	size_t			 max_out;	/* largest output buffered */
};

/* Delivers a message to alice's INBOX. */
static void
deliver(struct fixture *f, const char *body, size_t len)
{
	struct spool		*sp = spool_new(f->dir);
	struct store_blob_in	 blob;
	struct store_target	 t = { .user = "alice", .mailbox = "INBOX",
				    .internaldate = INTERNALDATE };

	assert_non_null(sp);
	spool_add_bytes(sp, body, len);
	assert_int_equal(spool_finish(sp, &blob), 0);
	assert_int_equal(store_deliver(f->srv.store, &blob, &t, 1), STORE_OK);
	assert_int_equal(t.result, STORE_OK);
	spool_free(sp);
	assert_int_equal(store_commit(f->srv.store), STORE_OK);
}

/* Adds a message to the view (a store_message_foreach() callback). */
static int
view_add(void *arg, const struct store_message *m)
{
	struct imap_view	*v = arg;

	assert_int_equal(imap_view_append(v, m->uid, 0), 0);
	return 0;
}

/* Empties the view. */
static void
view_reset(struct imap_view *v)
{
	imap_uidset_free(&v->msgs);
	imap_uidset_free(&v->gone_uids);
	imap_uidset_free(&v->recent_uids);
	v->count = v->gone = v->recent = 0;
	v->nindex = 0;
}

/* Builds the view of INBOX as SELECT would. */
static void
view_load(struct fixture *f)
{
	struct imap_view	*v = f->v;

	assert_int_equal(store_mailbox_get(f->srv.store, "alice", "INBOX",
	    &v->mb), STORE_OK);
	view_reset(v);
	assert_int_equal(store_message_foreach(f->srv.store, v->mb.id,
	    view_add, v), STORE_OK);
	v->modseq = v->mb.highestmodseq;
	v->uidnext = v->mb.uidnext;
}

/* A store with two messages, and a session with INBOX selected. */
static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/mailrepd-fetch-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(f->dir, &f->srv.store), STORE_OK);
	assert_int_equal(store_user_add(f->srv.store, "alice", "x"),
	    STORE_OK);
	assert_int_equal(store_commit(f->srv.store), STORE_OK);
	deliver(f, msg_simple, sizeof(msg_simple) - 1);
	deliver(f, msg_mixed, sizeof(msg_mixed) - 1);
	f->s = calloc(1, sizeof(*f->s));
	f->s->srv = &f->srv;
	f->s->ops = &imap_proto;
	f->s->fd = -1;
	buf_init(&f->s->in, IMAP_MAX_LINE);
	buf_init(&f->s->out, IMAP_MAX_OUTPUT);
	f->ims = calloc(1, sizeof(*f->ims));
	f->ims->state = IMAP_SELECTED;
	f->ims->view = f->v = calloc(1, sizeof(*f->v));
	f->s->proto = f->ims;
	view_load(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		 cmd[128];

	imap_view_free(f->v);
	free(f->ims);
	buf_free(&f->s->in);
	buf_free(&f->s->out);
	free(f->s);
	store_close(f->srv.store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Moves what the session wrote to out, as the client reads it. */
static void
drain(struct fixture *f, struct buf *out)
{
	size_t	 n = buf_used(&f->s->out);

	if (n > f->max_out)
		f->max_out = n;
	assert_int_equal(buf_append(out, buf_ptr(&f->s->out), n), 0);
	buf_consume(&f->s->out, n);
}

/*
 * Runs "[UID] FETCH args" to the end and returns everything it wrote,
 * the tagged reply last as "TAG reply\r\n"; the caller frees it.
 * *len (if not NULL) is the output's length (literals may hold NULs).
 */
static char *
fetch_len(struct fixture *f, int uid, const char *args, size_t *len)
{
	struct imap_session	*ims = f->ims;
	struct imap_cmd		 cmd;
	struct buf		 out;
	const char		*why;
	char			 line[IMAP_MAX_LINE], *text;
	int			 n;

	n = snprintf(line, sizeof(line), "TAG FETCH %s\r\n", args);
	assert_int_equal(imap_parse(line, n, IMAP_MAX_DEPTH, IMAP_MAX_ARGS,
	    &cmd, &why), IMAP_PARSE_OK);
	buf_init(&out, 64 * 1024 * 1024);
	imap_cmd_fetch(f->s, cmd.args, cmd.nargs, uid);
	imap_cmd_free(&cmd);
	while (ims->step != NULL) {
		drain(f, &out);
		if (ims->step(f->s, ims->step_arg)) {
			ims->step_free(ims->step_arg);
			ims->step = NULL;
		}
	}
	drain(f, &out);
	assert_non_null(ims->reply);
	buf_printf(&out, "TAG %s\r\n", ims->reply);
	free(ims->reply);
	ims->reply = NULL;
	if (len != NULL)
		*len = buf_used(&out);
	assert_int_equal(buf_append(&out, "", 1), 0);
	assert_non_null(text = malloc(buf_used(&out)));
	memcpy(text, buf_ptr(&out), buf_used(&out));
	buf_free(&out);
	assert_int_equal(store_commit(f->srv.store), STORE_OK);
	return text;
}

/* fetch_len() for output without NULs. */
static char *
fetch(struct fixture *f, int uid, const char *args)
{
	return fetch_len(f, uid, args, NULL);
}

/* Checks that out holds `name {N}\r\nbytes`. */
static void
assert_item(const char *out, const char *name, const char *bytes)
{
	char	 want[8192];

	snprintf(want, sizeof(want), "%s {%zu}\r\n%s", name, strlen(bytes),
	    bytes);
	if (strstr(out, want) == NULL)
		fail_msg("no %s in:\n%s", want, out);
}

/* Checks the tagged reply, by its start. */
static void
assert_reply(const char *out, const char *reply)
{
	char	 want[256];

	snprintf(want, sizeof(want), "TAG %s", reply);
	if (strstr(out, want) == NULL)
		fail_msg("no '%s' in:\n%s", want, out);
}

static void
test_simple_items(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	out = fetch(f, 0, "1 (UID FLAGS INTERNALDATE RFC822.SIZE)");
	assert_string_equal(out, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE "
	    "\"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE 107)\r\n"
	    "TAG OK FETCH completed\r\n");
	free(out);
	/* UID FETCH always says the UID, first; a macro; * of UIDs */
	out = fetch(f, 1, "* FAST");
	assert_string_equal(out, "* 2 FETCH (UID 2 FLAGS () INTERNALDATE "
	    "\"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE 269)\r\n"
	    "TAG OK UID FETCH completed\r\n");
	free(out);
	view_reset(f->v);
	assert_int_equal(imap_view_append(f->v, 1, 1), 0);
	assert_int_equal(imap_view_append(f->v, 2, 0), 0);
	out = fetch(f, 0, "1:2 FLAGS");
	assert_string_equal(out, "* 1 FETCH (FLAGS (\\Recent))\r\n"
	    "* 2 FETCH (FLAGS ())\r\nTAG OK FETCH completed\r\n");
	free(out);
}

static void
test_structure(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	out = fetch(f, 0, "2 (ENVELOPE BODY BODYSTRUCTURE)");
	assert_non_null(strstr(out, "* 2 FETCH (ENVELOPE (NIL \"fwd\" "
	    "((NIL NIL \"outer\" \"example.com\"))"));
	assert_non_null(strstr(out, ") BODY ((\"text\" \"plain\""));
	assert_non_null(strstr(out, ") BODYSTRUCTURE ((\"text\" \"plain\""));
	assert_non_null(strstr(out, "\"mixed\" (\"boundary\" \"b1\") NIL NIL "
	    "NIL))\r\n"));
	free(out);
}

static void
test_top_sections(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	out = fetch(f, 0, "1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
	    "RFC822.HEADER BODY.PEEK[1] BODY.PEEK[1.MIME])");
	assert_item(out, "BODY[HEADER]", HEADER_SIMPLE);
	assert_item(out, "BODY[TEXT]", "Hello\r\n");
	assert_item(out, "RFC822.HEADER", HEADER_SIMPLE);
	/* a single-part message is its own part 1 (RFC 3501 6.4.5) */
	assert_item(out, "BODY[1]", "Hello\r\n");
	assert_item(out, "BODY[1.MIME]", HEADER_SIMPLE);
	assert_null(strstr(out, "\\Seen"));
	free(out);
	out = fetch(f, 0, "1 (BODY.PEEK[HEADER.FIELDS (subject x-empty)] "
	    "body.peek[header.fields.not (\"Subject\" From)])");
	assert_item(out, "BODY[HEADER.FIELDS (SUBJECT X-EMPTY)]",
	    "Subject: a folded\r\n subject line\r\nX-Empty:\r\n\r\n");
	assert_item(out, "BODY[HEADER.FIELDS.NOT (\"SUBJECT\" FROM)]",
	    "To: bob@example.com\r\nX-Empty:\r\n\r\n");
	free(out);
	out = fetch(f, 0, "1 BODY.PEEK[HEADER.FIELDS (Nothing-Here)]");
	assert_item(out, "BODY[HEADER.FIELDS (NOTHING-HERE)]", "\r\n");
	free(out);
}

/* Parts of a multipart with a message/rfc822 inside, as mime.h lays out. */
static void
test_parts(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	out = fetch(f, 0, "2 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] "
	    "BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] "
	    "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)] BODY.PEEK[2.MIME])");
	assert_item(out, "BODY[1]", "See attached.");
	assert_item(out, "BODY[1.MIME]", "Content-Type: text/plain\r\n\r\n");
	assert_item(out, "BODY[2]", "From: inner@example.com\r\n"
	    "Subject: original\r\n\r\ninner body");
	assert_item(out, "BODY[2.HEADER]", "From: inner@example.com\r\n"
	    "Subject: original\r\n\r\n");
	assert_item(out, "BODY[2.TEXT]", "inner body");
	assert_item(out, "BODY[2.1]", "inner body");
	assert_item(out, "BODY[2.HEADER.FIELDS (SUBJECT)]",
	    "Subject: original\r\n\r\n");
	assert_item(out, "BODY[2.MIME]", "Content-Type: message/rfc822\r\n"
	    "\r\n");
	free(out);
	/* what names nothing is an empty string, as Dovecot answers */
	out = fetch(f, 0, "2 (BODY.PEEK[3] BODY.PEEK[1.HEADER] "
	    "BODY.PEEK[1.TEXT] BODY.PEEK[2.1.1] BODY.PEEK[1.1])");
	assert_item(out, "BODY[3]", "");
	assert_item(out, "BODY[1.HEADER]", "");
	assert_item(out, "BODY[1.TEXT]", "");
	assert_item(out, "BODY[2.1.1]", "");
	assert_item(out, "BODY[1.1]", "");
	free(out);
	out = fetch(f, 0, "2 (BODY.PEEK[TEXT]<0.8> BODY.PEEK[HEADER.FIELDS "
	    "(Subject)])");
	assert_item(out, "BODY[TEXT]<0>", "preamble");
	assert_item(out, "BODY[HEADER.FIELDS (SUBJECT)]", "Subject: fwd\r\n"
	    "\r\n");
	free(out);
}

static void
test_partial(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	out = fetch(f, 0, "1 (BODY.PEEK[]<6.5> BODY.PEEK[TEXT]<2.100> "
	    "BODY.PEEK[TEXT]<7.1> BODY.PEEK[]<4294967295.4294967295> "
	    "BODY.PEEK[HEADER.FIELDS (To)]<4.3>)");
	assert_item(out, "BODY[]<6>", "Alice");
	assert_item(out, "BODY[TEXT]<2>", "llo\r\n");
	assert_item(out, "BODY[TEXT]<7>", "");
	assert_item(out, "BODY[]<4294967295>", "");
	assert_item(out, "BODY[HEADER.FIELDS (TO)]<4>", "bob");
	free(out);
}

/* A non-PEEK section sets \Seen before the response, which says so. */
static void
test_seen(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	f->v->readonly = 1;
	out = fetch(f, 0, "1 BODY[TEXT]");
	assert_string_equal(out, "* 1 FETCH (BODY[TEXT] {7}\r\nHello\r\n)\r\n"
	    "TAG OK FETCH completed\r\n");
	free(out);
	f->v->readonly = 0;
	out = fetch(f, 0, "1 BODY[TEXT]");
	assert_string_equal(out, "* 1 FETCH (FLAGS (\\Seen) BODY[TEXT] {7}\r\n"
	    "Hello\r\n)\r\nTAG OK FETCH completed\r\n");
	free(out);
	assert_int_equal(f->v->nown, 1);
	out = fetch(f, 0, "1 (FLAGS RFC822.TEXT)");
	assert_string_equal(out, "* 1 FETCH (FLAGS (\\Seen) RFC822.TEXT {7}\r\n"
	    "Hello\r\n)\r\nTAG OK FETCH completed\r\n");
	free(out);
	/* with CONDSTORE the response also has UID and MODSEQ (RFC 7162) */
	f->ims->condstore = 1;
	out = fetch(f, 0, "2 RFC822");
	assert_non_null(strstr(out, "* 2 FETCH (UID 2 FLAGS (\\Seen) "
	    "MODSEQ ("));
	assert_non_null(strstr(out, ") RFC822 {269}\r\nFrom: outer"));
	free(out);
	assert_int_equal(f->v->nown, 2);
}

static void
test_condstore(void **state)
{
	struct fixture	*f = *state;
	uint64_t	 modseq;
	char		*out, want[512];

	assert_int_equal(store_message_set_flags(f->srv.store, f->v->mb.id,
	    2, FLAG_FLAGGED, "$Junk", &modseq), STORE_OK);
	assert_int_equal(store_commit(f->srv.store), STORE_OK);
	snprintf(want, sizeof(want), "1:* (FLAGS) (CHANGEDSINCE %llu)",
	    (unsigned long long)modseq - 1);
	out = fetch(f, 1, want);
	/*
	 * CHANGEDSINCE turns CONDSTORE on: HIGHESTMODSEQ first (RFC 7162
	 * 3.1.2.1), then FLAGS grown by the keyword set elsewhere.
	 */
	snprintf(want, sizeof(want), "* OK [HIGHESTMODSEQ %llu] Highest\r\n"
	    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n"
	    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	    "\\Draft $Junk \\*)] Flags permitted\r\n"
	    "* 2 FETCH (UID 2 FLAGS (\\Flagged $Junk) "
	    "MODSEQ (%llu))\r\nTAG OK UID FETCH completed\r\n",
	    (unsigned long long)f->v->modseq, (unsigned long long)modseq);
	assert_string_equal(out, want);
	free(out);
	assert_true(f->ims->condstore);
	snprintf(want, sizeof(want), "1:* FLAGS (CHANGEDSINCE %llu)",
	    (unsigned long long)modseq);
	out = fetch(f, 0, want);
	assert_string_equal(out, "TAG OK FETCH completed\r\n");
	free(out);
	out = fetch(f, 0, "2 (MODSEQ)");
	snprintf(want, sizeof(want), "* 2 FETCH (MODSEQ (%llu))\r\n",
	    (unsigned long long)modseq);
	assert_non_null(strstr(out, want));
	free(out);
}

/* A message expunged elsewhere stays in the view and is skipped. */
static void
test_gone(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	assert_int_equal(imap_view_append(f->v, 99, 0), 0);
	assert_int_equal(imap_view_mark_gone(f->v, 99, 1), 0);
	out = fetch(f, 0, "2:3 (UID)");
	assert_string_equal(out, "* 2 FETCH (UID 2)\r\n"
	    "TAG OK FETCH completed\r\n");
	free(out);
	out = fetch(f, 1, "3:100 UID");
	assert_string_equal(out, "TAG OK UID FETCH completed\r\n");
	free(out);
}

static void
test_empty_mailbox(void **state)
{
	struct fixture	*f = *state;
	char		*out;

	f->v->count = 0;
	out = fetch(f, 1, "* FLAGS");
	assert_string_equal(out, "TAG OK UID FETCH completed\r\n");
	free(out);
	out = fetch(f, 1, "1:* FLAGS");
	assert_string_equal(out, "TAG OK UID FETCH completed\r\n");
	free(out);
}

static void
test_bad(void **state)
{
	static const char *const bad[] = {
		"1", "1 ()", "1 NOSUCH", "1 (FLAGS \"x\")", "1 (ALL)",
		"1 BODY[1.0]", "1 BODY[0]", "1 BODY[1.]", "1 BODY[MIME]",
		"1 BODY[1X]", "1 BODY[HEADER.FIELDS]",
		"1 BODY[HEADER.FIELDS ()]", "1 BODY[HEADER.FIELDS (a b]",
		"1 BODY[HEADER.FIELDS (a)x]", "1 BODY[TEXT]<1>",
		"1 BODY[TEXT]<1.2", "1 BODY[]<4294967296.1>", "1 BODY.PEEK",
		"1 BODY[]x", "1 FLAGS (CHANGEDSINCE)", "1 FLAGS (FOO 1)",
		"1 FLAGS (CHANGEDSINCE x)", "1 FLAGS ()", "x FLAGS",
		"1 FLAGS (CHANGEDSINCE 1) x",
	};
	struct fixture	*f = *state;
	char		 many[4096], *out;
	size_t		 i;
	int		 n;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		out = fetch(f, 0, bad[i]);
		if (strncmp(out, "TAG BAD ", 8) != 0)
			fail_msg("FETCH %s: %s", bad[i], out);
		free(out);
	}
	n = snprintf(many, sizeof(many), "1 (");
	for (i = 0; i <= IMAP_MAX_FETCH_ITEMS; i++)
		n += snprintf(many + n, sizeof(many) - n, "FLAGS ");
	snprintf(many + n - 1, sizeof(many) - n + 1, ")");
	out = fetch(f, 0, many);
	assert_reply(out, "BAD [LIMIT]");
	free(out);
	assert_int_equal(f->v->nown, 0);
}

/*
 * A message of several MiB goes out in chunks across many steps: the
 * output never holds much more than the high-water mark, and the bytes
 * arrive whole, a NUL sent as 0x80.
 */
static void
test_big_message(void **state)
{
	struct fixture	*f = *state;
	size_t		 len = 5 * 1024 * 1024, off, outlen;
	char		*msg = malloc(len), *out, *lit, head[64];
	int		 n;

	off = (size_t)snprintf(msg, len, "Subject: big\r\n\r\n");
	for (; off + 80 <= len; off += 80) {
		memset(msg + off, 'a' + (int)(off / 80 % 26), 78);
		memcpy(msg + off + 78, "\r\n", 2);
	}
	memset(msg + off, 'z', len - off);
	msg[1000] = '\0';
	deliver(f, msg, len);
	view_load(f);
	out = fetch_len(f, 1, "3 (BODY.PEEK[] RFC822.SIZE)", &outlen);
	n = snprintf(head, sizeof(head), "* 3 FETCH (UID 3 BODY[] {%zu}\r\n",
	    len);
	assert_memory_equal(out, head, n);
	lit = out + n;
	assert_int_equal((unsigned char)lit[1000], 0x80);
	lit[1000] = '\0';
	assert_memory_equal(lit, msg, len);
	assert_string_equal(lit + len, " RFC822.SIZE 5242880)\r\n"
	    "TAG OK UID FETCH completed\r\n");
	assert_true(f->max_out <= OUTBUF_HIGH_WATER + BLOB_CHUNK_SIZE + 1024);
	free(out);
	/* a partial from the middle */
	out = fetch(f, 1, "3 BODY.PEEK[TEXT]<80.4>");
	assert_item(out, "BODY[TEXT]<80>", "bbbb");
	free(out);
	free(msg);
}

/*
 * A STORE whose group commit failed told its client flags that were
 * rolled back; imap_view_rolled_back() tells it the flags as they are.
 * When that read fails (here SQLite's first allocation, preparing the
 * look-up), the message must be told of at the next imap_sync(), not
 * dropped from those to tell: the client would keep flags the store
 * never had.
 */
static void
test_rolled_back_unread(void **state)
{
	struct fixture	*f = *state;
	struct buf	 out;

	imap_view_own_change(f->v, f->v->modseq + 1, 1);
	arm(0);
	imap_view_rolled_back(f->s);
	assert_int_equal(countdown, -1);	/* the read failed */
	disarm();
	assert_int_equal(buf_used(&f->s->out), 0);
	imap_sync(f->s, 1);
	buf_init(&out, IMAP_MAX_OUTPUT);
	drain(f, &out);
	assert_int_equal(buf_append(&out, "", 1), 0);
	assert_string_equal(buf_ptr(&out), "* 1 FETCH (UID 1 FLAGS ())\r\n");
	buf_free(&out);
	/* told once: the next sync says nothing more */
	imap_sync(f->s, 1);
	assert_int_equal(buf_used(&f->s->out), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_simple_items, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_structure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_top_sections, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_condstore, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_mailbox, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_message, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rolled_back_unread, setup,
		    teardown),
	};

	if (faults_install() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
