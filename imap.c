/*
 * imap.c — the IMAP session: framing, the command table and dispatch,
 * finishing a command (the group commit before the reply), commands in
 * steps, and the session's life (start, wake, timeout, drain).  The
 * commands live by what they serve: logging in, STARTTLS and COMPRESS
 * in imap_auth.c; CAPABILITY, ENABLE and ID in imap_caps.c; IDLE in
 * imap_idle.c; APPEND in imap_append.c; mailbox commands in
 * imap_mailbox.c and imap_list.c; message commands in imap_message.c,
 * FETCH in imap_fetch.c and SEARCH in imap_search.c.
 *
 * What the session reads next depends on its input mode (imap_core.h);
 * one switch in imap_input() picks it.
 *
 * A command's tagged reply is recorded by imap_reply() and sent by
 * imap_command_reply(), after the group commit when the store has a
 * change pending: no client hears OK before its change is on disk.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "imap.h"
#include "imap_context.h"
#include "imap_core.h"
#include "log.h"
#include "settings.h"
#include "utf8.h"
#include "store.h"
#include "sync.h"

/* --- replies and output ------------------------------------------------ */

void
imap_reply(struct session *s, const char *fmt, ...)
{
	struct imap_session	*ims = imap_of(s);
	va_list			 ap;

	if (ims->reply != NULL || ims->reply_lost != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&ims->reply, fmt, ap) < 0) {
		ims->reply = NULL;
		/*
		 * Whether the command was done is what the client must
		 * learn; only the details are lost.
		 */
		ims->reply_lost = strncmp(fmt, "OK", 2) == 0 ?
		    "OK Completed" : "NO [UNAVAILABLE] Out of memory";
	}
	va_end(ap);
}

void
imap_reply_store_error(struct session *s, enum store_err err,
    enum imap_missing missing, const char *verb)
{
	static const char *const notfound[] = {
		[IMAP_MISSING_MAILBOX] = "NO [NONEXISTENT] No such mailbox",
		[IMAP_MISSING_TARGET] = "NO [TRYCREATE] No such mailbox",
		[IMAP_MISSING_MESSAGE] =
		    "NO [EXPUNGEISSUED] Some messages were expunged",
	};

	switch (err) {
	case STORE_NOTFOUND:
		imap_reply(s, "%s", notfound[missing]);
		break;
	case STORE_EXISTS:
		imap_reply(s, "NO [ALREADYEXISTS] Mailbox already exists");
		break;
	case STORE_INVALID:
		imap_reply(s, "NO [CANNOT] Invalid mailbox name");
		break;
	case STORE_FULL:
		imap_reply(s, IMAP_NO_FULL);
		break;
	case STORE_LIMIT:
		imap_reply(s, IMAP_NO_LIMIT);
		break;
	case STORE_BUSY:
		imap_reply(s, "NO [INUSE] %s: the mailbox is being written "
		    "(a big COPY into it, or another program); try again", verb);
		break;
	case STORE_QUOTA:
		imap_reply(s, "NO [OVERQUOTA] Quota exceeded: %s would pass "
		    "the user's storage or message limit", verb);
		break;
	default:
		imap_reply(s, "NO [UNAVAILABLE] %s failed: %s", verb,
		    store_strerror(err));
		break;
	}
}

/*
 * Whether the log head moved from `before` (-1: unread): the store was
 * changed since.  A head that cannot be read, then or now, counts as
 * moved: what cannot be read proves no command changed nothing.
 */
static int
head_moved(struct session *s, int64_t before)
{
	int64_t	 now = store_replog_head(s->srv->store);

	return before < 0 || now < 0 || now != before;
}

/*
 * A step that changed the store and is not the command's last: its
 * changes ride on this iteration's group commit, whose failure must
 * reach the command's reply.
 */
