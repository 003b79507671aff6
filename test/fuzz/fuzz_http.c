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

#include "http.h"
#include "crypto.h"
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
	struct session	 s;
	size_t		 step, off, n;

	if (size == 0)
		return 0;
	step = 1 + data[0] % 64;
	memset(&s, 0, sizeof(s));
	s.srv = &srv;
	s.ops = &http_proto;
	s.fd = -1;
	s.established = 1;	/* HTTP has no greeting stage */
	buf_init(&s.in, http_proto.in_limit);
	buf_init(&s.out, http_proto.out_limit);
	srv.sessions = &s;
	srv.nsessions = 1;
	srv.now = time(NULL);
	http_proto.start(&s);
	for (off = 1; off < size && s.io != SESSION_CLOSING; off += n) {
		n = size - off < step ? size - off : step;
		if (buf_append(&s.in, data + off, n) < 0)
			break;
		session_process(&s);
		server_commit(&srv);
		while (session_wants_processing(&s) && buf_used(&s.in) > 0 &&
		    s.io == SESSION_OPEN) {
			size_t before = buf_used(&s.in);

			session_process(&s);
			server_commit(&srv);
			if (buf_used(&s.in) == before)
				break;
		}
		buf_reset(&s.out);	/* the client read it */
	}
	server_commit(&srv);
	http_proto.free(&s);
	buf_free(&s.in);
	buf_free(&s.out);
	srv.sessions = NULL;
	srv.nsessions = 0;
	return 0;
}
