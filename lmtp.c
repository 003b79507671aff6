/*
 * lmtp.c — LMTP (RFC 2033) delivery into the store, and SMTP intake
 * (RFC 5321, --smtp) on the same state machine.
 *
 * A session moves through these states; one switch in lmtp_input() picks
 * what the next input means:
 *
 *   HELO --LHLO--> IDLE --MAIL--> MAIL --RCPT--> RCPT --DATA--> DATA
 *     (end of data) --> COMMIT --(group commit)--> IDLE
 *                              \--(dev +slow)--> HELD --(delay)--> IDLE
 *
 * RSET from MAIL, RCPT returns to IDLE.  SMTP differs from LMTP only in
 * what struct lmtp_dialect says: the greeting verb (EHLO/HELO), one
 * reply after DATA instead of one per recipient, AUTH (dev mode), a
 * Received: trace header, and the words for a recipient domain that is
 * not ours (relaying, which is never done).  The commands, the paths and
 * the data reader are shared.
 *
 * Catch-all (--catch-all, and dev mode) makes a user for an unknown
 * local part at RCPT; in dev mode a local part ending in +tempfail,
 * +permfail or +slow gets a 451, a 550 or a delayed reply.  The data of one transaction
 * (sender, recipients, spool, the first error seen in DATA) lives in a
 * struct lmtp_tx made at MAIL and freed when its replies are sent.  An
 * error found in the middle of DATA is remembered and answered after the
 * final dot, once per recipient, never early.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "lmtp.h"
#include "log.h"
#include "settings.h"
#include "spool.h"
#include "store.h"
#include "tls.h"
#include "sync.h"

enum lmtp_state {
	LMTP_HELO,		/* waiting for LHLO */
	LMTP_IDLE,		/* no transaction */
	LMTP_MAIL,		/* sender given, no recipient yet */
	LMTP_RCPT,		/* at least one recipient accepted */
	LMTP_DATA,		/* reading the message */
	LMTP_STORE,		/* storing it, some recipients a step */
	LMTP_COMMIT,		/* a step stored; waiting for the group commit */
	LMTP_HELD,		/* committed; replies held (dev +slow) */
};

/* What a command table entry is allowed in. */
#define IN_LMTP		0x01
#define IN_SMTP		0x02

/* Everything that tells SMTP from LMTP; see the comment at the top. */
struct lmtp_dialect {
	unsigned	 mask;		/* IN_LMTP or IN_SMTP */
	const char	*banner;	/* in the 220 greeting */
	const char	*other_hello;	/* reply to the other protocol's hello */
	int		 reply_per_rcpt; /* LMTP: one reply per recipient */
	int		 smtp_params;	/* SMTPUTF8, AUTH= on MAIL; SMTPUTF8 */
	int		 trace;		/* prepend Received: (RFC 5321 4.4) */
	const char	*foreign_code;	/* RCPT to a domain not ours: */
	const char	*foreign_text;	/* "CODE <address> TEXT" */
};

static const struct lmtp_dialect dialect_lmtp = {
	IN_LMTP, "LMTP", "500 5.5.1 This is LMTP: use LHLO", 1, 0, 0,
	"550 5.1.2", "Domain not handled here",
};

static const struct lmtp_dialect dialect_smtp = {
	IN_SMTP, "ESMTP", "500 5.5.1 This is SMTP: use EHLO or HELO", 0, 1, 1,
	"550 5.7.1", "Relaying denied: this server delivers locally only",
};

/* SMTP AUTH in progress: what the next line answers. */
enum auth_step {
	AUTH_NONE,
	AUTH_PLAIN,		/* "334 " sent, the PLAIN response next */
	AUTH_LOGIN_USER,	/* "334 Username:" sent */
	AUTH_LOGIN_PASS,	/* "334 Password:" sent */
};

/* Dev-mode failure injection, by the local part's last +detail. */
enum rcpt_fault {
	FAULT_NONE,
	FAULT_TEMP,		/* +tempfail: 451 at RCPT */
	FAULT_PERM,		/* +permfail: 550 at RCPT */
	FAULT_SLOW,		/* +slow: delivered, reply DEV_SLOW_SECONDS late */
};

enum data_error {
	DATA_OK,
	DATA_TOO_BIG,		/* over max-message-size */
	DATA_LINE_TOO_LONG,	/* a line over LMTP_MAX_DATA_LINE */
	DATA_SPOOL,		/* writing the spool file failed */
	DATA_REPLICA,		/* the node became a replica (demote) */
};

struct lmtp_rcpt {
	char		*address;	/* as given, for replies and logs */
	char		 user[USER_MAX_NAME + 1];
	char		*mailbox;	/* INBOX, or the +detail folder */
	int		 slow;		/* dev +slow: hold the reply */
};

struct lmtp_tx {
	char			*sender;
	struct lmtp_rcpt	*rcpts;
	size_t			 nrcpts;
	struct store_target	*targets;	/* one per rcpt, at DATA end */
	struct store_blob_in	 blob;		/* the message, at DATA end */
	size_t			 stored;	/* targets stored so far */
	size_t			 replied;	/* ...and answered */
	struct spool		*spool;
	enum data_error		 error;		/* first error in DATA */
	int			 spool_errno;
	uint64_t		 data_size;	/* the client's bytes, unstuffed */
	int			 prev_crlf;	/* last data line ended CRLF */
	int			 skipping;	/* discarding an over-long line */
	int			 skipped_cr;	/* ...whose last byte was CR */
};

struct lmtp_session {
	const struct lmtp_dialect *d;
	enum lmtp_state	 state;
	struct lmtp_tx	*tx;
	int		 errors;	/* bad commands so far */
	int		 skipping;	/* discarding an over-long command */
	size_t		 line_used;	/* input bytes of the running command */
	char		*helo;		/* SMTP: the client's HELO/EHLO name */
	int		 esmtp;		/* SMTP: EHLO (not HELO) was given */
	enum auth_step	 auth_step;
	int		 authed;	/* SMTP AUTH succeeded (dev mode) */
	int		 held_ok;	/* HELD: whether the commit succeeded */
	int64_t		 hold_until;	/* HELD: when the replies go out (ms) */
};

/* A parsed MAIL or RCPT argument: <path> and its parameters. */
struct lmtp_path {
	char	*address;	/* inside the angle brackets, route removed */
	char	*params;	/* what follows, or "" */
};

struct lmtp_command {
	const char	*verb;
	unsigned	 in;		/* IN_LMTP | IN_SMTP */
	/* Checks state and syntax; replies itself and returns -1 to refuse. */
	int		(*check)(struct session *, struct lmtp_session *,
			    char *args, struct lmtp_path *);
	void		(*proceed)(struct session *, struct lmtp_session *,
			    struct lmtp_path *);
};

