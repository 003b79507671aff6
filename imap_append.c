/*
 * imap_append.c — APPEND (RFC 3501 6.3.11), with MULTIAPPEND (RFC 3502:
 * several messages in one command, appended all or none), UIDPLUS's
 * APPENDUID, and CATENATE's messages made of parts (imap_catenate.c).
 * A message literal is streamed into a spool as it arrives, in whatever
 * pieces the reads cut it (never held whole: imap_append_begin() takes
 * the command over when framing stops at its literal); a literal that
 * arrived whole with the command (a small LITERAL+ one) is fed to a
 * spool from the argument.
 * Every message waits in its spool until the line ends; then all are
 * appended in one store step, after the bytes of the big ones went in,
 * in steps of their own (store_blob_stage()).
 */
#include <ctype.h>
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

/* One message of an APPEND. */
struct append_msg {
	uint32_t	 flags;
	char		*keywords;
	int64_t		 internaldate;
	struct spool	*spool;
};

/* An APPEND under way: its messages so far, the last one arriving. */
struct imap_append {
	char		 mailbox[MAILBOX_MAX_NAME + 1];
	struct append_msg msgs[IMAP_MAX_MULTIAPPEND];
	struct store_blob_in blobs[IMAP_MAX_MULTIAPPEND]; /* spools finished */
	size_t		 n;
	uint64_t	 left;		/* literal bytes still to come */
	int		 dropping;	/* refused: what still comes of the
					   command (LITERAL+) is dropped */
	int		 paren;		/* the literal is UTF8's "(~{n}":
					   its ")" comes after it */
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
 * A message's optional flag list and date-time, args[0..nargs), into m.
 * Returns NULL or the BAD reply.
 */
static const char *
message_args(struct session *s, const struct imap_arg *args, size_t nargs,
    struct append_msg *m)
{
	char	 kw[STORE_MAX_KEYWORDS] = "";
	size_t	 i = 0;

