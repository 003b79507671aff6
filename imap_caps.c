/*
 * imap_caps.c — what the server says it is: the one registry of
 * capabilities, from which the greeting, CAPABILITY, the [CAPABILITY]
 * code after login and ENABLE all come; ID and NAMESPACE.
 *
 * An extension adds itself with one row in caps[]: its name, when it is
 * offered (always, or a predicate on the session: STARTTLS only before
 * TLS), and, when a client may ENABLE it (RFC 5161), the function that
 * turns it on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_core.h"
#include "settings.h"
#include "tls.h"

struct imap_capability {
	const char	*name;
	/* offered in the session's state now; NULL: always */
	int		(*offered)(const struct session *);
	/* ENABLE: turns it on, 1 when it was off; NULL: not enableable */
	int		(*enable)(struct imap_session *);
};

/* Whether the client has not logged in yet. */
static int
notauth(const struct session *s)
{
	const struct imap_session	*ims = s->proto;

	return ims->state == IMAP_NOTAUTH;
}

/* STARTTLS: before login, on a connection without TLS that can have it. */
static int
offer_starttls(const struct session *s)
{
	return notauth(s) && s->tp != NULL && tls_available() &&
	    !session_secure(s);
}

/* AUTH=PLAIN before login where logging in is allowed... */
static int
offer_auth_plain(const struct session *s)
{
	return notauth(s) && imap_login_allowed(s);
}

/* ...and LOGINDISABLED where it is not (RFC 3501 6.2.3). */
static int
offer_logindisabled(const struct session *s)
{
	return notauth(s) && !imap_login_allowed(s);
}

/* LITERAL- (RFC 7888) where the setting asks for it, else LITERAL+. */
static int
offer_literal_minus(const struct session *s)
{
	return s->srv->settings->imap_literal_minus;
}

static int
offer_literal_plus(const struct session *s)
{
	return !offer_literal_minus(s);
}

/* COMPRESS=DEFLATE (RFC 4978): after login, until it is on. */
static int
offer_compress(const struct session *s)
{
	return !notauth(s) && s->tp != NULL && !session_compressed(s);
}

/* QUOTA=RES-STORAGE: a storage limit is set. */
static int
offer_quota_storage(const struct session *s)
{
	return s->srv->settings->quota_storage != 0;
}

/* QUOTA=RES-MESSAGE: a message limit is set. */
static int
offer_quota_message(const struct session *s)
{
	return s->srv->settings->quota_messages != 0;
}

/* Turns a session's switch on: 1 when it was off. */
static int
turn_on(int *on)
{
	if (*on)
		return 0;
	*on = 1;
	return 1;
}

/* ENABLE CONDSTORE (RFC 7162 3.1). */
static int
enable_condstore(struct imap_session *ims)
{
	return turn_on(&ims->condstore);
}

/*
 * ENABLE QRESYNC: implies CONDSTORE (RFC 7162 3.2.3) and turns EXPUNGE
 * responses into VANISHED.
 */
static int
enable_qresync(struct imap_session *ims)
{
	if (ims->qresync)
		return 0;
	ims->qresync = ims->condstore = 1;
	return 1;
}

/*
 * ENABLE UTF8=ACCEPT (RFC 6855 3): mailbox names in UTF-8 both ways,
 * UTF-8 in quoted strings, no CHARSET in SEARCH.
 */
static int
enable_utf8(struct imap_session *ims)
{
	return turn_on(&ims->utf8);
}

/*
 * ENABLE IMAP4rev2 (RFC 9051): the session follows rev2 where it differs
 * from IMAP4rev1 (its Appendix E): no RECENT response, \Recent flag,
 * NEW, OLD or RECENT search key or STATUS RECENT; SEARCH answered with
 * ESEARCH; mailbox names in UTF-8; SELECT with a LIST response and
 * without [UNSEEN].
 */
static int
enable_rev2(struct imap_session *ims)
{
	return turn_on(&ims->rev2);
}

