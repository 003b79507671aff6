/*
 * lmtp_load — LMTP load generator for benchmarks (mailrepd, Dovecot, ...).
 *
 * One thread per connection.  Each thread takes the next message number from
 * a shared counter until --messages have been sent, builds a unique message
 * (run nonce, counter and random bytes in the body and Message-ID; CRLF
 * lines; some lines starting with '.' so that dot-stuffing is exercised) and
 * runs one LMTP transaction, checking every reply:
 *
 *   LHLO -> 250, MAIL FROM -> 250, RCPT TO -> 250 each, DATA -> 354,
 *   then one 250 per accepted recipient after the final dot.
 *
 * Latency of a message is measured from sending MAIL FROM to the last
 * per-recipient reply.  "failures" counts unexpected replies, I/O errors
 * (after which the connection is re-opened once) and messages never sent.  At the end it prints one human line (stderr when
 * --json is given) and, with --json, one JSON line on stdout.
 *
 * Only 127.0.0.1 or a unix socket is ever contacted.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread \
 *           -o lmtp_load lmtp_load.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_RCPT 1000          /* recipients per message */
#define MAX_CONN 4096          /* connections */
#define LINE_MAX_LEN 4096      /* longest reply line we accept */
#define RBUF_SIZE 16384        /* per-connection read buffer */

/* Command-line settings. */
struct opts {
	const char *host;
	int port;
	const char *unix_path;
	int connections;
	long messages;
	long size;
	long size_max;          /* 0: every message is --size bytes */
	int recipients;
	const char *rcpt_template;
	int rcpt_users;         /* distinct template users (default: R) */
	char **users;           /* --users list, or NULL */
	int nusers;
	bool pipelining;
	bool mime_mix;
	bool json;
	int timeout_ms;
	uint64_t seed;
	const char *from;
};

/* A growable byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

/* One LMTP connection with its read buffer. */
struct conn {
	int fd;
	char rbuf[RBUF_SIZE];
	size_t rlen, roff;
};

/* Per-thread state and results. */
struct worker {
	pthread_t tid;
	int id;
	struct conn c;
	struct buf msg;         /* the dot-stuffed message being sent */
	struct buf cmd;         /* commands being sent */
	double *lat_ms;         /* latency of each delivered message */
	size_t nlat, caplat;
	long delivered;         /* messages with every recipient accepted */
	long rcpt_ok;           /* per-recipient 250 after the dot */
	long failures;          /* unexpected replies and I/O errors */
	long attempted;
	long bytes;             /* message bytes sent (before stuffing) */
	double end;             /* time the last transaction finished */
	char err[256];          /* first error, for the report */
};

static struct opts O;
static char *users_copy;        /* storage the --users list points into */
static atomic_long next_msg;
static pthread_barrier_t start_barrier;
static char run_nonce[17];
static const char *prog = "lmtp_load";

/* Print a formatted message to stderr and exit with status 2. */
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Return a monotonic timestamp in seconds. */
static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Advance a xorshift64* generator and return the next value. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Mix a seed and a message number into a non-zero generator state. */
static uint64_t rnd_seed(uint64_t seed, uint64_t n)
{
	uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (n + 1);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	z ^= z >> 31;
	return z ? z : 1;
}

/* Make sure the buffer has room for n more bytes. */
static void buf_reserve(struct buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		die("out of memory");
	b->p = p;
	b->cap = cap;
}

/* Append n bytes to the buffer. */
static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Append a printf-formatted string to the buffer. */
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	buf_reserve(b, 256);
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/*
 * Append one message line (without line ending) in DATA form: a leading
 * '.' is doubled (dot-stuffing) and CRLF is added.  Returns the number of
 * bytes the line has in the message itself (before stuffing).
 */
static size_t add_line(struct buf *b, const char *s, size_t n)
{
	if (n > 0 && s[0] == '.')
		buf_add(b, ".", 1);
	buf_add(b, s, n);
	buf_add(b, "\r\n", 2);
	return n + 2;
}