static void	lmtp_tx_free(struct lmtp_tx *);
static void	lmtp_store_step(struct session *, struct lmtp_session *);

/* Counts a refused command; too many and the client is cut off. */
static void
lmtp_error(struct session *s, struct lmtp_session *ls, const char *reply)
{
	session_printf(s, "%s\r\n", reply);
	if (++ls->errors >= LMTP_MAX_ERRORS) {
		session_printf(s, "421 4.7.0 Too many errors, closing "
		    "connection\r\n");
		session_close(s);
	}
}

/* A refused path: 501 with the command's enhanced status code. */
static void
lmtp_path_error(struct session *s, struct lmtp_session *ls,
    const char *code, const char *text)
{
	char	 reply[128];

	snprintf(reply, sizeof(reply), "501 %s %s", code, text);
	lmtp_error(s, ls, reply);
}

/*
 * Whether an address or a hello name holds a control character (C0 or
 * DEL): a bare CR copied into Return-Path:, Delivered-To: or Received:
 * would start a header of the sender's choosing.
 */
static int
has_control(const char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 1;
	return 0;
}

/*
 * Parses "FROM:<path> params" (or TO:) after the verb.  Tolerates the
 * common "FROM: <path>" spacing and a path without brackets.  Writes
 * into args in place.  Returns 0, or -1 after replying 501 with `code`
 * (5.1.7 for a sender, 5.1.3 for a recipient) to a bad address.
 */
static int
parse_path(struct session *s, struct lmtp_session *ls, char *args,
    const char *keyword, const char *code, struct lmtp_path *out)
{
	size_t	 klen = strlen(keyword);
	char	*p = args, *end, *q;
	int	 quoted = 0;

	while (*p == ' ')
		p++;
	if (strncasecmp(p, keyword, klen) != 0) {
		lmtp_error(s, ls, "501 5.5.4 Syntax: expected a path after "
		    "the command");
		return -1;
	}
	p += klen;
	while (*p == ' ')
		p++;
	if (*p == '<') {
		for (end = ++p; *end != '\0'; end++) {
			if (*end == '"')
				quoted = !quoted;
			else if (*end == '\\' && quoted && end[1] != '\0')
				end++;
			else if (*end == '>' && !quoted)
				break;
		}
		if (*end != '>') {
			lmtp_path_error(s, ls, code, "Syntax: unbalanced angle "
			    "brackets in path");
			return -1;
		}
		*end++ = '\0';
	} else {
		end = p + strcspn(p, " ");
		if (*end != '\0')
			*end++ = '\0';
	}
	/* A source route "@a,@b:user@d" is obsolete; the mailbox counts. */
	if (*p == '@' && (q = strchr(p, ':')) != NULL)
		p = q + 1;
	if (strlen(p) > LMTP_MAX_ADDRESS) {
		lmtp_path_error(s, ls, code, "Path too long");
		return -1;
	}
	if (has_control(p)) {
		lmtp_path_error(s, ls, code, "Control character in address");
		return -1;
	}
	while (*end == ' ')
		end++;
	out->address = p;
	out->params = end;
	return 0;
}

/* LHLO, EHLO and HELO. */
static int
check_hello(struct session *s, struct lmtp_session *ls, char *args,
    struct lmtp_path *path)
{
	while (*args == ' ')
		args++;
	if (*args == '\0') {
		lmtp_error(s, ls, ls->d == &dialect_lmtp ?
		    "501 5.5.4 Syntax: LHLO hostname" :
		    "501 5.5.4 Syntax: EHLO hostname");
		return -1;
	}
	if (has_control(args)) {
		/* The name goes into Received:, as the sender wrote it. */
		lmtp_error(s, ls, "501 5.5.4 Syntax: control character in "
		    "hostname");
		return -1;
	}
	if (ls->auth_step != AUTH_NONE) {
		lmtp_error(s, ls, "503 5.5.1 AUTH in progress");
		return -1;
	}
	if (ls->state == LMTP_DATA || ls->state == LMTP_STORE ||
	    ls->state == LMTP_COMMIT) {
		lmtp_error(s, ls, "503 5.5.1 Bad sequence of commands");
		return -1;
	}
	path->address = args;
	return 0;
}

/* Whether SMTP AUTH is offered: dev mode, loopback clients only. */
static int
auth_offered(const struct session *s, const struct lmtp_session *ls)
{
	return ls->d->smtp_params && s->srv->dev && s->local;
}

/* Starts over after a greeting; keeps the name for Received:. */
static void
hello_reset(struct lmtp_session *ls, const char *name)
{
	char	*p;

	lmtp_tx_free(ls->tx);
	ls->tx = NULL;
	ls->state = LMTP_IDLE;
	free(ls->helo);
	if ((ls->helo = strndup(name, SMTP_MAX_HELO)) != NULL)
		for (p = ls->helo; *p != '\0'; p++)
			if (!isgraph((unsigned char)*p))
				*p = '?';	/* it goes into a header */
}

/* LHLO and EHLO: the greeting with the dialect's extensions. */
static void
proceed_ehlo(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	hello_reset(ls, path->address);
	ls->esmtp = 1;
	session_printf(s, "250-%s\r\n"
	    "250-PIPELINING\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n", s->srv->settings->name);
	if (ls->d->smtp_params)
		session_printf(s, "250-SMTPUTF8\r\n");
	if (auth_offered(s, ls))
		session_printf(s, "250-AUTH PLAIN LOGIN\r\n");
	if (s->tp != NULL && tls_available() && !session_secure(s))
		session_printf(s, "250-STARTTLS\r\n");
	session_printf(s, "250 SIZE %ld\r\n",
	    s->srv->settings->max_message_size);
}

/* SMTP's HELO: no extensions (RFC 5321 4.1.1.1). */
static void
proceed_helo(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	hello_reset(ls, path->address);
	ls->esmtp = 0;
	session_printf(s, "250 %s\r\n", s->srv->settings->name);
}

/*
 * Checks MAIL FROM's parameters: SIZE= (refused when over the limit) and
 * BODY=7BIT|8BITMIME.  Returns 0 or -1 after replying.
 */
