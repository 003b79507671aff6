/*
 * test_lmtp.c — the LMTP state machine, fed byte by byte through the
 * real session layer onto a real store in a temp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmtp.h"
#include "proto.h"
#include "settings.h"
#include "store.h"

struct fixture {
	char		 dir[64];
	struct settings	 set;
	struct server	 srv;
	struct session	*s;
};

static struct fixture *
fixture_new(const char *max_size)
{
	struct fixture	*f = calloc(1, sizeof(*f));
	char		*argv[] = { "mailrepd", "serve", "--data", f->dir,
			    "--name", "mx.test", "--max-message-size",
			    (char *)max_size };
	int		 npos = 0;

	strcpy(f->dir, "/tmp/mailrepd-lmtp-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(settings_parse(&f->set, 8, argv, 2, NULL, 0, NULL,
	    &npos), 0);
	assert_int_equal(store_open(f->dir, &f->srv.store), STORE_OK);
	assert_int_equal(store_user_add(f->srv.store, "alice", "x"), STORE_OK);
	assert_int_equal(store_commit(f->srv.store), STORE_OK);
	f->srv.settings = &f->set;
	f->srv.now = time(NULL);
	f->s = calloc(1, sizeof(*f->s));
	f->s->srv = &f->srv;
	f->s->ops = &lmtp_proto;
	f->s->fd = -1;
	buf_init(&f->s->in, lmtp_proto.in_limit);
	buf_init(&f->s->out, lmtp_proto.out_limit);
	f->srv.sessions = f->s;
	f->srv.nsessions = 1;
	lmtp_proto.start(f->s);
	return f;
}

static void
fixture_free(struct fixture *f)
{
	char	 cmd[128];

	lmtp_proto.free(f->s);
	buf_free(&f->s->in);
	buf_free(&f->s->out);
	free(f->s);
	store_close(f->srv.store);
	settings_free(&f->set);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
}

/*
 * Feeds input `step` bytes at a time, running the protocol and the group
 * commit after each, as the event loop would.
 */
static void
feed(struct fixture *f, const char *in, size_t step)
{
	size_t	 off, n, len = strlen(in);

	for (off = 0; off < len; off += n) {
		n = len - off < step ? len - off : step;
		assert_int_equal(buf_append(&f->s->in, in + off, n), 0);
		session_process(f->s);
		server_commit(&f->srv);
		while (session_wants_processing(f->s) &&
		    buf_used(&f->s->in) > 0) {
			size_t before = buf_used(&f->s->in);

			session_process(f->s);
			server_commit(&f->srv);
			if (buf_used(&f->s->in) == before)
				break;
		}
	}
}

/* Returns what the server said (after the greeting) and forgets it. */
static char *
replies(struct fixture *f)
{
	size_t	 n = buf_used(&f->s->out);
	char	*out = malloc(n + 1), *p;

	memcpy(out, buf_ptr(&f->s->out), n);
	out[n] = '\0';
	buf_consume(&f->s->out, n);
	if (strncmp(out, "220 ", 4) == 0 && (p = strstr(out, "\r\n")) != NULL)
		memmove(out, p + 2, strlen(p + 2) + 1);
	return out;
}

static const char transaction[] =
	"LHLO client\r\n"
	"MAIL FROM:<bob@example.com> SIZE=100\r\n"
	"RCPT TO:<alice@example.com>\r\n"
	"RCPT TO:<nobody@example.com>\r\n"
	"RCPT TO:<Alice+Sent@example.com>\r\n"
	"DATA\r\n"
	"Subject: t\r\n\r\n..dot\r\nbare\n.\nstill data\r\n.\r\n"
	"QUIT\r\n";

static const char transaction_replies[] =
	"250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
	"250-8BITMIME\r\n250 SIZE 4096\r\n"
	"250 2.1.0 Sender OK\r\n"
	"250 2.1.5 <alice@example.com> Recipient OK\r\n"
	"550 5.1.1 <nobody@example.com> User unknown\r\n"
	"250 2.1.5 <Alice+Sent@example.com> Recipient OK\r\n"
	"354 Start mail input; end with <CRLF>.<CRLF>\r\n"
	"250 2.0.0 <alice@example.com> Saved in INBOX as UID 1\r\n"
	"250 2.0.0 <Alice+Sent@example.com> Saved in Sent as UID 1\r\n"
	"221 2.0.0 Bye\r\n";

