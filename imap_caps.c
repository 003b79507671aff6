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

/* COMPRESS=DEFLATE (RFC 4978): after login, until it is on. */
static int
offer_compress(const struct session *s)
{
	return !notauth(s) && s->tp != NULL && !session_compressed(s);
}

/* ENABLE CONDSTORE (RFC 7162 3.1). */
static int
enable_condstore(struct imap_session *ims)
{
	if (ims->condstore)
		return 0;
	ims->condstore = 1;
	return 1;
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

/* Every capability, in the order CAPABILITY lists them. */
static const struct imap_capability caps[] = {
	{ "IMAP4rev1", NULL, NULL },
	{ "LITERAL+", NULL, NULL },
	{ "SASL-IR", NULL, NULL },
	{ "ID", NULL, NULL },
	{ "ENABLE", NULL, NULL },
	{ "IDLE", NULL, NULL },
	{ "NAMESPACE", NULL, NULL },
	{ "UIDPLUS", NULL, NULL },
	{ "MULTIAPPEND", NULL, NULL },
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
	{ "OBJECTID", NULL, NULL },
	{ "WITHIN", NULL, NULL },
	{ "SORT", NULL, NULL },
	{ "SORT=DISPLAY", NULL, NULL },
	{ "THREAD=ORDEREDSUBJECT", NULL, NULL },
	{ "THREAD=REFERENCES", NULL, NULL },
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

/* ID (RFC 2971): the client's list is only logged. */
void
imap_cmd_id(struct session *s, const struct imap_arg *args, size_t nargs,
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