static int
check_mail_params(struct session *s, struct lmtp_session *ls, char *params)
{
	char		*word, *save = NULL, *end;
	unsigned long	 size;

	for (word = strtok_r(params, " ", &save); word != NULL;
	    word = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(word, "SIZE=", 5) == 0) {
			errno = 0;
			size = strtoul(word + 5, &end, 10);
			if (*end != '\0' || end == word + 5 || errno != 0) {
				lmtp_error(s, ls, "501 5.5.4 Bad SIZE value");
				return -1;
			}
			if (size > (unsigned long)
			    s->srv->settings->max_message_size) {
				session_printf(s, "552 5.3.4 Message size "
				    "exceeds fixed limit of %ld bytes\r\n",
				    s->srv->settings->max_message_size);
				return -1;
			}
		} else if (ls->d->smtp_params &&
		    (strcasecmp(word, "SMTPUTF8") == 0 ||
		    strncasecmp(word, "AUTH=", 5) == 0)) {
			continue;	/* UTF-8 is stored as is; AUTH= is
					   only informative (RFC 4954 5) */
		} else if (strcasecmp(word, "BODY=7BIT") != 0 &&
		    strcasecmp(word, "BODY=8BITMIME") != 0) {
			lmtp_error(s, ls, "555 5.5.4 Unsupported MAIL FROM "
			    "parameter");
			return -1;
		}
	}
	return 0;
}

static int
check_mail(struct session *s, struct lmtp_session *ls, char *args,
    struct lmtp_path *path)
{
	if (ls->state == LMTP_HELO) {
		lmtp_error(s, ls, ls->d == &dialect_lmtp ?
		    "503 5.5.1 Send LHLO first" : "503 5.5.1 Send EHLO first");
		return -1;
	}
	if (ls->state != LMTP_IDLE) {
		lmtp_error(s, ls, "503 5.5.1 Sender already given");
		return -1;
	}
	if (sync_is_replica()) {
		/* A temporary error: the MTA retries, on the master. */
		session_printf(s, "451 4.3.0 This node is a read-only replica; "
		    "deliver to its master\r\n");
		return -1;
	}
	if (parse_path(s, ls, args, "FROM:", "5.1.7", path) < 0)
		return -1;
	return check_mail_params(s, ls, path->params);
}

static void
proceed_mail(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	assert(ls->tx == NULL);
	if ((ls->tx = calloc(1, sizeof(*ls->tx))) == NULL ||
	    (ls->tx->sender = strdup(path->address)) == NULL) {
		lmtp_tx_free(ls->tx);
		ls->tx = NULL;
		session_printf(s, "451 4.3.0 Out of memory\r\n");
		return;
	}
	ls->state = LMTP_MAIL;
	session_printf(s, "250 2.1.0 Sender OK\r\n");
}

/* Whether `domain` is one of --domains (any when the setting is unset). */
static int
domain_accepted(const struct settings *set, const char *domain)
{
	const char	*p = set->domains;
	size_t		 n = strlen(domain);

	if (p == NULL || *p == '\0' || *domain == '\0')
		return 1;
	while (*p != '\0') {
		size_t len = strcspn(p, ", ");

		if (len == n && strncasecmp(p, domain, n) == 0)
			return 1;
		p += len;
		p += strspn(p, ", ");
	}
	return 0;
}

/*
 * Dev mode: a local part ending in +tempfail, +permfail or +slow asks
 * for that failure; the suffix is cut off `local`.
 */
static enum rcpt_fault
rcpt_fault(char *local)
{
	static const struct {
		const char	*suffix;
		enum rcpt_fault	 fault;
	} faults[] = {
		{ "+tempfail", FAULT_TEMP },
		{ "+permfail", FAULT_PERM },
		{ "+slow", FAULT_SLOW },
	};
	size_t	 n = strlen(local), len, i;

	for (i = 0; i < sizeof(faults) / sizeof(*faults); i++) {
		len = strlen(faults[i].suffix);
		if (n > len && strcasecmp(local + n - len,
		    faults[i].suffix) == 0) {
			local[n - len] = '\0';
			return faults[i].fault;
		}
	}
	return FAULT_NONE;
}

/*
 * Catch-all: makes the user `name` (no password, the default mailboxes)
 * inside the open write transaction, so that it is committed with the
 * group commit before the RCPT reply goes out.  Returns the look-up's
 * result with the canonical name in canon.
 */
static enum store_err
catch_all_user(struct session *s, const char *name,
    char canon[USER_MAX_NAME + 1])
{
	enum store_err	 err;

	err = store_user_add(s->srv->store, name, PASSWORD_NONE);
	if (err != STORE_OK && err != STORE_EXISTS)
		return err;
	if (err == STORE_OK)
		log_info("catchall.user", "session=%llu user=%s",
		    (unsigned long long)s->id, log_quote(name));
	return store_user_find(s->srv->store, name, canon);
}

/*
 * Maps a recipient to a user and mailbox: "user@domain" or bare "user"
 * to the user's INBOX; "user+folder@domain" to that folder when it
 * exists, else INBOX.  A user whose own name holds the '+' wins.  An
 * unknown user is made with catch-all (and in dev mode).  Returns 0, or
 * -1 after replying.
 */
static int
resolve_rcpt(struct session *s, struct lmtp_session *ls,
    const char *address, struct lmtp_rcpt *r)
{
	struct store		*st = s->srv->store;
	struct store_mailbox	 mb;
	char			 local[LMTP_MAX_ADDRESS + 1], *at, *plus;
	const char		*domain = "";
	enum store_err		 err;

	snprintf(local, sizeof(local), "%s", address);
	if ((at = strrchr(local, '@')) != NULL) {
		*at = '\0';
		domain = at + 1;
	}
	if (!domain_accepted(s->srv->settings, domain)) {
		session_printf(s, "%s <%s> %s\r\n", ls->d->foreign_code,
		    address, ls->d->foreign_text);
		return -1;
	}
	switch (s->srv->dev ? rcpt_fault(local) : FAULT_NONE) {
	case FAULT_TEMP:
		session_printf(s, "451 4.3.0 <%s> Temporary failure, as "
		    "+tempfail asks (dev mode)\r\n", address);
		return -1;
	case FAULT_PERM:
		session_printf(s, "550 5.1.1 <%s> Permanent failure, as "
		    "+permfail asks (dev mode)\r\n", address);
		return -1;
	case FAULT_SLOW:
		r->slow = 1;
		break;
	case FAULT_NONE:
		break;
	}
	r->mailbox = NULL;
	plus = NULL;
	err = store_user_find(st, local, r->user);
	if (err == STORE_NOTFOUND && (plus = strchr(local, '+')) != NULL) {
		*plus = '\0';
		err = store_user_find(st, local, r->user);
	}
	if (err == STORE_NOTFOUND &&
	    (s->srv->settings->catch_all || s->srv->dev))
		err = catch_all_user(s, local, r->user);
	if (err == STORE_INVALID) {
		session_printf(s, "550 5.1.3 <%s> No such user, and not a "
		    "valid user name for catch-all\r\n", address);
		return -1;
	}
	if (err == STORE_OK && plus != NULL && store_mailbox_get(st, r->user,
	    plus + 1, &mb) == STORE_OK)
		r->mailbox = strdup(mb.name);
	if (err == STORE_NOTFOUND) {
		session_printf(s, "550 5.1.1 <%s> User unknown\r\n", address);
		return -1;
	}
	if (err != STORE_OK) {
		session_printf(s, "451 4.3.0 <%s> Temporary lookup failure"
		    "\r\n", address);
		return -1;
	}
	if (r->mailbox == NULL)
		r->mailbox = strdup("INBOX");
	if ((r->address = strdup(address)) == NULL || r->mailbox == NULL) {
		free(r->address);
		free(r->mailbox);
		session_printf(s, "451 4.3.0 Out of memory\r\n");
		return -1;
	}
	return 0;
}