/* The same replies whether the client sends one byte or all at once. */
static void
test_transaction_any_split(void **state)
{
	static const size_t steps[] = { 1, 2, 7, 4096 };
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct fixture	*f = fixture_new("4096");
		char		*out;

		feed(f, transaction, steps[i]);
		out = replies(f);
		assert_string_equal(out, transaction_replies);
		assert_int_equal(f->s->io, SESSION_CLOSING);
		free(out);
		fixture_free(f);
	}
}

/* Over the size limit: nothing early, one 552 per recipient after '.'. */
static void
test_too_big_answered_after_dot(void **state)
{
	struct fixture		*f = fixture_new("1024");
	struct store_mailbox	 mb;
	char			 line[100], *out;
	int			 i;

	(void)state;
	feed(f, "LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n", 4096);
	free(replies(f));
	memset(line, 'x', sizeof(line));
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	for (i = 0; i < 20; i++)
		feed(f, line, 4096);
	out = replies(f);
	assert_string_equal(out, "");
	free(out);
	feed(f, ".\r\nNOOP\r\n", 1);
	out = replies(f);
	assert_string_equal(out, "552 5.3.4 <alice> Message size exceeds "
	    "fixed limit of 1024 bytes\r\n250 2.0.0 OK\r\n");
	free(out);
	assert_int_equal(store_mailbox_get(f->srv.store, "alice", "INBOX",
	    &mb), STORE_OK);
	assert_int_equal(mb.messages, 0);
	fixture_free(f);
}

/* Sequence errors and the tolerated sloppy syntax. */
static void
test_sequence_and_syntax(void **state)
{
	struct fixture	*f = fixture_new("4096");
	char		*out;

	(void)state;
	feed(f, "MAIL FROM:<a@b>\r\nHELO x\r\nLHLO x\r\nDATA\r\n"
	    "RCPT TO:<alice>\r\nMAIL FROM: <a@b>\r\nMAIL FROM:<a@b>\r\n"
	    "DATA\r\nRCPT TO:<alice> NOTIFY=NEVER\r\nMAIL FROM:<x> BODY=BIN\r\n"
	    "VRFY alice\r\nFOO\r\n", 3);
	out = replies(f);
	assert_string_equal(out,
	    "503 5.5.1 Send LHLO first\r\n"
	    "500 5.5.1 This is LMTP: use LHLO\r\n"
	    "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n250 SIZE 4096\r\n"
	    "503 5.5.1 Send MAIL FROM and RCPT TO first\r\n"
	    "503 5.5.1 Send MAIL FROM first\r\n"
	    "250 2.1.0 Sender OK\r\n"
	    "503 5.5.1 Sender already given\r\n"
	    "503 5.5.1 No valid recipients\r\n"
	    "555 5.5.4 Unsupported RCPT TO parameter\r\n"
	    "503 5.5.1 Sender already given\r\n"
	    "252 2.5.2 Cannot VRFY user, but will accept message and "
	    "attempt delivery\r\n"
	    "500 5.5.2 Unknown command\r\n");
	free(out);
	fixture_free(f);
}

/* A command line past LMTP_MAX_LINE is refused once; the session lives. */
static void
test_long_command_line(void **state)
{
	struct fixture	*f = fixture_new("4096");
	char		*big = malloc(5000), *out;

	(void)state;
	memset(big, 'A', 4997);
	strcpy(big + 4997, "\r\n");
	feed(f, big, 1000);
	feed(f, "NOOP\r\n", 1);
	out = replies(f);
	assert_string_equal(out, "500 5.5.2 Line too long\r\n"
	    "250 2.0.0 OK\r\n");
	free(out);
	free(big);
	fixture_free(f);
}

/*
 * Output past the session's limit is dropped (logged) and the session
 * closes; a closing session whose peer is gone takes no more output.
 */
static void
test_output_overflow(void **state)
{
	struct fixture	*f = fixture_new("4096");
	size_t		 got;

	(void)state;
	free(replies(f));
	buf_free(&f->s->out);
	buf_init(&f->s->out, 16);
	feed(f, "LHLO client\r\n", 64);
	assert_int_equal(f->s->io, SESSION_CLOSING);
	assert_int_equal(buf_used(&f->s->out), 0);
	f->s->in_eof = 1;
	session_write(f->s, "more", 4);
	session_printf(f->s, "%s", "more");
	assert_null(session_reserve(f->s, 4, &got));
	assert_int_equal(buf_used(&f->s->out), 0);
	fixture_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transaction_any_split),
		cmocka_unit_test(test_too_big_answered_after_dot),
		cmocka_unit_test(test_sequence_and_syntax),
		cmocka_unit_test(test_long_command_line),
		cmocka_unit_test(test_output_overflow),
	};

	return cmocka_run_group_tests_name("lmtp", tests, NULL, NULL);
}
