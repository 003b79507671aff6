/*
 * imap.c — the IMAP session: framing, dispatch, authentication, IDLE and
 * APPEND.  Mailbox commands live in imap_mailbox.c, message commands in
 * imap_message.c, FETCH in imap_fetch.c and SEARCH in imap_search.c.
 *
 * What the session reads next depends on its input mode; one switch in
 * imap_input() picks it:
 *
 *   COMMAND  framing the next command (its literals included)
 *   AUTH     the client's line after "+ " in AUTHENTICATE
 *   IDLE     waiting for "DONE"
 *   APPEND   the message literal of APPEND, streamed into a spool
 *   APPEND_END  the end of the APPEND line after the literal
 *   DISCARD  dropping a refused non-synchronizing literal, then its line
 *   SKIP_LINE  dropping the rest of an over-long command line
 *   PASSWORD  nothing: the worker checks a password (auth.h)
 *   HELD     nothing: a reply waits for the group commit or a delay
 *
 * A command's tagged reply is recorded by imap_reply() and sent by
 * command_reply(), after the group commit when the store has a change
 * pending: no client hears OK before its change is on disk.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "imap.h"
#include "imap_session.h"
#include "log.h"
#include "penalty.h"
#include "settings.h"
#include "spool.h"
#include "store.h"
#include "sync.h"
#include "tls.h"

#define CAPS_BASE	"IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE " \
			"UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE " \
			"LIST-EXTENDED LIST-STATUS CONDSTORE QRESYNC ESEARCH " \
			"STATUS=SIZE WITHIN SORT SORT=DISPLAY " \
			"THREAD=ORDEREDSUBJECT THREAD=REFERENCES"

enum input_mode {
	IN_COMMAND,
	IN_AUTH,
	IN_IDLE,
	IN_APPEND,
	IN_APPEND_END,
	IN_DISCARD,
	IN_SKIP_LINE,
	IN_PASSWORD,
	IN_HELD,
};

/* An APPEND whose message is arriving. */
struct append {
	char		 mailbox[MAILBOX_MAX_NAME + 1];
	uint32_t	 flags;
	char		 keywords[STORE_MAX_KEYWORDS];
	int64_t		 internaldate;
	uint64_t	 left;		/* literal bytes still to come */
	struct spool	*spool;
};

struct imap_private {
	enum input_mode	 mode;
	struct imap_frame frame;
	struct append	*append;
	uint64_t	 discard;	/* literal bytes still to drop */
	int		 discard_line;	/* then drop up to the line end */
	uint64_t	 skipped;	/* bytes of an over-long line dropped */
	int		 overlong;	/* a one-line mode's line is past
					   IMAP_MAX_LINE: dropping it */
	int64_t		 head0;		/* log head when the command began */
	int		 changed;	/* the command changed the store */
	int		 writes;	/* it may write: its steps wait for
					   the write lock (command_writes) */
	int64_t		 hold_until;	/* now_ms of a delayed reply, or 0 */
	int		 auth_failures;
	/* IN_PASSWORD: who logs in (the stored name), whether they exist,
	   and since when (now_ms): the refusal's delay counts from then */
	char		 login_user[USER_MAX_NAME + 1];
	int		 login_known;
	int64_t		 login_began;
	/* the digest of the stored password hash being checked: the
	   session binds to it (bind_user), not to what is stored later */
	uint8_t		 login_hash[GUID_LEN];
	int		 bad_commands;
	int		 prelogin_commands;
	int		 after_reply;	/* AFTER_*: once the reply is queued */
	struct store_user_ident ident;	/* the user as logged in */
	uint64_t	 users_gen;	/* store_users_generation() at the
					   last look at ident */
};

/* What a command asks for once its OK is queued (STARTTLS, COMPRESS). */
#define AFTER_NONE	0
#define AFTER_STARTTLS	1
#define AFTER_COMPRESS	2

struct imap_command {
	const char	*name;
	unsigned	 states;	/* bit (1 << enum imap_state) */
	int		 uses_seq;	/* RFC 3501 7.4.1: no EXPUNGE */
	int		 variant;	/* passed to run: UID, EXAMINE, LSUB */
	void		(*run)(struct session *, const struct imap_arg *,
			    size_t, int);
};

#define ST_NOTAUTH	(1u << IMAP_NOTAUTH)
#define ST_AUTH		((1u << IMAP_AUTH) | (1u << IMAP_SELECTED))
#define ST_SELECTED	(1u << IMAP_SELECTED)
#define ST_ANY		(ST_NOTAUTH | ST_AUTH)

static void	command_finish(struct session *);
static void	hold_reply(struct session *);
static void	command_reply(struct session *, int committed);

/* --- replies and output ------------------------------------------------ */

void
imap_reply(struct session *s, const char *fmt, ...)
{
	struct imap_session	*ims = imap_of(s);
	va_list			 ap;

	if (ims->reply != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&ims->reply, fmt, ap) < 0)
		ims->reply = NULL;
	va_end(ap);
}

void
imap_start_steps(struct session *s, imap_step_fn step, void (*step_free)(void *),
    void *arg)
{
	struct imap_session	*ims = imap_of(s);

	assert(ims->step == NULL);
	ims->step = step;
	ims->step_free = step_free;
	ims->step_arg = arg;
	s->resume = 1;
}

/* The monotonic clock in microseconds, for the budget of a step. */
static int64_t
step_clock_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
imap_step_begin(struct imap_step_budget *b)
{
	b->start_us = step_clock_us();
	b->done = 0;
}

int
imap_step_time_left(const struct imap_step_budget *b)
{
	return step_clock_us() - b->start_us < IMAP_STEP_USEC;
}

int
imap_step_more(const struct session *s, const struct imap_step_budget *b)
{
	return b->done < IMAP_STEP_MESSAGES && !session_output_high(s) &&
	    imap_step_time_left(b);
}

int
imap_step_next(struct session *s, struct imap_step_budget *b,
    struct imap_view_walk *w, uint32_t *seq)
{
	if (!imap_step_more(s, b))
		return 0;
	if ((*seq = imap_view_walk_next(w, imap_of(s)->view)) == 0)
		return -1;
	b->done++;
	return 1;
}

void
imap_put_string(struct session *s, const char *p, size_t n)
{
	size_t	 i, from;

	if (!imap_is_quotable(p, n, imap_of(s)->utf8)) {
		session_printf(s, "{%zu}\r\n", n);
		session_write(s, p, n);
		return;
	}
	session_write(s, "\"", 1);
	for (i = from = 0; i < n; i++) {
		if (p[i] != '"' && p[i] != '\\')
			continue;
		session_write(s, p + from, i - from);
		session_write(s, "\\", 1);
		from = i;
	}
	session_write(s, p + from, n - from);
	session_write(s, "\"", 1);
}

/*
 * A mailbox name as an atom when it can be one (as Dovecot writes
 * them: INBOX, Entw&APw-rfe), else quoted or as a literal.
 */
void
imap_put_astring(struct session *s, const char *p)
{
	size_t	 n = strlen(p), i;

	for (i = 0; i < n; i++)
		if (!imap_is_atom_char((unsigned char)p[i]) || p[i] == '%' ||
		    p[i] == '*' || p[i] == ']')
			break;
	if (n > 0 && i == n && strcasecmp(p, "NIL") != 0)
		session_write(s, p, n);
	else
		imap_put_string(s, p, n);
}

void
imap_put_nstring(struct session *s, const char *p)
{
	if (p == NULL)
		session_write(s, "NIL", 3);
	else
		imap_put_string(s, p, strlen(p));
}

static const struct {
	uint32_t	 bit;
	const char	*name;
} system_flags[] = {
	{ FLAG_ANSWERED, "\\Answered" },
	{ FLAG_FLAGGED, "\\Flagged" },
	{ FLAG_DELETED, "\\Deleted" },
	{ FLAG_SEEN, "\\Seen" },
	{ FLAG_DRAFT, "\\Draft" },
};