static int
check_rcpt(struct session *s, struct lmtp_session *ls, char *args,
    struct lmtp_path *path)
{
	if (ls->state != LMTP_MAIL && ls->state != LMTP_RCPT) {
		lmtp_error(s, ls, "503 5.5.1 Send MAIL FROM first");
		return -1;
	}
	if (parse_path(s, ls, args, "TO:", "5.1.3", path) < 0)
		return -1;
	if (*path->address == '\0') {
		lmtp_error(s, ls, "501 5.1.3 Empty recipient");
		return -1;
	}
	if (*path->params != '\0') {
		lmtp_error(s, ls, "555 5.5.4 Unsupported RCPT TO parameter");
		return -1;
	}
	if (ls->tx->nrcpts >= LMTP_MAX_RECIPIENTS) {
		session_printf(s, "452 4.5.3 Too many recipients\r\n");
		return -1;
	}
	return 0;
}

static void
proceed_rcpt(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	struct lmtp_tx		*tx = ls->tx;
	struct lmtp_rcpt	 r, *grown;

	memset(&r, 0, sizeof(r));
	if (resolve_rcpt(s, ls, path->address, &r) < 0)
		return;
	grown = reallocarray(tx->rcpts, tx->nrcpts + 1, sizeof(*tx->rcpts));
	if (grown == NULL) {
		free(r.address);
		free(r.mailbox);
		session_printf(s, "451 4.3.0 Out of memory\r\n");
		return;
	}
	tx->rcpts = grown;
	tx->rcpts[tx->nrcpts++] = r;
	ls->state = LMTP_RCPT;
	session_printf(s, "250 2.1.5 <%s> Recipient OK\r\n", r.address);
}

static int
check_data(struct session *s, struct lmtp_session *ls, char *args,
    struct lmtp_path *path)
{
	(void)path;
	if (*args != '\0') {
		lmtp_error(s, ls, "501 5.5.4 Syntax: DATA takes no "
		    "arguments");
		return -1;
	}
	if (ls->state != LMTP_RCPT) {
		lmtp_error(s, ls, ls->state == LMTP_MAIL ?
		    "503 5.5.1 No valid recipients" :
		    "503 5.5.1 Send MAIL FROM and RCPT TO first");
		return -1;
	}
	return 0;
}

/*
 * SMTP's trace header (RFC 5321 4.4), with the RFC 3848 protocol name:
 * "Received: from HELO (PEER) by NAME (mailrepd) with ESMTPA; DATE".
 */
static void
add_received(struct session *s, struct lmtp_session *ls)
{
	char		 line[SMTP_MAX_HELO + NET_PEER_LEN + 512], date[64];
	struct tm	 tm;
	time_t		 now = s->srv->now;
	int		 n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	n = snprintf(line, sizeof(line), "Received: from %s (%s) by %.200s "
	    "(mailrepd) with %s; %s\r\n", ls->helo ? ls->helo : "unknown",
	    s->peer, s->srv->settings->name,
	    !ls->esmtp ? "SMTP" : ls->authed ? "ESMTPA" : "ESMTP", date);
	if (n > 0 && (size_t)n < sizeof(line))
		spool_add_bytes(ls->tx->spool, line, n);
}

/*
 * Starts the message: the spool, then the headers this server adds.
 * Return-Path always; Received: for SMTP; Delivered-To only with one
 * recipient, because the bytes (and so the GUID) are shared by every
 * recipient.
 */
static void
proceed_data(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	struct lmtp_tx	*tx = ls->tx;
	char		 hdr[LMTP_MAX_ADDRESS + 32];
	int		 n, full;

	(void)path;
	/* On a full disk the room left is for deletes, not for spooling. */
	full = store_room_tight(s->srv->store);
	if (full ||
	    (tx->spool = spool_new(s->srv->settings->data_dir)) == NULL) {
		if (full || errno == ENOSPC)
			session_printf(s, "452 4.3.1 Mail system full, try "
			    "again later\r\n");
		else
			session_printf(s, "451 4.3.0 Temporary storage "
			    "failure\r\n");
		return;
	}
	n = snprintf(hdr, sizeof(hdr), "Return-Path: <%s>\r\n", tx->sender);
	spool_add_bytes(tx->spool, hdr, n);
	if (ls->d->trace)
		add_received(s, ls);
	if (tx->nrcpts == 1) {
		n = snprintf(hdr, sizeof(hdr), "Delivered-To: %s\r\n",
		    tx->rcpts[0].address);
		spool_add_bytes(tx->spool, hdr, n);
	}
	tx->prev_crlf = 1;
	ls->state = LMTP_DATA;
	session_printf(s, "354 Start mail input; end with <CRLF>.<CRLF>\r\n");
}

static void
proceed_rset(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	(void)path;
	lmtp_tx_free(ls->tx);
	ls->tx = NULL;
	if (ls->state != LMTP_HELO)
		ls->state = LMTP_IDLE;
	session_printf(s, "250 2.0.0 OK\r\n");
}

static void
proceed_noop(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	(void)ls;
	(void)path;
	session_printf(s, "250 2.0.0 OK\r\n");
}

static void
proceed_vrfy(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	(void)ls;
	(void)path;
	session_printf(s, "252 2.5.2 Cannot VRFY user, but will accept "
	    "message and attempt delivery\r\n");
}