	m->internaldate = s->srv->now;
	if (i < nargs && args[i].type == IMAP_ARG_LIST) {
		if (imap_parse_flags(&args[i], &m->flags, kw, sizeof(kw)) < 0)
			return "BAD Invalid flags";
		i++;
	}
	if (i < nargs) {
		if (args[i].type != IMAP_ARG_STRING || args[i].literal ||
		    parse_date_time(args[i].str, &m->internaldate) < 0)
			return "BAD Invalid date-time";
		i++;
	}
	if (i != nargs)
		return "BAD Invalid APPEND arguments";
	if ((m->keywords = strdup(kw)) == NULL)
		return "NO [UNAVAILABLE] Out of memory";
	return NULL;
}

/*
 * Adds the next message of ap: flags and date-time from args[0..nargs),
 * and a spool to take its bytes.  Returns 0, or -1 with the tagged reply
 * recorded.
 */
static int
append_add(struct session *s, struct imap_append *ap,
    const struct imap_arg *args, size_t nargs)
{
	struct append_msg	*m = &ap->msgs[ap->n];
	const char		*bad;

	if (ap->n == IMAP_MAX_MULTIAPPEND) {
		imap_reply(s, "NO [LIMIT] APPEND takes at most %d messages",
		    IMAP_MAX_MULTIAPPEND);
		return -1;
	}
	ap->n++;
	if ((bad = message_args(s, args, nargs, m)) != NULL)
		;
	else if ((m->spool = spool_new(s->srv->settings->data_dir)) == NULL)
		bad = errno == ENOSPC ? IMAP_NO_FULL :
		    "NO [UNAVAILABLE] Temporary storage failure";
	if (bad != NULL) {
		imap_reply(s, "%s", bad);
		return -1;
	}
	return 0;
}

/* append_add() for a message that is a literal of size bytes. */
static int
append_add_literal(struct session *s, struct imap_append *ap,
    const struct imap_arg *args, size_t nargs, uint64_t size)
{
	if (append_add(s, ap, args, nargs) < 0)
		return -1;
	if (size > (uint64_t)s->srv->settings->max_message_size) {
		imap_reply(s, "NO [TOOBIG] Message too large");
		return -1;
	}
	if (size == 0) {
		imap_reply(s, "NO Cannot save an empty message");
		return -1;
	}
	ap->left = size;
	return 0;
}

/* Whether args[i] is a CATENATE and its part list (RFC 4469). */
static int
is_catenate(const struct imap_arg *args, size_t nargs, size_t i)
{
	return args[i].type == IMAP_ARG_ATOM &&
	    strcasecmp(args[i].str, "CATENATE") == 0 && i + 1 < nargs &&
	    args[i + 1].type == IMAP_ARG_LIST;
}

/*
 * Whether a message's literal may come in UTF8's data item: only after
 * ENABLE UTF8=ACCEPT.  If not, records the BAD.
 */
static int
utf8_item_allowed(struct session *s, int paren)
{
	if (!paren || imap_of(s)->utf8)
		return 1;
	imap_reply(s, "BAD APPEND's UTF8 needs ENABLE UTF8=ACCEPT");
	return 0;
}

/*
 * The message literal of args[i], or NULL: a literal, or UTF8's data
 * item (RFC 6855 4), "UTF8" then a list of one literal8 (*skip says
 * the list is an argument more).
 */
static const struct imap_arg *
message_literal(const struct imap_arg *args, size_t nargs, size_t i,
    size_t *skip)
{
	const struct imap_arg	*l = &args[i + 1];

	*skip = 0;
	if (args[i].type == IMAP_ARG_STRING && args[i].literal)
		return &args[i];
	if (args[i].type != IMAP_ARG_ATOM ||
	    strcasecmp(args[i].str, "UTF8") != 0 || i + 1 == nargs ||
	    l->type != IMAP_ARG_LIST || l->nlist != 1 ||
	    l->list[0].type != IMAP_ARG_STRING || !l->list[0].literal)
		return NULL;
	*skip = 1;
	return &l->list[0];
}

/*
 * Takes an APPEND's arguments: the mailbox, then per message an
 * optional flag list, an optional date-time and its literal (or
 * CATENATE's parts, or UTF8's literal after UTF8=ACCEPT).  When
 * `streamed`, the arguments end before the literal of the last message
 * (size bytes, still to come).  The command table's checks (state,
 * replica) have passed.  Returns 0, or -1 with the tagged reply
 * recorded.
 */
static int
append_parse(struct session *s, struct imap_append *ap,
    const struct imap_arg *args, size_t nargs, int streamed, uint64_t size)
{
	struct store_mailbox	 mb;
	enum store_err		 err;
	const struct imap_arg	*lit;
	const char		*name;
	size_t			 i, from = 1, skip;

	if (nargs < 1 || (name = imap_arg_mailbox(s, &args[0])) == NULL) {
		imap_reply(s, "BAD Invalid mailbox name");
		return -1;
	}
	snprintf(ap->mailbox, sizeof(ap->mailbox), "%s", name);
	if ((err = store_mailbox_get(s->srv->store, imap_of(s)->user,
	    ap->mailbox, &mb)) != STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_TARGET, "APPEND");
		return -1;
	}
	for (i = 1; i < nargs; i++) {
		if (is_catenate(args, nargs, i)) {
			if (append_add(s, ap, args + from, i - from) < 0 ||
			    imap_catenate(s, ap->msgs[ap->n - 1].spool,
			    &args[i + 1]) < 0)
				return -1;
			from = ++i + 1;
			continue;
		}
		if ((lit = message_literal(args, nargs, i, &skip)) == NULL)
			continue;
		if (!utf8_item_allowed(s, skip) || append_add_literal(s, ap, args + from, i - from,
		    lit->len) < 0)
			return -1;
		spool_add_bytes(ap->msgs[ap->n - 1].spool, lit->str, lit->len);
		i += skip;
		from = i + 1;
	}
	if (streamed)
		return append_add_literal(s, ap, args + from, nargs - from,
		    size);
	if (from != nargs || ap->n == 0) {
		imap_reply(s, "BAD APPEND wants a mailbox and a message");
		return -1;
	}
	return 0;
}