uint32_t
imap_flag_bit(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(system_flags) / sizeof(*system_flags); i++)
		if (strcasecmp(name, system_flags[i].name) == 0)
			return system_flags[i].bit;
	return 0;
}

/* Writes a space before every flag but the first, then the flag. */
static void
put_flag(struct session *s, const char *name, int *first)
{
	if (!*first)
		session_write(s, " ", 1);
	*first = 0;
	session_write(s, name, strlen(name));
}

void
imap_put_flags(struct session *s, uint32_t flags, const char *keywords,
    int recent)
{
	size_t	 i;
	int	 first = 1;

	session_write(s, "(", 1);
	for (i = 0; i < sizeof(system_flags) / sizeof(*system_flags); i++)
		if ((flags & system_flags[i].bit) != 0)
			put_flag(s, system_flags[i].name, &first);
	if (keywords != NULL && *keywords != '\0')
		put_flag(s, keywords, &first);
	if (recent)
		put_flag(s, "\\Recent", &first);
	session_write(s, ")", 1);
}

/*
 * The authentication policy: logging in is allowed over TLS, from a
 * loopback or unix client, with --allow-plaintext-auth, or when this
 * server has no TLS to offer.  Otherwise LOGINDISABLED, no AUTH=PLAIN.
 */
static int
login_allowed(const struct session *s)
{
	return session_secure(s) || s->local ||
	    s->srv->settings->allow_plaintext_auth || !tls_available() ||
	    s->tp == NULL;
}

/*
 * The capability list for the session's state: STARTTLS before TLS,
 * LOGINDISABLED or AUTH=PLAIN before login, COMPRESS=DEFLATE after it
 * until it is on.  The result lives in a static buffer until the next
 * call.
 */
static const char *
capabilities(const struct session *s)
{
	static char			 caps[sizeof(CAPS_BASE) + 64];
	const struct imap_session	*ims = s->proto;
	int				 notauth = ims->state == IMAP_NOTAUTH;

	snprintf(caps, sizeof(caps), "%s%s%s%s", CAPS_BASE,
	    notauth && s->tp != NULL && tls_available() &&
	    !session_secure(s) ? " STARTTLS" : "",
	    !notauth ? "" : login_allowed(s) ? " AUTH=PLAIN" :
	    " LOGINDISABLED",
	    !notauth && s->tp != NULL && !session_compressed(s) ?
	    " COMPRESS=DEFLATE" : "");
	return caps;
}

/* --- command arguments ------------------------------------------------- */

/*
 * An astring argument (atom or string) as a C string, or NULL when it is
 * neither or holds a NUL.
 */
const char *
imap_arg_astring(const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING)
		return NULL;
	if (strlen(a->str) != a->len)
		return NULL;
	return a->str;
}

/*
 * A mailbox name argument: "INBOX" in any case is INBOX (RFC 3501 5.1),
 * also as the first level of a name ("inbox/sub" is "INBOX/sub"); other
 * names are kept as the client sent them (modified UTF-7).  The prefix
 * is rewritten in the argument itself.
 */
const char *
imap_arg_mailbox(const struct imap_arg *a)
{
	const char	*name = imap_arg_astring(a);

	if (name != NULL && strncasecmp(name, "INBOX", 5) == 0 &&
	    (name[5] == '\0' || name[5] == '/'))
		memcpy(a->str, "INBOX", 5);
	return name;
}

/* --- commands that need no mailbox -------------------------------------- */

static void
cmd_capability(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)args;
	(void)variant;
	if (nargs != 0) {
		imap_reply(s, "BAD CAPABILITY takes no arguments");
		return;
	}
	session_printf(s, "* CAPABILITY %s\r\n", capabilities(s));
	imap_reply(s, "OK CAPABILITY completed");
}

static void
cmd_noop(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)args;
	(void)nargs;
	imap_reply(s, "OK %s completed", variant ? "CHECK" : "NOOP");
}

static void
cmd_logout(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)args;
	(void)nargs;
	(void)variant;
	session_printf(s, "* BYE Logging out\r\n");
	imap_of(s)->state = IMAP_LOGOUT;
	imap_reply(s, "OK LOGOUT completed");
}

/* ID (RFC 2971): the client's list is only logged. */
static void
cmd_id(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)variant;
	if (nargs != 1 || (args[0].type != IMAP_ARG_LIST &&
	    args[0].type != IMAP_ARG_NIL)) {
		imap_reply(s, "BAD ID wants a parameter list or NIL");
		return;
	}
	session_printf(s, "* ID (\"name\" \"mailrepd\" \"version\" \"%s\")\r\n",
	    MAILREPD_VERSION);
	imap_reply(s, "OK ID completed");
}

/*
 * ENABLE (RFC 5161): CONDSTORE, and QRESYNC, which implies it (RFC 7162
 * 3.2.3) and turns EXPUNGE responses into VANISHED.
 */
static void
cmd_enable(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	struct imap_session	*ims = imap_of(s);
	size_t			 i;

	(void)variant;
	if (nargs == 0) {
		imap_reply(s, "BAD ENABLE wants at least one capability");
		return;
	}
	session_printf(s, "* ENABLED");
	for (i = 0; i < nargs; i++) {
		if (args[i].type != IMAP_ARG_ATOM) {
			imap_reply(s, "BAD ENABLE wants capability names");
			break;
		}
		if (strcasecmp(args[i].str, "CONDSTORE") == 0 &&
		    !ims->condstore) {
			ims->condstore = 1;
			session_printf(s, " CONDSTORE");
		}
		if (strcasecmp(args[i].str, "QRESYNC") == 0 &&
		    !ims->qresync) {
			ims->qresync = ims->condstore = 1;
			session_printf(s, " QRESYNC");
		}
	}
	session_printf(s, "\r\n");
	imap_reply(s, "OK ENABLE completed");
}

static void
cmd_namespace(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)args;
	(void)nargs;
	(void)variant;
	session_printf(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_reply(s, "OK NAMESPACE completed");
}

/* --- authentication ----------------------------------------------------- */

/* The number of this user's logged-in IMAP sessions. */
static unsigned
user_sessions(const struct server *srv, const char *user)
{
	const struct session	*t;
	unsigned		 n = 0;

	for (t = srv->sessions; t != NULL; t = t->next) {
		const struct imap_session *o;

		if (t->ops != &imap_proto || (o = t->proto) == NULL)
			continue;
		if (o->state != IMAP_NOTAUTH && strcasecmp(o->user, user) == 0)
			n++;
	}
	return n;
}

/*
 * Binds the session to the user it is logging in as: the user's id and
 * the digest of the password hash that was verified (p->login_hash, not
 * the one stored now, which a `mailrepd user passwd` may have changed
 * while the worker hashed).  Returns 0 or -1.
 */
static int
bind_user(struct session *s, const char *canon)
{
	struct imap_private	*p = imap_of(s)->priv;
	int			 kept;

	p->users_gen = store_users_generation(s->srv->store);
	if (store_session_check(s->srv->store, canon, NULL, &p->ident,
	    &kept) != STORE_OK)
		return -1;
	memcpy(p->ident.password, p->login_hash, GUID_LEN);
	return 0;
}

/* Logs the session in as user (the stored name); how: "hash", "cache"... */
static void
login_ok(struct session *s, const char *user, const char *how)
{
	struct imap_session	*ims = imap_of(s);

	if (user_sessions(s->srv, user) >= IMAP_MAX_USER_SESSIONS) {
		imap_reply(s, "NO [LIMIT] Too many sessions for this user");
		return;
	}
	if (bind_user(s, user) < 0) {
		imap_reply(s, "NO [UNAVAILABLE] Login failed, try again later");
		return;
	}
	snprintf(ims->user, sizeof(ims->user), "%s", user);
	ims->state = IMAP_AUTH;
	penalty_clear(s->peer);
	log_info("imap.login", "session=%llu peer=%s user=%s tls=%d check=%s",
	    (unsigned long long)s->id, s->peer, log_quote(user),
	    session_secure(s), how);
	imap_reply(s, "OK [CAPABILITY %s] Logged in", capabilities(s));
}