/* Append a printf-formatted message line; see add_line(). */
static size_t add_linef(struct buf *b, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		die("header line too long");
	return add_line(b, line, (size_t)n);
}

static const char *const words[] = {
	"mail", "server", "delivery", "replica", "message", "the", "of", "and",
	"benchmark", "sqlite", "store", "index", "folder", "inbox", "quick",
	"brown", "fox", "jumps", "over", "lazy", "dog", "lorem", "ipsum",
	"dolor", "sit", "amet", "throughput", "latency", "fsync", "commit",
	"a", "to", "in", "is", "it", "that", "for", "on", "with", "as",
};
#define NWORDS (sizeof words / sizeof words[0])

/*
 * Append text lines of random words until the message holds *size bytes
 * or more than target.  About one line in eight starts with '.', and now
 * and then a line is a lone '.' or starts with "..", to exercise stuffing.
 */
static void add_text(struct buf *b, uint64_t *rs, size_t *size, size_t target)
{
	char line[128];
	while (*size < target) {
		size_t n = 0;
		uint64_t r = rnd(rs);
		switch (r % 64) {
		case 0:
			line[n++] = '.';
			break;
		case 1:
			line[n++] = '.';
			line[n++] = '.';
			/* fall through */
		case 2: case 3: case 4: case 5: case 6: case 7:
			line[n++] = '.';
			break;
		default:
			break;
		}
		if (r % 64 != 0) {
			size_t want = 40 + (size_t)((r >> 8) % 36);
			while (n < want) {
				const char *w = words[rnd(rs) % NWORDS];
				size_t wl = strlen(w);
				if (n + wl + 1 > sizeof line)
					break;
				memcpy(line + n, w, wl);
				n += wl;
				line[n++] = ' ';
			}
			n--;    /* no trailing blank */
		}
		*size += add_line(b, line, n);
	}
}

/* Append base64-looking lines (76 columns) until the message is target. */
static void add_base64(struct buf *b, uint64_t *rs, size_t *size, size_t target)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[76];
	while (*size < target) {
		for (size_t i = 0; i < sizeof line; i++)
			line[i] = b64[rnd(rs) & 63];
		*size += add_line(b, line, sizeof line);
	}
}

/*
 * Write recipient j of message n into out: from --users, or the template
 * with its %d replaced by the user number.
 */
static void rcpt_addr(long n, int j, char *out, size_t cap)
{
	int k = O.users ? O.nusers : O.rcpt_users;
	long u = (n * O.recipients + j) % k;
	if (O.users) {
		snprintf(out, cap, "%s", O.users[u]);
		return;
	}
	const char *p = strstr(O.rcpt_template, "%d");
	snprintf(out, cap, "%.*s%ld%s", (int)(p - O.rcpt_template),
	    O.rcpt_template, u + 1, p + 2);
}

/*
 * Pick the size of message n: --size, or with --size-max a size spread
 * roughly evenly over the octaves between --size and --size-max.
 */
static size_t msg_size(long n)
{
	if (O.size_max <= O.size)
		return (size_t)O.size;
	uint64_t rs = rnd_seed(O.seed ^ 0x51ee, (uint64_t)n);
	int octaves = 0;
	for (long s = O.size; s * 2 <= O.size_max; s *= 2)
		octaves++;
	int o = (int)(rnd(&rs) % (uint64_t)(octaves + 1));
	long lo = O.size << o, hi = lo * 2;
	if (hi > O.size_max)
		hi = O.size_max;
	return (size_t)(lo + (long)(rnd(&rs) % (uint64_t)(hi - lo + 1)));
}

/*
 * Build message n in w->msg, dot-stuffed with CRLF lines and the final
 * ".\r\n".  With --mime-mix, one message in three is multipart/alternative
 * and one in three multipart/mixed with a base64 attachment.  Returns the
 * message size before stuffing.
 */