/* STARTTLS (RFC 3207), outside a transaction. */
static int
check_starttls(struct session *s, struct lmtp_session *ls, char *args,
    struct lmtp_path *path)
{
	(void)path;
	if (*args != '\0') {
		lmtp_error(s, ls, "501 5.5.4 Syntax: STARTTLS");
		return -1;
	}
	if (session_secure(s)) {
		lmtp_error(s, ls, "503 5.5.1 TLS is already active");
		return -1;
	}
	if (ls->state != LMTP_HELO && ls->state != LMTP_IDLE) {
		lmtp_error(s, ls, "503 5.5.1 Bad sequence of commands");
		return -1;
	}
	if (!session_can_starttls(s)) {
		session_printf(s, "454 4.7.0 TLS not available now\r\n");
		return -1;
	}
	return 0;
}

/*
 * The handshake follows the 220; the session starts over (RFC 3207
 * 4.2: the client greets again), and what was pipelined after STARTTLS
 * is dropped (the command line itself, line_used bytes, is consumed by
 * the caller).
 */
static void
proceed_starttls(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	(void)path;
	session_printf(s, "220 2.0.0 Ready to start TLS\r\n");
	lmtp_tx_free(ls->tx);
	ls->tx = NULL;
	ls->state = LMTP_HELO;
	ls->authed = 0;
	(void)session_start_tls(s, ls->line_used);
}

static void
proceed_quit(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	(void)ls;
	(void)path;
	session_printf(s, "221 2.0.0 Bye\r\n");
	session_close(s);
}

/*
 * SMTP AUTH (RFC 4954), PLAIN or LOGIN, offered in dev mode to loopback
 * clients only: any user name and password are accepted, because an
 * application's mail library often insists on logging in.  It grants
 * nothing: delivery stays local either way.
 */
static int
check_auth(struct session *s, struct lmtp_session *ls, char *args,
    struct lmtp_path *path)
{
	char	*mech;

	if (!auth_offered(s, ls)) {
		lmtp_error(s, ls, "502 5.5.1 AUTH is not offered here");
		return -1;
	}
	if (ls->state == LMTP_HELO || !ls->esmtp) {
		lmtp_error(s, ls, "503 5.5.1 Send EHLO first");
		return -1;
	}
	if (ls->authed) {
		lmtp_error(s, ls, "503 5.5.1 Already authenticated");
		return -1;
	}
	if (ls->state != LMTP_IDLE) {
		lmtp_error(s, ls, "503 5.5.1 AUTH is not allowed during a "
		    "mail transaction");
		return -1;
	}
	while (*args == ' ')
		args++;
	mech = args;
	args += strcspn(args, " ");
	if (*args != '\0')
		*args++ = '\0';
	while (*args == ' ')
		args++;
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0) {
		lmtp_error(s, ls, "504 5.5.4 Unrecognized authentication "
		    "mechanism");
		return -1;
	}
	path->address = mech;
	path->params = args;	/* the initial response, or "" */
	return 0;
}

/*
 * One AUTH response (base64, or "*" to cancel).  Returns 0, or -1 after
 * replying.  The decoded bytes are checked for form and then dropped.
 */
static int
auth_response(struct session *s, struct lmtp_session *ls, const char *b64,
    int plain)
{
	uint8_t	 raw[SMTP_MAX_AUTH + 1];
	size_t	 n, nuls = 0, i;

	if (strcmp(b64, "*") == 0) {
		ls->auth_step = AUTH_NONE;
		lmtp_error(s, ls, "501 5.0.0 Authentication cancelled");
		return -1;
	}
	if (crypto_base64_decode(b64, strlen(b64), raw, sizeof(raw) - 1,
	    &n) < 0) {
		ls->auth_step = AUTH_NONE;
		lmtp_error(s, ls, "501 5.5.2 Cannot decode the response");
		return -1;
	}
	for (i = 0; i < n; i++)
		nuls += raw[i] == '\0';
	explicit_bzero(raw, sizeof(raw));
	if (plain && nuls != 2) {
		ls->auth_step = AUTH_NONE;
		lmtp_error(s, ls, "501 5.5.2 Malformed PLAIN response");
		return -1;
	}
	return 0;
}

/* Where AUTH stands after a good response: done, or the next prompt. */
static void
auth_next(struct session *s, struct lmtp_session *ls)
{
	if (ls->auth_step == AUTH_LOGIN_USER) {
		ls->auth_step = AUTH_LOGIN_PASS;
		session_printf(s, "334 UGFzc3dvcmQ6\r\n");	/* Password: */
		return;
	}
	ls->auth_step = AUTH_NONE;
	ls->authed = 1;
	log_info("smtp.auth", "session=%llu peer=%s mode=dev-any",
	    (unsigned long long)s->id, s->peer);
	session_printf(s, "235 2.7.0 Authentication successful\r\n");
}

static void
proceed_auth(struct session *s, struct lmtp_session *ls,
    struct lmtp_path *path)
{
	int	 plain = strcasecmp(path->address, "PLAIN") == 0;

	ls->auth_step = plain ? AUTH_PLAIN : AUTH_LOGIN_USER;
	if (*path->params == '\0') {
		session_printf(s, plain ? "334 \r\n" :
		    "334 VXNlcm5hbWU6\r\n");		/* Username: */
		return;
	}
	if (auth_response(s, ls, strcmp(path->params, "=") == 0 ? "" :
	    path->params, plain) == 0)
		auth_next(s, ls);
}

/* The line after a 334 prompt. */
static void
auth_line(struct session *s, struct lmtp_session *ls, const char *line)
{
	if (auth_response(s, ls, line, ls->auth_step == AUTH_PLAIN) == 0)
		auth_next(s, ls);
}

static int
check_any(struct session *s, struct lmtp_session *ls, char *args,
    struct lmtp_path *path)
{
	(void)s;
	(void)ls;
	(void)args;
	(void)path;
	return 0;
}

#define IN_BOTH		(IN_LMTP | IN_SMTP)

/*
 * A verb outside its dialect gets the dialect's other_hello reply: HELO
 * and EHLO are SMTP's, and RFC 2033 says an LMTP server refuses them;
 * LHLO is LMTP's.
 */
static const struct lmtp_command lmtp_commands[] = {
	{ "LHLO", IN_LMTP, check_hello, proceed_ehlo },
	{ "EHLO", IN_SMTP, check_hello, proceed_ehlo },
	{ "HELO", IN_SMTP, check_hello, proceed_helo },
	{ "AUTH", IN_BOTH, check_auth, proceed_auth },
	{ "MAIL", IN_BOTH, check_mail, proceed_mail },
	{ "RCPT", IN_BOTH, check_rcpt, proceed_rcpt },
	{ "DATA", IN_BOTH, check_data, proceed_data },
	{ "RSET", IN_BOTH, check_any, proceed_rset },
	{ "NOOP", IN_BOTH, check_any, proceed_noop },
	{ "VRFY", IN_BOTH, check_any, proceed_vrfy },
	{ "QUIT", IN_BOTH, check_any, proceed_quit },
	{ "STARTTLS", IN_BOTH, check_starttls, proceed_starttls },
};

