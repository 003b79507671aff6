/*
 * fuzz_imap.c — libFuzzer target: a whole IMAP session from bytes.
 *
 * The first byte chooses how the rest is cut into reads (its low 7 bits:
 * 0-63 give reads of 1 to 64 bytes, 64-127 reads of 256 to 16384 bytes)
 * and, with its top bit, a session that starts logged in as alice, as if
 * LOGIN had succeeded: a LOGIN costs a full PBKDF2 (some 150 ms in this
 * build), which would make every input that logs in run at a few
 * executions a second.  Inputs without the bit log in for real.  Each read
 * runs the session as the event loop would: the input handler, the group
 * commit, the wake-up, then the client reads every byte of output; the
 * handler runs again while a reply made in steps wants to go on, and a
 * password check (on the checker's thread, auth.h) is waited for.  One
 * second passes per read, so a failed login's delayed reply goes out.
 * After the last read the client waits a while, then closes.
 *
 * The store is real, in a temporary directory, with the user "alice"
 * (password "pw", hashed once with crypto_password_hash) and a few
 * messages in INBOX and Archive.  Changes accumulate across inputs; the
 * store is made afresh every RESET_RUNS inputs, or sooner once inputs
 * made RESET_CHANGES changes, so that it stays small and the fuzzer fast.
 * The session and everything it owns are freed after every input.
 */
#include <ftw.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "imap.h"
#include "imap_session.h"
#include "log.h"
#include "proto.h"
#include "settings.h"
#include "spool.h"
#include "store.h"

#define RESET_RUNS	2000	/* inputs between fresh stores */
#define RESET_CHANGES	500	/* or log records made since the last one */
#define MAX_SPINS	100000	/* handler calls without progress: a hang */
#define FUZZ_NOW	1717243200	/* 1-Jun-2024 12:00:00 +0000 */

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct settings	 set;
static struct server	 srv;
static char		 root[64];
static char		 dir[96];
static char		*pwhash;
static unsigned long	 runs;
static int64_t		 head_at_reset;
static int		 echo;		/* FUZZ_IMAP_ECHO: output to stderr */

/* The messages every fresh store has: mailbox, flags, keywords, bytes. */
static const struct {
	const char	*mailbox;
	uint32_t	 flags;
	const char	*keywords;
	const char	*text;
} messages[] = {
	{ "INBOX", FLAG_SEEN, NULL,
	    "From: Alice <alice@example.org>\r\n"
	    "To: bob@example.com, \"Carol C.\" <carol@example.net>\r\n"
	    "Cc: dave@example.com\r\n"
	    "Subject: a folded\r\n"
	    " subject line\r\n"
	    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "Message-ID: <1@example.org>\r\n"
	    "X-Empty:\r\n"
	    "\r\n"
	    "Hello Bob,\r\n"
	    "the meeting is at noon.\r\n" },
	{ "INBOX", FLAG_FLAGGED, "$Forwarded work",
	    "From: outer@example.com\r\n"
	    "To: alice@example.org\r\n"
	    "Subject: =?UTF-8?Q?fwd=3A_caf=C3=A9?=\r\n"
	    "Date: Wed, 15 Nov 2023 08:00:00 +0100\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	    "\r\n"
	    "preamble\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "See attached.\r\n"
	    "--b1\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "From: inner@example.com\r\n"
	    "Subject: original\r\n"
	    "In-Reply-To: <0@example.com>\r\n"
	    "\r\n"
	    "inner body\r\n"
	    "--b1\r\n"
	    "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
	    "Content-Disposition: attachment; filename=\"a.bin\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"
	    "--b1--\r\n"
	    "epilogue\r\n" },
	{ "INBOX", FLAG_DELETED | FLAG_ANSWERED, "$Junk",
	    "From: \"Eve\" <eve@example.com>\r\n"
	    "Reply-To: replies@example.com\r\n"
	    "Sender: list@example.com\r\n"
	    "To: undisclosed-recipients:;\r\n"
	    "Bcc: alice@example.org\r\n"
	    "Subject: alternative\r\n"
	    "Date: 1 Jan 2024 00:00:00 -0500\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=alt\r\n"
	    "\r\n"
	    "--alt\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "caf=C3=A9 cr=C3=A8me\r\n"
	    "--alt\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Language: fr\r\n"
	    "\r\n"
	    "<p>caf\xc3\xa9</p>\r\n"
	    "--alt--\r\n" },
	{ "INBOX", 0, NULL,
	    "From: bare@example.com\n"
	    "Subject: bare LF and 8-bit \xe9t\xe9\n"
	    "\n"
	    "line one\n"
	    "line two without an ending" },
	{ "INBOX", FLAG_DRAFT | FLAG_SEEN, "draft",
	    "Subject: header only\r\n"
	    "\r\n" },
	{ "Archive", FLAG_SEEN, NULL,
	    "From: archive@example.com\r\n"
	    "Subject: archived\r\n"
	    "\r\n"
	    "old news\r\n" },
};

