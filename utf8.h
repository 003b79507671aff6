/*
 * utf8.h — UTF-8 validation (RFC 3629), for JSON output and user names,
 * and its conversions to and from IMAP's modified UTF-7 for mailbox
 * names.
 */
#ifndef MAILREPD_UTF8_H
#define MAILREPD_UTF8_H

#include <stddef.h>

/*
 * The length of the valid UTF-8 sequence at p (at most n bytes, n > 0),
 * or 0 when it is not one: overlong forms, surrogates and code points
 * past U+10FFFF are refused.  An ASCII byte is a sequence of 1.
 */
size_t	utf8_len(const unsigned char *p, size_t n);

/*
 * A UTF-8 string as a mailbox name in modified UTF-7 (RFC 3501 5.1.3),
 * the form names are stored in, into out (size bytes, NUL-terminated).
 * Returns 0, or -1 when in is not UTF-8 or out is too small.
 */
int	utf8_to_mutf7(const char *in, char *out, size_t size);

/*
 * A stored mailbox name (modified UTF-7) as UTF-8, for a client that
 * enabled UTF8=ACCEPT (RFC 6855 3), into out (size bytes,
 * NUL-terminated).  Returns 0, or -1 when in is not valid modified
 * UTF-7 (a lone surrogate, bits left over) or out is too small.
 */
int	mutf7_to_utf8(const char *in, char *out, size_t size);

#endif /* MAILREPD_UTF8_H */