/*
 * Refuses a login.  The refusal is held for the address's penalty
 * (IMAP_AUTH_FAIL_DELAY_MS at first) from when the login began, so the
 * time the hashing took (the queue, the hash) does not show; that holds
 * whatever else the loop does.  After IMAP_MAX_AUTH_FAILURES the session
 * ends.  The password is never logged.
 */
static void
login_failed(struct session *s, const char *user)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	unsigned		 delay;

	delay = penalty_fail(s->peer, s->srv->now_ms);
	log_warn("imap.auth.fail", "session=%llu peer=%s user=%s delay_ms=%u",
	    (unsigned long long)s->id, s->peer, log_quote(user), delay);
	p->hold_until = p->login_began + delay;
	imap_reply(s, "NO [AUTHENTICATIONFAILED] Authentication failed");
	if (++p->auth_failures >= IMAP_MAX_AUTH_FAILURES)
		ims->state = IMAP_LOGOUT;
}

/*
 * Whether the session may go on as the user it logged in as and in the
 * mailbox it selected: the user was not deleted (nor added again under
 * its name) and has the password it had, and the selected mailbox was
 * not deleted, re-created or renamed by another session (ARCHITECTURE.md: a
 * session binds to the uniqueid and UIDVALIDITY, never only to a row
 * id).  Otherwise the session says BYE, drops its mailbox and ends after
 * the running command's reply; returns 0.  A store error lets it go on:
 * the command meets the error itself.
 */
static int
session_still_valid(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	struct store_user_ident	 now;
	enum store_err		 err;
	int			 kept = 1;

	if (ims->state != IMAP_AUTH && ims->state != IMAP_SELECTED)
		return 1;
	p->users_gen = store_users_generation(s->srv->store);
	err = store_session_check(s->srv->store, ims->user, ims->view ?
	    &ims->view->mb : NULL, &now, &kept);
	if (err == STORE_OK && now.id == p->ident.id &&
	    crypto_equal(now.password, p->ident.password, GUID_LEN)) {
		if (kept)
			return 1;
		log_info("imap.bye", "session=%llu user=%s reason=mailbox",
		    (unsigned long long)s->id, log_quote(ims->user));
		session_printf(s, IMAP_BYE_MAILBOX_GONE);
	} else if (err == STORE_OK || err == STORE_NOTFOUND) {
		log_info("imap.bye", "session=%llu user=%s reason=%s",
		    (unsigned long long)s->id, log_quote(ims->user),
		    err == STORE_OK && now.id == p->ident.id ? "password" :
		    "deleted");
		session_printf(s, "* BYE The account was deleted or its "
		    "password changed\r\n");
	} else
		return 1;
	imap_view_free(ims->view);
	ims->view = NULL;
	ims->state = IMAP_LOGOUT;
	return 0;
}

/*
 * Checks user and password.  The stored hash is looked up here; the
 * hashing runs on the worker (auth.h), and the session waits for it in
 * IN_PASSWORD, reading nothing, until imap_checked().  A credential the
 * cache knows logs in at once.  An unknown user costs what a wrong
 * password costs: the worker hashes against a dummy.  In dev mode a
 * user without a password takes any, from loopback.
 */
static void
authenticate(struct session *s, const char *user, const char *password)
{
	struct imap_private	*p = imap_of(s)->priv;
	char			*hash = NULL, canon[USER_MAX_NAME + 1];
	int			 known;

	known = strlen(user) <= USER_MAX_NAME &&
	    store_user_find(s->srv->store, user, canon) == STORE_OK &&
	    store_user_password(s->srv->store, canon, &hash) == STORE_OK;
	if (known)
		crypto_sha256(hash, strlen(hash), p->login_hash);
	if (known && strcmp(hash, PASSWORD_NONE) == 0) {
		free(hash);
		if (s->srv->dev && s->local) {
			login_ok(s, canon, "none");
			return;
		}
		hash = NULL;
		known = 0;
	}
	snprintf(p->login_user, sizeof(p->login_user), "%s",
	    known ? canon : user);
	p->login_known = known;
	p->login_began = s->srv->now_ms;
	switch (auth_check(s->id, p->login_user, password, known ? hash :
	    NULL, s->srv->now_ms)) {
	case AUTH_MATCH:
		login_ok(s, canon, "cache");
		break;
	case AUTH_QUEUED:
		p->mode = IN_PASSWORD;
		s->paused = 1;
		break;
	case AUTH_BUSY:
		/* Held, so that a client cannot spin on it. */
		p->hold_until = s->srv->now_ms + IMAP_AUTH_FAIL_DELAY_MS;
		imap_reply(s, "NO [UNAVAILABLE] Too many logins at once, try "
		    "again later");
		break;
	}
	free(hash);
}

/* The worker's answer for the session's login (see authenticate()). */
static void
imap_checked(struct session *s, int match)
{
	struct imap_private	*p = imap_of(s)->priv;

	if (p->mode != IN_PASSWORD)
		return;
	p->mode = IN_COMMAND;
	s->paused = 0;
	if (match && p->login_known)
		login_ok(s, p->login_user, "hash");
	else
		login_failed(s, p->login_user);
	if (p->hold_until > s->srv->now_ms)
		hold_reply(s);
	else
		command_reply(s, 1);
}

static void
cmd_login(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	const char	*user, *password;

	(void)variant;
	if (nargs != 2 || (user = imap_arg_astring(&args[0])) == NULL ||
	    (password = imap_arg_astring(&args[1])) == NULL) {
		imap_reply(s, "BAD LOGIN wants a user name and a password");
		return;
	}
	if (!login_allowed(s)) {
		imap_reply(s, "NO [PRIVACYREQUIRED] LOGIN is disabled before "
		    "STARTTLS");
		return;
	}
	authenticate(s, user, password);
}

/*
 * Takes a SASL PLAIN response (RFC 4616), base64: authzid NUL authcid
 * NUL password.  An authzid other than the authcid is refused.
 */
static void
auth_plain(struct session *s, const char *b64, size_t len)
{
	uint8_t		 raw[USER_MAX_NAME * 2 + PASSWORD_MAX + 3];
	size_t		 n;
	char		*authz, *authc, *pass, *end;

	if (crypto_base64_decode(b64, len, raw, sizeof(raw) - 1, &n) < 0) {
		imap_reply(s, "BAD Invalid base64 in AUTHENTICATE");
		return;
	}
	raw[n] = '\0';
	authz = (char *)raw;
	end = (char *)raw + n;
	authc = memchr(authz, '\0', n);
	pass = authc ? memchr(authc + 1, '\0', end - authc - 1) : NULL;
	if (authc == NULL || pass == NULL || memchr(pass + 1, '\0',
	    end - pass - 1) != NULL) {
		imap_reply(s, "BAD Invalid PLAIN response");
		return;
	}
	authc++;
	pass++;
	if (*authz != '\0' && strcmp(authz, authc) != 0) {
		imap_reply(s, "NO [AUTHORIZATIONFAILED] Cannot log in as "
		    "another user");
		return;
	}
	authenticate(s, authc, pass);
	explicit_bzero(raw, sizeof(raw));
}

