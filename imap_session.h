/*
 * imap_session.h — what the IMAP files share: the session, the view of
 * the selected mailbox, sequence sets, reply helpers, and the commands
 * that live in their own files (FETCH in imap_fetch.c, SEARCH in
 * imap_search.c).  imap.h is the public face (the proto_ops); this
 * header is for imap*.c only.
 *
 * How a command runs.  imap.c frames and parses a command, checks its
 * state, and calls its handler.  The handler writes untagged responses
 * with the imap_put_* helpers and ends with imap_reply(), which only
 * records the tagged reply.  imap.c then sends it, after the group
 * commit when the store has a change pending (so no client hears OK
 * before the fsync).  A handler with much output (FETCH 1:*) instead
 * calls imap_start_steps(); its step function is called again each time
 * the output buffer has drained below OUTBUF_HIGH_WATER, and calls
 * imap_reply() on its last step.
 */
#ifndef MAILREPD_IMAP_SESSION_H
#define MAILREPD_IMAP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "imap_parse.h"
#include "proto.h"
#include "store.h"

/*
 * The reply to a change refused because the store is full (STORE_FULL:
 * the disk, a file-system quota of the server's user, or its file-size
 * limit).  RFC 5530's [OVERQUOTA]: the store takes no new mail until
 * there is room, and deleting mail makes room (store_room.c), which is
 * what a client tells its user on [OVERQUOTA].  Dovecot says it for
 * EDQUOT and [SERVERBUG] for ENOSPC, but a full disk is no bug, and
 * [SERVERBUG] tells the user nothing that helps.
 */
#define IMAP_NO_FULL	"NO [OVERQUOTA] Mail storage is full: delete mail, " \
			"or try again later"
#define IMAP_NO_LIMIT	"NO [LIMIT] The mailbox holds as many messages as it may"

/* The session's selected mailbox was deleted or renamed under it. */
#define IMAP_BYE_MAILBOX_GONE \
	"* BYE The selected mailbox was deleted or renamed\r\n"

/* A change this session made and reported itself: its MODSEQ and UID. */
struct imap_view_own {
	uint64_t		 modseq;
	uint32_t		 uid;
};

/* A range of sequence numbers or UIDs (sequence sets, UID sets). */
struct imap_range {
	uint32_t	lo, hi;		/* lo <= hi after resolve */
};

/* A set of UIDs: ascending ranges, neither overlapping nor adjacent. */
struct imap_uidset {
	struct imap_range	*r;
	size_t			 n, cap;
};

/*
 * The selected mailbox as this session knows it (imap_view.c): sequence
 * number n is the n-th UID of msgs, kept as ranges of consecutive UIDs
 * so that a huge mailbox costs a few bytes.  A message in gone_uids was
 * expunged elsewhere and keeps its sequence number until the EXPUNGE
 * response may be sent (RFC 3501 7.4.1); reading it from the store
 * gives STORE_NOTFOUND, and FETCH or SEARCH skip it.  gone_uids and
 * recent_uids (\Recent for this session) hold only UIDs of msgs.
 */
struct imap_view {
	struct store_mailbox	 mb;		/* as at SELECT */
	int			 readonly;	/* EXAMINE, or a replica */
	struct imap_uidset	 msgs;
	uint32_t		*index;		/* messages before each
						   VIEW_INDEX_EVERY-th range */
	size_t			 nindex, capindex;
	uint32_t		 count;		/* messages in msgs */
	struct imap_uidset	 gone_uids;
	uint32_t		 gone;		/* messages in gone_uids */
	struct imap_uidset	 recent_uids;
	uint32_t		 recent;	/* messages in recent_uids */
	uint64_t		 modseq;	/* changes up to here reported */
	uint32_t		 uidnext;	/* UIDs below were looked at */
	struct imap_view_own	*own;		/* changes this session made */
	size_t			 nown, capown;
	int			 own_unsorted;	/* a MODSEQ came twice */
	/* UIDs whose rolled-back flags the client still has: their flags
	   could not be read back (imap_view_rolled_back) */
	struct imap_uidset	 reread;
	/* SEARCHRES (RFC 5182): "$", the UIDs SEARCH RETURN (SAVE) kept
	   (resolved); NULL, empty, until one does and after one fails */
	struct imap_seqset	*saved;
	/* updating searches (RFC 5267 4.3: imap_context.c) */
	struct imap_context	*contexts;
	/* keywords announced in FLAGS, as " kw1 kw2 " (one strstr each) */
	char			 keywords[STORE_MAX_KEYWORDS];
};