static size_t build_message(struct worker *w, long n)
{
	struct buf *b = &w->msg;
	uint64_t rs = rnd_seed(O.seed, (uint64_t)n);
	uint64_t uniq = rnd_seed((uint64_t)time(NULL) ^ (uint64_t)w->id << 32,
	    (uint64_t)n);
	size_t target = msg_size(n), size = 0;
	int kind = O.mime_mix ? (int)(rnd(&rs) % 3) : 0;
	char date[64], addr[320];
	time_t t = time(NULL);
	struct tm tm;

	b->len = 0;
	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	size += add_linef(b, "From: Bench Sender <%s>", O.from);
	for (int j = 0; j < O.recipients; j++) {
		rcpt_addr(n, j, addr, sizeof addr);
		size += add_linef(b, "%s <%s>%s", j ? " " : "To:", addr,
		    j + 1 < O.recipients ? "," : "");
	}
	size += add_linef(b, "Subject: Benchmark message %ld of run %s", n,
	    run_nonce);
	size += add_linef(b, "Date: %s", date);
	size += add_linef(b, "Message-ID: <%ld.%s.%016llx@bench.example>", n,
	    run_nonce, (unsigned long long)rnd(&uniq));
	size += add_linef(b, "MIME-Version: 1.0");
	size += add_linef(b, "X-Bench-Seq: %ld", n);

	switch (kind) {
	case 0:
		size += add_linef(b, "Content-Type: text/plain; charset=us-ascii");
		size += add_line(b, "", 0);
		size += add_linef(b, "Message %ld, run %s, token %016llx.", n,
		    run_nonce, (unsigned long long)rnd(&uniq));
		add_text(b, &rs, &size, target);
		break;
	case 1: {
		size_t half = size + (target > size ? (target - size) / 2 : 0);
		size += add_linef(b, "Content-Type: multipart/alternative; "
		    "boundary=\"alt-%ld\"", n);
		size += add_line(b, "", 0);
		size += add_linef(b, "--alt-%ld", n);
		size += add_linef(b, "Content-Type: text/plain; charset=us-ascii");
		size += add_line(b, "", 0);
		size += add_linef(b, "Message %ld, run %s, token %016llx.", n,
		    run_nonce, (unsigned long long)rnd(&uniq));
		add_text(b, &rs, &size, half);
		size += add_linef(b, "--alt-%ld", n);
		size += add_linef(b, "Content-Type: text/html; charset=us-ascii");
		size += add_line(b, "", 0);
		size += add_linef(b, "<html><body><p>Message %ld</p>", n);
		add_text(b, &rs, &size, target);
		size += add_linef(b, "</body></html>");
		size += add_linef(b, "--alt-%ld--", n);
		break;
	}
	default: {
		size_t text_end = size + 600;
		size += add_linef(b, "Content-Type: multipart/mixed; "
		    "boundary=\"mix-%ld\"", n);
		size += add_line(b, "", 0);
		size += add_linef(b, "--mix-%ld", n);
		size += add_linef(b, "Content-Type: text/plain; charset=us-ascii");
		size += add_line(b, "", 0);
		size += add_linef(b, "Message %ld, run %s, token %016llx.", n,
		    run_nonce, (unsigned long long)rnd(&uniq));
		add_text(b, &rs, &size, text_end);
		size += add_linef(b, "--mix-%ld", n);
		size += add_linef(b, "Content-Type: application/octet-stream; "
		    "name=\"data-%ld.bin\"", n);
		size += add_linef(b, "Content-Disposition: attachment; "
		    "filename=\"data-%ld.bin\"", n);
		size += add_linef(b, "Content-Transfer-Encoding: base64");
		size += add_line(b, "", 0);
		add_base64(b, &rs, &size, target);
		size += add_linef(b, "--mix-%ld--", n);
		break;
	}
	}
	buf_add(b, ".\r\n", 3);
	return size;
}

