/*
 * seed_sync.c — writes the seed corpus of fuzz_sync: every record type
 * of the replication log, as a real store logged it and sync_rec_encode()
 * encoded it, bare and inside a frame (header, payload).
 *
 * usage: seed_sync DIR	(make fuzz-seeds; the files are committed)
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "record.h"
#include "spool.h"
#include "store.h"
#include "sync.h"

#define SEED_CAP	(64 * 1024)

/* Stops with a message: a generator has no one to report to. */
static void
need(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "seed_sync: %s failed\n", what);
		exit(1);
	}
}

/* Writes n bytes to DIR/NAME. */
static void
write_seed(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char	 path[4096];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	need((f = fopen(path, "wb")) != NULL, path);
	need(fwrite(p, 1, n, f) == n && fclose(f) == 0, path);
}

/* Delivers a small message to user's mailbox through a spool. */
static void
deliver(struct store *st, const char *tmp, const char *user,
    const char *mailbox)
{
	static const char	 msg[] = "From: a@example.org\r\n"
	    "Subject: seed\r\n\r\nbody\r\n";
	struct store_blob_in	 blob;
	struct store_target	 t;
	struct spool		*sp;

	need((sp = spool_new(tmp)) != NULL, "spool");
	spool_add_bytes(sp, msg, sizeof(msg) - 1);
	need(spool_finish(sp, &blob) == 0, "spool_finish");
	memset(&t, 0, sizeof(t));
	t.user = user;
	t.mailbox = mailbox;
	t.flags = FLAG_SEEN;
	t.keywords = "$Label1";
	t.internaldate = 1700000000;
	need(store_deliver(st, &blob, &t, 1) == STORE_OK &&
	    t.result == STORE_OK, "deliver");
	spool_free(sp);
}

/* Makes one log record of every type in a fresh store in tmp. */
static void
make_log(struct store *st, const char *tmp)
{
	struct store_mailbox	 mb;
	uint64_t		 modseq;

	need(store_user_add(st, "alice", "{PLAIN}x") == STORE_OK, "user");
	need(store_user_set_password(st, "alice", "{PLAIN}y") == STORE_OK,
	    "passwd");
	need(store_mailbox_create(st, "alice", "Projects", "",
	    &mb) == STORE_OK, "create");
	deliver(st, tmp, "alice", "Projects");
	need(store_message_set_flags(st, mb.id, 1, FLAG_SEEN | FLAG_FLAGGED,
	    "$Label1 todo", &modseq) == STORE_OK, "flags");
	need(store_message_expunge(st, mb.id, 1) == STORE_OK, "expunge");
	need(store_mailbox_subscribe(st, "alice", "Projects", 1) ==
	    STORE_OK, "subscribe");
	need(store_mailbox_rename(st, "alice", "Projects", "Projects-2023") ==
	    STORE_OK, "rename");
	need(store_mailbox_delete(st, "alice", "Projects-2023") == STORE_OK,
	    "delete");
	need(store_user_add(st, "bob", "{PLAIN}z") == STORE_OK, "user bob");
	need(store_user_del(st, "bob") == STORE_OK, "user del");
	need(store_commit(st) == STORE_OK, "commit");
}

/* nftw() callback: removes one file or directory of the store. */
static int
remove_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(path);
}

int
main(int argc, char **argv)
{
	struct store_replog_rec	 r;
	struct store		*st;
	static uint8_t		 enc[SEED_CAP], frame[SEED_CAP];
	char			 tmp[] = "/tmp/mailrepd-seed-XXXXXX", name[96];
	size_t			 n;
	int64_t			 pos = 0;
	int			 body;

	need(argc == 2, "usage: seed_sync DIR");
	log_set_level(LOG_LEVEL_ERROR);
	need(mkdtemp(tmp) != NULL, "mkdtemp");
	need(store_open(tmp, &st) == STORE_OK, "store_open");
	make_log(st, tmp);
	while (store_replog_next(st, pos, &r) == STORE_OK) {
		pos = r.seq;
		body = rec_kind(r.type)->body;
		need((n = sync_rec_encode(&r, body, body ? 40 : 0, enc,
		    sizeof(enc))) > 0, "encode");
		snprintf(name, sizeof(name), "rec-%02lld-%s", (long long)pos,
		    rec_kind(r.type)->name);
		write_seed(argv[1], name, enc, n);
		/* The same record inside a RECORD frame. */
		frame[0] = SF_RECORD;
		frame[1] = (uint8_t)(n >> 24);
		frame[2] = (uint8_t)(n >> 16);
		frame[3] = (uint8_t)(n >> 8);
		frame[4] = (uint8_t)n;
		memcpy(frame + SYNC_HDR_LEN, enc, n);
		snprintf(name, sizeof(name), "frame-%02lld-%s",
		    (long long)pos, rec_kind(r.type)->name);
		write_seed(argv[1], name, frame, SYNC_HDR_LEN + n);
	}
	store_close(st);
	need(nftw(tmp, remove_one, 8, FTW_DEPTH | FTW_PHYS) == 0, "rm");
	return 0;
}