/*
 * The session takes the literal of ap's last message, size bytes: into
 * its spool, or into nothing when the command was refused (dropping: a
 * LITERAL+ client sends it anyway).  "+" asks for a synchronizing one.
 */
static void
append_receive(struct session *s, struct imap_append *ap, uint64_t size,
    int plus, int dropping)
{
	struct imap_private	*p = imap_of(s)->priv;

	ap->left = size;
	ap->dropping |= dropping;
	p->append = ap;
	p->mode = IN_APPEND;
	if (!plus)
		session_printf(s, "+ Ready for literal data\r\n");
}

/*
 * The length of line[0, brace) without the blanks before a literal, the
 * "~" of a literal8 (RFC 3516 4.4: a message that may hold NULs), and
 * UTF8's "UTF8 (" (RFC 6855 4), which *paren says.
 */
static size_t
before_literal(const char *line, size_t brace, int *paren)
{
	static const char	 utf8[] = "UTF8 (";
	const size_t		 n = sizeof(utf8) - 1;

	if (brace > 0 && line[brace - 1] == '~')
		brace--;
	*paren = brace >= n && strncasecmp(line + brace - n, utf8, n) == 0 &&
	    (brace == n || line[brace - n - 1] == ' ');
	if (*paren)
		brace -= n;
	while (brace > 0 && line[brace - 1] == ' ')
		brace--;
	return brace;
}

/*
 * Called when framing stops at a literal: if the command so far is
 * "tag APPEND mailbox [flags] [date]" (after MULTIAPPEND's messages that
 * arrived whole), that literal is a message, and it is streamed into a
 * spool rather than buffered.  Returns 1 when it took the command over,
 * 0 to frame it as usual.
 */
int
imap_append_begin(struct session *s, uint64_t size)
{
	struct imap_session	*ims = imap_of(s);
	struct imap_private	*p = ims->priv;
	struct imap_cmd		 cmd;
	struct imap_append	*ap;
	const char		*why;
	char			*head;
	size_t			 n = p->frame.lit_brace;
	int			 plus = p->frame.lit_plus, ok = 0, paren;

	n = before_literal(buf_ptr(&s->in), n, &paren);
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
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
	else if (imap_command_allowed(s, imap_command_find(cmd.name, 0)) &&
	    utf8_item_allowed(s, paren)) {
		ok = append_parse(s, ap, cmd.args, cmd.nargs, 1, size) == 0;
		ap->paren = paren;
	}
	imap_cmd_free(&cmd);
	buf_consume(&s->in, p->frame.lit_lf + 1);
	imap_frame_reset(&p->frame);
	p->head0 = store_replog_head(s->srv->store);
	if (!ok && (!plus || ap == NULL)) {
		imap_append_free(ap);
		/* A LITERAL+ client sends the literal anyway: drop it. */
		if (plus)
			imap_discard_literal(s, size);
		else
			imap_command_finish(s);
		return 1;
	}
	append_receive(s, ap, size, plus, !ok);
	return 1;
}

/*
 * Feeds the buffered part of the message literal to the spool as it
 * is: the spool takes bytes cut anywhere, so nothing of the literal
 * waits in the input buffer.
 */
int
imap_input_append(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	struct imap_append	*ap = p->append;
	size_t			 n = buf_used(&s->in);

	if (n > ap->left)
		n = (size_t)ap->left;
	if (!ap->dropping)
		spool_add_bytes(ap->msgs[ap->n - 1].spool, buf_ptr(&s->in), n);
	buf_consume(&s->in, n);
	ap->left -= n;
	if (ap->left == 0)
		p->mode = IN_APPEND_END;
	return n > 0;
}

/*
 * Whether the APPEND may still store its messages; else it is answered.
 * The node may have been demoted, or the user changed, while the
 * literal arrived or the big messages went in.
 */
static int
append_allowed(struct session *s)
{
	if (sync_is_replica()) {
		imap_reply(s, "NO [CANNOT] This server became a read-only "
		    "replica; make changes on the master");
		return 0;
	}
	if (!imap_session_still_valid(s)) {
		imap_reply(s, "NO [UNAVAILABLE] Session ended");
		return 0;
	}
	return 1;
}

