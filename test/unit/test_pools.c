/*
 * test_pools.c — the per-address connection limit (server_address_full):
 * counted per address not per port, per pool, loopback and unix clients
 * exempt both as newcomers and in the count.  Integration tests connect
 * from 127.0.0.1 only, which is exempt, so the counting is tested here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "proto.h"
#include "settings.h"

#define NSESSIONS	8

static struct settings		 set;
static struct server		 srv;
static struct session		 sessions[NSESSIONS];
static struct proto_ops		 imap_ops = { .name = "imap",
				    .pool = POOL_IMAP };
static struct proto_ops		 mail_ops = { .name = "lmtp",
				    .pool = POOL_MAIL };
static int			 nsessions;

static int
setup(void **state)
{
	(void)state;
	memset(&set, 0, sizeof(set));
	memset(&srv, 0, sizeof(srv));
	memset(sessions, 0, sizeof(sessions));
	nsessions = 0;
	set.max_per_address = 3;
	srv.settings = &set;
	return 0;
}

/* Links a session from peer into the server's list. */
static void
add(const struct proto_ops *ops, const char *peer, int local)
{
	struct session	*s = &sessions[nsessions++];

	s->ops = ops;
	s->local = local;
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	s->next = srv.sessions;
	srv.sessions = s;
}

static void
test_per_address_not_per_port(void **state)
{
	(void)state;
	add(&imap_ops, "192.0.2.1:1000", 0);
	add(&imap_ops, "192.0.2.1:1001", 0);
	assert_false(server_address_full(&srv, POOL_IMAP, "192.0.2.1:9", 0));
	add(&imap_ops, "192.0.2.1:1002", 0);
	assert_true(server_address_full(&srv, POOL_IMAP, "192.0.2.1:9", 0));
	assert_false(server_address_full(&srv, POOL_IMAP, "192.0.2.10:9",
	    0));
	assert_false(server_address_full(&srv, POOL_IMAP, "192.0.2.1:9", 1));
}

static void
test_per_pool(void **state)
{
	(void)state;
	add(&imap_ops, "[2001:db8::1]:1", 0);
	add(&imap_ops, "[2001:db8::1]:2", 0);
	add(&imap_ops, "[2001:db8::1]:3", 0);
	assert_true(server_address_full(&srv, POOL_IMAP, "[2001:db8::1]:4",
	    0));
	assert_false(server_address_full(&srv, POOL_MAIL, "[2001:db8::1]:4",
	    0));
}

static void
test_local_sessions_do_not_count(void **state)
{
	(void)state;
	add(&mail_ops, "unix", 1);
	add(&mail_ops, "unix", 1);
	add(&mail_ops, "unix", 1);
	add(&mail_ops, "127.0.0.1:5", 1);
	assert_false(server_address_full(&srv, POOL_MAIL, "unix", 1));
	assert_false(server_address_full(&srv, POOL_MAIL, "192.0.2.1:5", 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_per_address_not_per_port, setup),
		cmocka_unit_test_setup(test_per_pool, setup),
		cmocka_unit_test_setup(test_local_sessions_do_not_count, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
