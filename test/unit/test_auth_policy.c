/*
 * test_auth_policy.c — who may log in without TLS, and the STARTTLS
 * injection rule, on a real IMAP session and store.  A non-loopback
 * client cannot be made over 127.0.0.1, so the integration tests cannot
 * reach these paths: `local` is set by hand here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "crypto.h"
#include "imap.h"
#include "penalty.h"
#include "proto.h"
#include "settings.h"
#include "store.h"
#include "tls.h"
#include "transport.h"

struct fixture {
	char		 dir[64];
	struct settings	 set;
	struct server	 srv;
	struct session	*s;
};

static struct fixture *
fixture_new(int local, const char *plaintext)
{
	struct fixture	*f = calloc(1, sizeof(*f));
	char		*argv[] = { "mailrepd", "serve", "--data", f->dir,
			    "--name", "mx.test", "--allow-plaintext-auth",
			    (char *)plaintext };
	char		 err[256], *hash;
	int		 npos = 0;

	strcpy(f->dir, "/tmp/mailrepd-auth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(settings_parse(&f->set, 8, argv, 2, NULL, 0, NULL,
	    &npos), 0);
	assert_int_equal(store_open(f->dir, &f->srv.store), STORE_OK);
	assert_non_null(hash = crypto_password_hash("pw"));
	assert_int_equal(store_user_add(f->srv.store, "alice", hash), STORE_OK);
	free(hash);
	assert_int_equal(store_commit(f->srv.store), STORE_OK);
	assert_int_equal(tls_init(NULL, NULL, f->dir, "mx.test", err,
	    sizeof(err)), 0);
	f->srv.settings = &f->set;
	f->srv.now = time(NULL);
	f->srv.now_ms = server_clock_ms();
	f->s = calloc(1, sizeof(*f->s));
	f->s->srv = &f->srv;
	f->s->ops = &imap_proto;
	f->s->fd = -1;
	f->s->local = local;
	snprintf(f->s->peer, sizeof(f->s->peer), "192.0.2.7:4000");
	f->s->tp = transport_new(-1);
	buf_init(&f->s->in, imap_proto.in_limit);
	buf_init(&f->s->out, imap_proto.out_limit);
	f->srv.sessions = f->s;
	f->srv.nsessions = 1;
	penalty_reset();
	assert_int_equal(auth_start(), 0);
	imap_proto.start(f->s);
	return f;
}

static void
fixture_free(struct fixture *f)
{
	char	 cmd[128];

	imap_proto.free(f->s);
	auth_stop();
	transport_free(f->s->tp);
	buf_free(&f->s->in);
	buf_free(&f->s->out);
	free(f->s);
	tls_shutdown();
	store_close(f->srv.store);
	settings_free(&f->set);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
}

/* Waits for the password checker's answer and hands it to the session. */
static void
checked(struct fixture *f)
{
	struct pollfd	 pfd = { .fd = auth_fd(), .events = POLLIN };

	assert_int_equal(poll(&pfd, 1, 10000), 1);
	f->srv.now_ms = server_clock_ms();
	server_auth_results(&f->srv);
}

/* Runs input through the session; returns the output (caller frees). */
static char *
say(struct fixture *f, const char *in)
{
	size_t	 n;
	char	*out;

	if (*in != '\0') {
		assert_int_equal(buf_append(&f->s->in, in, strlen(in)), 0);
		session_process(f->s);
		server_commit(&f->srv);
	}
	n = buf_used(&f->s->out);
	out = malloc(n + 1);
	memcpy(out, buf_ptr(&f->s->out), n);
	out[n] = '\0';
	buf_consume(&f->s->out, n);
	return out;
}

static void
test_remote_plaintext_login_disabled(void **state)
{
	struct fixture	*f = fixture_new(0, "no");
	char		*out = say(f, "");

	(void)state;
	assert_non_null(strstr(out, " STARTTLS"));
	assert_non_null(strstr(out, " LOGINDISABLED"));
	assert_null(strstr(out, "AUTH=PLAIN"));
	free(out);
	out = say(f, "a LOGIN alice pw\r\n");
	assert_string_equal(out, "a NO [PRIVACYREQUIRED] LOGIN is disabled "
	    "before STARTTLS\r\n");
	free(out);
	out = say(f, "b AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n");
	assert_non_null(strstr(out, "b NO [PRIVACYREQUIRED]"));
	free(out);
	/* Refused, not failed: no delay was recorded for the address. */
	assert_int_equal(penalty_count(f->s->peer, f->srv.now_ms), 0);
	fixture_free(f);
}

static void
test_loopback_and_setting_allow_plaintext(void **state)
{
	struct fixture	*f;
	char		*out;
	int		 i;

	(void)state;
	for (i = 0; i < 2; i++) {
		f = i == 0 ? fixture_new(1, "no") : fixture_new(0, "yes");
		out = say(f, "");
		assert_non_null(strstr(out, " AUTH=PLAIN"));
		assert_null(strstr(out, "LOGINDISABLED"));
		free(out);
		out = say(f, "a LOGIN alice pw\r\n");
		assert_string_equal(out, "");		/* being checked */
		free(out);
		checked(f);
		out = say(f, "");
		assert_non_null(strstr(out, "a OK [CAPABILITY "));
		assert_non_null(strstr(out, " COMPRESS=DEFLATE"));
		free(out);
		fixture_free(f);
	}
}

static void
test_failed_login_delay_grows(void **state)
{
	struct fixture	*f = fixture_new(1, "no");
	char		*out = say(f, "");

	(void)state;
	free(out);
	out = say(f, "a LOGIN alice wrong\r\n");
	assert_string_equal(out, "");		/* being checked */
	free(out);
	assert_int_equal(penalty_count(f->s->peer, f->srv.now_ms), 0);
	checked(f);
	out = say(f, "");
	assert_string_equal(out, "");		/* held */
	free(out);
	assert_int_equal(penalty_count(f->s->peer, f->srv.now_ms), 1);
	fixture_free(f);
}

/* What follows STARTTLS in the same read is dropped, never run. */
static void
test_starttls_drops_pipelined_input(void **state)
{
	struct fixture	*f = fixture_new(0, "no");
	char		*out = say(f, "");

	(void)state;
	free(out);
	out = say(f, "a STARTTLS\r\nb LOGIN alice pw\r\nc NOOP\r\n");
	assert_string_equal(out, "a OK Begin TLS negotiation now\r\n");
	free(out);
	assert_int_equal(buf_used(&f->s->in), 0);
	assert_false(transport_readable(f->s->tp));
	fixture_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_remote_plaintext_login_disabled),
		cmocka_unit_test(test_loopback_and_setting_allow_plaintext),
		cmocka_unit_test(test_failed_login_delay_grows),
		cmocka_unit_test(test_starttls_drops_pipelined_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