/* Every capability, in the order CAPABILITY lists them. */
static const struct imap_capability caps[] = {
	{ "IMAP4rev1", NULL, NULL },
	{ "IMAP4rev2", NULL, enable_rev2 },
	{ "LITERAL+", offer_literal_plus, NULL },
	{ "LITERAL-", offer_literal_minus, NULL },
	{ "SASL-IR", NULL, NULL },
	{ "ID", NULL, NULL },
	{ "ENABLE", NULL, NULL },
	{ "IDLE", NULL, NULL },
	{ "NAMESPACE", NULL, NULL },
	{ "UIDPLUS", NULL, NULL },
	{ "MULTIAPPEND", NULL, NULL },
	{ "CATENATE", NULL, NULL },
	{ "MOVE", NULL, NULL },
	{ "UNSELECT", NULL, NULL },
	{ "CHILDREN", NULL, NULL },
	{ "SPECIAL-USE", NULL, NULL },
	{ "LIST-EXTENDED", NULL, NULL },
	{ "LIST-STATUS", NULL, NULL },
	{ "CONDSTORE", NULL, enable_condstore },
	{ "QRESYNC", NULL, enable_qresync },
	{ "ESEARCH", NULL, NULL },
	{ "SEARCHRES", NULL, NULL },
	{ "STATUS=SIZE", NULL, NULL },
	{ "BINARY", NULL, NULL },
	{ "OBJECTID", NULL, NULL },
	{ "WITHIN", NULL, NULL },
	{ "SAVEDATE", NULL, NULL },
	{ "UTF8=ACCEPT", NULL, enable_utf8 },
	{ "SORT", NULL, NULL },
	{ "SORT=DISPLAY", NULL, NULL },
	{ "ESORT", NULL, NULL },
	{ "CONTEXT=SEARCH", NULL, NULL },
	{ "CONTEXT=SORT", NULL, NULL },
	{ "THREAD=ORDEREDSUBJECT", NULL, NULL },
	{ "THREAD=REFERENCES", NULL, NULL },
	{ "QUOTA", imap_quota_set, NULL },
	{ "QUOTA=RES-STORAGE", offer_quota_storage, NULL },
	{ "QUOTA=RES-MESSAGE", offer_quota_message, NULL },
	{ "STARTTLS", offer_starttls, NULL },
	{ "AUTH=PLAIN", offer_auth_plain, NULL },
	{ "LOGINDISABLED", offer_logindisabled, NULL },
	{ "COMPRESS=DEFLATE", offer_compress, NULL },
};

#define NCAPS	(sizeof(caps) / sizeof(*caps))

/* Whether capability c is offered to the session now. */
static int
offered(const struct session *s, const struct imap_capability *c)
{
	return c->offered == NULL || c->offered(s);
}

/*
 * The capability list for the session's state, space separated.  The
 * result lives in a static buffer until the next call; the buffer holds
 * every name, so nothing is ever cut off.
 */
const char *
imap_capabilities(const struct session *s)
{
	static char	 list[IMAP_MAX_CAPS_TEXT];
	size_t		 i, len = 0;

	list[0] = '\0';
	for (i = 0; i < NCAPS && len < sizeof(list); i++)
		if (offered(s, &caps[i]))
			len += snprintf(list + len, sizeof(list) - len, "%s%s",
			    len > 0 ? " " : "", caps[i].name);
	return list;
}

/* The greeting: "* OK [CAPABILITY ...] name mailrepd IMAP ready". */
void
imap_greet(struct session *s)
{
	session_printf(s, "* OK [CAPABILITY %s] %s mailrepd IMAP ready\r\n",
	    imap_capabilities(s), s->srv->settings->name);
}

void
imap_cmd_capability(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	(void)args;
	(void)variant;
	if (nargs != 0) {
		imap_reply(s, "BAD CAPABILITY takes no arguments");
		return;
	}
	session_printf(s, "* CAPABILITY %s\r\n", imap_capabilities(s));
	imap_reply(s, "OK CAPABILITY completed");
}

/* --- ID (RFC 2971) ------------------------------------------------------- */

#define ID_BAD_LIST	"BAD ID wants NIL or a list of at most 30 field-value " \
			"pairs: fields of up to 30 octets, values of up to 1024"

/* Whether a string of len octets may be a field (or a value) of ID. */
static int
id_string_fits(size_t len, int value)
{
	return len <= (value ? IMAP_ID_MAX_VALUE : IMAP_ID_MAX_FIELD);
}

/* The server's side of ID, and the tagged OK. */
static void
id_reply(struct session *s)
{
	session_printf(s, "* ID (\"name\" \"mailrepd\" \"version\" \"%s\")\r\n",
	    MAILREPD_VERSION);
	imap_reply(s, "OK ID completed");
}