static void
deliver(const char *mailbox, uint32_t flags, const char *keywords,
    const char *text, int64_t when)
{
	struct spool		*sp;
	struct store_blob_in	 blob;
	struct store_target	 t;

	if ((sp = spool_new(dir)) == NULL)
		abort();
	spool_add_bytes(sp, text, strlen(text));
	memset(&t, 0, sizeof(t));
	t.user = "alice";
	t.mailbox = mailbox;
	t.flags = flags;
	t.keywords = keywords;
	t.internaldate = when;
	if (spool_finish(sp, &blob) < 0 ||
	    store_deliver(srv.store, &blob, &t, 1) != STORE_OK ||
	    t.result != STORE_OK)
		abort();
	spool_free(sp);
}

static int
remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* Closes the store, if open, and makes a fresh one in dir. */
static void
store_reset(void)
{
	size_t	 i;

	if (srv.store != NULL)
		store_close(srv.store);
	srv.store = NULL;
	if (access(dir, F_OK) == 0 &&
	    nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS) < 0)
		abort();
	if (store_open(dir, &srv.store) != STORE_OK ||
	    store_user_add(srv.store, "alice", pwhash) != STORE_OK)
		abort();
	for (i = 0; i < sizeof(messages) / sizeof(*messages); i++)
		deliver(messages[i].mailbox, messages[i].flags,
		    messages[i].keywords, messages[i].text,
		    1700000000 + 86400 * (int64_t)i);
	if (store_commit(srv.store) != STORE_OK)
		abort();
	head_at_reset = store_replog_head(srv.store);
}

static void
cleanup(void)
{
	if (srv.store != NULL)
		store_close(srv.store);
	srv.store = NULL;
	if (dir[0] != '\0')
		nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	if (root[0] != '\0')
		rmdir(root);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char		*args[] = { "mailrepd", "serve", "--data", dir,
			    "--name", "fuzz", "--max-message-size", "65536" };
	const char	*tmp = getenv("TMPDIR");
	struct stat	 st;
	int		 npos = 0;

	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	echo = getenv("FUZZ_IMAP_ECHO") != NULL;
	/* tmpfs when there is one: every commit is an fsync */
	if (tmp == NULL || *tmp == '\0')
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(root, sizeof(root), "%s/mailrepd-fuzz-XXXXXX", tmp);
	if (mkdtemp(root) == NULL)
		abort();
	snprintf(dir, sizeof(dir), "%s/store", root);
	atexit(cleanup);
	if (settings_parse(&set, 8, args, 2, NULL, 0, NULL, &npos) < 0 ||
	    (pwhash = crypto_password_hash("pw")) == NULL)
		abort();
	srv.settings = &set;
	srv.now = FUZZ_NOW;
	srv.now_ms = (int64_t)FUZZ_NOW * 1000;
	if (auth_start() < 0)
		abort();
	store_reset();
	return 0;
}

/* As the loop does when the checker's descriptor is readable: every
   password check under way is answered. */
static void
wait_for_checks(void)
{
	struct pollfd	 pfd = { .fd = auth_fd(), .events = POLLIN };

	while (auth_pending() > 0)
		if (poll(&pfd, 1, -1) == 1)
			server_auth_results(&srv);
}

