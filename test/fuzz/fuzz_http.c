/*
 * fuzz_http.c — libFuzzer target: a whole HTTP/1.1 connection from
 * bytes (requests, pipelined, the API's replies made in steps and its
 * DELETE in committed batches).
 *
 * The first byte chooses how the rest is cut into reads; each read runs
 * the protocol and the group commit as the event loop would, on a real
 * store in a temporary directory shared by all inputs, which holds one
 * message.  Output must stay within the session's limit, and no input
 * may crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "fuzz_session.h"
#include "http.h"
#include "log.h"
#include "mime.h"
#include "proto.h"
#include "settings.h"
#include "store.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct settings	set;
static struct server	srv;
static char		dir[] = "/tmp/mailrepd-fuzz-XXXXXX";

/* Stores one small message for alice, so that the API has one to show. */
static int
deliver_one(void)
{
	static const char	 msg[] = "From: a@b\r\nSubject: s\r\n\r\nhi\r\n";
	struct mime_result	 mime;
	struct store_blob_in	 in;
	struct store_target	 t;

	memset(&in, 0, sizeof(in));
	memset(&t, 0, sizeof(t));
	if (mime_parse_buffer(msg, sizeof(msg) - 1, &mime) < 0)
		return -1;
	in.fd = -1;
	in.mem = (const uint8_t *)msg;
	in.size = sizeof(msg) - 1;
	crypto_sha256(msg, in.size, in.guid);
	in.mime = &mime;
	t.user = "alice";
	t.mailbox = "INBOX";
	t.internaldate = time(NULL);
	if (store_deliver(srv.store, &in, &t, 1) != STORE_OK ||
	    store_commit(srv.store) != STORE_OK)
		return -1;
	mime_result_free(&mime);
	return 0;
}

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
	    store_commit(srv.store) != STORE_OK || deliver_one() < 0)
		abort();
	srv.settings = &set;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_session(&srv, &http_proto, data, size);
	return 0;
}