/*
 * The view's messages.  imap_view_uid(): the UID of sequence number seq
 * (0 past the end); imap_view_seq(): the sequence number of uid (0: not
 * in the view); imap_view_lower_bound(): how many messages have a UID
 * below uid; imap_view_last_uid(): the highest UID, 0 when empty.
 */
uint32_t	imap_view_uid(const struct imap_view *, uint32_t seq);
uint32_t	imap_view_seq(const struct imap_view *, uint32_t uid);
uint32_t	imap_view_lower_bound(const struct imap_view *, uint32_t uid);
uint32_t	imap_view_last_uid(const struct imap_view *);
int		imap_view_is_gone(const struct imap_view *, uint32_t uid);
int		imap_view_is_recent(const struct imap_view *, uint32_t uid);
/*
 * Appends a message above every UID of the view (a UID it has already
 * is ignored), \Recent for it when recent.  Returns 0 or -1 without
 * memory (the view is then as it was).
 */
int		imap_view_append(struct imap_view *, uint32_t uid, int recent);
/*
 * Makes a resolved set of sequence numbers the set of the UIDs of those
 * messages (ascending ranges, none past the view's end).  Costs one walk
 * of the view's ranges.  Returns 0, or -1 without memory (set as it was).
 */
int		imap_view_seqs_to_uids(const struct imap_view *,
		    struct imap_seqset *set);
/* Marks a message of the view gone, or not; returns 0 or -1 (memory). */
int		imap_view_mark_gone(struct imap_view *, uint32_t uid, int gone);
/* Whether uid is in the set. */
int		imap_uidset_has(const struct imap_uidset *, uint32_t uid);
/*
 * Adds uid (returns 1 when added, 0 when there already) or takes it out
 * (1 when taken, 0 when absent); -1 without memory.
 */
int		imap_uidset_add(struct imap_uidset *, uint32_t uid);
int		imap_uidset_del(struct imap_uidset *, uint32_t uid);
void		imap_uidset_free(struct imap_uidset *);

enum imap_state {
	IMAP_NOTAUTH,
	IMAP_AUTH,
	IMAP_SELECTED,
	IMAP_LOGOUT,
};

/* A step function: returns 1 when done (imap_reply() called), else 0. */
typedef int	(*imap_step_fn)(struct session *, void *arg);

struct imap_session {
	enum imap_state		 state;
	char			 user[USER_MAX_NAME + 1];
	struct imap_view	*view;		/* set in IMAP_SELECTED */
	int			 condstore;	/* CONDSTORE enabled or used */
	int			 qresync;	/* ENABLE QRESYNC */
	int			 utf8;		/* ENABLE UTF8=ACCEPT */
	int			 rev2;		/* ENABLE IMAP4rev2 (RFC 9051) */
	/* the command being run */
	char			*tag;
	char			*reply;		/* "OK ...", set by imap_reply */
	const char		*reply_lost;	/* static: the reply when
						   imap_reply had no memory */
	int			 uses_seq;	/* no EXPUNGE may be sent */
	imap_step_fn		 step;
	void			(*step_free)(void *);
	void			*step_arg;
	/* ...the rest is the core's own (imap_core.h) */
	struct imap_private	*priv;
};

static inline struct imap_session *
imap_of(struct session *s)
{
	return s->proto;
}

/*
 * Whether the session names mailboxes in UTF-8, never modified UTF-7:
 * after ENABLE UTF8=ACCEPT (RFC 6855 3) or IMAP4rev2 (RFC 9051 5.1).
 */
static inline int
imap_names_utf8(const struct imap_session *ims)
{
	return ims->utf8 || ims->rev2;
}

/*
 * Records the tagged reply of the running command: "OK ...", "NO ..."
 * or "BAD ...", with response code when there is one ("NO [TRYCREATE]
 * No such mailbox").  The first call wins.
 */