/* Record the first error of a worker (later ones only count). */
static void werr(struct worker *w, const char *fmt, ...)
{
	if (w->err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->err, sizeof w->err, fmt, ap);
	va_end(ap);
}

/* Open the connection (TCP to 127.0.0.1 or a unix socket); 0 on success. */
static int conn_open(struct conn *c)
{
	int fd;
	c->rlen = c->roff = 0;
	if (O.unix_path) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", O.unix_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
			close(fd);
			return -1;
		}
	} else {
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)O.port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
			close(fd);
			return -1;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	c->fd = fd;
	return 0;
}

/* Close the connection if it is open. */
static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Send all n bytes, waiting at most --timeout for room; 0 on success. */
static int conn_send(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
			int r = poll(&pfd, 1, O.timeout_ms);
			if (r > 0 || (r < 0 && errno == EINTR))
				continue;
			errno = ETIMEDOUT;
		}
		return -1;
	}
	return 0;
}

/*
 * Read one line (without CRLF or LF) into line, waiting at most --timeout.
 * Returns its length, or -1 on error, EOF, timeout or an over-long line.
 */
static int conn_line(struct conn *c, char *line, size_t cap)
{
	size_t n = 0;
	for (;;) {
		while (c->roff < c->rlen) {
			char ch = c->rbuf[c->roff++];
			if (ch == '\n') {
				if (n > 0 && line[n - 1] == '\r')
					n--;
				line[n] = '\0';
				return (int)n;
			}
			if (n + 1 >= cap)
				return -1;
			line[n++] = ch;
		}
		c->roff = c->rlen = 0;
		ssize_t k = recv(c->fd, c->rbuf, sizeof c->rbuf, 0);
		if (k > 0) {
			c->rlen = (size_t)k;
			continue;
		}
		if (k == 0)
			return -1;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int r = poll(&pfd, 1, O.timeout_ms);
		if (r == 0)
			return -1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/*
 * Read one (possibly multi-line) reply and return its three-digit code, or
 * -1 on an I/O error or a malformed reply.  The last line goes to last.
 */
static int read_reply(struct conn *c, char *last, size_t cap)
{
	for (;;) {
		int n = conn_line(c, last, cap);
		if (n < 3)
			return -1;
		if (last[0] < '1' || last[0] > '5' || last[1] < '0' ||
		    last[1] > '9' || last[2] < '0' || last[2] > '9')
			return -1;
		if (n == 3 || last[3] == ' ')
			return (last[0] - '0') * 100 + (last[1] - '0') * 10 +
			    (last[2] - '0');
		if (last[3] != '-')
			return -1;
	}
}

/*
 * Read a reply and compare it with the expected code.  Returns 1 when it
 * matches, 0 when it does not (a failure is counted), -1 on I/O error.
 */
static int expect(struct worker *w, int want, const char *what)
{
	char line[LINE_MAX_LEN];
	int code = read_reply(&w->c, line, sizeof line);
	if (code < 0) {
		werr(w, "%s: connection error or bad reply", what);
		return -1;
	}
	if (code != want) {
		w->failures++;
		werr(w, "%s: expected %d, got: %.200s", what, want, line);
		return 0;
	}
	return 1;
}

/*
 * Connect, read the greeting and send LHLO.  Returns 0 when ready for
 * mail, -1 after an I/O error (not yet counted) and -2 after a refusal
 * (already counted as a failure).
 */
static int session_start(struct worker *w)
{
	int r;
	if (conn_open(&w->c) < 0) {
		werr(w, "connect: %s", strerror(errno));
		return -1;
	}
	if ((r = expect(w, 220, "greeting")) != 1)
		return r == 0 ? -2 : -1;
	if (conn_send(&w->c, "LHLO bench.localhost\r\n", 22) < 0)
		return -1;
	if ((r = expect(w, 250, "LHLO")) != 1)
		return r == 0 ? -2 : -1;
	return 0;
}

/* Send RSET and read its reply (after a refused transaction). */
static int send_rset(struct worker *w)
{
	if (conn_send(&w->c, "RSET\r\n", 6) < 0)
		return -1;
	return expect(w, 250, "RSET") < 0 ? -1 : 0;
}

/*
 * Run one LMTP transaction for message n.  Counts failures and delivered
 * recipients, records the latency of a fully delivered message.  Returns
 * 0 when the connection is still usable, -1 after an I/O error.
 */
static int transaction(struct worker *w, long n)
{
	char addr[320];
	int accepted = 0, r;
	size_t size = build_message(w, n);
	struct buf *cmd = &w->cmd;

	w->attempted++;
	double t0 = now();
	cmd->len = 0;
	buf_printf(cmd, "MAIL FROM:<%s>\r\n", O.from);
	if (!O.pipelining) {
		if (conn_send(&w->c, cmd->p, cmd->len) < 0)
			return -1;
		if ((r = expect(w, 250, "MAIL FROM")) < 0)
			return -1;
		if (r == 0)
			return send_rset(w);
		for (int j = 0; j < O.recipients; j++) {
			rcpt_addr(n, j, addr, sizeof addr);
			cmd->len = 0;
			buf_printf(cmd, "RCPT TO:<%s>\r\n", addr);
			if (conn_send(&w->c, cmd->p, cmd->len) < 0)
				return -1;
			if ((r = expect(w, 250, "RCPT TO")) < 0)
				return -1;
			accepted += r;
		}
		if (conn_send(&w->c, "DATA\r\n", 6) < 0)
			return -1;
	} else {
		for (int j = 0; j < O.recipients; j++) {
			rcpt_addr(n, j, addr, sizeof addr);
			buf_printf(cmd, "RCPT TO:<%s>\r\n", addr);
		}
		buf_printf(cmd, "DATA\r\n");
		if (conn_send(&w->c, cmd->p, cmd->len) < 0)
			return -1;
		if ((r = expect(w, 250, "MAIL FROM")) < 0)
			return -1;
		for (int j = 0; j < O.recipients; j++) {
			int k = expect(w, 250, "RCPT TO");
			if (k < 0)
				return -1;
			/* With MAIL refused, RCPT answers do not count. */
			accepted += r ? k : 0;
		}
	}
	if ((r = expect(w, 354, "DATA")) < 0)
		return -1;
	if (r == 0)
		return send_rset(w);
	if (accepted == 0) {
		/* 354 with no recipient: end the data at once. */
		if (conn_send(&w->c, ".\r\n", 3) < 0)
			return -1;
		return expect(w, 250, "end of data") < 0 ? -1 : 0;
	}
	if (conn_send(&w->c, w->msg.p, w->msg.len) < 0)
		return -1;
	int ok = 0;
	for (int j = 0; j < accepted; j++) {
		if ((r = expect(w, 250, "end of data")) < 0)
			return -1;
		ok += r;
	}
	w->rcpt_ok += ok;
	w->bytes += (long)size;
	if (ok == O.recipients) {
		if (w->nlat == w->caplat) {
			w->caplat = w->caplat ? w->caplat * 2 : 1024;
			w->lat_ms = realloc(w->lat_ms, w->caplat * sizeof *w->lat_ms);
			if (!w->lat_ms)
				die("out of memory");
		}
		w->lat_ms[w->nlat++] = (now() - t0) * 1000.0;
		w->delivered++;
	}
	return 0;
}

/* Thread body: one connection delivering messages until none are left. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int r = session_start(w);
	bool ready = r == 0;
	if (r == -1)
		w->failures++;
	pthread_barrier_wait(&start_barrier);
	while (ready) {
		long n = atomic_fetch_add(&next_msg, 1);
		if (n >= O.messages)
			break;
		if (transaction(w, n) == 0)
			continue;
		/* I/O error: count it, then try one fresh connection. */
		w->failures++;
		conn_close(&w->c);
		if ((r = session_start(w)) < 0) {
			if (r == -1)
				w->failures++;
			ready = false;
		}
	}
	w->end = now();
	if (ready && conn_send(&w->c, "QUIT\r\n", 6) == 0)
		expect(w, 221, "QUIT");
	conn_close(&w->c);
	return NULL;
}