/*
 * A step of a complete APPEND, whose spools are finished: a step of
 * writing its big messages' bytes (store_blob_stage(), a message at a
 * time), and once all are in, every message, all or none, with the
 * reply: APPENDUID with the new UIDs (RFC 4315).  Returns 1 when
 * answered, 0 when the next step goes on (imap_start_steps()).
 */
static int
append_step(struct session *s, void *arg)
{
	struct imap_append	*ap = arg;
	struct imap_session	*ims = imap_of(s);
	struct store_target	 t[IMAP_MAX_MULTIAPPEND];
	uint32_t		 uids[IMAP_MAX_MULTIAPPEND];
	struct store_mailbox	 mb;
	enum store_err		 err = STORE_OK;
	char			*set;
	size_t			 i;
	int			 whole = 1;

	if (!append_allowed(s))
		return 1;
	for (i = 0; i < ap->n && err == STORE_OK && whole; i++)
		err = store_blob_stage(s->srv->store, &ap->blobs[i], &whole);
	if (err == STORE_OK && !whole)
		return 0;
	memset(t, 0, sizeof(t));
	for (i = 0; i < ap->n; i++) {
		t[i].user = ims->user;
		t[i].mailbox = ap->mailbox;
		t[i].flags = ap->msgs[i].flags;
		t[i].keywords = ap->msgs[i].keywords;
		t[i].internaldate = ap->msgs[i].internaldate;
	}
	if (err == STORE_OK)
		err = store_deliver_all(s->srv->store, ap->blobs, t, ap->n);
	if (err == STORE_OK)
		err = store_mailbox_get(s->srv->store, ims->user, ap->mailbox,
		    &mb);
	if (err != STORE_OK) {
		imap_reply_store_error(s, err, IMAP_MISSING_TARGET, "APPEND");
		return 1;
	}
	for (i = 0; i < ap->n; i++)
		uids[i] = t[i].uid;
	set = imap_numbers_text(uids, ap->n);
	imap_reply(s, "OK [APPENDUID %u %s] APPEND completed",
	    mb.uidvalidity, set ? set : "");
	free(set);
	return 1;
}

/*
 * Stores every message of a complete APPEND (append_step()).  Returns
 * 1 when answered, 0 when its big messages go on in steps: the caller
 * hands ap to imap_start_steps() (append_go_on()).
 */
static int
append_store(struct session *s, struct imap_append *ap)
{
	size_t	 i;

	if (!append_allowed(s))
		return 1;
	for (i = 0; i < ap->n; i++)
		if (spool_finish(ap->msgs[i].spool, &ap->blobs[i]) < 0) {
			imap_reply(s, errno == ENOSPC ? IMAP_NO_FULL :
			    "NO [UNAVAILABLE] Could not store the message");
			return 1;
		}
	return append_step(s, ap);
}

/* The step_free of an APPEND in steps. */
static void
append_step_free(void *arg)
{
	imap_append_free(arg);
}

/*
 * The rest of an APPEND goes on in steps, which own ap; a store step
 * waits for the store's lock like any write.
 */
static void
append_go_on(struct session *s, struct imap_append *ap)
{
	imap_of(s)->priv->writes = 1;
	imap_start_steps(s, append_step, append_step_free, ap);
}

/*
 * The line between two messages of a MULTIAPPEND, after the space that
 * begins it: "[flags] [date-time] {size}" or "{size+}".  Takes the next
 * message over, or, when it is refused, finishes the command (the
 * client waits for "+" in vain) or drops it (LITERAL+).
 */