/*
 * Runs the session on what is buffered until it stops making progress,
 * the client reading all output after every call.  Returns 0, or aborts
 * when a reply made in steps neither writes nor finishes (in the server
 * that is a session spinning the loop for ever).
 */
static void
run_session(struct session *s)
{
	unsigned long	 spins = 0;
	size_t		 in_before, out;
	int		 resume_before;

	/* as the loop does: the handler runs only when there is work */
	while (session_wants_processing(s)) {
		in_before = buf_used(&s->in);
		resume_before = s->resume;
		session_process(s);
		server_commit(&srv);
		wait_for_checks();
		server_wake(&srv);
		out = buf_used(&s->out);
		if (echo && out > 0)
			fwrite(buf_ptr(&s->out), 1, out, stderr);
		buf_reset(&s->out);	/* the client read it */
		if (!session_wants_processing(s))
			break;
		if (buf_used(&s->in) != in_before || out > 0 ||
		    s->resume != resume_before)
			spins = 0;
		else if (!s->resume)
			break;		/* waiting for more input */
		else if (++spins > MAX_SPINS) {
			fprintf(stderr, "fuzz_imap: a step makes no progress\n");
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session		 s;
	struct imap_session	*ims;
	size_t			 step, off, n;
	int			 i;

	if (size == 0)
		return 0;
	if (++runs % RESET_RUNS == 0 ||
	    store_replog_head(srv.store) - head_at_reset > RESET_CHANGES)
		store_reset();
	step = (data[0] & 0x7f) < 64 ? 1 + (size_t)(data[0] & 0x7f) :
	    256 * (size_t)((data[0] & 0x7f) - 63);
	memset(&s, 0, sizeof(s));
	s.srv = &srv;
	s.ops = &imap_proto;
	s.fd = -1;
	s.id = runs;
	snprintf(s.peer, sizeof(s.peer), "fuzz");
	buf_init(&s.in, imap_proto.in_limit);
	buf_init(&s.out, imap_proto.out_limit);
	srv.sessions = &s;
	srv.nsessions = 1;
	srv.now = FUZZ_NOW;
	srv.now_ms = (int64_t)FUZZ_NOW * 1000;
	s.last_active = srv.now;
	imap_proto.start(&s);
	if ((data[0] & 0x80) && (ims = imap_of(&s)) != NULL) {
		/* what authenticate() does once the password is right */
		snprintf(ims->user, sizeof(ims->user), "alice");
		ims->state = IMAP_AUTH;
	}
	buf_reset(&s.out);
	for (off = 1; off < size && s.io != SESSION_CLOSING; off += n) {
		/* as the loop reads: no more than there is room for */
		n = size - off < step ? size - off : step;
		if (n > buf_room(&s.in))
			n = buf_room(&s.in);
		if (n > 0 && buf_append(&s.in, data + off, n) < 0)
			break;
		srv.now++;
		srv.now_ms += 1000;
		run_session(&s);
		if (n == 0 && buf_room(&s.in) == 0)
			break;		/* it takes no more: give up */
	}
	/* the client waits for the replies, then closes */
	for (i = 0; i < 3 && s.io != SESSION_CLOSING; i++) {
		srv.now_ms += IMAP_AUTH_FAIL_DELAY_MS;
		server_wake(&srv);	/* a held reply goes out */
		if (echo && buf_used(&s.out) > 0)
			fwrite(buf_ptr(&s.out), 1, buf_used(&s.out), stderr);
		buf_reset(&s.out);
		run_session(&s);
	}
	if (s.io == SESSION_OPEN) {
		/* the read that finds EOF reserves room first, as here */
		if (buf_reserve(&s.in, IO_CHUNK, &n) == NULL)
			abort();
		s.in_eof = 1;
		run_session(&s);
	}
	server_commit(&srv);
	imap_proto.free(&s);
	buf_free(&s.in);
	buf_free(&s.out);
	srv.sessions = NULL;
	srv.nsessions = 0;
	return 0;
}