/* qsort comparison of two doubles. */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..100) of the sorted array v of n values. */
static double percentile(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0.0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* Print the usage text and exit with the given status. */
static void usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: %s [--host 127.0.0.1] --port N | --unix PATH\n"
	    "          [--connections C] [--messages M] [--size BYTES]\n"
	    "          [--size-max BYTES] [--mime-mix] [--recipients R]\n"
	    "          [--rcpt-template 'user%%d@example.com' [--rcpt-users K]\n"
	    "           | --users u1@d,u2@d,...] [--from ADDR] [--pipelining]\n"
	    "          [--timeout SECONDS] [--seed N] [--json]\n"
	    "\n"
	    "Delivers M unique messages over C LMTP connections, checking every\n"
	    "reply, and prints messages/s, p50/p99 latency and failures.\n"
	    "Recipient j of message n is user number ((n*R + j) mod K) + 1 of\n"
	    "the template, or the same index into --users.  --size-max spreads\n"
	    "sizes over the octaves from --size to --size-max; --mime-mix makes\n"
	    "one message in three multipart/alternative and one multipart/mixed\n"
	    "with an attachment.  Only 127.0.0.1 or a unix socket is contacted.\n"
	    "\n"
	    "Output: messages (fully delivered: every recipient got 250),\n"
	    "recipients (per-recipient 250s after the dot), seconds,\n"
	    "messages_per_s, p50_ms/p99_ms (MAIL FROM to the last recipient\n"
	    "reply, delivered messages only), failures (unexpected replies, I/O\n"
	    "errors and messages never sent), unsent.  Exit 1 if any failure.\n",
	    prog);
	exit(status);
}

