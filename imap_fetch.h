/*
 * imap_fetch.h — what the two halves of FETCH share: the items of a
 * FETCH command as imap_fetch_parse.c parses them (and what a section
 * names in a message), and the job imap_fetch.c steps through, one
 * response per message.  For imap_fetch*.c only; the rest of the
 * program calls FETCH through imap_session.h.
 */
#ifndef MAILREPD_IMAP_FETCH_H
#define MAILREPD_IMAP_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "imap_session.h"
#include "mime.h"
#include "store.h"

enum item_kind {
	ITEM_FLAGS,
	ITEM_INTERNALDATE,
	ITEM_SAVEDATE,		/* RFC 8514 */
	ITEM_SIZE,		/* RFC822.SIZE */
	ITEM_ENVELOPE,
	ITEM_BODYSTRUCTURE,
	ITEM_BODY,		/* BODY without a section */
	ITEM_MODSEQ,
	ITEM_EMAILID,		/* RFC 8474 */
	ITEM_THREADID,
	ITEM_SECTION,		/* BODY[...], BODY.PEEK[...], RFC822[.x] */
	ITEM_BINARY,		/* BINARY[...], BINARY.PEEK[...] */
	ITEM_BINARY_SIZE,	/* BINARY.SIZE[...] */
};

/* What of the message, or of a part, a section names. */
enum sect_text {
	SECT_ALL,		/* BODY[], BODY[1.2] */
	SECT_HEADER,
	SECT_FIELDS,		/* HEADER.FIELDS (list) */
	SECT_FIELDS_NOT,	/* HEADER.FIELDS.NOT (list) */
	SECT_TEXT,
	SECT_MIME,
};

struct field_name {
	const char	*s;
	size_t		 len;
};

struct fetch_item {
	enum item_kind		 kind;
	/* the rest is for ITEM_SECTION and ITEM_BINARY[_SIZE] */
	const char		*label;		/* "RFC822...", or NULL */
	char			*atom;		/* the item, upper-cased */
	const char		*spec;		/* in atom, inside [] */
	size_t			 partlen;	/* spec's part number, "1.2" */
	enum sect_text		 text;
	int			 peek;		/* leaves \Seen alone */
	int			 partial;
	uint64_t		 start, len;	/* <start.len> */
	struct field_name	*fields;	/* sorted by field_cmp() */
	size_t			 nfields;
	char			*fieldbuf;	/* the names' bytes */
};

/* Where the bytes of a section come from: [off, end) of mem or blob. */
struct source {
	const char	*mem;		/* NULL: the blob */
	uint64_t	 off, end;
};

/*
 * The decoded body of one part for BINARY: counted first (size, nul),
 * then sent from `pos`, the decoded bytes gone by, keeping those in
 * [want, want_end).  `spec` names the part counted, so that BINARY.SIZE
 * and BINARY of one part in one FETCH count it once.
 */
struct binary {
	const char		*spec;		/* NULL: nothing counted */
	size_t			 partlen;
	int			 counted;
	uint64_t		 size;
	int			 nul;		/* a NUL: literal8 */
	uint64_t		 start, off, end;	/* the raw range, read
							   up to off */
	enum mime_cte		 cte;
	struct mime_decoder	 d;
	uint64_t		 pos, want, want_end;
	int			 sending;
};

/* The message whose response is being written. */
struct fetch_msg {
	uint32_t			 seq;
	struct store_message		 m;	/* m.keywords -> keywords */
	char				 keywords[STORE_MAX_KEYWORDS];
	int				 seen_set;	/* we set \Seen */
	int				 have_meta;
	struct store_meta		 meta;
	struct store_blob_reader	*blob;		/* opened when needed */
	size_t				 next;		/* next item to write */
	int				 written;	/* items written */
	char				*membuf;	/* a filtered header */
	struct source			 lit;		/* literal to send */
	struct binary			 bin;
};

struct fetch_job {
	/* the items asked for, and the MODSEQ that CHANGEDSINCE implies */
	struct fetch_item	 items[IMAP_MAX_FETCH_ITEMS + 1];
	size_t			 nitems;
	int			 uid_cmd;	/* UID FETCH */
	int			 uid;		/* UID in every response */
	int			 flags;		/* FLAGS asked for */
	int			 modseq;	/* MODSEQ asked or implied */
	int			 seen;		/* some item sets \Seen */
	unsigned		 need_meta;	/* STORE_META_* to load */
	int			 rows_only;	/* items of the row alone */
	struct imap_rows	 rows;		/* read ahead for them */
	int			 changedsince;
	int			 vanished;	/* VANISHED (QRESYNC) */
	uint64_t		 since;
	struct imap_seqset	 set;		/* owns the ranges */
	struct imap_view_walk	 walk;		/* where the set is walked */
	int			 active;	/* a response line is open */
	struct fetch_msg	 msg;
	enum store_err		 err;		/* why the command failed */
	int			 unknown_cte;	/* ... a part BINARY cannot decode */
	int			 binary;	/* BINARY items asked for */
	unsigned char		*raw, *dec;	/* their chunk buffers */
};

/* What a reply says when memory ran out (a BAD reply otherwise). */
extern const char	 imap_fetch_oom[];

/*
 * Parses "sequence-set items [(modifiers)]" into the job.  Returns NULL,
 * or what to say in the BAD reply (imap_fetch_oom when memory ran out).
 */
const char	*imap_fetch_parse(struct fetch_job *j,
		    const struct imap_view *v, const struct imap_arg *args,
		    size_t nargs);
/* The part a section names ("" is the message itself), or NULL. */
const struct mime_part *imap_fetch_find_part(const struct store_meta *meta,
		    const char *part, size_t len);
/*
 * Where section it lies in the message: [*start, *end).  Returns 0 when
 * the section names nothing.
 */
int		 imap_fetch_section_range(const struct store_meta *meta,
		    uint64_t size, const struct fetch_item *it,
		    uint64_t *start, uint64_t *end);
/*
 * Filters the header block buf[0, len) in place to the fields that
 * HEADER.FIELDS[.NOT] item it selects; buf has room for 4 more bytes.
 * Returns the new length.
 */
size_t		 imap_fetch_header_filter(char *buf, size_t len,
		    const struct fetch_item *it);

#endif /* MAILREPD_IMAP_FETCH_H */