/* Runs one command line. */
static void
lmtp_command(struct session *s, struct lmtp_session *ls, char *line)
{
	const struct lmtp_command	*c;
	struct lmtp_path		 path = { NULL, NULL };
	size_t				 vlen = strcspn(line, " "), i;

	for (i = 0; i < sizeof(lmtp_commands) / sizeof(*lmtp_commands); i++) {
		c = &lmtp_commands[i];
		if (vlen != strlen(c->verb) ||
		    strncasecmp(line, c->verb, vlen) != 0)
			continue;
		if (!(c->in & ls->d->mask))
			lmtp_error(s, ls, ls->d->other_hello);
		else if (c->check(s, ls, line + vlen, &path) == 0)
			c->proceed(s, ls, &path);
		return;
	}
	lmtp_error(s, ls, "500 5.5.2 Unknown command");
}

/*
 * The reply to one recipient after the commit: the one place a store
 * error becomes an LMTP reply.  A full disk is 452 4.3.1, "mail system
 * full" (RFC 3463), so that the client keeps the message and retries.
 */
static void
reply_rcpt(struct session *s, const struct lmtp_rcpt *r,
    const struct store_target *t)
{
	if (t->result == STORE_IO || t->result == STORE_BUSY)
		session_printf(s, "451 4.3.0 <%s> Temporary storage failure"
		    "\r\n", r->address);
	else if (t->result == STORE_FULL)
		session_printf(s, "452 4.3.1 <%s> Mail system full, try again "
		    "later\r\n", r->address);
	else if (t->result == STORE_NOTFOUND)
		session_printf(s, "450 4.2.0 <%s> Mailbox %s no longer exists"
		    "\r\n", r->address, r->mailbox);
	else if (t->result == STORE_LIMIT)
		session_printf(s, "552 5.2.2 <%s> Mailbox %s is full\r\n",
		    r->address, r->mailbox);
	else if (t->result == STORE_QUOTA)
		session_printf(s, "%s <%s> Mailbox quota exceeded\r\n",
		    s->srv->settings->quota_lmtp_temporary ? "452 4.2.2" :
		    "552 5.2.2", r->address);
	else if (t->result != STORE_OK)
		session_printf(s, "451 4.3.0 <%s> %s\r\n", r->address,
		    store_strerror(t->result));
	else
		session_printf(s, "250 2.0.0 <%s> Saved in %s as UID %u\r\n",
		    r->address, r->mailbox, t->uid);
}

/*
 * Answers the first n recipients with the same error from DATA: every
 * one in LMTP, one reply (naming the first) in SMTP.
 */
static void
reply_data_error(struct session *s, struct lmtp_tx *tx, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		switch (tx->error) {
		case DATA_TOO_BIG:
			session_printf(s, "552 5.3.4 <%s> Message size exceeds "
			    "fixed limit of %ld bytes\r\n",
			    tx->rcpts[i].address,
			    s->srv->settings->max_message_size);
			break;
		case DATA_LINE_TOO_LONG:
			session_printf(s, "554 5.6.0 <%s> Message has a line "
			    "longer than %d bytes\r\n", tx->rcpts[i].address,
			    LMTP_MAX_DATA_LINE);
			break;
		case DATA_SPOOL:
			if (tx->spool_errno == ENOSPC)
				session_printf(s, "452 4.3.1 <%s> Mail system "
				    "full, try again later\r\n",
				    tx->rcpts[i].address);
			else
				session_printf(s, "451 4.3.0 <%s> Temporary "
				    "storage failure\r\n",
				    tx->rcpts[i].address);
			break;
		case DATA_REPLICA:
			session_printf(s, "451 4.3.0 <%s> This node became a "
			    "read-only replica; deliver to its master\r\n",
			    tx->rcpts[i].address);
			break;
		case DATA_OK:
			assert(0);
		}
	}
}

/*
 * The final dot: stores the message for every recipient, in steps
 * (lmtp_store_step), each answered after its group commit.
 */
static void
lmtp_data_end(struct session *s, struct lmtp_session *ls)
{
	struct lmtp_tx		*tx = ls->tx;
	size_t			 i;

	/*
	 * `mailrepd demote` since MAIL: this node's writes no longer reach
	 * anyone's log that matters, so a 250 now would be a lie.
	 */
	if (tx->error == DATA_OK && sync_is_replica())
		tx->error = DATA_REPLICA;
	if (tx->error == DATA_OK && spool_finish(tx->spool, &tx->blob) < 0) {
		tx->error = DATA_SPOOL;
		tx->spool_errno = errno;
		log_warn("lmtp.spool", "session=%llu msg=%s",
		    (unsigned long long)s->id, log_quote(strerror(errno)));
	}
	if (tx->error == DATA_OK &&
	    (tx->targets = calloc(tx->nrcpts, sizeof(*tx->targets))) == NULL) {
		tx->error = DATA_SPOOL;
		tx->spool_errno = ENOMEM;
	}
	if (tx->error != DATA_OK) {
		reply_data_error(s, tx, ls->d->reply_per_rcpt ? tx->nrcpts : 1);
		lmtp_tx_free(tx);
		ls->tx = NULL;
		ls->state = LMTP_IDLE;
		return;
	}
	for (i = 0; i < tx->nrcpts; i++) {
		tx->targets[i].user = tx->rcpts[i].user;
		tx->targets[i].mailbox = tx->rcpts[i].mailbox;
		tx->targets[i].internaldate = s->srv->now;
	}
	lmtp_store_step(s, ls);
}

/*
 * Stores the message for the next LMTP_STORE_STEP recipients in the
 * open transaction and waits for the group commit, after which they are
 * answered (lmtp_committed) and the next step runs in a later loop
 * iteration: a thousand recipients never hold the loop at once.  Each
 * step finds the message stored by the first one (by its GUID).  A big
 * message's bytes go in first, in steps of their own that wait for no
 * commit (store_blob_stage()); nobody is answered before the commit
 * that adds the message.
 */