/* Parse a decimal integer option within [lo, hi] or die. */
static long num_arg(const char *name, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die("--%s: expected a number from %ld to %ld, got '%s'", name,
		    lo, hi, s);
	return v;
}

/* Split a comma-separated --users list into O.users / O.nusers. */
static void parse_users(const char *s)
{
	char *copy = users_copy = strdup(s);
	if (!copy)
		die("out of memory");
	int cap = 16;
	O.users = malloc((size_t)cap * sizeof *O.users);
	if (!O.users)
		die("out of memory");
	O.nusers = 0;
	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
	    t = strtok_r(NULL, ",", &save)) {
		if (strlen(t) > 255 || strpbrk(t, "<>\r\n "))
			die("--users: bad address '%s'", t);
		if (O.nusers == cap) {
			cap *= 2;
			O.users = realloc(O.users, (size_t)cap * sizeof *O.users);
			if (!O.users)
				die("out of memory");
		}
		O.users[O.nusers++] = t;
	}
	if (O.nusers == 0)
		die("--users: empty list");
}

/* Check --rcpt-template: exactly one %d and no other '%' directive. */
static void check_template(const char *t)
{
	const char *p = strstr(t, "%d");
	if (!p || strchr(p + 2, '%') || memchr(t, '%', (size_t)(p - t)))
		die("--rcpt-template must contain exactly one %%d and no other "
		    "%%: '%s'", t);
	if (strlen(t) > 200 || strpbrk(t, "<>\r\n "))
		die("--rcpt-template: bad address '%s'", t);
}

