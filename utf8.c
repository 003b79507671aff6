/*
 * utf8.c — UTF-8 validation (RFC 3629), and IMAP's modified UTF-7 for
 * mailbox names (RFC 3501 5.1.3).
 */
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

/* The sequence at p as utf8_len() checks it, its code point in *cp. */
static size_t
utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t		 len, i;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, *cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, *cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, *cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && *cp < 0x800) || (len == 4 && *cp < 0x10000) ||
	    (*cp >= 0xd800 && *cp <= 0xdfff) || *cp > 0x10ffff)
		return 0;
	return len;
}

size_t
utf8_len(const unsigned char *p, size_t n)
{
	uint32_t	 cp;

	return utf8_decode(p, n, &cp);
}

/* Modified BASE64: "," where BASE64 has "/". */
static const char	 mbase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz0123456789+,";

/* Output of utf8_to_mutf7(): bytes written so far, bounded. */
struct mutf7 {
	char		*out;
	size_t		 size, len;
	uint32_t	 bits;		/* base64: bits not yet written */
	int		 nbits;
	int		 bad;
};

static void
mutf7_put(struct mutf7 *m, char c)
{
	if (m->len + 1 < m->size)
		m->out[m->len++] = c;
	else
		m->bad = 1;
}

/* Adds 16 bits to a modified-BASE64 run ("," for "/", no padding). */
static void
mutf7_unit(struct mutf7 *m, uint32_t unit)
{
	m->bits = m->bits << 16 | unit;
	m->nbits += 16;
	while (m->nbits >= 6) {
		m->nbits -= 6;
		mutf7_put(m, mbase64[(m->bits >> m->nbits) & 0x3f]);
	}
}

/* Ends a BASE64 run: its last bits, then "-". */
static void
mutf7_close(struct mutf7 *m)
{
	if (m->nbits > 0)
		mutf7_put(m, mbase64[(m->bits << (6 - m->nbits)) & 0x3f]);
	m->nbits = 0;
	mutf7_put(m, '-');
}

int
utf8_to_mutf7(const char *in, char *out, size_t size)
{
	const unsigned char	*p = (const unsigned char *)in;
	struct mutf7		 m = { out, size, 0, 0, 0, 0 };
	uint32_t		 cp;
	size_t			 n, left;
	int			 run = 0;

	for (left = 0; p[left] != '\0'; left++)
		;
	while (left > 0 && !m.bad) {
		if ((n = utf8_decode(p, left, &cp)) == 0)
			return -1;
		p += n;
		left -= n;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (run)
				mutf7_close(&m);
			run = 0;
			mutf7_put(&m, (char)cp);
			if (cp == '&')
				mutf7_put(&m, '-');
			continue;
		}
		if (!run)
			mutf7_put(&m, '&');
		run = 1;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			mutf7_unit(&m, 0xd800 | cp >> 10);
			cp = 0xdc00 | (cp & 0x3ff);
		}
		mutf7_unit(&m, cp);
	}
	if (run)
		mutf7_close(&m);
	if (m.bad)
		return -1;
	out[m.len] = '\0';
	return 0;
}