static void
cmd_authenticate(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	const char	*ir;

	(void)variant;
	if (nargs < 1 || nargs > 2 || args[0].type != IMAP_ARG_ATOM) {
		imap_reply(s, "BAD AUTHENTICATE wants a mechanism");
		return;
	}
	if (strcasecmp(args[0].str, "PLAIN") != 0) {
		imap_reply(s, "NO [CANNOT] Unsupported authentication "
		    "mechanism");
		return;
	}
	if (!login_allowed(s)) {
		imap_reply(s, "NO [PRIVACYREQUIRED] Authentication is disabled "
		    "before STARTTLS");
		return;
	}
	if (nargs == 1) {
		/* No SASL-IR: ask for the response. */
		session_printf(s, "+ \r\n");
		imap_of(s)->priv->mode = IN_AUTH;
		return;
	}
	if ((ir = imap_arg_astring(&args[1])) == NULL) {
		imap_reply(s, "BAD Invalid initial response");
		return;
	}
	auth_plain(s, ir, strcmp(ir, "=") == 0 ? 0 : strlen(ir));
}

/*
 * Drops buffered input up to and including the next LF, counting what it
 * drops in p->skipped.  Returns 1 once the LF is gone, 0 when more is to
 * come; a line that goes on past IMAP_MAX_SKIP bytes never ends, as far
 * as this server cares: the session gets BYE and is closed.
 */
static int
skip_line(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	const char		*lf;
	size_t			 n = buf_used(&s->in);

	if ((lf = memchr(buf_ptr(&s->in), '\n', n)) != NULL)
		n = lf - buf_ptr(&s->in) + 1;
	buf_consume(&s->in, n);
	p->skipped += n;
	if (lf != NULL)
		return 1;
	if (p->skipped > IMAP_MAX_SKIP) {
		session_printf(s, "* BYE Command line too long\r\n");
		session_close(s);
	}
	return 0;
}

/*
 * The line a one-line input mode waits for: AUTHENTICATE's response,
 * IDLE's DONE, the end of an APPEND.  Returns 0 while it is incomplete;
 * else the line is consumed, the session is back in command mode, and
 * the result is 1 with *line (NUL-terminated, valid until the input
 * buffer is next written to) or -1 for a line past IMAP_MAX_LINE.  Such
 * a line is dropped whole, to its LF, before the -1: its tail must never
 * run as a command.
 */
static int
mode_line(struct session *s, char **line, size_t *len)
{
	struct imap_private	*p = imap_of(s)->priv;
	size_t			 used;
	int			 crlf;

	*line = NULL;
	if (!p->overlong) {
		switch (session_getline(s, IMAP_MAX_LINE, line, len, &used,
		    &crlf)) {
		case LINE_MORE:
			return 0;
		case LINE_OK:
			buf_consume(&s->in, used);
			p->mode = IN_COMMAND;
			return 1;
		case LINE_TOO_LONG:
			p->overlong = 1;
			p->skipped = 0;
			break;
		}
	}
	if (!skip_line(s))
		return 0;
	p->overlong = 0;
	p->mode = IN_COMMAND;
	return -1;
}

/*
 * The line after "+ " in AUTHENTICATE: "*" cancels (RFC 3501 6.2.2).
 * Like every input_* function, returns 1 when it made progress and 0
 * when it needs more input.
 */
static int
input_auth(struct session *s)
{
	char	*line;
	size_t	 len;
	int	 got;

	if ((got = mode_line(s, &line, &len)) == 0)
		return 0;
	if (got < 0)
		imap_reply(s, "BAD AUTHENTICATE response too long");
	else if (strcmp(line, "*") == 0)
		imap_reply(s, "BAD AUTHENTICATE cancelled");
	else {
		auth_plain(s, line, len);
		explicit_bzero(line, len);
	}
	if (imap_of(s)->priv->mode == IN_COMMAND)
		command_finish(s);
	return 1;
}

/* --- STARTTLS (RFC 3501 6.2.1) and COMPRESS (RFC 4978) ------------------- */

/*
 * The TLS handshake begins once the OK is out; input pipelined behind
 * STARTTLS is dropped (see session_start_tls()).
 */
static void
cmd_starttls(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)args;
	(void)variant;
	if (nargs != 0)
		imap_reply(s, "BAD STARTTLS takes no arguments");
	else if (session_secure(s))
		imap_reply(s, "BAD TLS is already active");
	else if (!session_can_starttls(s))
		imap_reply(s, "NO [UNAVAILABLE] TLS is not available now");
	else {
		imap_of(s)->priv->after_reply = AFTER_STARTTLS;
		imap_reply(s, "OK Begin TLS negotiation now");
	}
}

/* Everything after the OK is compressed, both ways. */
static void
cmd_compress(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	(void)variant;
	if (nargs != 1 || args[0].type != IMAP_ARG_ATOM ||
	    strcasecmp(args[0].str, "DEFLATE") != 0)
		imap_reply(s, "BAD COMPRESS wants DEFLATE");
	else if (session_compressed(s))
		imap_reply(s, "NO [COMPRESSIONACTIVE] DEFLATE is already "
		    "active");
	else if (s->tp == NULL)
		imap_reply(s, "NO [UNAVAILABLE] Compression is not available");
	else {
		imap_of(s)->priv->after_reply = AFTER_COMPRESS;
		imap_reply(s, "OK DEFLATE active");
	}
}

/* --- IDLE (RFC 2177) ---------------------------------------------------- */

static void
cmd_idle(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	struct imap_session	*ims = imap_of(s);

	(void)args;
	(void)variant;
	if (nargs != 0) {
		imap_reply(s, "BAD IDLE takes no arguments");
		return;
	}
	session_printf(s, "+ idling\r\n");
	ims->priv->mode = IN_IDLE;
	if (ims->view != NULL)
		imap_sync(s, 1);
}

/* Waits for DONE; changes are reported meanwhile by imap_wake(). */
static int
input_idle(struct session *s)
{
	char	*line;
	size_t	 len;
	int	 got;

	if ((got = mode_line(s, &line, &len)) == 0)
		return 0;
	if (got > 0 && strcasecmp(line, "DONE") == 0)
		imap_reply(s, "OK IDLE terminated");
	else
		imap_reply(s, "BAD Expected DONE");
	/* IDLE writes nothing: what others wrote meanwhile is not its. */
	imap_of(s)->priv->head0 = store_replog_head(s->srv->store);
	command_finish(s);
	return 1;
}

/* --- APPEND -------------------------------------------------------------- */

static const char *const months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/*
 * Parses an RFC 3501 date-time, "17-Jul-1996 02:44:25 -0700" (the day
 * may be space-padded), into seconds since the epoch.  Returns 0 or -1.
 */
static int
parse_date_time(const char *p, int64_t *out)
{
	struct tm	 tm;
	char		 mon[4], sign;
	int		 day, year, hh, mm, ss, zone, n = 0, i;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(p, "%2d-%3s-%4d %2d:%2d:%2d %c%4d%n", &day, mon, &year,
	    &hh, &mm, &ss, &sign, &zone, &n) != 8 || p[n] != '\0' ||
	    (sign != '+' && sign != '-'))
		return -1;
	for (i = 0; i < 12 && strcasecmp(mon, months[i]) != 0; i++)
		;
	if (i == 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 ||
	    year < 1900 || zone % 100 > 59)
		return -1;
	tm.tm_mday = day;
	tm.tm_mon = i;
	tm.tm_year = year - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	zone = (zone / 100) * 3600 + (zone % 100) * 60;
	*out = (int64_t)timegm(&tm) - (sign == '+' ? zone : -zone);
	return 0;
}

/*
 * Checks APPEND's arguments before its message: mailbox, optional flag
 * list, optional date-time.  Fills ap; returns NULL or the tagged reply.
 */
static const char *
append_check(struct session *s, const struct imap_arg *args, size_t nargs,
    struct append *ap)
{
	struct imap_session	*ims = imap_of(s);
	struct store_mailbox	 mb;
	const char		*name;
	size_t			 i = 1;

