/*
 * utf8.h — UTF-8 validation (RFC 3629), for JSON output and user names.
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

#endif /* MAILREPD_UTF8_H */
