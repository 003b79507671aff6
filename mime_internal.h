/*
 * mime_internal.h — what the two halves of the MIME module share: the
 * growable strings and lists of mime_text.c and its RFC 5322 / 2045 /
 * 2047 / 2231 readers of single header values, used by mime.c's
 * streaming parser.  Not an API for other modules (mime.h is).
 */
#ifndef MAILREPD_MIME_INTERNAL_H
#define MAILREPD_MIME_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define IS_LWSP(c)	((c) == ' ' || (c) == '\t')
#define REPLACEMENT	"\xef\xbf\xbd"	/* U+FFFD in UTF-8 */

/* A growable NUL-terminated string; after a failed allocation it only
 * remembers the failure. */
struct sbuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
	int	 err;
};

struct kv {
	char	*k;
	char	*v;
};

struct kvlist {
	struct kv	*a;
	size_t		 n;
	size_t		 cap;
	int		 err;
};

/* RFC 822 tokenizer state over one header value. */
struct rfc {
	const unsigned char	*p;
	const unsigned char	*end;
	struct sbuf		*comment;	/* gets the last comment */
	int			 nulrepl;	/* NUL becomes U+FFFD */
};

#define RFC_C(r)	((r)->p < (r)->end ? *(r)->p : 0)


/* Appending to an sbuf; a failed allocation is remembered in b->err. */
void	sb_add(struct sbuf *b, const void *p, size_t n);
void	sb_addc(struct sbuf *b, char c);
void	sb_adds(struct sbuf *b, const char *s);
void	sb_addu(struct sbuf *b, uint64_t v);
void	sb_trunc(struct sbuf *b, size_t len);
/* The string so far ("" when empty); the sbuf keeps it. */
const char *sb_str(const struct sbuf *b);
void	sb_free(struct sbuf *b);
/*
 * Returns b's string, which the caller now owns, and empties b; NULL
 * (and *oom set) when an allocation failed along the way.
 */
char	*sb_take(struct sbuf *b, int *oom);
/* A copy of n bytes cut at the first NUL, as Dovecot's C strings are. */
char	*mime_strcopy(const char *s, size_t n, int *oom);
void	kv_free(struct kvlist *l);

/* IMAP strings as Dovecot writes them: NIL for NULL, quoted or literal. */
void	mime_nstring(struct sbuf *o, const char *s);
/* As mime_nstring(), with CR and LF dropped (a blank kept between). */
void	mime_nstring_nolf(struct sbuf *o, const char *s);
/* A display name or subject "for humans" (blanks folded, trimmed). */
void	mime_humans(struct sbuf *o, const char *s);

/* The RFC 822 tokenizer over one header value (struct rfc). */
int	rfc_skip_lwsp(struct rfc *r);
int	rfc_run(struct rfc *r, struct sbuf *out, int tokenchars, int dot);
int	rfc_atom(struct rfc *r, struct sbuf *out);
/* type "/" subtype into out; see mime_text.c for the error cases. */
int	rfc_content_type(struct rfc *r, struct sbuf *out);
/* The parameters after a Content-Type or Content-Disposition value. */
void	rfc_params(struct rfc *r, struct kvlist *l);

/* Appends the IMAP address list of one header value to out. */
int	mime_addr_parse(const char *v, size_t n, struct sbuf *out);
/* Appends s with RFC 2047 encoded words decoded to UTF-8. */
void	mime_decode_2047(struct sbuf *o, const char *s, size_t n);
/* An RFC 5322 date-time to seconds since the epoch; -1 if it does not parse. */
time_t	mime_parse_date(const char *s, size_t n);

#endif /* MAILREPD_MIME_INTERNAL_H */
