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

/* Output of mutf7_to_utf8(): bytes written so far, bounded. */
struct utf8_out {
	char		*out;
	size_t		 size, len;
	int		 bad;
};

/* Writes code point cp as UTF-8. */
static void
utf8_put(struct utf8_out *u, uint32_t cp)
{
	unsigned char	 b[4];
	size_t		 n, i;

	if (cp < 0x80)
		b[0] = (unsigned char)cp, n = 1;
	else if (cp < 0x800)
		b[0] = 0xc0 | cp >> 6, b[1] = 0x80 | (cp & 0x3f), n = 2;
	else if (cp < 0x10000)
		b[0] = 0xe0 | cp >> 12, b[1] = 0x80 | ((cp >> 6) & 0x3f),
		    b[2] = 0x80 | (cp & 0x3f), n = 3;
	else
		b[0] = 0xf0 | cp >> 18, b[1] = 0x80 | ((cp >> 12) & 0x3f),
		    b[2] = 0x80 | ((cp >> 6) & 0x3f), b[3] = 0x80 | (cp & 0x3f),
		    n = 4;
	if (u->len + n >= u->size) {
		u->bad = 1;
		return;
	}
	for (i = 0; i < n; i++)
		u->out[u->len++] = (char)b[i];
}

/* The value of a modified-BASE64 character, or -1. */
static int
mbase64_value(char c)
{
	size_t	 i;

	for (i = 0; i < sizeof(mbase64) - 1; i++)
		if (mbase64[i] == c)
			return (int)i;
	return -1;
}

/*
 * Decodes the modified-BASE64 run at *pp (after its "&") up to its "-",
 * and moves past it.  Returns 0, or -1 for a bad run: a character
 * outside the alphabet, bits left over, a surrogate not in a pair.
 */
static int
mutf7_run(const char **pp, struct utf8_out *u)
{
	const char	*p = *pp;
	uint32_t	 bits = 0, unit, high = 0;
	int		 nbits = 0, v;

	for (; *p != '-'; p++) {
		if ((v = mbase64_value(*p)) < 0)
			return -1;
		bits = bits << 6 | (uint32_t)v;
		if ((nbits += 6) < 16)
			continue;
		nbits -= 16;
		unit = bits >> nbits & 0xffff;
		if (unit >= 0xd800 && unit <= 0xdbff && high == 0)
			high = unit;
		else if (unit >= 0xdc00 && unit <= 0xdfff && high != 0) {
			utf8_put(u, 0x10000 + ((high - 0xd800) << 10) +
			    (unit - 0xdc00));
			high = 0;
		} else if (high != 0 || (unit >= 0xd800 && unit <= 0xdfff))
			return -1;
		else
			utf8_put(u, unit);
	}
	/* what is left must be padding zeros, under a whole character */
	if (high != 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0 ||
	    p == *pp)
		return -1;
	*pp = p + 1;
	return 0;
}

int
mutf7_to_utf8(const char *in, char *out, size_t size)
{
	struct utf8_out	 u = { out, size, 0, 0 };
	const char	*p = in;

	while (*p != '\0' && !u.bad) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return -1;
		if (*p != '&')
			utf8_put(&u, (unsigned char)*p++);
		else if (p[1] == '-') {
			utf8_put(&u, '&');
			p += 2;
		} else {
			p++;
			if (mutf7_run(&p, &u) < 0)
				return -1;
		}
	}
	if (u.bad || size == 0)
		return -1;
	out[u.len] = '\0';
	return 0;
}
