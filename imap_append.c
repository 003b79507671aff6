/*
 * imap_append.c — APPEND (RFC 3501 6.3.11, UIDPLUS's APPENDUID).  The
 * message literal is streamed into a spool as it arrives (never held
 * whole: imap_append_begin() takes the command over when framing stops
 * at its literal), or, when it came whole with the command (a small
 * LITERAL+ literal), fed to the spool from the argument.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "imap_core.h"
#include "settings.h"
#include "spool.h"
#include "store.h"
#include "sync.h"

/* An APPEND whose message is arriving. */
struct imap_append {
	char		 mailbox[MAILBOX_MAX_NAME + 1];
	uint32_t	 flags;
	char		 keywords[STORE_MAX_KEYWORDS];
	int64_t		 internaldate;
	uint64_t	 left;		/* literal bytes still to come */
	struct spool	*spool;
};

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
 * list, optional date-time.  Fills ap; returns NULL or the BAD reply.
 */
static const char *
append_args(struct session *s, const struct imap_arg *args, size_t nargs,
    struct imap_append *ap)
{
	const char	*name;
	size_t		 i = 1;

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
	return NULL;
}

/*
 * Gets an APPEND of a message of size bytes ready: its arguments, its
 * mailbox, the size, a spool to take the message.  The command table's
 * checks (state, replica) have passed.  Returns the append, or NULL with
 * the tagged reply recorded.
 */
static struct imap_append *
append_ready(struct session *s, const struct imap_arg *args, size_t nargs,
    uint64_t size)
{
	struct imap_append	*ap;
	struct store_mailbox	 mb;
	enum store_err		 err = STORE_OK;
	const char		*bad = NULL;

	if ((ap = calloc(1, sizeof(*ap))) == NULL)
		bad = "NO [UNAVAILABLE] Out of memory";
	else if ((bad = append_args(s, args, nargs, ap)) != NULL)
		;
	else if ((err = store_mailbox_get(s->srv->store, imap_of(s)->user,
	    ap->mailbox, &mb)) != STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_TARGET, "APPEND");
	else if (size > (uint64_t)s->srv->settings->max_message_size)
		bad = "NO [TOOBIG] Message too large";
	else if (size == 0)
		bad = "NO Cannot save an empty message";
	else if ((ap->spool = spool_new(s->srv->settings->data_dir)) == NULL)
		bad = errno == ENOSPC ? IMAP_NO_FULL :
		    "NO [UNAVAILABLE] Temporary storage failure";
	if (bad == NULL && err == STORE_OK) {
		ap->left = size;
		return ap;
	}
	if (bad != NULL)
		imap_reply(s, "%s", bad);
	imap_append_free(ap);
	return NULL;
}

/*
 * Called when framing stops at a literal: if the command so far is
 * "tag APPEND mailbox [flags] [date]", that literal is the message, and
 * it is streamed into a spool rather than buffered.  Returns 1 when it
 * took the command over, 0 to frame it as usual.
 */
int
imap_append_begin(struct session *s, uint64_t size)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	struct imap_cmd		 cmd;
	struct imap_append	*ap = NULL;
	const char		*why;
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
	if (imap_command_allowed(s, imap_command_find(cmd.name, 0)))
		ap = append_ready(s, cmd.args, cmd.nargs, size);
	imap_cmd_free(&cmd);
	buf_consume(&s->in, p->frame.lit_lf + 1);
	imap_frame_reset(&p->frame);
	p->head0 = store_replog_head(s->srv->store);
	if (ap == NULL) {
		/* A LITERAL+ client sends the literal anyway: drop it. */
		if (plus)
			imap_discard_literal(s, size);
		else
			imap_command_finish(s);
		return 1;
	}
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
int
imap_input_append(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	struct imap_append	*ap = p->append;
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
append_store(struct session *s, struct imap_append *ap)
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
	if (!imap_session_still_valid(s)) {
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
	if (err != STORE_OK)
		imap_reply_store_error(s, err, IMAP_MISSING_TARGET, "APPEND");
	else
		imap_reply(s, "OK [APPENDUID %u %u] APPEND completed",
		    mb.uidvalidity, t.uid);
}

/* The rest of the APPEND line after the literal: nothing but CRLF. */
int
imap_input_append_end(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	char			*line;
	size_t			 len;
	int			 got;

	if (!session_store_ready(s) || (got = imap_mode_line(s, &line, &len)) == 0)
		return 0;
	if (got < 0)
		imap_reply(s, "BAD Line too long after the APPEND literal");
	else if (len != 0)
		imap_reply(s, "BAD Unexpected data after the APPEND literal "
		    "(MULTIAPPEND is not supported)");
	else
		append_store(s, p->append);
	imap_append_free(p->append);
	p->append = NULL;
	imap_command_finish(s);
	return 1;
}

/*
 * APPEND whose message arrived whole with the command (a LITERAL+
 * literal of at most IMAP_MAX_LITERAL bytes): the same checks and store
 * as the streamed path, fed from the argument.
 */
void
imap_cmd_append(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	struct imap_append	*ap;
	const struct imap_arg	*msg = NULL;
	const char		*lf;
	size_t			 off, n;

	(void)variant;
	if (nargs < 2 || (msg = &args[nargs - 1])->type != IMAP_ARG_STRING) {
		imap_reply(s, "BAD APPEND wants a mailbox and a message");
		return;
	}
	if ((ap = append_ready(s, args, nargs - 1, msg->len)) == NULL)
		return;
	for (off = 0; off < msg->len; off += n) {
		lf = memchr(msg->str + off, '\n', msg->len - off);
		n = lf ? (size_t)(lf - msg->str) + 1 - off : msg->len - off;
		spool_add_line(ap->spool, msg->str + off, n);
	}
	append_store(s, ap);
	imap_append_free(ap);
}

/* Frees an APPEND (NULL is none), its spool too. */
void
imap_append_free(struct imap_append *ap)
{
	if (ap == NULL)
		return;
	spool_free(ap->spool);
	free(ap);
}