static void
lmtp_store_step(struct session *s, struct lmtp_session *ls)
{
	struct lmtp_tx		*tx = ls->tx;
	struct store_target	*t = tx->targets + tx->stored;
	enum store_err		 err;
	size_t			 i, n = tx->nrcpts - tx->stored;
	int			 stored = 0, whole;

	if (n > LMTP_STORE_STEP)
		n = LMTP_STORE_STEP;
	/* A big message's bytes first, a step an iteration. */
	err = store_blob_stage(s->srv->store, &tx->blob, &whole);
	if (err == STORE_OK && !whole) {
		ls->state = LMTP_STORE;
		s->resume = 1;
		return;
	}
	if (err == STORE_OK)
		err = store_deliver(s->srv->store, &tx->blob, t, n);
	/* An error that stopped every target is every target's answer. */
	if (err != STORE_OK)
		for (i = 0; i < n; i++)
			if (t[i].result == STORE_OK)
				t[i].result = err;
	for (i = 0; i < n; i++)
		stored |= t[i].result == STORE_OK;
	tx->stored += n;
	ls->state = LMTP_COMMIT;
	/* A 250 waits for a replica too (--repl-sync-timeout). */
	if (stored)
		session_wait_replicated(s);
	else
		session_wait_commit(s);
}

/*
 * Adds one data line to the spool: dot-unstuffed, re-ended with CRLF
 * (a bare LF is taken as a line end, never as the end of data).
 */
static void
lmtp_data_line(struct session *s, struct lmtp_session *ls, const char *line,
    size_t len)
{
	struct lmtp_tx	*tx = ls->tx;

	if (line[0] == '.' && len > 1)
		line++, len--;
	/*
	 * SIZE is the client's budget: the headers this server adds do not
	 * count against it.
	 */
	tx->data_size += len + 2;
	if (tx->error != DATA_OK)
		return;
	if (tx->data_size > (uint64_t)s->srv->settings->max_message_size) {
		tx->error = DATA_TOO_BIG;
		return;
	}
	spool_add_bytes(tx->spool, line, len);
	spool_add_bytes(tx->spool, "\r\n", 2);
}

/* Consumes DATA lines until the buffer runs dry or the data ends. */
static void
lmtp_data_input(struct session *s, struct lmtp_session *ls)
{
	struct lmtp_tx		*tx = ls->tx;
	enum line_status	 st;
	char			*line;
	size_t			 len, used;
	int			 crlf;

	while (ls->state == LMTP_DATA) {
		st = session_getline(s, LMTP_MAX_DATA_LINE, &line, &len, &used,
		    &crlf);
		if (st == LINE_MORE)
			return;
		if (st == LINE_TOO_LONG) {
			/*
			 * No line end in the first LMTP_MAX_DATA_LINE bytes:
			 * drop just those, so that a line end (even the
			 * final dot) past them is still seen.
			 */
			if (tx->error == DATA_OK)
				tx->error = DATA_LINE_TOO_LONG;
			tx->skipped_cr =
			    buf_ptr(&s->in)[LMTP_MAX_DATA_LINE - 1] == '\r';
			buf_consume(&s->in, LMTP_MAX_DATA_LINE);
			tx->skipping = 1;
			tx->prev_crlf = 0;
			continue;
		}
		if (tx->skipping) {
			/* The line's CR may have gone with the dropped part. */
			crlf = crlf || (len == 0 && tx->skipped_cr);
			tx->skipping = 0;
		} else if (crlf && tx->prev_crlf && len == 1 && line[0] == '.') {
			if (tx->error == DATA_OK && !session_store_ready(s)) {
				line[len] = '\r';	/* read again later */
				return;
			}
			buf_consume(&s->in, used);
			lmtp_data_end(s, ls);
			return;
		} else
			lmtp_data_line(s, ls, line, len);
		tx->prev_crlf = crlf;
		buf_consume(&s->in, used);
	}
}

/*
 * Runs the complete commands and data lines already buffered, at most
 * LMTP_COMMANDS_STEP commands (a thousand pipelined RCPTs each look up a
 * user) before the rest waits for the next loop iteration.
 */
static void
lmtp_input(struct session *s)
{
	struct lmtp_session	*ls = s->proto;
	enum line_status	 st;
	char			*line;
	size_t			 len, used, ran = 0;
	int			 crlf;

	s->resume = 0;
	while (s->io == SESSION_OPEN) {
		switch (ls->state) {
		case LMTP_DATA:
			lmtp_data_input(s, ls);
			if (ls->state == LMTP_DATA)
				return;
			continue;
		case LMTP_STORE:
			if (session_store_ready(s))
				lmtp_store_step(s, ls);
			return;
		case LMTP_COMMIT:
		case LMTP_HELD:
			return;
		case LMTP_HELO:
		case LMTP_IDLE:
		case LMTP_MAIL:
		case LMTP_RCPT:
			break;
		}
		if (ran++ == LMTP_COMMANDS_STEP) {
			s->resume = 1;	/* even after the client's FIN */
			return;
		}
		st = session_getline(s, LMTP_MAX_LINE, &line, &len, &used,
		    &crlf);
		if (st == LINE_MORE)
			return;
		if (st == LINE_TOO_LONG) {
			buf_consume(&s->in, LMTP_MAX_LINE);
			if (!ls->skipping)
				lmtp_error(s, ls, "500 5.5.2 Line too long");
			ls->skipping = 1;
			continue;
		}
		if (ls->skipping)
			ls->skipping = 0;
		else if (ls->auth_step != AUTH_NONE)
			auth_line(s, ls, line);
		else {
			ls->line_used = used;
			lmtp_command(s, ls, line);
		}
		buf_consume(&s->in, used);
	}
}

/*
 * SMTP's one reply after DATA: 250 when every recipient has the message,
 * else the first failure (a 4xx, so the client retries; the recipients
 * that got it then get it twice, which beats losing it).
 */
static void
reply_smtp(struct session *s, const struct lmtp_tx *tx)
{
	size_t	 i;

	for (i = 0; i < tx->nrcpts; i++)
		if (tx->targets[i].result != STORE_OK) {
			reply_rcpt(s, &tx->rcpts[i], &tx->targets[i]);
			return;
		}
	if (tx->nrcpts == 1)
		reply_rcpt(s, &tx->rcpts[0], &tx->targets[0]);
	else
		session_printf(s, "250 2.0.0 Saved for %zu recipients\r\n",
		    tx->nrcpts);
}

/*
 * The replies to the recipients of the last step, once the group commit
 * said how it went (SMTP's one reply after the last step); then the
 * next step, in a later loop iteration, or the transaction's end.
 */