	if (ims->state != IMAP_AUTH && ims->state != IMAP_SELECTED)
		return "BAD Log in first";
	if (sync_is_replica())
		return "NO [CANNOT] This server is a read-only replica; make "
		    "changes on the master";
	if (nargs < 1 || (name = imap_arg_mailbox(&args[0])) == NULL)
		return "BAD Invalid mailbox name";
	snprintf(ap->mailbox, sizeof(ap->mailbox), "%s", name);
	ap->internaldate = s->srv->now;
	if (i < nargs && args[i].type == IMAP_ARG_LIST) {
		if (imap_parse_flags(&args[i], &ap->flags, ap->keywords,
		    sizeof(ap->keywords)) < 0)
			return "BAD Invalid flags";
		i++;
	}
	if (i < nargs) {
		if (args[i].type != IMAP_ARG_STRING ||
		    parse_date_time(args[i].str, &ap->internaldate) < 0)
			return "BAD Invalid date-time";
		i++;
	}
	if (i != nargs)
		return "BAD Invalid APPEND arguments";
	if (store_mailbox_get(s->srv->store, ims->user, ap->mailbox, &mb) !=
	    STORE_OK)
		return "NO [TRYCREATE] No such mailbox";
	return NULL;
}

/*
 * Called when framing stops at a literal: if the command so far is
 * "tag APPEND mailbox [flags] [date]", that literal is the message, and
 * it is streamed into a spool rather than buffered.  Returns 1 when it
 * took the command over, 0 to frame it as usual.
 */
static int
append_begin(struct session *s, uint64_t size)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	struct imap_cmd		 cmd;
	struct append		*ap;
	const char		*err, *why;
	char			*head;
	size_t			 n = p->frame.lit_brace;
	int			 plus = p->frame.lit_plus;

	if (n > 0 && buf_ptr(&s->in)[n - 1] == ' ')
		n--;
	if ((head = malloc(n + 2)) == NULL)
		return 0;
	memcpy(head, buf_ptr(&s->in), n);
	head[n] = '\r';
	head[n + 1] = '\n';
	if (imap_parse(head, n + 2, IMAP_MAX_DEPTH, IMAP_MAX_ARGS, &cmd,
	    &why) != IMAP_PARSE_OK || strcmp(cmd.name, "APPEND") != 0 ||
	    cmd.nargs < 1) {
		if (cmd.tag != NULL)
			imap_cmd_free(&cmd);
		free(head);
		return 0;
	}
	free(head);
	ims->tag = strdup(cmd.tag);
	if ((ap = calloc(1, sizeof(*ap))) == NULL)
		err = "NO [UNAVAILABLE] Out of memory";
	else if ((err = append_check(s, cmd.args, cmd.nargs, ap)) != NULL)
		;
	else if (size > (uint64_t)s->srv->settings->max_message_size)
		err = "NO [TOOBIG] Message too large";
	else if (size == 0)
		err = "NO Cannot save an empty message";
	else if ((ap->spool = spool_new(s->srv->settings->data_dir)) == NULL)
		err = errno == ENOSPC ? IMAP_NO_FULL :
		    "NO [UNAVAILABLE] Temporary storage failure";
	imap_cmd_free(&cmd);
	buf_consume(&s->in, p->frame.lit_lf + 1);
	imap_frame_reset(&p->frame);
	p->head0 = store_replog_head(s->srv->store);
	if (err != NULL) {
		if (ap != NULL)
			spool_free(ap->spool);
		free(ap);
		imap_reply(s, "%s", err);
		if (!plus) {
			command_finish(s);
			return 1;
		}
		/* The client sends the literal anyway: drop it. */
		p->discard = size;
		p->discard_line = 1;
		p->mode = IN_DISCARD;
		return 1;
	}
	ap->left = size;
	p->append = ap;
	p->mode = IN_APPEND;
	if (!plus)
		session_printf(s, "+ Ready for literal data\r\n");
	return 1;
}

/*
 * Feeds the buffered part of the message literal to the spool, line by
 * line for the MIME pre-parser.  A line longer than IMAP_APPEND_LINE is
 * fed in pieces, so that the input buffer never has to hold it whole.
 */
static int
input_append(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	struct append		*ap = p->append;
	const char		*data = buf_ptr(&s->in), *lf;
	size_t			 avail = buf_used(&s->in), off = 0, n;

	if (avail > ap->left)
		avail = (size_t)ap->left;
	while (off < avail) {
		lf = memchr(data + off, '\n', avail - off);
		if (lf != NULL)
			n = lf - (data + off) + 1;
		else if (avail == ap->left || avail - off >= IMAP_APPEND_LINE)
			n = avail - off;
		else
			break;
		spool_add_line(ap->spool, data + off, n);
		off += n;
	}
	buf_consume(&s->in, off);
	ap->left -= off;
	if (ap->left == 0)
		p->mode = IN_APPEND_END;
	return off > 0;
}

/* Stores the message of a complete APPEND and sets its reply. */
static void
append_store(struct session *s, struct append *ap)
{
	struct imap_session	*ims = imap_of(s);
	struct store_blob_in	 blob;
	struct store_target	 t;
	struct store_mailbox	 mb;
	enum store_err		 err;

	/* Demoted while the message arrived: no OK from a replica. */
	if (sync_is_replica()) {
		imap_reply(s, "NO [CANNOT] This server became a read-only "
		    "replica; make changes on the master");
		return;
	}
	/* The user may have changed while the literal arrived. */
	if (!session_still_valid(s)) {
		imap_reply(s, "NO [UNAVAILABLE] Session ended");
		return;
	}
	if (spool_finish(ap->spool, &blob) < 0) {
		if (errno == ENOSPC)
			imap_reply(s, IMAP_NO_FULL);
		else
			imap_reply(s, "NO [UNAVAILABLE] Could not store the "
			    "message");
		return;
	}
	memset(&t, 0, sizeof(t));
	t.user = ims->user;
	t.mailbox = ap->mailbox;
	t.flags = ap->flags;
	t.keywords = ap->keywords;
	t.internaldate = ap->internaldate;
	err = store_deliver(s->srv->store, &blob, &t, 1);
	if (err == STORE_OK)
		err = t.result;
	if (err == STORE_OK)
		err = store_mailbox_get(s->srv->store, ims->user, ap->mailbox,
		    &mb);
	if (err == STORE_NOTFOUND)
		imap_reply(s, "NO [TRYCREATE] No such mailbox");
	else if (err == STORE_FULL)
		imap_reply(s, IMAP_NO_FULL);
	else if (err == STORE_LIMIT)
		imap_reply(s, IMAP_NO_LIMIT);
	else if (err != STORE_OK)
		imap_reply(s, "NO [UNAVAILABLE] %s", store_strerror(err));
	else
		imap_reply(s, "OK [APPENDUID %u %u] APPEND completed",
		    mb.uidvalidity, t.uid);
}

/* The rest of the APPEND line after the literal: nothing but CRLF. */
static int
input_append_end(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	char			*line;
	size_t			 len;
	int			 got;

	if (!session_store_ready(s) || (got = mode_line(s, &line, &len)) == 0)
		return 0;
	if (got < 0)
		imap_reply(s, "BAD Line too long after the APPEND literal");
	else if (len != 0)
		imap_reply(s, "BAD Unexpected data after the APPEND literal "
		    "(MULTIAPPEND is not supported)");
	else
		append_store(s, p->append);
	spool_free(p->append->spool);
	free(p->append);
	p->append = NULL;
	command_finish(s);
	return 1;
}

/*
 * APPEND whose message arrived whole with the command (a LITERAL+
 * literal of at most IMAP_MAX_LITERAL bytes): the same checks and store
 * as the streamed path, fed from the argument.
 */
