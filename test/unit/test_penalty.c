/*
 * test_penalty.c — the per-address failed-login delay: doubling, the
 * cap, per address not per port, forgetting, success, a full table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "config.h"
#include "penalty.h"

static int
setup(void **state)
{
	(void)state;
	penalty_reset();
	return 0;
}

static void
test_doubles_up_to_the_cap(void **state)
{
	unsigned	 d, want = IMAP_AUTH_FAIL_DELAY_MS;
	int		 i;

	(void)state;
	for (i = 0; i < 12; i++) {
		d = penalty_fail("192.0.2.1:1000", 1000 + i);
		assert_int_equal(d, want);
		want = want * 2 < AUTH_FAIL_MAX_DELAY_MS ? want * 2 :
		    AUTH_FAIL_MAX_DELAY_MS;
	}
	assert_int_equal(penalty_count("192.0.2.1:1", 1011), 12);
}

static void
test_per_address_not_per_port(void **state)
{
	(void)state;
	penalty_fail("192.0.2.1:1000", 100);
	assert_int_equal(penalty_fail("192.0.2.1:2000", 101),
	    IMAP_AUTH_FAIL_DELAY_MS * 2);
	assert_int_equal(penalty_fail("[2001:db8::1]:5", 101),
	    IMAP_AUTH_FAIL_DELAY_MS);
	assert_int_equal(penalty_fail("[2001:db8::1]:6", 102),
	    IMAP_AUTH_FAIL_DELAY_MS * 2);
	assert_int_equal(penalty_fail("192.0.2.2:1000", 102),
	    IMAP_AUTH_FAIL_DELAY_MS);
}

static void
test_forgotten_after_success_or_time(void **state)
{
	(void)state;
	penalty_fail("192.0.2.1:1", 100);
	penalty_fail("192.0.2.1:1", 101);
	penalty_clear("192.0.2.1:9");
	assert_int_equal(penalty_count("192.0.2.1:1", 102), 0);
	assert_int_equal(penalty_fail("192.0.2.1:1", 102), IMAP_AUTH_FAIL_DELAY_MS);
	assert_int_equal(penalty_fail("192.0.2.1:1", 103),
	    IMAP_AUTH_FAIL_DELAY_MS * 2);
	assert_int_equal(penalty_fail("192.0.2.1:1", 103 + AUTH_FAIL_FORGET * 1000 + 1),
	    IMAP_AUTH_FAIL_DELAY_MS);
}

static void
test_full_table_evicts_the_oldest(void **state)
{
	char	 peer[64];
	int	 i;

	(void)state;
	penalty_fail("198.51.100.1:1", 10);
	penalty_fail("198.51.100.1:1", 11);
	for (i = 0; i < AUTH_FAIL_ADDRESSES; i++) {
		snprintf(peer, sizeof(peer), "10.%d.%d.1:7", i / 256, i % 256);
		penalty_fail(peer, 20 + i / 100);
	}
	assert_int_equal(penalty_count("198.51.100.1:1", 30), 0);
	assert_int_equal(penalty_count("10.0.5.1:7", 30), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_doubles_up_to_the_cap, setup),
		cmocka_unit_test_setup(test_per_address_not_per_port, setup),
		cmocka_unit_test_setup(test_forgotten_after_success_or_time,
		    setup),
		cmocka_unit_test_setup(test_full_table_evicts_the_oldest, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
