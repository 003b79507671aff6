/*
 * mime.h — streaming RFC 5322 / MIME pre-parser.
 *
 * A message is parsed once, at delivery, while its bytes stream past; the
 * result is stored beside the blob so that FETCH ENVELOPE/BODYSTRUCTURE,
 * section fetches and header SEARCH never parse a message again.  The
 * parser holds no message body in memory: only the header block of the
 * part being read (bounded by MIME_MAX_HEADER) and a stack of open
 * multipart boundaries (bounded by MIME_MAX_DEPTH).
 */
#ifndef MAILREPD_MIME_H
#define MAILREPD_MIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"

/*
 * Where one body part lies in the message bytes.  Offsets are from the
 * first byte of the message; every range is [start, end).
 *   section	"1.2.3" style; "" for the message itself (always parts[0]).
 *   header_start..body_start	the part's MIME header, blank line included
 *   body_start..body_end	the part's body (BODY[section])
 * For a message/rfc822 part, the encapsulated message's header is
 * body_start..inner_body_start and its text inner_body_start..body_end;
 * for any other part inner_body_start == body_start.
 */
struct mime_part {
	char		section[64];
	uint64_t	header_start;
	uint64_t	body_start;
	uint64_t	inner_body_start;
	uint64_t	body_end;
	int		is_multipart;
	int		is_message;	/* message/rfc822, as Dovecot 2.3 */
};

/*
 * What the parser found.  Every pointer is malloc'd and owned by the
 * result; mime_result_free() releases them.  Strings are NUL-terminated.
 */
struct mime_result {
	char		*envelope;	/* IMAP ENVELOPE, "(...)" */
	char		*bodystructure;	/* IMAP BODYSTRUCTURE, extension data */
	char		*body;		/* IMAP BODY, no extension data */
	char		*header;	/* top-level header block as received */
	size_t		 header_len;	/* its length (may hold NULs) */
	char		*subject;	/* unfolded, RFC 2047 decoded, UTF-8 */
	char		*from;		/* unfolded, decoded From: */
	char		*to;		/* unfolded, decoded To: */
	char		*message_id;	/* Message-ID as written, or NULL */
	time_t		 date;		/* Date: as seconds, or -1 if absent/bad */
	struct mime_part *parts;	/* parts[0] is the whole message */
	size_t		 nparts;
	uint64_t	 size;		/* bytes fed */
};

struct mime_parser;

/* Returns a parser ready for the first line of a message, or NULL. */
struct mime_parser *mime_parser_new(void);

/*
 * Feeds the next len bytes of the message, in chunks cut anywhere (a
 * line in pieces, a CR in one chunk and its LF in the next): the parser
 * assembles lines itself, keeping only the head of the current line, and
 * takes CRLF or a bare LF as a line end.  A line may be of any length.
 */
void mime_parser_feed(struct mime_parser *, const char *data, size_t len);

/*
 * Ends the message and fills *out.  Returns 0, or -1 when memory ran out.
 * Malformed MIME is never an error: it is described as well as it can be,
 * as Dovecot and Cyrus do.  The parser can only be freed afterwards.
 */
int mime_parser_finish(struct mime_parser *, struct mime_result *out);

void mime_parser_free(struct mime_parser *);
void mime_result_free(struct mime_result *);

/*
 * The parts table as a compact, versioned byte string for storage, and
 * back.  mime_parts_decode() returns 0, or -1 for input it did not write.
 * Both allocate what they return; the caller frees it.
 */
int mime_parts_encode(const struct mime_part *, size_t n, char **out,
    size_t *outlen);
int mime_parts_decode(const char *in, size_t inlen, struct mime_part **out,
    size_t *n);

/*
 * A Date: field value as seconds since the epoch on its own clock (the
 * time in its zone, as if that were UTC): its day is the date the sender
 * wrote, which SENTON and its kin compare (RFC 3501 6.4.4).  -1 when it
 * does not parse.
 */
time_t mime_date_local(const char *s, size_t n);

/*
 * A header value with its RFC 2047 encoded words decoded to UTF-8, as a
 * malloc'd string; NULL when memory ran out.
 */
char *mime_decode_words(const char *s, size_t n);

/* A part's Content-Transfer-Encoding (RFC 2045 6.1). */
enum mime_cte {
	MIME_CTE_IDENTITY,	/* 7bit, 8bit, binary, or none given */
	MIME_CTE_BASE64,
	MIME_CTE_QP,
	MIME_CTE_UNKNOWN,	/* passed through by mime_decode() */
};

/* The value of a Content-Transfer-Encoding field, blanks around it. */
enum mime_cte mime_cte_parse(const char *v, size_t n);

enum mime_qp_state {
	MIME_QP_TEXT,
	MIME_QP_EQUALS,		/* after "=" (and the blanks held) */
	MIME_QP_HEX,		/* after "=" and one hex digit */
	MIME_QP_SOFT_CR,	/* after "=" CR, a soft line break */
};

/* A decoder's state across the chunks of one part (mime_decode.c). */
struct mime_decoder {
	enum mime_cte		 cte;
	uint32_t		 acc;		/* base64: bits not yet written */
	int			 nbits;
	enum mime_qp_state	 qp;
	unsigned char		 hex;		/* MIME_QP_HEX: first digit */
	unsigned char		 held[MIME_QP_BLANKS];	/* maybe padding */
	size_t			 nheld;
};

/* Bytes mime_decode() may write beyond the count it was given. */
#define MIME_DECODE_SLACK	(MIME_QP_BLANKS + 2)

void	mime_decoder_init(struct mime_decoder *, enum mime_cte);

/*
 * Decodes the next n bytes of the part into out, which has room for
 * n + MIME_DECODE_SLACK; returns how many were written.
 */
size_t	mime_decode(struct mime_decoder *, const unsigned char *in,
	    size_t n, unsigned char *out);

/*
 * Ends the part: writes what the decoder held that is data (an "=X"
 * that started no escape), at most 2 bytes, and returns how many.
 */
size_t	mime_decode_end(struct mime_decoder *, unsigned char *out);

/* What one body part is, from its MIME header (mime_part.c). */
struct mime_part_desc {
	char		 type[MIME_MAX_TYPE];	/* "text/html", lower case */
	char		 charset[MIME_MAX_CHARSET];	/* lower case, or "" */
	char		 filename[MIME_MAX_FILENAME];	/* decoded, or "" */
	char		 content_id[MIME_MAX_CONTENT_ID]; /* without <>, or "" */
	enum mime_cte	 cte;
	int		 attachment;	/* a file, not text to read inline */
	int		 disposed;	/* Content-Disposition: attachment */
};

/*
 * Reads a part's MIME header block (len bytes, folded as received) into
 * *d.  A part without Content-Type is text/plain (RFC 2045 5.2); a part
 * named "attachment" by Content-Disposition, or given a file name and
 * not text, is an attachment.  Fields too long for *d are cut, but a
 * Content-ID too long is left out: cut, it could name another part.
 */
void	mime_part_describe(const char *header, size_t len,
	    struct mime_part_desc *d);

/* Convenience: parses a whole message held in memory (tests, import). */
int mime_parse_buffer(const char *msg, size_t len, struct mime_result *out);

#endif /* MAILREPD_MIME_H */
