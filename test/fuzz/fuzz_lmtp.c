/*
 * fuzz_lmtp.c — libFuzzer target: a whole LMTP session from bytes.
 *
 * The first byte chooses how the rest is cut into reads; each read runs
 * the protocol and the group commit as the event loop would, on a real
 * store in a temporary directory shared by all inputs.  Output must stay
 * within the session's limit, and no input may crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_session.h"
#include "lmtp.h"
#include "log.h"
#include "proto.h"
#include "settings.h"
#include "store.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct settings	set;
static struct server	srv;
static char		dir[] = "/tmp/mailrepd-fuzz-XXXXXX";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char	*args[] = { "mailrepd", "serve", "--data", dir,
		    "--max-message-size", "65536" };
	int	 npos = 0;

	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	if (mkdtemp(dir) == NULL ||
	    settings_parse(&set, 6, args, 2, NULL, 0, NULL, &npos) < 0 ||
	    store_open(dir, &srv.store) != STORE_OK ||
	    store_user_add(srv.store, "alice", "x") != STORE_OK ||
	    store_commit(srv.store) != STORE_OK)
		abort();
	srv.settings = &set;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_session(&srv, &lmtp_proto, data, size);
	return 0;
}
