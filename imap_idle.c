/*
 * imap_idle.c — IDLE (RFC 2177): the session waits for DONE in its own
 * input mode, and imap_wake() (imap.c) reports changes meanwhile.
 */
#include <strings.h>

#include "imap_core.h"
#include "store.h"

void
imap_cmd_idle(struct session *s, const struct imap_arg *args, size_t nargs,
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
int
imap_input_idle(struct session *s)
{
	char	*line;
	size_t	 len;
	int	 got;

	if ((got = imap_mode_line(s, &line, &len)) == 0)
		return 0;
	if (got > 0 && strcasecmp(line, "DONE") == 0)
		imap_reply(s, "OK IDLE terminated");
	else
		imap_reply(s, "BAD Expected DONE");
	/* IDLE writes nothing: what others wrote meanwhile is not its. */
	imap_of(s)->priv->head0 = store_replog_head(s->srv->store);
	imap_command_finish(s);
	return 1;
}