static void
step_wrote(struct session *s, int64_t before)
{
	if (head_moved(s, before))
		session_wrote(s);
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

void
imap_step_begin(struct imap_step_budget *b)
{
	b->start_us = log_clock_us();
	b->done = 0;
}

int
imap_step_time_left(const struct imap_step_budget *b)
{
	return log_clock_us() - b->start_us < IMAP_STEP_USEC;
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
	return 1;
}

void
imap_put_string(struct session *s, const char *p, size_t n)
{
	size_t	 i, from;

	if (!imap_is_quotable(p, n, imap_names_utf8(imap_of(s)))) {
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
 * them: INBOX, Entw&APw-rfe), else quoted or as a literal; after
 * UTF8=ACCEPT or IMAP4rev2 in UTF-8, never modified UTF-7 (RFC 6855 3,
 * RFC 9051 5.1), as the stored name when it is not valid modified
 * UTF-7 (created before it was checked).
 */
void
imap_put_mailbox(struct session *s, const char *p)
{
	char	 utf8[2 * MAILBOX_MAX_NAME + 1];
	size_t	 n, i;

	if (imap_names_utf8(imap_of(s)) &&
	    mutf7_to_utf8(p, utf8, sizeof(utf8)) == 0)
		p = utf8;
	n = strlen(p);

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
	if (recent && !imap_of(s)->rev2)	/* not in RFC 9051 */
		put_flag(s, "\\Recent", &first);
	session_write(s, ")", 1);
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
 * names are kept as the client sent them (modified UTF-7), or, after
 * UTF8=ACCEPT, as they would be in modified UTF-7 ("&" is "&" then).
 * The prefix is rewritten in place.
 */
const char *
imap_arg_mailbox(struct session *s, const struct imap_arg *a)
{
	struct imap_private	*p = imap_of(s)->priv;
	char			*name = a->str, *out;

	if (imap_arg_astring(a) == NULL)
		return NULL;
	if (imap_names_utf8(imap_of(s))) {
		out = p->names[p->next_name++ % IMAP_NAME_SLOTS];
		if (utf8_to_mutf7(name, out, sizeof(p->names[0])) < 0)
			return NULL;
		name = out;
	}
	if (strncasecmp(name, "INBOX", 5) == 0 &&
	    (name[5] == '\0' || name[5] == '/'))
		memcpy(name, "INBOX", 5);
	return name;
}

/* --- commands that need no mailbox -------------------------------------- */

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
 * The line a one-line input mode waits for (imap_core.h).  A line past
 * IMAP_MAX_LINE is dropped whole, to its LF, before the -1: its tail
 * must never run as a command.
 */
int
imap_mode_line(struct session *s, char **line, size_t *len)
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

void
imap_discard_literal(struct session *s, uint64_t size)
{
	struct imap_private	*p = imap_of(s)->priv;

	p->discard = size;
	p->discard_line = 1;
	p->mode = IN_DISCARD;
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
	if (!p->discard_replied)
		imap_command_finish(s);
	p->discard_replied = 0;
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

/*
 * Every command, with what it needs and what it may do (imap_core.h's
 * CMD_*): the session acts on the flags, so a new command is one row.
 */
static const struct imap_command commands[] = {
	{ "CAPABILITY", CMD_ANY, 0, imap_cmd_capability },
	{ "NOOP", CMD_ANY, 0, cmd_noop },
	{ "LOGOUT", CMD_ANY, 0, cmd_logout },
	{ "ID", CMD_ANY, 0, imap_cmd_id },
	{ "LOGIN", CMD_NOTAUTH, 0, imap_cmd_login },
	{ "AUTHENTICATE", CMD_NOTAUTH, 0, imap_cmd_authenticate },
	{ "STARTTLS", CMD_NOTAUTH, 0, imap_cmd_starttls },
	{ "COMPRESS", CMD_AUTH, 0, imap_cmd_compress },
	{ "ENABLE", CMD_AUTH, 0, imap_cmd_enable },
	{ "NAMESPACE", CMD_AUTH, 0, imap_cmd_namespace },
	{ "IDLE", CMD_AUTH, 0, imap_cmd_idle },
	{ "SELECT", CMD_AUTH, 0, imap_cmd_select },
	{ "EXAMINE", CMD_AUTH, 1, imap_cmd_select },
	{ "CREATE", CMD_AUTH | CMD_CHANGES, 0, imap_cmd_create },
	{ "DELETE", CMD_AUTH | CMD_CHANGES, 0, imap_cmd_delete },
	{ "RENAME", CMD_AUTH | CMD_CHANGES, 0, imap_cmd_rename },
	{ "SUBSCRIBE", CMD_AUTH | CMD_CHANGES, 1, imap_cmd_subscribe },
	{ "UNSUBSCRIBE", CMD_AUTH | CMD_CHANGES, 0, imap_cmd_subscribe },
	{ "LIST", CMD_AUTH, 0, imap_cmd_list },
	{ "LSUB", CMD_AUTH, 1, imap_cmd_list },
	{ "STATUS", CMD_AUTH, 0, imap_cmd_status },
	{ "GETQUOTAROOT", CMD_AUTH, 0, imap_cmd_getquotaroot },
	{ "GETQUOTA", CMD_AUTH, 0, imap_cmd_getquota },
	{ "SETQUOTA", CMD_AUTH, 0, imap_cmd_setquota },
	{ "APPEND", CMD_AUTH | CMD_CHANGES | CMD_LITERAL8, 0,
	    imap_cmd_append },
	{ "CHECK", CMD_SELECTED, 1, cmd_noop },
	/* CLOSE expunges, though not on a replica (its view is read-only) */
	{ "CLOSE", CMD_SELECTED | CMD_WRITES, 1, imap_cmd_close },
	{ "UNSELECT", CMD_SELECTED, 0, imap_cmd_close },
	{ "EXPUNGE", CMD_SELECTED | CMD_CHANGES, 0, imap_cmd_expunge },
	{ "CANCELUPDATE", CMD_SELECTED, 0, imap_cmd_cancelupdate },
	{ "SEARCH", CMD_SELECTED | CMD_USES_SEQ, 0, imap_cmd_search },
	{ "SORT", CMD_SELECTED | CMD_USES_SEQ, 0, imap_cmd_sort },
	{ "THREAD", CMD_SELECTED | CMD_USES_SEQ, 0, imap_cmd_thread },
	/* FETCH sets \Seen, but for itself only on a replica (read-only) */
	{ "FETCH", CMD_SELECTED | CMD_USES_SEQ | CMD_WRITES, 0,
	    imap_cmd_fetch },
	{ "STORE", CMD_SELECTED | CMD_USES_SEQ | CMD_CHANGES, 0,
	    imap_cmd_store },
	{ "COPY", CMD_SELECTED | CMD_CHANGES, 0, imap_cmd_copy },
	{ "MOVE", CMD_SELECTED | CMD_CHANGES, 0, imap_cmd_move },
};

/* After "UID": the same commands with UIDs for sequence numbers. */
static const struct imap_command uid_commands[] = {
	{ "SEARCH", CMD_SELECTED, 1, imap_cmd_search },
	{ "SORT", CMD_SELECTED, 1, imap_cmd_sort },
	{ "THREAD", CMD_SELECTED, 1, imap_cmd_thread },
	{ "FETCH", CMD_SELECTED | CMD_WRITES, 1, imap_cmd_fetch },
	{ "STORE", CMD_SELECTED | CMD_CHANGES, 1, imap_cmd_store },
	{ "COPY", CMD_SELECTED | CMD_CHANGES, 1, imap_cmd_copy },
	{ "MOVE", CMD_SELECTED | CMD_CHANGES, 1, imap_cmd_move },
	{ "EXPUNGE", CMD_SELECTED | CMD_CHANGES, 1, imap_cmd_expunge },
};

const struct imap_command *
imap_command_find(const char *name, int uid)
{
	const struct imap_command	*table = uid ? uid_commands : commands;
	size_t				 i, n;

	n = uid ? sizeof(uid_commands) / sizeof(*uid_commands) :
	    sizeof(commands) / sizeof(*commands);
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

/* The session states (bits 1 << enum imap_state) a command runs in. */
static unsigned
command_states(const struct imap_command *c)
{
	unsigned	 states = 0;

	if (c->flags & CMD_NOTAUTH)
		states |= 1u << IMAP_NOTAUTH;
	if (c->flags & CMD_AUTH)
		states |= (1u << IMAP_AUTH) | (1u << IMAP_SELECTED);
	if (c->flags & CMD_SELECTED)
		states |= 1u << IMAP_SELECTED;
	return states;
}

int
imap_command_allowed(struct session *s, const struct imap_command *c)
{
	struct imap_session	*ims = imap_of(s);

	if ((command_states(c) & (1u << ims->state)) == 0) {
		imap_reply(s, "BAD %s", ims->state == IMAP_NOTAUTH ?
		    "Log in first" : c->flags == CMD_NOTAUTH ?
		    "Already logged in" : "No mailbox selected");
		return 0;
	}
	if (!imap_session_still_valid(s)) {
		imap_reply(s, "NO [UNAVAILABLE] Session ended");
		return 0;
	}
	if (sync_is_replica() && (c->flags & CMD_CHANGES) == CMD_CHANGES) {
		imap_reply(s, "NO [CANNOT] This server is a read-only replica; "
		    "make changes on the master");
		return 0;
	}
	return 1;
}

/*
 * Whether the framed command at line (its tag, its name, after UID the
 * name that follows) may write to the store (CMD_WRITES).  Such a
 * command waits for the write lock before it is taken from the buffer.
 */
static int
command_writes(const char *line, size_t len)
{
	const struct imap_command	*c = NULL;
	char				 name[16];
	const char			*p = line, *end = line + len;
	size_t				 n;
	int				 uid = 0;

	while (p < end && *p != ' ')
		p++;		/* the tag */
	while (p < end && c == NULL) {
		p++;
		for (n = 0; p + n < end && n + 1 < sizeof(name) &&
		    imap_is_atom_char(p[n]); n++)
			name[n] = p[n];
		name[n] = '\0';
		p += n;
		if (uid || strcasecmp(name, "UID") != 0) {
			c = imap_command_find(name, uid);
			break;
		}
		uid = 1;
	}
	return c != NULL && (c->flags & CMD_WRITES) != 0;
}

int
imap_prelogin_counted(struct session *s)
{
	struct imap_session	*ims = imap_of(s);

	if (ims->state != IMAP_NOTAUTH || ++ims->priv->prelogin_commands <=
	    IMAP_MAX_PRELOGIN_COMMANDS)
		return 1;
	/* A client logs in within a few; a flood never does. */
	session_printf(s, "* BYE Too many commands before login\r\n");
	ims->state = IMAP_LOGOUT;
	imap_reply(s, "BAD Log in first");
	return 0;
}

/* Runs one parsed command: look-up, the table's checks, handler. */
static void
command_run(struct session *s, struct imap_cmd *cmd)
{
	struct imap_session		*ims = imap_of(s);
	const struct imap_command	*c;
	const struct imap_arg		*args = cmd->args;
	size_t				 nargs = cmd->nargs;

	c = imap_command_find(cmd->name, 0);
	if (strcmp(cmd->name, "UID") == 0) {
		if (nargs == 0 || args[0].type != IMAP_ARG_ATOM) {
			imap_reply(s, "BAD UID wants a command");
			return;
		}
		c = imap_command_find(args[0].str, 1);
		args++;
		nargs--;
	}
	if (!imap_prelogin_counted(s))
		return;
	if (c == NULL) {
		imap_reply(s, "BAD Unknown command");
		return;
	}
	if (cmd->literal8 && (c->flags & CMD_LITERAL8) == 0) {
		imap_reply(s, "BAD Only APPEND takes a literal8 (~{N})");
		return;
	}
	if (!imap_command_allowed(s, c))
		return;
	ims->uses_seq = (c->flags & CMD_USES_SEQ) != 0;
	c->run(s, args, nargs, c->variant);
}

static void	buffered_tag(struct session *, char *, size_t);

/* Parses and runs one framed command of len bytes. */
static void
command_parse(struct session *s, size_t len)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_cmd		 cmd;
	enum imap_parse_status	 st;
	const char		*why;
	char			 tag[64];

	ims->priv->head0 = store_replog_head(s->srv->store);
	st = imap_parse(buf_ptr(&s->in), len, IMAP_MAX_DEPTH, IMAP_MAX_ARGS,
	    &cmd, &why);
	if (st == IMAP_PARSE_NOMEM || (st != IMAP_PARSE_NO_TAG &&
	    (ims->tag = strdup(cmd.tag)) == NULL)) {
		/* Nothing ran: a temporary error, under the client's tag. */
		buffered_tag(s, tag, sizeof(tag));
		buf_consume(&s->in, len);
		session_printf(s, "%s NO [UNAVAILABLE] Out of memory\r\n",
		    tag);
		imap_cmd_free(&cmd);
		return;
	}
	buf_consume(&s->in, len);
	if (st == IMAP_PARSE_NO_TAG) {
		session_printf(s, "* BAD %s\r\n", why);
		count_bad(s);
		if (ims->state == IMAP_LOGOUT)
			session_close(s);
		return;
	}
	if (st == IMAP_PARSE_OK)
		command_run(s, &cmd);
	else
		imap_reply(s, "BAD %s%s", st == IMAP_PARSE_BAD ? "" :
		    "[LIMIT] ", why);
	imap_cmd_free(&cmd);
	if (ims->step != NULL)		/* its first step is done */
		step_wrote(s, ims->priv->head0);
	else if (ims->priv->mode == IN_COMMAND)
		imap_command_finish(s);
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

uint64_t
imap_nonsync_max(const struct session *s)
{
	return s->srv->settings->imap_literal_minus ? IMAP_LITERAL_MINUS :
	    UINT64_MAX;
}

/*
 * Refuses the literal framing stopped at (its line ends at lit_lf), of
 * size bytes, past `limit` (IMAP_MAX_LITERAL outside APPEND, or
 * LITERAL-'s for "{N+}").  The BAD goes at once (the command changed
 * nothing): a client may stop sending a non-synchronizing literal when
 * it sees it; what it sends is dropped as it arrives, never buffered
 * (RFC 7888 4), and nothing more is answered for it.
 */
static void
refuse_literal(struct session *s, uint64_t size, uint64_t limit)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	char			 tag[64];
	int			 plus = p->frame.lit_plus;

	buffered_tag(s, tag, sizeof(tag));
	buf_consume(&s->in, p->frame.lit_lf + 1);
	imap_frame_reset(&p->frame);
	session_printf(s, "%s BAD [TOOBIG] Literal of %llu bytes is over the "
	    "limit of %llu%s\r\n", tag, (unsigned long long)size,
	    (unsigned long long)limit,
	    limit < IMAP_MAX_LITERAL ? " for {N+}: send it as {N}" : "");
	count_bad(s);
	if (ims->state == IMAP_LOGOUT)
		session_close(s);
	else if (plus) {
		imap_discard_literal(s, size);
		p->discard_replied = 1;
	}
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
	struct imap_frame_limits max = { session_line_max(s, IMAP_MAX_LINE),
	    IMAP_MAX_LITERAL, imap_nonsync_max(s) };

	if (buf_used(&s->in) == 0)
		return 0;	/* run for its output, nothing to frame */
	st = imap_frame_scan(&p->frame, buf_ptr(&s->in), buf_used(&s->in),
	    &max, &len, &size);
	at_literal = st == IMAP_FRAME_CONTINUE || (st == IMAP_FRAME_MORE &&
	    p->frame.scanned > 0 && p->frame.scanned == p->frame.lit_lf);
	if (st != IMAP_FRAME_TOO_BIG)
		size = p->frame.literal;
	if ((at_literal || st == IMAP_FRAME_TOO_BIG) &&
	    imap_append_begin(s, size))
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
		refuse_literal(s, size, max.literal);
		return 1;
	case IMAP_FRAME_NONSYNC_TOO_BIG:
		refuse_literal(s, size, max.nonsync);
		return 1;
	case IMAP_FRAME_TOO_LONG:
		if (imap_id_begin(s))
			return 1;
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
		imap_discard_literal(s, 0);
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
 * reply goes out in imap_committed.  One whose earlier step a failed
 * group commit undid (s->lost) has changed the store too, if only by
 * half: it fails.
 */
void
imap_command_finish(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;

	/* Cut off (a FETCH whose message vanished mid-literal): no reply. */
	if (s->io == SESSION_CLOSING)
		return;
	p->changed = s->lost != STORE_OK || head_moved(s, p->head0);
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
		imap_hold_reply(s);
		return;
	}
	imap_command_reply(s, 1);
}

/*
 * Holds the reply until hold_until (imap_wake sends it), taking not a
 * byte more meanwhile: no busy loop.
 */
void
imap_hold_reply(struct session *s)
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
void
imap_command_reply(struct session *s, int committed)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	const char		*reply = ims->reply;
	enum store_err		 err = s->srv->commit_err;

	/* A step's changes a group commit undid: not done, if only part. */
	if (s->lost != STORE_OK) {
		committed = 0;
		err = s->lost;
		s->lost = STORE_OK;
	}
	p->mode = IN_COMMAND;
	p->hold_until = 0;
	s->paused = 0;
	/* After "* BYE" nothing but the tagged reply (RFC 3501 6.1.3). */
	if (ims->view != NULL && committed && ims->state != IMAP_LOGOUT)
		imap_sync(s, !ims->uses_seq);
	else if (ims->view != NULL && p->changed)
		imap_view_rolled_back(s);
	if (!committed && p->changed)
		reply = err == STORE_FULL ? IMAP_NO_FULL :
		    "NO [UNAVAILABLE] The change could not be saved";
	else if (reply == NULL)
		reply = ims->reply_lost != NULL ? ims->reply_lost :
		    "NO [UNAVAILABLE] Out of memory";
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
	ims->reply_lost = NULL;
	ims->uses_seq = 0;
	if (ims->state == IMAP_LOGOUT)
		session_close(s);
}

/* Runs the next step of a command made in steps. */
static void
run_step(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	int64_t			 before = store_replog_head(s->srv->store);

	if (!ims->step(s, ims->step_arg)) {
		step_wrote(s, before);
		return;
	}
	ims->step_free(ims->step_arg);
	ims->step = NULL;
	ims->step_free = NULL;
	ims->step_arg = NULL;
	s->resume = 0;
	imap_command_finish(s);
}

/* --- the session ------------------------------------------------------------ */

/*
 * Between commands (or in IDLE), the updating searches test what
 * changed, a step at a time, before the next command is taken.
 * Returns 1 when they have nothing left to test.
 */
static int
context_updates_done(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	enum input_mode		 mode = ims->priv->mode;

	if (ims->view == NULL || (mode != IN_COMMAND && mode != IN_IDLE))
		return 1;
	if (session_output_high(s) || !imap_context_run(s)) {
		s->resume = 1;
		return 0;
	}
	s->resume = 0;
	return 1;
}

/*
 * Runs the complete commands already buffered (clients pipeline) for at
 * most a step's time (IMAP_STEP_USEC), at least one: a thousand
 * pipelined commands that each cost a little, with short replies, would
 * otherwise all run in one loop iteration.  The rest run in the next.
 */
static void
imap_input(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	struct imap_step_budget	 budget;
	int			 progress = 1;

	if (ims->step != NULL && !session_output_high(s) &&
	    (!p->writes || session_store_ready(s)))
		run_step(s);
	if (ims->step == NULL && !context_updates_done(s))
		return;
	if (ims->step == NULL)
		s->resume = 0;	/* no step, no update left: input alone */
	imap_step_begin(&budget);
	while (progress && s->io == SESSION_OPEN && !session_output_high(s) &&
	    ims->step == NULL) {
		switch (p->mode) {
		case IN_COMMAND:
			if (budget.done++ > 0 && !imap_step_time_left(&budget)) {
				s->resume = 1;	/* even after the client's FIN */
				return;
			}
			progress = input_command(s);
			break;
		case IN_AUTH:
			progress = imap_input_auth(s);
			break;
		case IN_IDLE:
			progress = imap_input_idle(s);
			break;
		case IN_APPEND:
			progress = imap_input_append(s);
			break;
		case IN_APPEND_END:
			progress = imap_input_append_end(s);
			break;
		case IN_DISCARD:
			progress = input_discard(s);
			break;
		case IN_SKIP_LINE:
			progress = input_skip_line(s);
			break;
		case IN_ID:
			progress = imap_input_id(s);
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
		imap_hold_reply(s);
	else
		imap_command_reply(s, ok);
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
	    imap_session_still_valid(s))
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
			imap_command_reply(s, 1);
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
	imap_greet(s);
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
	imap_append_free(ims->priv->append);
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