/* ID: the client's list is checked against RFC 2971's limits, not kept. */
void
imap_cmd_id(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	const struct imap_arg	*a;
	size_t			 i;

	(void)variant;
	if (nargs != 1 || (args[0].type != IMAP_ARG_LIST &&
	    args[0].type != IMAP_ARG_NIL)) {
		imap_reply(s, ID_BAD_LIST);
		return;
	}
	if (args[0].type == IMAP_ARG_LIST && (args[0].nlist % 2 != 0 ||
	    args[0].nlist > 2 * IMAP_ID_MAX_PAIRS)) {
		imap_reply(s, ID_BAD_LIST);
		return;
	}
	for (i = 0; args[0].type == IMAP_ARG_LIST && i < args[0].nlist; i++) {
		a = &args[0].list[i];
		if (a->type == IMAP_ARG_LIST || (a->type == IMAP_ARG_NIL &&
		    i % 2 == 0) || !id_string_fits(a->len, i % 2)) {
			imap_reply(s, ID_BAD_LIST);
			return;
		}
	}
	id_reply(s);
}

/* Where an ID list read as it comes is (struct imap_id_scan's state). */
enum {
	ID_BETWEEN,		/* before a string, or the ")" */
	ID_QUOTED,		/* in a quoted string */
	ID_ESCAPED,		/* after its "\" */
	ID_N, ID_NI,		/* in a NIL value */
	ID_CLOSED,		/* after the ")": the line end */
	ID_CR,			/* after its CR */
};

enum id_scan_status {
	ID_SCAN_MORE,		/* all read: more to come */
	ID_SCAN_DONE,		/* the list and its line end read */
	ID_SCAN_BAD,		/* not a list ID takes: *used stops before */
	ID_SCAN_LITERAL,	/* a literal, which this does not read */
};

/* One byte between the strings of an ID list. */
static enum id_scan_status
id_scan_between(struct imap_id_scan *id, char c)
{
	switch (c) {
	case ' ':
		return ID_SCAN_MORE;
	case '"':
		id->value = id->strings % 2;
		id->len = 0;
		id->state = ID_QUOTED;
		return id->strings < 2 * IMAP_ID_MAX_PAIRS ? ID_SCAN_MORE :
		    ID_SCAN_BAD;
	case 'N':
	case 'n':
		id->state = ID_N;
		return id->strings % 2 == 1 ? ID_SCAN_MORE : ID_SCAN_BAD;
	case ')':
		id->state = ID_CLOSED;
		return id->strings % 2 == 0 ? ID_SCAN_MORE : ID_SCAN_BAD;
	case '{':
		return ID_SCAN_LITERAL;
	default:
		return ID_SCAN_BAD;
	}
}

/* One byte of an ID list after its "(". */
static enum id_scan_status
id_scan_byte(struct imap_id_scan *id, char c)
{
	switch (id->state) {
	case ID_BETWEEN:
		return id_scan_between(id, c);
	case ID_QUOTED:
		if (c == '"') {
			id->strings++;
			id->state = ID_BETWEEN;
			return ID_SCAN_MORE;
		}
		if (c == '\\')
			id->state = ID_ESCAPED;
		else if (!id_string_fits(++id->len, id->value) || c == '\r' ||
		    c == '\n' || c == '\0')
			return ID_SCAN_BAD;
		return ID_SCAN_MORE;
	case ID_ESCAPED:
		id->state = ID_QUOTED;
		return (c == '"' || c == '\\') &&
		    id_string_fits(++id->len, id->value) ? ID_SCAN_MORE :
		    ID_SCAN_BAD;
	case ID_N:
		id->state = ID_NI;
		return c == 'I' || c == 'i' ? ID_SCAN_MORE : ID_SCAN_BAD;
	case ID_NI:
		id->strings++;
		id->state = ID_BETWEEN;
		return c == 'L' || c == 'l' ? ID_SCAN_MORE : ID_SCAN_BAD;
	case ID_CLOSED:
		id->state = ID_CR;
		if (c == '\r')
			return ID_SCAN_MORE;
		/* FALLTHROUGH */
	default:
		return c == '\n' ? ID_SCAN_DONE : ID_SCAN_BAD;
	}
}

/*
 * Reads n bytes of an ID list after its "(" on from where id is, with
 * the limits of imap_cmd_id(); *used says how many bytes it took (the
 * line end too when done).
 */