/* Parse the command line into O. */
static void parse_args(int argc, char **argv)
{
	enum { OPT_SIZE_MAX = 256, OPT_RCPT_USERS, OPT_MIME_MIX, OPT_TIMEOUT,
	       OPT_SEED, OPT_FROM, OPT_JSON };
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "unix", required_argument, NULL, 'u' },
		{ "connections", required_argument, NULL, 'c' },
		{ "messages", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "size-max", required_argument, NULL, OPT_SIZE_MAX },
		{ "recipients", required_argument, NULL, 'r' },
		{ "rcpt-template", required_argument, NULL, 't' },
		{ "rcpt-users", required_argument, NULL, OPT_RCPT_USERS },
		{ "users", required_argument, NULL, 'U' },
		{ "pipelining", no_argument, NULL, 'P' },
		{ "mime-mix", no_argument, NULL, OPT_MIME_MIX },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	O.host = "127.0.0.1";
	O.connections = 1;
	O.messages = 1000;
	O.size = 4096;
	O.recipients = 1;
	O.rcpt_template = "user%d@example.com";
	O.timeout_ms = 60000;
	O.seed = 1;
	O.from = "sender@bench.example";
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'h': O.host = optarg; break;
		case 'p': O.port = (int)num_arg("port", optarg, 1, 65535); break;
		case 'u': O.unix_path = optarg; break;
		case 'c':
			O.connections = (int)num_arg("connections", optarg, 1,
			    MAX_CONN);
			break;
		case 'm':
			O.messages = num_arg("messages", optarg, 1, 100000000L);
			break;
		case 's':
			O.size = num_arg("size", optarg, 256, 1L << 30);
			break;
		case OPT_SIZE_MAX:
			O.size_max = num_arg("size-max", optarg, 256, 1L << 30);
			break;
		case 'r':
			O.recipients = (int)num_arg("recipients", optarg, 1,
			    MAX_RCPT);
			break;
		case 't': O.rcpt_template = optarg; break;
		case OPT_RCPT_USERS:
			O.rcpt_users = (int)num_arg("rcpt-users", optarg, 1,
			    10000000);
			break;
		case 'U': parse_users(optarg); break;
		case 'P': O.pipelining = true; break;
		case OPT_MIME_MIX: O.mime_mix = true; break;
		case OPT_TIMEOUT:
			O.timeout_ms = (int)num_arg("timeout", optarg, 1, 3600) *
			    1000;
			break;
		case OPT_SEED:
			O.seed = (uint64_t)num_arg("seed", optarg, 0, 1L << 62);
			break;
		case OPT_FROM:
			if (strlen(optarg) > 255 || strpbrk(optarg, "<>\r\n "))
				die("--from: bad address '%s'", optarg);
			O.from = optarg;
			break;
		case OPT_JSON: O.json = true; break;
		case 'H': usage(0); break;
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (O.unix_path) {
		if (strlen(O.unix_path) >= sizeof ((struct sockaddr_un *)0)->sun_path)
			die("--unix: path too long");
	} else {
		struct in_addr a;
		if (inet_pton(AF_INET, O.host, &a) != 1 ||
		    a.s_addr != htonl(INADDR_LOOPBACK))
			die("refusing to contact '%s': only 127.0.0.1 (or --unix "
			    "PATH) is allowed", O.host);
		if (O.port == 0)
			die("--port is required (or --unix PATH)");
	}
	check_template(O.rcpt_template);
	if (!O.rcpt_users)
		O.rcpt_users = O.recipients;
	int k = O.users ? O.nusers : O.rcpt_users;
	if (O.recipients > k)
		die("%d recipients per message but only %d distinct users",
		    O.recipients, k);
}

/* Fill run_nonce with 16 hex digits from /dev/urandom (or the clock). */
static void make_nonce(void)
{
	uint64_t v = 0;
	FILE *f = fopen("/dev/urandom", "rb");
	if (!f || fread(&v, sizeof v, 1, f) != 1)
		v = rnd_seed((uint64_t)time(NULL), (uint64_t)getpid());
	if (f)
		fclose(f);
	snprintf(run_nonce, sizeof run_nonce, "%016llx", (unsigned long long)v);
}

