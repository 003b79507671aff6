/*
 * teststep.c — test-only gate on the steps of a COPY or MOVE in steps.
 * Linked only into the test builds (build/crash/mailrepd and its
 * coverage twin) beside test/testvfs.c and test/testalloc.c; the link
 * sends the server's calls of store_copy_step() here (ld --wrap), so
 * the server's code is the same code the release binary runs.
 *
 * A test that must act while a big COPY is under way (disconnect, drain,
 * write into its target) cannot know from the clock that it still is: a
 * fast build finishes 20,000 copies before a slow test looks.  So the
 * test holds it:
 *
 *   MAILREPD_STEP_HOLD=PATH	while PATH exists, holding a number N:
 *				the first N steps after it appeared run,
 *				then every later one is held (does nothing,
 *				the job unfinished) until PATH is gone.
 *
 * The first hold is logged on stderr ("teststep: holding after N
 * steps"), so that the test waits for that line, never for a time.  A
 * COPY that ran in one step, or at once, never logs it.  A held step
 * sleeps a millisecond, so that the loop, which runs it again at once,
 * does not spin.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

enum store_err	__real_store_copy_step(struct store *,
		    struct store_copy_job *, int64_t);
enum store_err	__wrap_store_copy_step(struct store *,
		    struct store_copy_job *, int64_t);

/* The number PATH holds, or -1 when PATH does not exist. */
static long
hold_after(const char *path)
{
	char	 line[32];
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	return strtol(line, NULL, 10);
}

enum store_err
__wrap_store_copy_step(struct store *st, struct store_copy_job *job,
    int64_t deadline_us)
{
	static long		 ran;	/* steps since PATH appeared */
	static int		 held;	/* the hold was logged */
	const char		*path = getenv("MAILREPD_STEP_HOLD");
	const struct timespec	 ms = { 0, 1000000 };
	long			 after;

	if (path == NULL || (after = hold_after(path)) < 0) {
		ran = held = 0;
		return __real_store_copy_step(st, job, deadline_us);
	}
	if (ran < after) {
		ran++;
		return __real_store_copy_step(st, job, deadline_us);
	}
	if (!held) {
		fprintf(stderr, "teststep: holding after %ld steps\n", ran);
		held = 1;
	}
	nanosleep(&ms, NULL);
	return STORE_OK;
}