static void
cmd_append(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	struct append		*ap;
	const struct imap_arg	*msg = NULL;
	const char		*err, *lf;
	size_t			 off, n;

	(void)variant;
	if (nargs < 2 || (msg = &args[nargs - 1])->type != IMAP_ARG_STRING) {
		imap_reply(s, "BAD APPEND wants a mailbox and a message");
		return;
	}
	if ((ap = calloc(1, sizeof(*ap))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	if ((err = append_check(s, args, nargs - 1, ap)) != NULL)
		imap_reply(s, "%s", err);
	else if (msg->len == 0)
		imap_reply(s, "NO Cannot save an empty message");
	else if ((ap->spool = spool_new(s->srv->settings->data_dir)) == NULL)
		imap_reply(s, errno == ENOSPC ?
		    IMAP_NO_FULL : "NO [UNAVAILABLE] Temporary storage "
		    "failure");
	else {
		for (off = 0; off < msg->len; off += n) {
			lf = memchr(msg->str + off, '\n', msg->len - off);
			n = lf ? (size_t)(lf - msg->str) + 1 - off :
			    msg->len - off;
			spool_add_line(ap->spool, msg->str + off, n);
		}
		append_store(s, ap);
	}
	spool_free(ap->spool);
	free(ap);
}

/* Drops a refused literal, then the rest of its line; then replies. */
static int
input_discard(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	size_t			 n = buf_used(&s->in);
	const char		*lf;

	if (p->discard > 0) {
		if (n > p->discard)
			n = (size_t)p->discard;
		buf_consume(&s->in, n);
		p->discard -= n;
		if (p->discard > 0)
			return 0;
	}
	if (p->discard_line) {
		lf = memchr(buf_ptr(&s->in), '\n', buf_used(&s->in));
		if (lf == NULL) {
			buf_consume(&s->in, buf_used(&s->in));
			return 0;
		}
		buf_consume(&s->in, lf - buf_ptr(&s->in) + 1);
	}
	p->mode = IN_COMMAND;
	command_finish(s);
	return 1;
}

/* Drops the rest of an over-long command line. */
static int
input_skip_line(struct session *s)
{
	if (!skip_line(s))
		return 0;
	imap_of(s)->priv->mode = IN_COMMAND;
	return 1;
}

/* --- dispatch -------------------------------------------------------------- */

static const struct imap_command commands[] = {
	{ "CAPABILITY", ST_ANY, 0, 0, cmd_capability },
	{ "NOOP", ST_ANY, 0, 0, cmd_noop },
	{ "LOGOUT", ST_ANY, 0, 0, cmd_logout },
	{ "ID", ST_ANY, 0, 0, cmd_id },
	{ "LOGIN", ST_NOTAUTH, 0, 0, cmd_login },
	{ "AUTHENTICATE", ST_NOTAUTH, 0, 0, cmd_authenticate },
	{ "STARTTLS", ST_NOTAUTH, 0, 0, cmd_starttls },
	{ "COMPRESS", ST_AUTH, 0, 0, cmd_compress },
	{ "ENABLE", ST_AUTH, 0, 0, cmd_enable },
	{ "NAMESPACE", ST_AUTH, 0, 0, cmd_namespace },
	{ "IDLE", ST_AUTH, 0, 0, cmd_idle },
	{ "SELECT", ST_AUTH, 0, 0, imap_cmd_select },
	{ "EXAMINE", ST_AUTH, 0, 1, imap_cmd_select },
	{ "CREATE", ST_AUTH, 0, 0, imap_cmd_create },
	{ "DELETE", ST_AUTH, 0, 0, imap_cmd_delete },
	{ "RENAME", ST_AUTH, 0, 0, imap_cmd_rename },
	{ "SUBSCRIBE", ST_AUTH, 0, 1, imap_cmd_subscribe },
	{ "UNSUBSCRIBE", ST_AUTH, 0, 0, imap_cmd_subscribe },
	{ "LIST", ST_AUTH, 0, 0, imap_cmd_list },
	{ "LSUB", ST_AUTH, 0, 1, imap_cmd_list },
	{ "STATUS", ST_AUTH, 0, 0, imap_cmd_status },
	{ "APPEND", ST_AUTH, 0, 0, cmd_append },
	{ "CHECK", ST_SELECTED, 0, 1, cmd_noop },
	{ "CLOSE", ST_SELECTED, 0, 1, imap_cmd_close },
	{ "UNSELECT", ST_SELECTED, 0, 0, imap_cmd_close },
	{ "EXPUNGE", ST_SELECTED, 0, 0, imap_cmd_expunge },
	{ "SEARCH", ST_SELECTED, 1, 0, imap_cmd_search },
	{ "SORT", ST_SELECTED, 1, 0, imap_cmd_sort },
	{ "THREAD", ST_SELECTED, 1, 0, imap_cmd_thread },
	{ "FETCH", ST_SELECTED, 1, 0, imap_cmd_fetch },
	{ "STORE", ST_SELECTED, 1, 0, imap_cmd_store },
	{ "COPY", ST_SELECTED, 0, 0, imap_cmd_copy },
	{ "MOVE", ST_SELECTED, 0, 0, imap_cmd_move },
};

/* After "UID": the same commands with UIDs for sequence numbers. */
static const struct imap_command uid_commands[] = {
	{ "SEARCH", ST_SELECTED, 0, 1, imap_cmd_search },
	{ "SORT", ST_SELECTED, 0, 1, imap_cmd_sort },
	{ "THREAD", ST_SELECTED, 0, 1, imap_cmd_thread },
	{ "FETCH", ST_SELECTED, 0, 1, imap_cmd_fetch },
	{ "STORE", ST_SELECTED, 0, 1, imap_cmd_store },
	{ "COPY", ST_SELECTED, 0, 1, imap_cmd_copy },
	{ "MOVE", ST_SELECTED, 0, 1, imap_cmd_move },
	{ "EXPUNGE", ST_SELECTED, 0, 1, imap_cmd_expunge },
};

static const struct imap_command *
command_find(const struct imap_command *table, size_t n, const char *name)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcasecmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

/* Counts a BAD command; too many and the client is cut off. */
static void
count_bad(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (++ims->priv->bad_commands < IMAP_MAX_BAD_COMMANDS)
		return;
	session_printf(s, "* BYE Too many invalid commands\r\n");
	ims->state = IMAP_LOGOUT;
}

/* The commands that change the store: a replica refuses them. */
static const char *const changing_commands[] = { "CREATE", "DELETE",
    "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "APPEND", "STORE", "COPY", "MOVE",
    "EXPUNGE" };

/* Whether a replica refuses the command: it would change the store. */
static int
replica_refuses(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(changing_commands) /
	    sizeof(*changing_commands); i++)
		if (strcasecmp(changing_commands[i], name) == 0)
			return 1;
	return 0;
}

/*
 * Whether the framed command at line (its tag, its name, after UID the
 * name that follows) may write to the store: the changing commands, and
 * FETCH (it sets \Seen) and CLOSE (it expunges).  Such a command waits
 * for the write lock before it is taken from the buffer.
 */
static int
command_writes(const char *line, size_t len)
{
	char		 name[16];
	const char	*p = line, *end = line + len;
	size_t		 n;
	int		 words = 0;

	while (p < end && *p != ' ')
		p++;		/* the tag */
	while (p < end && words++ < 2) {
		p++;
		for (n = 0; p + n < end && n + 1 < sizeof(name) &&
		    imap_is_atom_char(p[n]); n++)
			name[n] = p[n];
		name[n] = '\0';
		p += n;
		if (strcasecmp(name, "UID") != 0)
			break;
	}
	return replica_refuses(name) || strcasecmp(name, "FETCH") == 0 ||
	    strcasecmp(name, "CLOSE") == 0;
}

/* Runs one parsed command: look-up, state check, handler. */
static void
command_run(struct session *s, struct imap_cmd *cmd)
{
	struct imap_session		*ims = imap_of(s);
	const struct imap_command	*c;
	const struct imap_arg		*args = cmd->args;
	size_t				 nargs = cmd->nargs;

	c = command_find(commands, sizeof(commands) / sizeof(*commands),
	    cmd->name);
	if (strcmp(cmd->name, "UID") == 0) {
		if (nargs == 0 || args[0].type != IMAP_ARG_ATOM) {
			imap_reply(s, "BAD UID wants a command");
			return;
		}
		c = command_find(uid_commands, sizeof(uid_commands) /
		    sizeof(*uid_commands), args[0].str);
		args++;
		nargs--;
	}
	if (ims->state == IMAP_NOTAUTH && ++ims->priv->prelogin_commands >
	    IMAP_MAX_PRELOGIN_COMMANDS) {
		/* A client logs in within a few; a flood never does. */
		session_printf(s, "* BYE Too many commands before login\r\n");
		ims->state = IMAP_LOGOUT;
		imap_reply(s, "BAD Log in first");
		return;
	}
	if (c == NULL) {
		imap_reply(s, "BAD Unknown command");
		return;
	}
	if ((c->states & (1u << ims->state)) == 0) {
		imap_reply(s, "BAD %s", ims->state == IMAP_NOTAUTH ?
		    "Log in first" : c->states == ST_NOTAUTH ?
		    "Already logged in" : "No mailbox selected");
		return;
	}
	if (!session_still_valid(s)) {
		imap_reply(s, "NO [UNAVAILABLE] Session ended");
		return;
	}
	if (sync_is_replica() && replica_refuses(c->name)) {
		imap_reply(s, "NO [CANNOT] This server is a read-only replica; "
		    "make changes on the master");
		return;
	}
	ims->uses_seq = c->uses_seq;
	c->run(s, args, nargs, c->variant);
}

/* Parses and runs one framed command of len bytes. */
static void
command_parse(struct session *s, size_t len)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_cmd		 cmd;
	enum imap_parse_status	 st;
	const char		*why;

	ims->priv->head0 = store_replog_head(s->srv->store);
	st = imap_parse(buf_ptr(&s->in), len, IMAP_MAX_DEPTH, IMAP_MAX_ARGS,
	    &cmd, &why);
	buf_consume(&s->in, len);
	if (st == IMAP_PARSE_NO_TAG) {
		session_printf(s, "* BAD %s\r\n", why);
		count_bad(s);
		if (ims->state == IMAP_LOGOUT)
			session_close(s);
		return;
	}
	ims->tag = strdup(cmd.tag);
	if (st == IMAP_PARSE_OK)
		command_run(s, &cmd);
	else
		imap_reply(s, "BAD %s%s", st == IMAP_PARSE_BAD ? "" :
		    "[LIMIT] ", why);
	imap_cmd_free(&cmd);
	if (ims->step == NULL && ims->priv->mode == IN_COMMAND)
		command_finish(s);
}