static void
lmtp_reply_tx(struct session *s, struct lmtp_session *ls, int ok)
{
	struct lmtp_tx		*tx = ls->tx;
	size_t			 i;

	if (!ls->d->reply_per_rcpt && tx->stored == tx->nrcpts)
		reply_smtp(s, tx);
	for (i = tx->replied; i < tx->stored; i++) {
		if (ls->d->reply_per_rcpt)
			reply_rcpt(s, &tx->rcpts[i], &tx->targets[i]);
		s->srv->deliveries[ok ? tx->targets[i].result : STORE_IO + 1]++;
		log_info(ls->d == &dialect_lmtp ? "lmtp.deliver" :
		    "smtp.deliver", "session=%llu from=%s to=%s user=%s "
		    "mailbox=%s uid=%u size=%llu status=%s",
		    (unsigned long long)s->id, log_quote(tx->sender),
		    log_quote(tx->rcpts[i].address), tx->rcpts[i].user,
		    log_quote(tx->rcpts[i].mailbox), tx->targets[i].uid,
		    (unsigned long long)spool_size(tx->spool),
		    ok ? store_strerror(tx->targets[i].result) : "uncommitted");
	}
	tx->replied = tx->stored;
	if (tx->stored < tx->nrcpts) {
		ls->state = LMTP_STORE;
		s->resume = 1;		/* the next step, next iteration */
		return;
	}
	s->resume = 0;
	lmtp_tx_free(tx);
	ls->tx = NULL;
	ls->state = LMTP_IDLE;
}

/*
 * A step's group commit is done.  A step with a dev +slow recipient
 * holds its replies for DEV_SLOW_SECONDS (lmtp_wake sends them); the
 * message is stored already, as with a slow real server.
 */
static void
lmtp_committed(struct session *s, int ok)
{
	struct lmtp_session	*ls = s->proto;
	struct lmtp_tx		*tx = ls->tx;
	size_t			 i;

	assert(ls->state == LMTP_COMMIT && tx != NULL);
	/* A failed commit undid the step's deliveries: each gets the cause. */
	for (i = tx->replied; i < tx->stored && !ok; i++)
		if (tx->targets[i].result == STORE_OK)
			tx->targets[i].result = s->srv->commit_err;
	for (i = tx->replied; i < tx->stored; i++)
		if (tx->rcpts[i].slow) {
			ls->state = LMTP_HELD;
			ls->held_ok = ok;
			/* Milliseconds: whole seconds made it 1 to 2 s late. */
			ls->hold_until = s->srv->now_ms +
			    DEV_SLOW_SECONDS * 1000;
			server_timer(s->srv, ls->hold_until);
			s->paused = 1;	/* no busy loop on pipelined input */
			return;
		}
	lmtp_reply_tx(s, ls, ok);
}

/*
 * Once a second, after each commit and at a held reply's timer: sends
 * held replies when due.
 */
static void
lmtp_wake(struct session *s)
{
	struct lmtp_session	*ls = s->proto;

	if (ls != NULL && ls->state == LMTP_HELD &&
	    s->srv->now_ms >= ls->hold_until) {
		s->paused = 0;
		lmtp_reply_tx(s, ls, ls->held_ok);
	}
}

static void
lmtp_tx_free(struct lmtp_tx *tx)
{
	size_t	 i;

	if (tx == NULL)
		return;
	for (i = 0; i < tx->nrcpts; i++) {
		free(tx->rcpts[i].address);
		free(tx->rcpts[i].mailbox);
	}
	free(tx->rcpts);
	free(tx->targets);
	free(tx->sender);
	store_blob_unstage(&tx->blob);	/* before the bytes it reads */
	spool_free(tx->spool);
	free(tx);
}

static void
session_begin(struct session *s, const struct lmtp_dialect *d)
{
	struct lmtp_session	*ls;

	if ((ls = calloc(1, sizeof(*ls))) == NULL) {
		session_printf(s, "421 4.3.0 Out of memory\r\n");
		session_close(s);
		return;
	}
	ls->d = d;
	ls->state = LMTP_HELO;
	s->proto = ls;
	session_printf(s, "220 %s %s mailrepd ready\r\n",
	    s->srv->settings->name, d->banner);
}

static void
lmtp_start(struct session *s)
{
	session_begin(s, &dialect_lmtp);
}

static void
smtp_start(struct session *s)
{
	session_begin(s, &dialect_smtp);
}

static void
lmtp_timeout(struct session *s)
{
	session_printf(s, "421 4.4.2 Idle timeout, closing connection\r\n");
	session_close(s);
}

/*
 * Drain: between transactions the client hears 421 now; a transaction
 * (MAIL to the replies after DATA) is finished first.
 */
static int
lmtp_drain(struct session *s)
{
	struct lmtp_session	*ls = s->proto;

	if (ls != NULL && ls->state != LMTP_HELO && ls->state != LMTP_IDLE)
		return 0;
	session_printf(s, "421 4.3.2 %s shutting down, try again later\r\n",
	    s->srv->settings->name);
	session_close(s);
	return 1;
}

static void
lmtp_free(struct session *s)
{
	struct lmtp_session	*ls = s->proto;

	if (ls == NULL)
		return;
	lmtp_tx_free(ls->tx);
	free(ls->helo);
	free(ls);
	s->proto = NULL;
}

/*
 * Whether the client has said LHLO, EHLO or HELO, also before STARTTLS
 * (proto_ops.established).
 */
static int
lmtp_established(const struct session *s)
{
	const struct lmtp_session	*ls = s->proto;

	return ls != NULL && (ls->state != LMTP_HELO || ls->helo != NULL);
}

const struct proto_ops lmtp_proto = {
	.name = "lmtp",
	.pool = POOL_MAIL,
	.established = lmtp_established,
	.in_limit = LMTP_MAX_DATA_LINE + IO_CHUNK,
	.out_limit = 1024 * 1024,
	.busy_reply = "421 4.3.2 Too many connections, try again later\r\n",
	.start = lmtp_start,
	.input = lmtp_input,
	.committed = lmtp_committed,
	.timeout = lmtp_timeout,
	.free = lmtp_free,
	.wake = lmtp_wake,
	.drain = lmtp_drain,
};

const struct proto_ops smtp_proto = {
	.name = "smtp",
	.pool = POOL_MAIL,
	.established = lmtp_established,
	.in_limit = LMTP_MAX_DATA_LINE + IO_CHUNK,
	.out_limit = 1024 * 1024,
	.busy_reply = "421 4.3.2 Too many connections, try again later\r\n",
	.start = smtp_start,
	.input = lmtp_input,
	.committed = lmtp_committed,
	.timeout = lmtp_timeout,
	.free = lmtp_free,
	.wake = lmtp_wake,
	.drain = lmtp_drain,
};