void	imap_reply(struct session *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/*
 * Records the NO for a store error, with the response code that names
 * it (RFC 5530) in one place for every command.  STORE_NOTFOUND means
 * what the command looked for: `missing` says which.  verb names the
 * command in the text of an unexpected error.
 */
enum imap_missing {
	IMAP_MISSING_MAILBOX,	/* a mailbox it names: [NONEXISTENT] */
	IMAP_MISSING_TARGET,	/* APPEND's or COPY's target: [TRYCREATE] */
	IMAP_MISSING_MESSAGE,	/* messages expunged meanwhile:
				   [EXPUNGEISSUED] */
};
void	imap_reply_store_error(struct session *, enum store_err,
	    enum imap_missing missing, const char *verb);

/* Hands the rest of the running command to step (see the top). */
void	imap_start_steps(struct session *, imap_step_fn step,
	    void (*step_free)(void *), void *arg);

/*
 * The budget of one step of a command made in steps.  A step goes on
 * while imap_step_more() says so: until it has done IMAP_STEP_MESSAGES
 * messages (counted in `done` by its caller), used IMAP_STEP_USEC of
 * the loop, or queued output past the high-water mark (the client reads
 * first: session_output_high()).  imap_step_begin() starts each step.
 */
struct imap_step_budget {
	int64_t		 start_us;
	unsigned	 done;		/* messages done in this step */
};
void	imap_step_begin(struct imap_step_budget *);
int	imap_step_more(const struct session *, const struct imap_step_budget *);
/* Only the time: for work within one message (SEARCH's BODY keys). */
int	imap_step_time_left(const struct imap_step_budget *);

/*
 * Output helpers.  imap_put_string() writes a quoted string when the
 * bytes allow it, else a literal; imap_put_mailbox() a stored mailbox
 * name, as an atom when it can, in UTF-8 for a UTF8=ACCEPT or
 * IMAP4rev2 client;
 * imap_put_nstring() writes NIL for NULL.
 * imap_put_flags() writes "(\Seen kw ...)" with \Recent when recent
 * (never to an IMAP4rev2 session: RFC 9051 has no \Recent).
 */
void	imap_put_string(struct session *, const char *, size_t);
void	imap_put_mailbox(struct session *, const char *);
void	imap_put_nstring(struct session *, const char *);
void	imap_put_flags(struct session *, uint32_t flags, const char *keywords,
	    int recent);

/*
 * Records a change this session made to message uid (a STORE, a \Seen
 * set by FETCH), whose FETCH response it sent itself, so that the next
 * untagged update does not report the same change again.
 */
void	imap_view_own_change(struct imap_view *, uint64_t modseq,
	    uint32_t uid);
/*
 * The group commit failed: the session's changes were rolled back,
 * though it told its client of them, and their MODSEQs go to the next
 * changes, whoever makes them.  Tells the client each such message's
 * flags as they are, and forgets the changes as its own, so that
 * imap_sync() reports those next changes.  A message whose flags cannot
 * be read now is kept in the view's reread, and told of by the next
 * imap_sync() that can read them.
 */
void	imap_view_rolled_back(struct session *);

/*
 * A command other than SELECT/EXAMINE turns CONDSTORE on (RFC 7162 3.1):
 * the first time, with a mailbox selected, it sends "* OK
 * [HIGHESTMODSEQ n]" as 3.1.2.1 asks.
 */
void	imap_condstore_enable(struct session *);

/*
 * Makes the keywords (space separated) known to the client before a
 * response uses them: when one is new to the view, sends "* FLAGS" and
 * "* OK [PERMANENTFLAGS]" with the grown set (RFC 3501 7.2.6).
 */
void	imap_view_keywords(struct session *, struct imap_view *,
	    const char *keywords);

/*
 * Sequence sets (RFC 3501 sequence-set).  imap_seqset_parse() keeps "*"
 * as a placeholder; imap_seqset_resolve() then replaces it by `star` (the
 * highest sequence number or UID in use) and sorts and merges the ranges.
 */
struct imap_seqset {
	struct imap_range	*r;
	size_t			 n;
};

/* Returns 0, or -1 for bad syntax or more than IMAP_MAX_RANGES ranges. */
int	imap_seqset_parse(const char *, struct imap_seqset *);
void	imap_seqset_resolve(struct imap_seqset *, uint32_t star);
int	imap_seqset_has(const struct imap_seqset *, uint32_t);
void	imap_seqset_free(struct imap_seqset *);

/*
 * Parses a set argument and resolves "*" against the view (the highest
 * sequence number, or UID when uid).  "$" (RFC 5182) is the saved result
 * (imap_view_saved()).  Returns 0, or -1 for bad syntax or no memory.
 */
int	imap_view_seqset(const struct imap_view *, const struct imap_arg *,
	    int uid, struct imap_seqset *);

/*
 * SEARCHRES's "$": imap_view_saved() makes it a set of UIDs (when uid)
 * or of the sequence numbers of the messages it names, in *set; returns
 * 0 or -1 without memory.  imap_view_save() replaces it by uids (taken
 * over; NULL empties it).
 */
int	imap_view_saved(const struct imap_view *, int uid,
	    struct imap_seqset *set);
void	imap_view_save(struct imap_view *, struct imap_seqset *uids);

/*
 * The view's sequence numbers (1-based, in order) that a resolved set
 * names: UIDs when `uid`, else sequence numbers.  Calls cb for each; a
 * non-zero return stops the walk and is returned.
 */
int	imap_view_foreach(const struct imap_view *, const struct imap_seqset *,
	    int uid, int (*cb)(void *, uint32_t seq), void *arg);

/*
 * The same walk in pieces, for a command made in steps: it stops after
 * any message and resumes there.  The set is not owned and must outlive
 * the walk; the view must not change between the calls (it changes only
 * between commands).
 */
struct imap_view_walk {
	const struct imap_seqset *set;
	int			 uid;
	size_t			 range;		/* next range of the set */
	uint32_t		 next, end;	/* view indexes left in the
						   range being walked */
};
void	 imap_view_walk_start(struct imap_view_walk *,
	    const struct imap_seqset *, int uid);
/* The next sequence number, or 0 when the walk is over. */
uint32_t imap_view_walk_next(struct imap_view_walk *,
	    const struct imap_view *);
/*
 * The walk within a step's budget: 1 with *seq the next message (the
 * caller counts it in the budget's `done` when it was work), 0 when the
 * step must end here (the walk resumes at the next step), -1 when the
 * walk is over.
 */
int	 imap_step_next(struct session *, struct imap_step_budget *,
	    struct imap_view_walk *, uint32_t *seq);

/*
 * The rows of the messages with UIDs in (after, upto], read ahead when
 * a command needs no more of each message than its row (a FETCH of
 * FLAGS, UID, MODSEQ or the dates; STORE): one range look-up for
 * FETCH_ROW_BATCH messages where each would cost one of its own, and
 * their blobs never read.  They belong to one step's snapshot: a step
 * clears `valid`, and the next reads them again.
 */
struct imap_rows {
	struct store_message	 m[FETCH_ROW_BATCH];	/* ascending UIDs */
	size_t			 kw[FETCH_ROW_BATCH];	/* in kwbuf */
	char			*kwbuf;			/* their keywords */
	size_t			 kwlen, kwcap;
	size_t			 n;
	uint32_t		 after, upto;
	int			 valid;
	int			 failed;		/* no memory */
};
/*
 * The row of message uid from the read-ahead, which is read from uid up
 * to `upto` (the last UID the command will want) when it does not
 * cover uid.  Returns 1 with *m set (its keywords in the read-ahead),
 * 0 when the message is gone (expunged elsewhere), or -1 when the rows
 * cannot be read so: then the caller reads it alone.
 */
int	 imap_rows_find(struct store *, const struct imap_view *,
	    struct imap_rows *, uint32_t uid, uint32_t upto,
	    struct store_message *);

/* Ascending numbers (UIDs) as a set text "1:3,7"; malloc'd, or NULL. */
char	*imap_numbers_text(const uint32_t *, size_t n);

/* Flag names <-> bits: "\Seen" -> FLAG_SEEN; 0 for a keyword. */
uint32_t	imap_flag_bit(const char *);

/*
 * Arguments: an astring as a C string (NULL if not one); a mailbox name
 * as stored (modified UTF-7), which a UTF8=ACCEPT client writes in
 * UTF-8: valid until four more names are taken, NULL when it is none.
 */
const char	*imap_arg_astring(const struct imap_arg *);
const char	*imap_arg_mailbox(struct session *, const struct imap_arg *);

/*
 * Where a section of a message lies (spec as in BODY[spec]: a part
 * number, HEADER, TEXT, MIME; HEADER.FIELDS is no range and is refused):
 * [*start, *end) of its `size` bytes, from its MIME data (meta loaded
 * with STORE_META_SECTIONS).  Returns 1, 0 when it names nothing (no
 * such part), -1 when spec is not one.  imap_fetch.c.
 */
int		 imap_section_range(const char *spec,
		    const struct store_meta *meta, uint64_t size,
		    uint64_t *start, uint64_t *end);

/*
 * A flag list "(\Seen kw ...)" into system flag bits and a space
 * separated keyword string (kwlen bytes).  Returns 0, or -1 for \Recent,
 * \*, a bad keyword or too many keywords.
 */
int	imap_parse_flags(const struct imap_arg *list, uint32_t *flags,
	    char *keywords, size_t kwlen);

/*
 * Expunges the view's messages flagged \Deleted (only those whose UIDs
 * uidset names, when not NULL: the job takes the set over), in steps,
 * sending EXPUNGE responses unless silent (CLOSE).  Once all are gone
 * and durable, done() records the reply; a store error gets NO.
 */
void	imap_expunge_deleted(struct session *, struct imap_seqset *uidset,
	    int silent, void (*done)(struct session *,
	    const struct store_mailbox *));
/*
 * The same for every message of mailbox mb, which the session has not
 * selected (DELETE empties a mailbox so before deleting it): done() is
 * given mb, found the same mailbox still at the last step.
 */
void	imap_expunge_mailbox(struct session *, const struct store_mailbox *mb,
	    void (*done)(struct session *, const struct store_mailbox *));

/*
 * Untagged updates for the selected mailbox (imap_mailbox.c): new
 * messages (EXISTS, RECENT), flag changes made elsewhere (FETCH), and,
 * when allow_expunge, expunges made elsewhere (EXPUNGE).
 */
void	imap_sync(struct session *, int allow_expunge);

/*
 * Drops every VIEW_GONE message from the view, sending "* n EXPUNGE" for
 * each unless silent (CLOSE).  Only where RFC 3501 7.4.1 allows EXPUNGE.
 */
void	imap_view_drop_gone(struct session *, struct imap_view *, int silent);

/*
 * imap_qresync.c: writes "* VANISHED (EARLIER) set" (RFC 7162) for the
 * UIDs of `within` (resolved; NULL for all) that left the view's mailbox
 * since MODSEQ `since`, nothing when none did.  Returns 0, or -1 on a
 * store error (the line, if begun, is ended).
 */
int	imap_vanished_earlier(struct session *, const struct imap_view *,
	    const struct imap_seqset *within, uint64_t since);
void	imap_view_free(struct imap_view *);

/* STATUS items (RFC 3501 6.3.10, RFC 7162, 8438, 8474, 9051 6.3.11). */
#define STATUS_MESSAGES		0x01
#define STATUS_RECENT		0x02
#define STATUS_UIDNEXT		0x04
#define STATUS_UIDVALIDITY	0x08
#define STATUS_UNSEEN		0x10
#define STATUS_HIGHESTMODSEQ	0x20
#define STATUS_SIZE		0x40
#define STATUS_MAILBOXID	0x80
#define STATUS_DELETED		0x100

/*
 * Parses "(MESSAGES UNSEEN ...)"; returns 0 or -1 (RECENT is no item of
 * IMAP4rev2: -1 when rev2).
 */
int	imap_status_items(const struct imap_arg *, int rev2, unsigned *items);

/* Writes "* STATUS name (...)"; returns 0, or -1 on a store error. */
int	imap_status_respond(struct session *, const struct store_mailbox *,
	    unsigned items);

/*
 * The LIST response of the user's mailbox name, with its attributes
 * (imap_list.c), as SELECT sends it to an IMAP4rev2 client (RFC 9051
 * 6.3.2).  Returns 0, or -1 when the mailboxes could not be read.
 */
int	imap_list_mailbox(struct session *, const char *name);
/* Whether the user has a mailbox below name: 1, 0, or -1 on an error. */
int	imap_list_has_children(struct session *, const char *name);

/* Command handlers; `variant` is the table's (UID, EXAMINE, LSUB...). */
typedef void	imap_cmd_fn(struct session *, const struct imap_arg *, size_t,
		    int variant);
imap_cmd_fn	imap_cmd_select, imap_cmd_create, imap_cmd_delete,
		imap_cmd_rename, imap_cmd_subscribe, imap_cmd_list,
		imap_cmd_status, imap_cmd_close;		/* imap_mailbox.c */
imap_cmd_fn	imap_cmd_store, imap_cmd_copy, imap_cmd_move,
		imap_cmd_expunge;				/* imap_message.c */

/*
 * FETCH and UID FETCH (imap_fetch.c).  args are the command's arguments
 * (sequence set, items, optional modifiers such as (CHANGEDSINCE n)).
 * Replies itself: imap_reply() at once for a bad command, or through
 * imap_start_steps() for output produced as the client reads.
 */
void	imap_cmd_fetch(struct session *, const struct imap_arg *args,
	    size_t nargs, int uid);

/* SEARCH and UID SEARCH (imap_search.c); replies like imap_cmd_fetch. */
void	imap_cmd_search(struct session *, const struct imap_arg *args,
	    size_t nargs, int uid);

/* SORT, THREAD and their UID forms (imap_order.c); reply likewise. */
void	imap_cmd_sort(struct session *, const struct imap_arg *args,
	    size_t nargs, int uid);
void	imap_cmd_thread(struct session *, const struct imap_arg *args,
	    size_t nargs, int uid);

#endif /* MAILREPD_IMAP_SESSION_H */
