/*
 * imap_core.h — the IMAP session core's own parts, for imap.c and the
 * files that own an input mode or answer before a mailbox is selected:
 * imap_auth.c (LOGIN, AUTHENTICATE, STARTTLS, COMPRESS), imap_append.c
 * (APPEND), imap_idle.c (IDLE) and imap_caps.c (the capability and
 * ENABLE registry).  Command files that work on mailboxes and messages
 * need only imap_session.h.
 */
#ifndef MAILREPD_IMAP_CORE_H
#define MAILREPD_IMAP_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "imap_parse.h"
#include "imap_session.h"
#include "proto.h"
#include "store.h"

/*
 * What the session reads next; imap_input() switches on it.
 *
 *   COMMAND  framing the next command (its literals included)
 *   AUTH     the client's line after "+ " in AUTHENTICATE
 *   IDLE     waiting for "DONE"
 *   APPEND   the message literal of APPEND, streamed into a spool
 *   APPEND_END  the end of the APPEND line after the literal
 *   DISCARD  dropping a refused non-synchronizing literal, then its line
 *   SKIP_LINE  dropping the rest of an over-long command line
 *   ID       an ID list too long to buffer, read as it comes
 *   PASSWORD  nothing: the worker checks a password (auth.h)
 *   HELD     nothing: a reply waits for the group commit or a delay
 */
enum input_mode {
	IN_COMMAND,
	IN_AUTH,
	IN_IDLE,
	IN_APPEND,
	IN_APPEND_END,
	IN_DISCARD,
	IN_SKIP_LINE,
	IN_ID,
	IN_PASSWORD,
	IN_HELD,
};

/* What a command asks for once its OK is queued (STARTTLS, COMPRESS). */
#define AFTER_NONE	0
#define AFTER_STARTTLS	1
#define AFTER_COMPRESS	2

struct imap_append;

/* Where IN_ID is in an ID list (imap_caps.c). */
struct imap_id_scan {
	int		 state;		/* ID_* */
	int		 value;		/* the string read is a value */
	unsigned	 strings;	/* fields and values read */
	size_t		 len;		/* octets of the string so far */
};