/* Run the benchmark and print the results; exit 0, or 1 on any failure. */
int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	make_nonce();

	struct worker *ws = calloc((size_t)O.connections, sizeof *ws);
	if (!ws)
		die("out of memory");
	if (pthread_barrier_init(&start_barrier, NULL,
	    (unsigned)O.connections + 1) != 0)
		die("pthread_barrier_init failed");
	for (int i = 0; i < O.connections; i++) {
		ws[i].id = i;
		ws[i].c.fd = -1;
		if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
			die("pthread_create failed");
	}
	pthread_barrier_wait(&start_barrier);
	double t0 = now(), t1 = t0;

	long delivered = 0, rcpt_ok = 0, failures = 0, attempted = 0, bytes = 0;
	size_t nlat = 0;
	const char *first_err = NULL;
	for (int i = 0; i < O.connections; i++) {
		pthread_join(ws[i].tid, NULL);
		struct worker *w = &ws[i];
		delivered += w->delivered;
		rcpt_ok += w->rcpt_ok;
		failures += w->failures;
		attempted += w->attempted;
		bytes += w->bytes;
		nlat += w->nlat;
		if (w->end > t1)
			t1 = w->end;
		if (!first_err && w->err[0])
			first_err = w->err;
	}
	/* Messages never tried because every connection died count too. */
	long unsent = O.messages - attempted;
	if (unsent < 0)
		unsent = 0;
	failures += unsent;

	double *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
	if (!lat)
		die("out of memory");
	size_t k = 0;
	for (int i = 0; i < O.connections; i++) {
		if (ws[i].nlat == 0)
			continue;
		memcpy(lat + k, ws[i].lat_ms, ws[i].nlat * sizeof *lat);
		k += ws[i].nlat;
	}
	qsort(lat, nlat, sizeof *lat, cmp_double);
	double secs = t1 - t0;
	double rate = secs > 0 ? (double)delivered / secs : 0.0;
	double p50 = percentile(lat, nlat, 50), p99 = percentile(lat, nlat, 99);

	FILE *human = O.json ? stderr : stdout;
	fprintf(human, "lmtp_load: %ld messages (%ld recipient deliveries, "
	    "%.1f MiB) in %.2f s: %.1f msg/s, p50 %.2f ms, p99 %.2f ms, "
	    "%ld failures [c=%d size=%ld%s rcpt=%d%s]\n", delivered, rcpt_ok,
	    (double)bytes / 1048576.0, secs, rate, p50, p99, failures,
	    O.connections, O.size, O.size_max > O.size ? "+" : "",
	    O.recipients, O.pipelining ? " pipelining" : "");
	if (first_err)
		fprintf(stderr, "lmtp_load: first error: %s\n", first_err);
	if (O.json)
		printf("{\"messages\":%ld,\"recipients\":%ld,\"seconds\":%.3f,"
		    "\"messages_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
		    "\"failures\":%ld,\"connections\":%d,\"size\":%ld,"
		    "\"size_max\":%ld,\"recipients_per_message\":%d,"
		    "\"pipelining\":%s,\"bytes\":%ld,\"unsent\":%ld}\n",
		    delivered, rcpt_ok, secs, rate, p50, p99, failures,
		    O.connections, O.size,
		    O.size_max > O.size ? O.size_max : O.size, O.recipients,
		    O.pipelining ? "true" : "false", bytes, unsent);
	fflush(stdout);
	for (int i = 0; i < O.connections; i++) {
		free(ws[i].lat_ms);
		free(ws[i].msg.p);
		free(ws[i].cmd.p);
	}
	free(lat);
	free(ws);
	free(users_copy);
	free(O.users);
	pthread_barrier_destroy(&start_barrier);
	return failures ? 1 : 0;
}
