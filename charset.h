/*
 * charset.h — mail's text in its declared charset, converted to UTF-8
 * (charset.c), for the web view and its API.
 *
 * The conversions are the WHATWG Encoding Standard's decoders, built
 * into the binary from tables (charset_tables.inc): a static binary
 * cannot count on iconv, whose glibc modules are loaded at run time
 * from the host that built it.
 */
#ifndef MAILREPD_CHARSET_H
#define MAILREPD_CHARSET_H

#include <stddef.h>

/* Whether a charset's name (lower case, as mime_part_describe() gives
 * it; "" for none) is one charset_to_utf8() converts from. */
int	charset_known(const char *name);

/*
 * Converts in (n bytes in the charset named) to UTF-8 into out (size
 * bytes, size > 0) and returns how many bytes it wrote, never cutting
 * a character: it stops before one that would not fit.  Bytes that
 * are no character of the charset become U+FFFD.  A byte order mark
 * (UTF-8, UTF-16) at the start decides the charset, whatever the name.
 * No charset, and "us-ascii", is UTF-8 when the bytes are, else
 * Windows-1252.  A charset not known keeps ASCII and turns every other
 * byte into U+FFFD.  out is not NUL-terminated.
 */
size_t	charset_to_utf8(const char *name, const char *in, size_t n,
	    char *out, size_t size);

#endif /* MAILREPD_CHARSET_H */