static void
append_next(struct session *s, struct imap_append *ap, const char *line,
    size_t len)
{
	struct imap_cmd	 cmd;
	const char	*brace = memrchr(line, '{', len), *why;
	char		*text = NULL, *end;
	uint64_t	 size;
	size_t		 k;
	int		 plus = 0, ok = 0, paren;

	if (brace == NULL || line[len - 1] != '}' || brace + 2 > line + len) {
		imap_reply(s, "BAD Unexpected data after the APPEND literal");
		imap_command_finish(s);
		return;
	}
	size = strtoull(brace + 1, &end, 10);
	if (*end == '+') {
		plus = 1;
		end++;
	}
	k = before_literal(line, brace - line, &paren);
	ap->paren = paren;
	if (end == brace + 1 || end != line + len - 1 || !isdigit(
	    (unsigned char)brace[1]) || asprintf(&text, "t X%s%.*s\r\n",
	    k > 0 ? " " : "", (int)k, line) < 0)
		imap_reply(s, "BAD Invalid literal in APPEND");
	else if (!utf8_item_allowed(s, paren))
		;
	else if (plus && size > imap_nonsync_max(s))
		imap_reply(s, "BAD [TOOBIG] Literal of %llu bytes is over the "
		    "limit of %d for {N+}: send it as {N}",
		    (unsigned long long)size, IMAP_LITERAL_MINUS);
	else if (imap_parse(text, strlen(text), IMAP_MAX_DEPTH,
	    IMAP_MAX_ARGS, &cmd, &why) != IMAP_PARSE_OK)
		imap_reply(s, "BAD %s", why);
	else {
		ok = !ap->dropping && append_add_literal(s, ap, cmd.args,
		    cmd.nargs, size) == 0;
		imap_cmd_free(&cmd);
	}
	free(text);
	if (ok || plus)
		append_receive(s, ap, size, plus, !ok);
	else
		imap_command_finish(s);
}

/*
 * The rest of the APPEND line after a literal: CRLF ends the command
 * (the messages are appended), a space another message (MULTIAPPEND);
 * first the ")" of UTF8's data item, when the literal was in one.
 */
int
imap_input_append_end(struct session *s)
{
	struct imap_private	*p = imap_of(s)->priv;
	struct imap_append	*ap = p->append;
	char			*line;
	size_t			 len;
	int			 got;

	if (!session_store_ready(s) ||
	    (got = imap_mode_line(s, &line, &len)) == 0)
		return 0;
	if (got > 0 && ap->paren && len > 0 && line[0] == ')') {
		line++;
		len--;
	} else if (got > 0 && ap->paren) {
		imap_reply(s, "BAD UTF8 wants \")\" after its literal");
		ap->dropping = 1;
	}
	ap->paren = 0;
	if (got > 0 && len > 1 && line[0] == ' ') {
		append_next(s, ap, line + 1, len - 1);
		if (p->mode == IN_APPEND)
			return 1;
	} else {
		if (got < 0)
			imap_reply(s, "BAD Line too long after the APPEND "
			    "literal");
		else if (len != 0)
			imap_reply(s, "BAD Unexpected data after the APPEND "
			    "literal");
		else if (!ap->dropping && !append_store(s, ap)) {
			p->append = NULL;
			append_go_on(s, ap);
			return 1;
		}
		imap_command_finish(s);
	}
	imap_append_free(ap);
	p->append = NULL;
	return 1;
}

/*
 * APPEND whose messages arrived whole with the command (LITERAL+
 * literals of at most IMAP_MAX_LITERAL bytes): the same checks and store
 * as the streamed path, fed from the arguments.
 */
void
imap_cmd_append(struct session *s, const struct imap_arg *args, size_t nargs,
    int variant)
{
	struct imap_append	*ap;

	(void)variant;
	if ((ap = calloc(1, sizeof(*ap))) == NULL)
		imap_reply(s, "NO [UNAVAILABLE] Out of memory");
	else if (append_parse(s, ap, args, nargs, 0, 0) == 0 &&
	    !append_store(s, ap)) {
		append_go_on(s, ap);
		return;
	}
	imap_append_free(ap);
}

/* Frees an APPEND (NULL is none), its spools too. */
void
imap_append_free(struct imap_append *ap)
{
	size_t	 i;

	if (ap == NULL)
		return;
	for (i = 0; i < ap->n; i++) {
		store_blob_unstage(&ap->blobs[i]);	/* reads the spool */
		spool_free(ap->msgs[i].spool);
		free(ap->msgs[i].keywords);
	}
	free(ap);
}
