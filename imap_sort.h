/*
 * imap_sort.h — what SORT (RFC 5256, with SORT=DISPLAY of RFC 5957) and
 * THREAD compare: the criteria a client names, each message's sort keys
 * as read from the store, the base subject, and the order they give.
 * For imap*.c only.
 */
#ifndef MAILREPD_IMAP_SORT_H
#define MAILREPD_IMAP_SORT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "imap_parse.h"
#include "store.h"

enum sort_key {
	SORT_ARRIVAL,		/* INTERNALDATE */
	SORT_DATE,		/* Date:, else INTERNALDATE */
	SORT_SIZE,		/* RFC822.SIZE */
	SORT_SUBJECT,		/* the base subject */
	SORT_FROM,		/* addr-mailbox of the first From: address */
	SORT_TO,
	SORT_CC,
	SORT_DISPLAYFROM,	/* display name, else addr-spec (RFC 5957) */
	SORT_DISPLAYTO,
	SORT_NKEYS
};

struct sort_criteria {
	size_t		 n;
	enum sort_key	 key[IMAP_MAX_SORT_KEYS];
	int		 reverse[IMAP_MAX_SORT_KEYS];
};

/* One message with the keys its criteria compare. */
struct sort_msg {
	uint32_t	 seq, uid;
	int64_t		 arrival, date;
	uint64_t	 size;
	char		*str[SORT_NKEYS];	/* string keys read, or NULL */
	/* THREAD's: */
	int		 reply;		/* the subject was a reply's */
	char		*message_id;	/* Message-ID:, or NULL */
	char		*references;	/* References:, else In-Reply-To: */
};

/*
 * Parses a list of sort criteria, "(REVERSE DATE SUBJECT)".  Returns 0,
 * or -1 with *why saying what is wrong.
 */
int	imap_sort_parse(const struct imap_arg *list, struct sort_criteria *,
	    const char **why);

/*
 * Reads from the store the keys the criteria compare of message m->uid
 * (m->seq and m->uid set by the caller) in mailbox mbox.  With
 * criteria NULL, reads what THREAD needs: the date, the base subject
 * (in str[SORT_SUBJECT]) and the Message-IDs.
 */
enum store_err	imap_sort_load(struct store *, int64_t mbox,
		    const struct sort_criteria *, struct sort_msg *m);

/*
 * How a orders against b: each criterion in turn, then the sequence
 * number.  Like strcmp(), <0, 0 or >0.
 */
int	imap_sort_cmp(const struct sort_msg *a, const struct sort_msg *b,
	    const struct sort_criteria *);

/* Orders n messages by the criteria, then by sequence number. */
void	imap_sort_msgs(struct sort_msg *, size_t n,
	    const struct sort_criteria *);

void	imap_sort_msg_free(struct sort_msg *);

/*
 * Orders two strings under i;ascii-casemap (RFC 4790 section 9.2), the
 * collation of SORT and THREAD: ASCII letters as upper case, every
 * other byte as it is.  Like strcmp(), <0, 0 or >0.
 */
int	imap_casemap_cmp(const char *, const char *);

/*
 * The base subject of a subject already decoded to UTF-8 (RFC 5256
 * section 2.1): without "Re:", "Fwd:", "[blob]" leaders, "(fwd)"
 * trailers and "[fwd: ...]" wrappers, its white space collapsed.  A
 * malloc'd string (maybe empty); NULL when memory ran out.  *reply (if
 * not NULL) tells whether a leader, trailer or wrapper of a reply or
 * forward was taken off.
 */
char	*imap_base_subject(const char *subject, int *reply);

#endif /* MAILREPD_IMAP_SORT_H */