struct imap_private {
	enum input_mode	 mode;
	struct imap_frame frame;
	struct imap_append *append;	/* IN_APPEND, IN_APPEND_END */
	uint64_t	 discard;	/* literal bytes still to drop */
	int		 discard_line;	/* then drop up to the line end */
	int		 discard_replied; /* its reply is sent already */
	uint64_t	 skipped;	/* bytes of an over-long line dropped */
	struct imap_id_scan id;		/* IN_ID */
	/* UTF8=ACCEPT: mailbox names of the command made modified UTF-7,
	   the next one into names[next_name % IMAP_NAME_SLOTS] */
	char		 names[IMAP_NAME_SLOTS][MAILBOX_MAX_NAME + 1];
	unsigned	 next_name;
	int		 overlong;	/* a one-line mode's line is past
					   IMAP_MAX_LINE: dropping it */
	int64_t		 head0;		/* log head when the command began */
	int		 changed;	/* the command changed the store */
	int		 writes;	/* it may write: its steps wait for
					   the write lock (CMD_WRITES) */
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

/*
 * The command table's flags (imap.c's commands[]).  The session, not
 * the handler, acts on them: a command runs only in the states its
 * flags allow, a replica refuses CMD_CHANGES, a CMD_WRITES command waits
 * for the write lock before it is taken from the buffer, and no EXPUNGE
 * response is sent while a CMD_USES_SEQ command runs (RFC 3501 7.4.1).
 */
#define CMD_NOTAUTH	0x01	/* runs before login only */
#define CMD_AUTH	0x02	/* needs a login */
#define CMD_SELECTED	0x04	/* needs a selected mailbox */
#define CMD_ANY		(CMD_NOTAUTH | CMD_AUTH)
#define CMD_USES_SEQ	0x08	/* names messages by sequence number */
#define CMD_WRITES	0x10	/* may write to the store */
#define CMD_CHANGES	(0x20 | CMD_WRITES) /* changes mail: refused on
					   a replica */
#define CMD_LITERAL8	0x40	/* may take a literal8 (BINARY's ~{N}) */

/* The command table's entry for name (after "UID" when uid), or NULL. */
struct imap_command {
	const char	*name;
	unsigned	 flags;		/* CMD_* */
	int		 variant;	/* passed to run: UID, EXAMINE, LSUB */
	imap_cmd_fn	*run;
};
const struct imap_command *imap_command_find(const char *name, int uid);

/*
 * Whether command c may run now (state, a replica, the session still
 * valid).  If not, records the tagged reply (imap_reply()) and returns 0.
 */
int	imap_command_allowed(struct session *, const struct imap_command *c);

/*
 * Counts a command before login.  Past IMAP_MAX_PRELOGIN_COMMANDS it
 * says BYE, records the tagged reply and returns 0.
 */
int	imap_prelogin_counted(struct session *);

/*
 * The handler (or its last step, or the input mode it began) is done:
 * sends the tagged reply, after the group commit when the command
 * changed the store.
 */
void	imap_command_finish(struct session *);
/* Sends the tagged reply now; committed is 0 when the commit failed. */
void	imap_command_reply(struct session *, int committed);
/* Holds the reply until priv->hold_until, reading nothing meanwhile. */
void	imap_hold_reply(struct session *);

/*
 * The line a one-line input mode waits for (AUTHENTICATE's response,
 * IDLE's DONE, the end of an APPEND).  Returns 0 while it is incomplete;
 * else the line is consumed, the session is back in command mode, and
 * the result is 1 with *line (NUL-terminated, valid until the input
 * buffer is next written to) or -1 for a line past IMAP_MAX_LINE, which
 * was dropped whole, to its LF.
 */
int	imap_mode_line(struct session *, char **line, size_t *len);

/*
 * The largest "{N+}" the session takes: LITERAL-'s (RFC 7888) where
 * imap_caps.c offers it, else no limit but the literal's own.
 */
uint64_t imap_nonsync_max(const struct session *);

/* Drops a literal of size bytes, then the rest of its line; then replies. */
void	imap_discard_literal(struct session *, uint64_t size);

/*
 * imap_auth.c.  Whether logging in is allowed on this connection now;
 * whether the session may go on as the user it logged in as and in the
 * mailbox it selected (if not, it has said BYE and will end after the
 * reply: 0); the worker's answer for a login (proto_ops.checked).
 */
int	imap_login_allowed(const struct session *);
int	imap_session_still_valid(struct session *);
void	imap_checked(struct session *, int match);
int	imap_input_auth(struct session *);

/*
 * imap_append.c.  Called when framing stops at a literal of size bytes:
 * if the command so far is APPEND, the literal is the message and is
 * streamed into a spool; returns 1 when it took the command over.  The
 * input modes of a streamed APPEND; imap_append_free() drops one under
 * way when the session ends.
 */
int	imap_append_begin(struct session *, uint64_t size);
int	imap_input_append(struct session *);
int	imap_input_append_end(struct session *);
void	imap_append_free(struct imap_append *);

/*
 * imap_catenate.c: puts a CATENATE message (RFC 4469) together in spool
 * from its part list, (TEXT literal / URL astring)...  Returns 0, or -1
 * with the tagged reply made.
 */
struct spool;
int	imap_catenate(struct session *, struct spool *,
	    const struct imap_arg *list);

/* imap_idle.c: waits for DONE; imap_wake() reports changes meanwhile. */
int	imap_input_idle(struct session *);

/* imap_quota.c: whether a per-user limit is set (QUOTA is offered). */
int	imap_quota_set(const struct session *);

/*
 * imap_caps.c.  The capabilities the session offers in its state (a
 * static buffer, valid until the next call), and the greeting.
 */
const char *imap_capabilities(const struct session *);
void	imap_greet(struct session *);

/*
 * imap_caps.c.  Called when framing finds a command line too long for
 * the input buffer: if it is "tag ID (", the list is read as it comes
 * (IN_ID) and the command is taken over: 1; else 0.
 */
int	imap_id_begin(struct session *);
int	imap_input_id(struct session *);

/* The command handlers of the core's files, for the command table. */
imap_cmd_fn	imap_cmd_login, imap_cmd_authenticate, imap_cmd_starttls,
		imap_cmd_compress;				/* imap_auth.c */
imap_cmd_fn	imap_cmd_capability, imap_cmd_enable, imap_cmd_id,
		imap_cmd_namespace;				/* imap_caps.c */
imap_cmd_fn	imap_cmd_append;				/* imap_append.c */
imap_cmd_fn	imap_cmd_idle;					/* imap_idle.c */
imap_cmd_fn	imap_cmd_getquotaroot, imap_cmd_getquota,
		imap_cmd_setquota;				/* imap_quota.c */

#endif /* MAILREPD_IMAP_CORE_H */