/* The tag at the start of the buffer, for a reply to an unparsed line. */
static void
buffered_tag(struct session *s, char *tag, size_t size)
{
	const char	*p = buf_ptr(&s->in);
	size_t		 n = 0, avail = buf_used(&s->in);

	while (n < avail && n + 1 < size && imap_is_atom_char(p[n]) &&
	    p[n] != '+')
		n++;
	memcpy(tag, p, n);
	tag[n] = '\0';
	if (n == 0 || n == avail || p[n] != ' ')
		snprintf(tag, size, "*");
}

/* Refuses a literal past IMAP_MAX_LITERAL outside APPEND. */
static void
refuse_literal(struct session *s, uint64_t size)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	char			 tag[64];

	buffered_tag(s, tag, sizeof(tag));
	ims->tag = strdup(tag);
	imap_reply(s, "BAD [TOOBIG] Literal of %llu bytes is over the limit "
	    "of %d", (unsigned long long)size, IMAP_MAX_LITERAL);
	buf_consume(&s->in, p->frame.lit_lf + 1);
	if (p->frame.lit_plus) {
		p->discard = size;
		p->discard_line = 1;
		p->mode = IN_DISCARD;
	} else
		command_finish(s);
	imap_frame_reset(&p->frame);
}

/* Frames the next command and runs it when it is complete. */
static int
input_command(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	enum imap_frame_status	 st;
	uint64_t		 size = 0;
	size_t			 len = 0;
	char			 tag[64];
	int			 at_literal;

	if (buf_used(&s->in) == 0)
		return 0;	/* run for its output, nothing to frame */
	st = imap_frame_scan(&p->frame, buf_ptr(&s->in), buf_used(&s->in),
	    session_line_max(s, IMAP_MAX_LINE), IMAP_MAX_LITERAL, &len, &size);
	at_literal = st == IMAP_FRAME_CONTINUE || (st == IMAP_FRAME_MORE &&
	    p->frame.scanned > 0 && p->frame.scanned == p->frame.lit_lf);
	if (st != IMAP_FRAME_TOO_BIG)
		size = p->frame.literal;
	if ((at_literal || st == IMAP_FRAME_TOO_BIG) && append_begin(s, size))
		return 1;
	switch (st) {
	case IMAP_FRAME_MORE:
		if (buf_room(&s->in) == 0) {
			session_printf(s, "* BYE [TOOBIG] Command too long\r\n");
			session_close(s);
		}
		return 0;
	case IMAP_FRAME_CONTINUE:
		session_printf(s, "+ Ready for literal data\r\n");
		return 1;
	case IMAP_FRAME_COMPLETE:
		p->writes = command_writes(buf_ptr(&s->in), len);
		if (p->writes && !session_store_ready(s))
			return 0;	/* framed again next time */
		imap_frame_reset(&p->frame);
		command_parse(s, len);
		return 1;
	case IMAP_FRAME_TOO_BIG:
		refuse_literal(s, size);
		return 1;
	case IMAP_FRAME_TOO_LONG:
		/*
		 * Refused at once (the command changed nothing, so no commit
		 * to wait for); the rest of the line is dropped as it comes,
		 * which a client still sending it can read the BAD after.
		 */
		buffered_tag(s, tag, sizeof(tag));
		session_printf(s, "%s BAD [TOOBIG] Command line too long\r\n",
		    tag);
		imap_frame_reset(&p->frame);
		p->skipped = 0;
		p->mode = IN_SKIP_LINE;
		count_bad(s);
		if (ims->state == IMAP_LOGOUT)
			session_close(s);
		return 1;
	case IMAP_FRAME_BAD_LITERAL:
		buffered_tag(s, tag, sizeof(tag));
		ims->tag = strdup(tag);
		imap_reply(s, "BAD Invalid literal size");
		p->discard = 0;
		p->discard_line = 1;
		p->mode = IN_DISCARD;
		imap_frame_reset(&p->frame);
		return 1;
	}
	return 0;
}

/* --- finishing a command --------------------------------------------------- */

/*
 * The handler (or its last step) is done.  A command that changed the
 * store waits for the group commit, and one that wrote log records for a
 * replica too (--repl-sync-timeout), even when an earlier group commit
 * (between the steps of a long command) made it durable already; its
 * reply goes out in imap_committed.
 */
static void
command_finish(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;

	/* Cut off (a FETCH whose message vanished mid-literal): no reply. */
	if (s->io == SESSION_CLOSING)
		return;
	p->changed = store_replog_head(s->srv->store) != p->head0;
	if (p->changed) {
		p->mode = IN_HELD;
		session_wait_replicated(s);
		return;
	}
	if (store_txn_open(s->srv->store)) {
		p->mode = IN_HELD;
		session_wait_commit(s);
		return;
	}
	if (p->hold_until > s->srv->now_ms) {
		hold_reply(s);
		return;
	}
	command_reply(s, 1);
}

/*
 * Holds the reply until hold_until (imap_wake sends it), taking not a
 * byte more meanwhile: no busy loop.
 */
static void
hold_reply(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;

	p->mode = IN_HELD;
	s->paused = 1;
	server_timer(s->srv, p->hold_until);
}

/*
 * Sends the tagged reply, after the untagged updates it may carry
 * (RFC 3501 7: before the tagged reply, never EXPUNGE during a command
 * that uses sequence numbers).
 */
