/*
 * web_html.h — HTML mail made harmless for the web view (web_html.c):
 * an allow-list of elements and attributes, written anew.
 */
#ifndef MAILREPD_WEB_HTML_H
#define MAILREPD_WEB_HTML_H

#include <stddef.h>

/*
 * Writes html (len bytes, decoded, in an ASCII-compatible charset) with
 * only the allowed elements and attributes into *out (malloc'd, the
 * caller frees it; *outlen bytes).  Scripts, frames, forms, meta,
 * base, SVG and MathML go whole; links keep http, https and mailto
 * only.  Images from elsewhere and CSS that could load anything are
 * kept only when remote is set.  An image's "cid:X" (RFC 2392)
 * becomes cid_prefix followed by X, %-escaped to stay one path
 * segment (an src already so is kept); without cid_prefix it goes.
 * Returns 0, or -1 without memory.
 */
int	web_html_sanitize(const char *html, size_t len, int remote,
	    const char *cid_prefix, char **out, size_t *outlen);

#endif /* MAILREPD_WEB_HTML_H */
