/*
 * imap_search_prog.h — a SEARCH's arguments compiled into a tree of
 * tests (imap_search_compile.c), which imap_search.c runs against the
 * messages of a mailbox.  For imap_search*.c only.
 */
#ifndef MAILREPD_IMAP_SEARCH_PROG_H
#define MAILREPD_IMAP_SEARCH_PROG_H

#include <stddef.h>
#include <stdint.h>

#include "imap_session.h"
#include "mime.h"
#include "store.h"

/* \Recent lives in the view; it sits beside the stored flags here. */
#define SEARCH_RECENT	0x80000000u

/* What a test needs read before it can answer, in the order read. */
enum need {
	NEED_VIEW,	/* sequence number, UID, \Recent */
	NEED_ROW,	/* flags, keywords, size, internal date, MODSEQ */
	NEED_META,	/* header fields, Date: */
	NEED_BYTES,	/* the message text */
};

enum node_kind {
	N_AND,		/* every child; without children, ALL */
	N_OR,		/* either child */
	N_FLAGS,	/* (flags & mask) == want */
	N_KEYWORD,	/* str is one of the message's keywords */
	N_SET,		/* the sequence number (or UID) is in set */
	N_CMP,		/* a number of the message against num */
	N_HEADER,	/* str in the value of a header field */
	N_TEXT,		/* str in the body (with `whole`, the header too) */
	N_EMAILID,	/* str is the message's EMAILID (RFC 8474) */
};

/* The numbers N_CMP compares; days are counted in UTC from 1970. */
enum field {
	F_SIZE,
	F_DAY,		/* of the internal date */
	F_SAVED_DAY,	/* of the save date (RFC 8514) */
	F_SENT_DAY,	/* of Date:, else of the internal date (as Dovecot) */
	F_MODSEQ,
	F_AGE,		/* seconds from the internal date to now (WITHIN) */
};

enum cmp {
	CMP_LT,
	CMP_LE,
	CMP_EQ,
	CMP_GE,
	CMP_GT,
};

/* The RFC 2047 decoded value a header key also looks at. */
enum decoded {
	DEC_NONE,
	DEC_FROM,
	DEC_TO,
	DEC_SUBJECT,
	DEC_ADDRESS,	/* none, but an address field (CC, BCC) */
};

/*
 * One node of a compiled search.  Strings are the node's own copies
 * (the command's arguments are freed when its handler returns); N_TEXT
 * and N_HEADER strings are case-folded.
 */
struct node {
	enum node_kind		 kind;
	enum need		 need;		/* leaves only */
	int			 neg;		/* NOT */
	struct node		*child;		/* N_AND, N_OR */
	struct node		*next;		/* sibling under N_AND, N_OR */
	uint32_t		 mask, want;	/* N_FLAGS */
	struct imap_seqset	 set;		/* N_SET */
	int			 uid;		/* N_SET: of UIDs */
	int			 saved;		/* N_SET: "$" (RFC 5182) */
	enum field		 field;		/* N_CMP */
	enum cmp		 cmp;
	int64_t			 num;
	char			*str;		/* N_KEYWORD N_HEADER N_TEXT
						   N_EMAILID */
	size_t			 len;
	char			*name;		/* N_HEADER: the field */
	enum decoded		 decoded;	/* N_HEADER */
	int			 whole;		/* N_TEXT: TEXT, not BODY */
	size_t			 text;		/* N_TEXT: its number */
	size_t			 fts;		/* N_TEXT N_HEADER: 1 + its
						   prefilter, or 0 */
	int			 narrows;	/* every match has a blob
						   the index names (its
						   prefilters, joined) */
	struct node		*all;		/* every node, for freeing */
};

struct search_prog {
	struct node	*root;
	struct node	*nodes;		/* every node, linked by `all` */
	size_t		 nkeys;
	size_t		 ntext;		/* N_TEXT nodes */
	size_t		 maxlen;	/* longest N_TEXT string */
	int		 modseq;	/* the MODSEQ key is used */
	int		 recent;	/* NEW, OLD or RECENT is used */
};

/*
 * Compiles SEARCH's arguments, an optional CHARSET then the keys, into
 * *prog.  Returns 0; or -1 with the whole tagged reply ("BAD ...") in
 * err and nothing left to free.  The program copies what it keeps.
 */
int	search_compile(struct search_prog *, const struct imap_arg *args,
	    size_t nargs, char *err, size_t errlen);

/* Frees every node of a program and clears it. */
void	search_prog_free(struct search_prog *);

/*
 * Case-folds n bytes in place (ASCII, and the Latin letters of U+00C0..
 * U+017F whose folded forms have the same length).
 */
void	search_fold(unsigned char *p, size_t n);

/* Whether c may start a UTF-8 letter that search_fold() changes. */
int	search_fold_lead(unsigned char c);

/*
 * Makes a header block searchable in place: each continuation line is
 * joined to its field by dropping the line end before it (RFC 5322
 * unfolding) and the letters are case-folded.  Returns the new length.
 */
size_t	search_header_normalise(char *h, size_t len);

/*
 * An address field's value as ENVELOPE shows it, written to out (room
 * for vlen): comments gone and so are the blanks beside '@' and '.', so
 * that "a (x)@ (y) b.org" is found by "a@b.org".  Returns its length.
 * Only a value search_address_strippable() says yes to is searched so.
 */
size_t	search_address_strip(const char *v, size_t vlen, char *out);
int	search_address_strippable(const char *v, size_t vlen);

/*
 * The ranges of a message that BODY reads, and TEXT (`whole`) with the
 * top-level header first: each leaf part's body with its transfer
 * encoding, and the header of each encapsulated message.  Preambles,
 * epilogues and MIME part headers are not read, as in Dovecot.  *part
 * is where the walk is (0 first); buf (size bytes) is scratch.  Returns
 * 1 with *r set, 0 when no range is left, -1 when the blob could not be
 * read.
 */
struct search_range {
	uint64_t	 off, end;
	enum mime_cte	 cte;
};
int	search_text_range(struct store_blob_reader *,
	    const struct store_meta *, int whole, size_t *part, char *buf,
	    size_t size, struct search_range *);

#endif /* MAILREPD_IMAP_SEARCH_PROG_H */