static enum id_scan_status
id_scan(struct imap_id_scan *id, const char *p, size_t n, size_t *used)
{
	enum id_scan_status	 st = ID_SCAN_MORE;

	for (*used = 0; *used < n && st == ID_SCAN_MORE; (*used)++)
		if ((st = id_scan_byte(id, p[*used])) == ID_SCAN_BAD ||
		    st == ID_SCAN_LITERAL)
			return st;
	return st;
}

int
imap_id_begin(struct session *s)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	struct imap_cmd		 cmd;
	const char		*why, *paren;
	char			 head[80];
	size_t			 n;
	int			 ok;

	n = buf_used(&s->in) < sizeof(head) - 2 ? buf_used(&s->in) :
	    sizeof(head) - 2;
	if ((paren = memchr(buf_ptr(&s->in), '(', n)) == NULL)
		return 0;
	/* "tag ID" and one space before the "(" */
	if ((n = paren - buf_ptr(&s->in)) == 0 || paren[-1] != ' ')
		return 0;
	memcpy(head, buf_ptr(&s->in), n - 1);
	head[n - 1] = '\r';
	head[n] = '\n';
	if (imap_parse(head, n + 1, IMAP_MAX_DEPTH, IMAP_MAX_ARGS, &cmd,
	    &why) != IMAP_PARSE_OK) {
		if (cmd.tag != NULL)
			imap_cmd_free(&cmd);
		return 0;
	}
	ok = strcmp(cmd.name, "ID") == 0 && cmd.nargs == 0;
	if (ok)
		ims->tag = strdup(cmd.tag);
	imap_cmd_free(&cmd);
	if (!ok)
		return 0;
	buf_consume(&s->in, n + 1);
	imap_frame_reset(&p->frame);
	p->head0 = store_replog_head(s->srv->store);
	memset(&p->id, 0, sizeof(p->id));
	p->mode = IN_ID;
	/* Refused: the reply once the rest of the line is dropped. */
	if (!imap_prelogin_counted(s) ||
	    !imap_command_allowed(s, imap_command_find("ID", 0)))
		imap_discard_literal(s, 0);
	return 1;
}

/*
 * IN_ID: reads what came of the list.  At its end, the reply; where it
 * is not one ID takes, BAD once the rest of the line is dropped; at a
 * literal (which would have to be read to find the line's end), BYE.
 */
int
imap_input_id(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	size_t			 used;

	switch (id_scan(&p->id, buf_ptr(&s->in), buf_used(&s->in), &used)) {
	case ID_SCAN_MORE:
		buf_consume(&s->in, used);
		return 0;
	case ID_SCAN_DONE:
		buf_consume(&s->in, used);
		p->mode = IN_COMMAND;
		id_reply(s);
		break;
	case ID_SCAN_BAD:
		/* the reply once the rest of the line is dropped */
		buf_consume(&s->in, used);
		imap_reply(s, ID_BAD_LIST);
		imap_discard_literal(s, 0);
		return 1;
	case ID_SCAN_LITERAL:
		session_printf(s, "* BYE ID too long to take with literals\r\n");
		imap_of(s)->state = IMAP_LOGOUT;
		p->mode = IN_COMMAND;
		imap_reply(s, ID_BAD_LIST);
		break;
	}
	imap_command_finish(s);
	return 1;
}

/* The registry's entry named name that a client may ENABLE, or NULL. */
static const struct imap_capability *
enableable(const struct session *s, const char *name)
{
	size_t	 i;

	for (i = 0; i < NCAPS; i++)
		if (caps[i].enable != NULL && offered(s, &caps[i]) &&
		    strcasecmp(caps[i].name, name) == 0)
			return &caps[i];
	return NULL;
}

/*
 * ENABLE (RFC 5161): turns on each named capability that the registry
 * says can be, and lists those that were off; others are ignored.
 */
void
imap_cmd_enable(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	const struct imap_capability	*c;
	size_t				 i;

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
		if ((c = enableable(s, args[i].str)) != NULL &&
		    c->enable(imap_of(s)))
			session_printf(s, " %s", c->name);
	}
	session_printf(s, "\r\n");
	imap_reply(s, "OK ENABLE completed");
}

void
imap_cmd_namespace(struct session *s, const struct imap_arg *args,
    size_t nargs, int variant)
{
	(void)args;
	(void)nargs;
	(void)variant;
	session_printf(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_reply(s, "OK NAMESPACE completed");
}