static void
command_reply(struct session *s, int committed)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	const char		*reply = ims->reply;

	p->mode = IN_COMMAND;
	p->hold_until = 0;
	s->paused = 0;
	/* After "* BYE" nothing but the tagged reply (RFC 3501 6.1.3). */
	if (ims->view != NULL && committed && ims->state != IMAP_LOGOUT)
		imap_sync(s, !ims->uses_seq);
	else if (ims->view != NULL && p->changed)
		imap_view_rolled_back(s);
	if (!committed && p->changed)
		reply = s->srv->commit_err == STORE_FULL ? IMAP_NO_FULL :
		    "NO [UNAVAILABLE] The change could not be saved";
	else if (reply == NULL)
		reply = "NO [UNAVAILABLE] Out of memory";
	if (strncmp(reply, "BAD", 3) == 0)
		count_bad(s);
	session_printf(s, "%s %s\r\n", ims->tag ? ims->tag : "*", reply);
	if (p->after_reply != AFTER_NONE && strncmp(reply, "OK", 2) == 0)
		(void)(p->after_reply == AFTER_STARTTLS ?
		    session_start_tls(s, 0) : session_start_compress(s));
	p->after_reply = AFTER_NONE;
	free(ims->tag);
	free(ims->reply);
	ims->tag = ims->reply = NULL;
	ims->uses_seq = 0;
	if (ims->state == IMAP_LOGOUT)
		session_close(s);
}

/* Runs the next step of a command made in steps. */
static void
run_step(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (!ims->step(s, ims->step_arg))
		return;
	ims->step_free(ims->step_arg);
	ims->step = NULL;
	ims->step_free = NULL;
	ims->step_arg = NULL;
	s->resume = 0;
	command_finish(s);
}

/* --- the session ------------------------------------------------------------ */

/* Runs every complete command already buffered (clients pipeline). */
static void
imap_input(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	int			 progress = 1;

	if (ims->step != NULL && !session_output_high(s) &&
	    (!p->writes || session_store_ready(s)))
		run_step(s);
	while (progress && s->io == SESSION_OPEN && !session_output_high(s) &&
	    ims->step == NULL) {
		switch (p->mode) {
		case IN_COMMAND:
			progress = input_command(s);
			break;
		case IN_AUTH:
			progress = input_auth(s);
			break;
		case IN_IDLE:
			progress = input_idle(s);
			break;
		case IN_APPEND:
			progress = input_append(s);
			break;
		case IN_APPEND_END:
			progress = input_append_end(s);
			break;
		case IN_DISCARD:
			progress = input_discard(s);
			break;
		case IN_SKIP_LINE:
			progress = input_skip_line(s);
			break;
		case IN_PASSWORD:
		case IN_HELD:
			progress = 0;
			break;
		}
	}
}

/*
 * The group commit is done.  A refusal that waited for it (another
 * session's change was open) still waits out its delay.
 */
static void
imap_committed(struct session *s, int ok)
{
	if (imap_of(s)->priv->hold_until > s->srv->now_ms)
		hold_reply(s);
	else
		command_reply(s, ok);
}

/* Whether the session is between commands, or in IDLE. */
static int
between_commands(const struct session *s)
{
	const struct imap_session	*ims = s->proto;

	return ims->step == NULL && ((ims->priv->mode == IN_COMMAND &&
	    buf_used(&s->in) == 0) || ims->priv->mode == IN_IDLE);
}

/*
 * A session between commands whose user may have changed looks: one
 * deleted or given a new password hears BYE now, not at its next command.
 */
static int
wake_check_user(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (ims->priv->users_gen == store_users_generation(s->srv->store) ||
	    s->io != SESSION_OPEN || !between_commands(s) ||
	    session_still_valid(s))
		return 1;
	session_close(s);
	return 0;
}

/*
 * After a commit and once a second: a session whose user was deleted
 * or given a new password ends; an IDLE session reports changes; a
 * delayed reply goes out when its time has come.
 */
static void
imap_wake(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p;

	if (ims == NULL || !wake_check_user(s))
		return;
	p = ims->priv;
	if (p->mode == IN_IDLE && ims->view != NULL)
		imap_sync(s, 1);
	else if (p->mode == IN_HELD && p->hold_until != 0 &&
	    s->io == SESSION_OPEN) {
		if (p->hold_until <= s->srv->now_ms)
			command_reply(s, 1);
		else	/* an earlier timer woke us: ask again */
			server_timer(s->srv, p->hold_until);
	}
}

static void
imap_start(struct session *s)
{
	struct imap_session	*ims;

	if ((ims = calloc(1, sizeof(*ims))) == NULL ||
	    (ims->priv = calloc(1, sizeof(*ims->priv))) == NULL) {
		free(ims);
		session_printf(s, "* BYE Out of memory\r\n");
		session_close(s);
		return;
	}
	ims->state = IMAP_NOTAUTH;
	s->proto = ims;
	session_printf(s, "* OK [CAPABILITY %s] %s mailrepd IMAP ready\r\n",
	    capabilities(s), s->srv->settings->name);
}

/*
 * Whether the session can hear BYE now without losing anything: it is
 * between commands or in IDLE, or a login of it waits for the password
 * checker or holds its refusal (nothing was changed; the client logs in
 * again elsewhere).
 */
static int
imap_can_leave(const struct session *s, const struct imap_session *ims)
{
	if (ims->step != NULL)
		return 0;
	switch (ims->priv->mode) {
	case IN_COMMAND:
		return buf_used(&s->in) == 0;
	case IN_IDLE:
	case IN_PASSWORD:
		return 1;
	case IN_HELD:
		return ims->priv->hold_until != 0;
	default:
		return 0;
	}
}

/*
 * Idle past --idle-timeout (or --prelogin-timeout).  The client hears
 * BYE, unless an answer is still being produced in steps (it stopped
 * reading a large one): there a BYE would land inside a literal, so the
 * connection is dropped without a word.
 */
static void
imap_timeout(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (ims != NULL && ims->step != NULL) {
		log_info("imap.timeout", "session=%llu peer=%s msg=\"stopped "
		    "reading in the middle of an answer\"",
		    (unsigned long long)s->id, s->peer);
		session_broken(s);
		return;
	}
	session_printf(s, "* BYE Disconnected for inactivity\r\n");
	session_close(s);
}

/*
 * Drain: a session that can leave (above) hears BYE now; a command
 * under way (a literal arriving, a reply in steps, a change waiting for
 * the commit) is finished first.
 */
static int
imap_drain(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (ims != NULL && imap_can_leave(s, ims)) {
		session_printf(s, "* BYE [UNAVAILABLE] Server shutting down, "
		    "try again later\r\n");
		session_close(s);
		return 1;
	}
	if (ims == NULL) {
		session_close(s);
		return 1;
	}
	return 0;
}

static void
imap_free(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (ims == NULL)
		return;
	if (ims->step != NULL)
		ims->step_free(ims->step_arg);
	imap_view_free(ims->view);
	if (ims->priv->append != NULL) {
		spool_free(ims->priv->append->spool);
		free(ims->priv->append);
	}
	free(ims->priv);
	free(ims->tag);
	free(ims->reply);
	free(ims);
	s->proto = NULL;
}

/* Whether the client has logged in (proto_ops.established). */
static int
imap_established(const struct session *s)
{
	const struct imap_session	*ims = s->proto;

	return ims != NULL && ims->state != IMAP_NOTAUTH;
}

const struct proto_ops imap_proto = {
	.name = "imap",
	.pool = POOL_IMAP,
	.established = imap_established,
	.in_limit = IMAP_MAX_LINE + IO_CHUNK,
	.out_limit = IMAP_MAX_OUTPUT,
	.busy_reply = "* BYE [UNAVAILABLE] Too many connections, try again "
	    "later\r\n",
	.start = imap_start,
	.input = imap_input,
	.committed = imap_committed,
	.timeout = imap_timeout,
	.free = imap_free,
	.wake = imap_wake,
	.checked = imap_checked,
	.drain = imap_drain,
};
