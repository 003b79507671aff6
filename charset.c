/*
 * charset.c — mail's text converted to UTF-8 (charset.h).
 *
 * Each charset is a decoder and, for most, a table; the decoders are
 * the WHATWG Encoding Standard's, so that a message reads as a
 * browser would show it: ISO-8859-1 is read as Windows-1252,
 * ISO-8859-9 as Windows-1254, Shift_JIS as Windows-31J, EUC-KR as
 * Windows-949, GB2312 and GBK as GB18030, "utf-16" and "unicode" as
 * UTF-16LE; ISO-2022-KR, ISO-2022-CN and HZ-GB-2312 are the standard's
 * "replacement" encoding (one U+FFFD for the whole text: their escapes
 * could hide markup from a filter), and a byte order mark at the start
 * decides UTF-8 or UTF-16 whatever the label says.  Left out: JIS X
 * 0212 in EUC-JP (its three bytes become one U+FFFD).  Names are
 * matched by the labels the standard lists for each.
 *
 * UTF-7 (RFC 2152) is not in the standard (the HTML standard forbids
 * browsers it, because a page's filter could miss markup spelt in
 * it); it is converted here all the same, as mail programs do, since
 * the HTML sanitizer reads the text after the conversion.
 */
#include <stdint.h>
#include <string.h>

#include "charset.h"
#include "crypto.h"
#include "utf8.h"

#include "charset_tables.inc"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#define REPLACEMENT	0xfffd
#define NO_CHAR		UINT32_MAX	/* an escape: state, no character */
#define IN(b, lo, hi)	((b) >= (lo) && (b) <= (hi))

/* ISO-2022-JP's states: which set bytes name (WHATWG 12.2.1). */
enum jis_state {
	JIS_ASCII,
	JIS_ROMAN,
	JIS_KATAKANA,
	JIS_0208,
};

struct charset;

/* One conversion's state. */
struct conv {
	const struct charset	*cs;
	enum jis_state		 jis;
	int			 base64;	/* UTF-7: in a base64 run */
	uint32_t		 bits;		/* UTF-7: read, not yet used */
	int			 nbits;
};

/*
 * A decoder reads the character at p (n > 0 bytes left), sets *cp to
 * it (REPLACEMENT when the bytes are none, NO_CHAR for an escape) and
 * returns how many bytes it took, at least 1.
 */
typedef size_t	decode_fn(struct conv *, const unsigned char *p, size_t n,
		    uint32_t *cp);

struct charset {
	decode_fn	*decode;
	const uint16_t	*table;		/* code points, 0 for none */
	size_t		 len;		/* entries in table */
	unsigned char	 trail[4];	/* decode_pair(): trail byte ranges */
};

/* The code point at pointer p of a table, or REPLACEMENT. */
static uint32_t
lookup(const struct charset *cs, size_t p)
{
	return p < cs->len && cs->table[p] != 0 ? cs->table[p] : REPLACEMENT;
}

static size_t
decode_utf8(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t	 k, i;

	(void)c;
	if ((k = utf8_len(p, n)) == 0) {
		*cp = REPLACEMENT;
		return 1;
	}
	*cp = k == 1 ? p[0] : (uint32_t)p[0] & (0x7f >> k);
	for (i = 1; i < k; i++)
		*cp = *cp << 6 | (p[i] & 0x3f);
	return k;
}

/* A single-byte charset: ASCII, and a table for 0x80-0xff. */
static size_t
decode_single(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	(void)n;
	*cp = p[0] < 0x80 ? p[0] : lookup(c->cs, p[0] - 0x80u);
	return 1;
}

/*
 * The standard's "replacement" encoding: the whole text is one U+FFFD
 * (none when it is empty).
 */
static size_t
decode_replacement(struct conv *c, const unsigned char *p, size_t n,
    uint32_t *cp)
{
	(void)c;
	(void)p;
	*cp = REPLACEMENT;
	return n;
}

/* UTF-16's code unit at p, big-endian or little-endian. */
static uint32_t
utf16_unit(const unsigned char *p, int big)
{
	return big ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
}

/*
 * UTF-16 (WHATWG 14.3): a lead and a trail surrogate are one
 * character; a surrogate alone is U+FFFD (put_utf8()), the unit after
 * a lead surrogate that is no trail read again, and an odd byte at
 * the end (with a lead surrogate before it) one U+FFFD.
 */
static size_t
decode_utf16(const unsigned char *p, size_t n, uint32_t *cp, int big)
{
	uint32_t	 u, t;

	*cp = REPLACEMENT;
	if (n < 2)
		return n;
	u = utf16_unit(p, big);
	if (IN(u, 0xd800, 0xdbff) && n == 3)
		return 3;
	if (IN(u, 0xd800, 0xdbff) && n >= 4 &&
	    IN(t = utf16_unit(p + 2, big), 0xdc00, 0xdfff)) {
		*cp = 0x10000 + ((u - 0xd800) << 10) + t - 0xdc00;
		return 4;
	}
	*cp = u;
	return 2;
}

static size_t
decode_utf16be(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	(void)c;
	return decode_utf16(p, n, cp, 1);
}

static size_t
decode_utf16le(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	(void)c;
	return decode_utf16(p, n, cp, 0);
}

/*
 * The next UTF-16 unit of a UTF-7 base64 run at p (n bytes) into *u,
 * after the bits carried in *bits and *nbits, which it updates.
 * Returns the bytes it read, 0 when the run ends first.
 */
static size_t
utf7_unit(const unsigned char *p, size_t n, uint32_t *bits, int *nbits,
    uint32_t *u)
{
	size_t	 i = 0;
	int	 v;

	while (*nbits < 16) {
		if (i == n || (v = crypto_base64_digit(p[i])) < 0)
			return 0;
		*bits = *bits << 6 | (uint32_t)v;
		*nbits += 6;
		i++;
	}
	*nbits -= 16;
	*u = *bits >> *nbits & 0xffff;
	*bits &= (1u << *nbits) - 1;
	return i;
}

/*
 * UTF-7 (RFC 2152): ASCII as itself, "+-" a '+', and '+' opening a run
 * of modified base64 for UTF-16 units, which any other byte ends ('-'
 * taken with it).  Base64 bytes too few for a unit at a run's end, a
 * surrogate alone and bytes above 0x7f are U+FFFD.
 */
static size_t
decode_utf7(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	uint32_t	 bits = c->bits, u, t, bits2;
	int		 nbits = c->nbits, nbits2;
	size_t		 k, k2;

	if (!c->base64) {
		*cp = p[0] < 0x80 ? p[0] : REPLACEMENT;
		if (p[0] != '+')
			return 1;
		if (n > 1 && p[1] == '-')
			return 2;
		c->base64 = 1;
		c->bits = 0;
		c->nbits = 0;
		*cp = NO_CHAR;
		return 1;
	}
	if ((k = utf7_unit(p, n, &bits, &nbits, &u)) == 0) {
		while (k < n && crypto_base64_digit(p[k]) >= 0)
			k++;
		c->bits = 0;
		c->nbits = 0;
		if (k > 0) {
			*cp = REPLACEMENT;
			return k;
		}
		c->base64 = 0;
		*cp = p[0] == '-' ? NO_CHAR : p[0] < 0x80 ? p[0] : REPLACEMENT;
		return 1;
	}
	bits2 = bits;
	nbits2 = nbits;
	if (IN(u, 0xd800, 0xdbff) && (k2 = utf7_unit(p + k, n - k, &bits2,
	    &nbits2, &t)) > 0 && IN(t, 0xdc00, 0xdfff)) {
		u = 0x10000 + ((u - 0xd800) << 10) + t - 0xdc00;
		k += k2;
		bits = bits2;
		nbits = nbits2;
	}
	c->bits = bits;
	c->nbits = nbits;
	*cp = u;
	return k;
}

/* A charset not known: ASCII stays, all else is U+FFFD. */
static size_t
decode_unknown(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	(void)c;
	(void)n;
	*cp = p[0] < 0x80 ? p[0] : REPLACEMENT;
	return 1;
}

/*
 * The end of a double-byte character that is none: a trail byte that
 * is ASCII is read again as itself (WHATWG), any other goes with it.
 */
static size_t
bad_pair(const unsigned char *p, uint32_t *cp)
{
	*cp = REPLACEMENT;
	return p[1] < 0x80 ? 1 : 2;
}

/*
 * A lead byte 0x81-0xfe and its trail byte, in a table of rows of
 * every trail byte the charset has (its one or two ranges).
 */
static size_t
decode_pair(struct conv *c, const unsigned char *p, uint32_t *cp)
{
	const unsigned char	*r = c->cs->trail;
	unsigned		 t = p[1], first = r[1] - r[0] + 1u;
	unsigned		 row = first + (r[2] != 0 ? r[3] - r[2] + 1u : 0);

	if (IN(t, r[0], r[1]))
		t -= r[0];
	else if (r[2] != 0 && IN(t, r[2], r[3]))
		t = first + t - r[2];
	else
		return bad_pair(p, cp);
	if ((*cp = lookup(c->cs, (p[0] - 0x81u) * row + t)) == REPLACEMENT)
		return bad_pair(p, cp);
	return 2;
}

static size_t
decode_sjis(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned	 b = p[0], t;
	size_t		 ptr;

	*cp = REPLACEMENT;
	if (b < 0x80)
		*cp = b;
	else if (IN(b, 0xa1, 0xdf))
		*cp = 0xff61 + b - 0xa1;	/* half-width katakana */
	else if ((IN(b, 0x81, 0x9f) || IN(b, 0xe0, 0xfc)) && n > 1) {
		t = p[1];
		if (!IN(t, 0x40, 0x7e) && !IN(t, 0x80, 0xfc))
			return bad_pair(p, cp);
		ptr = (b - (b < 0xa0 ? 0x81 : 0xc1)) * 188 +
		    t - (t < 0x7f ? 0x40 : 0x41);
		if (IN(ptr, 8836, 10715))	/* user-defined */
			*cp = 0xe000 + (uint32_t)ptr - 8836;
		else if ((*cp = lookup(c->cs, ptr)) == REPLACEMENT)
			return bad_pair(p, cp);
		return 2;
	}
	return 1;
}

static size_t
decode_euc_jp(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned	 b = p[0];

	*cp = REPLACEMENT;
	if (b < 0x80)
		*cp = b;
	else if (b == 0x8e && n > 1 && IN(p[1], 0xa1, 0xdf)) {
		*cp = 0xff61 + p[1] - 0xa1;
		return 2;
	} else if (b == 0x8f && n > 2 && IN(p[1], 0xa1, 0xfe) &&
	    IN(p[2], 0xa1, 0xfe))
		return 3;			/* JIS X 0212: not carried */
	else if (IN(b, 0xa1, 0xfe) && n > 1) {
		if (!IN(p[1], 0xa1, 0xfe))
			return bad_pair(p, cp);
		*cp = lookup(c->cs, (b - 0xa1) * 94u + p[1] - 0xa1);
		return 2;
	}
	return 1;
}

/* ISO-2022-JP's escapes: ESC and two bytes name the set that follows. */
static const struct {
	char		 esc[3];
	enum jis_state	 state;
} jis_escapes[] = {
	{ "(B", JIS_ASCII }, { "(J", JIS_ROMAN }, { "(I", JIS_KATAKANA },
	{ "$@", JIS_0208 }, { "$B", JIS_0208 },
};

static size_t
decode_iso_2022_jp(struct conv *c, const unsigned char *p, size_t n,
    uint32_t *cp)
{
	unsigned	 b = p[0];
	size_t		 i;

	*cp = REPLACEMENT;
	if (b == 0x1b) {
		for (i = 0; i < nitems(jis_escapes) && n > 2; i++)
			if (memcmp(p + 1, jis_escapes[i].esc, 2) == 0) {
				c->jis = jis_escapes[i].state;
				*cp = NO_CHAR;
				return 3;
			}
	} else if (b >= 0x80)
		;
	else if (b < 0x21 || b == 0x7f || c->jis == JIS_ASCII)
		*cp = b;			/* controls in any state */
	else if (c->jis == JIS_ROMAN)
		*cp = b == 0x5c ? 0xa5 : b == 0x7e ? 0x203e : b;
	else if (c->jis == JIS_KATAKANA) {
		if (IN(b, 0x21, 0x5f))
			*cp = 0xff61 + b - 0x21;
	} else if (n > 1 && IN(p[1], 0x21, 0x7e)) {
		*cp = lookup(c->cs, (b - 0x21) * 94u + p[1] - 0x21);
		return 2;
	}
	return 1;
}

/* GB18030's four-byte pointer as a code point (WHATWG 10.1.1). */
static uint32_t
gb18030_ranges(uint32_t ptr)
{
	size_t	 lo = 0, hi = nitems(gb18030_range_pointer), mid;

	if (IN(ptr, 189000, 1237575))
		return 0x10000 + ptr - 189000;
	if (ptr > 39419 || ptr < gb18030_range_pointer[0])
		return REPLACEMENT;
	while (hi - lo > 1) {		/* the last range starting <= ptr */
		mid = (lo + hi) / 2;
		if (gb18030_range_pointer[mid] <= ptr)
			lo = mid;
		else
			hi = mid;
	}
	return gb18030_range_cp[lo] + ptr - gb18030_range_pointer[lo];
}

static size_t
decode_gb18030(struct conv *c, const unsigned char *p, size_t n,
    uint32_t *cp)
{
	unsigned	 b = p[0], t;

	*cp = REPLACEMENT;
	if (b < 0x80)
		*cp = b;
	else if (b == 0x80)
		*cp = 0x20ac;
	else if (b != 0xff && n > 1) {
		t = p[1];
		if (IN(t, 0x30, 0x39)) {
			if (n < 4 || !IN(p[2], 0x81, 0xfe) ||
			    !IN(p[3], 0x30, 0x39))
				return 1;
			*cp = gb18030_ranges((((b - 0x81) * 10 + t - 0x30) *
			    126 + p[2] - 0x81) * 10 + p[3] - 0x30);
			return 4;
		}
		return decode_pair(c, p, cp);
	}
	return 1;
}

/* Big5, EUC-KR: ASCII, or a lead byte 0x81-0xfe and a trail byte. */
static size_t
decode_dbcs(struct conv *c, const unsigned char *p, size_t n, uint32_t *cp)
{
	*cp = p[0] < 0x80 ? p[0] : REPLACEMENT;
	if (IN(p[0], 0x81, 0xfe) && n > 1)
		return decode_pair(c, p, cp);
	return 1;
}

#define TABLE(t)	(t), nitems(t)
#define SINGLE(t)	{ decode_single, TABLE(t), { 0 } }

static const struct charset utf_8 = { decode_utf8, NULL, 0, { 0 } };
static const struct charset unknown = { decode_unknown, NULL, 0, { 0 } };
static const struct charset replacement = { decode_replacement, NULL, 0,
	{ 0 } };
static const struct charset utf_16be = { decode_utf16be, NULL, 0, { 0 } };
static const struct charset utf_16le = { decode_utf16le, NULL, 0, { 0 } };
static const struct charset utf_7 = { decode_utf7, NULL, 0, { 0 } };
static const struct charset
    ibm866 = SINGLE(sb_ibm866),
    iso_8859_2 = SINGLE(sb_iso_8859_2), iso_8859_3 = SINGLE(sb_iso_8859_3),
    iso_8859_4 = SINGLE(sb_iso_8859_4), iso_8859_5 = SINGLE(sb_iso_8859_5),
    iso_8859_6 = SINGLE(sb_iso_8859_6), iso_8859_7 = SINGLE(sb_iso_8859_7),
    iso_8859_8 = SINGLE(sb_iso_8859_8), iso_8859_10 = SINGLE(sb_iso_8859_10),
    iso_8859_13 = SINGLE(sb_iso_8859_13),
    iso_8859_14 = SINGLE(sb_iso_8859_14),
    iso_8859_15 = SINGLE(sb_iso_8859_15),
    iso_8859_16 = SINGLE(sb_iso_8859_16),
    koi8_r = SINGLE(sb_koi8_r), koi8_u = SINGLE(sb_koi8_u),
    macintosh = SINGLE(sb_macintosh),
    x_mac_cyrillic = SINGLE(sb_x_mac_cyrillic),
    windows_874 = SINGLE(sb_windows_874),
    windows_1250 = SINGLE(sb_windows_1250),
    windows_1251 = SINGLE(sb_windows_1251),
    windows_1252 = SINGLE(sb_windows_1252),
    windows_1253 = SINGLE(sb_windows_1253),
    windows_1254 = SINGLE(sb_windows_1254),
    windows_1255 = SINGLE(sb_windows_1255),
    windows_1256 = SINGLE(sb_windows_1256),
    windows_1257 = SINGLE(sb_windows_1257),
    windows_1258 = SINGLE(sb_windows_1258),
    shift_jis = { decode_sjis, TABLE(dbcs_jis0208), { 0 } },
    euc_jp = { decode_euc_jp, TABLE(dbcs_jis0208), { 0 } },
    iso_2022_jp = { decode_iso_2022_jp, TABLE(dbcs_jis0208), { 0 } },
    gb18030 = { decode_gb18030, TABLE(dbcs_gb18030),
	{ 0x40, 0x7e, 0x80, 0xfe } },
    big5 = { decode_dbcs, TABLE(dbcs_big5), { 0x40, 0x7e, 0xa1, 0xfe } },
    euc_kr = { decode_dbcs, TABLE(dbcs_euc_kr), { 0x41, 0xfe, 0, 0 } };

/* Every name a charset goes by (WHATWG's labels, and a few of mail's). */
static const struct {
	const char		*name;
	const struct charset	*cs;
} labels[] = {
	{ "utf-8", &utf_8 }, { "utf8", &utf_8 },
	{ "unicode-1-1-utf-8", &utf_8 },
	{ "ibm866", &ibm866 }, { "cp866", &ibm866 }, { "866", &ibm866 },
	{ "csibm866", &ibm866 },
	{ "iso-8859-2", &iso_8859_2 }, { "iso8859-2", &iso_8859_2 },
	{ "iso_8859-2", &iso_8859_2 }, { "latin2", &iso_8859_2 },
	{ "l2", &iso_8859_2 }, { "csisolatin2", &iso_8859_2 },
	{ "iso-8859-3", &iso_8859_3 }, { "iso8859-3", &iso_8859_3 },
	{ "iso_8859-3", &iso_8859_3 }, { "latin3", &iso_8859_3 },
	{ "iso-8859-4", &iso_8859_4 }, { "iso8859-4", &iso_8859_4 },
	{ "iso_8859-4", &iso_8859_4 }, { "latin4", &iso_8859_4 },
	{ "iso-8859-5", &iso_8859_5 }, { "iso8859-5", &iso_8859_5 },
	{ "iso_8859-5", &iso_8859_5 }, { "cyrillic", &iso_8859_5 },
	{ "iso-8859-6", &iso_8859_6 }, { "iso8859-6", &iso_8859_6 },
	{ "iso_8859-6", &iso_8859_6 }, { "arabic", &iso_8859_6 },
	{ "iso-8859-7", &iso_8859_7 }, { "iso8859-7", &iso_8859_7 },
	{ "iso_8859-7", &iso_8859_7 }, { "greek", &iso_8859_7 },
	{ "iso-8859-8", &iso_8859_8 }, { "iso8859-8", &iso_8859_8 },
	{ "iso_8859-8", &iso_8859_8 }, { "iso-8859-8-i", &iso_8859_8 },
	{ "hebrew", &iso_8859_8 },
	{ "iso-8859-10", &iso_8859_10 }, { "iso8859-10", &iso_8859_10 },
	{ "latin6", &iso_8859_10 },
	{ "iso-8859-13", &iso_8859_13 }, { "iso8859-13", &iso_8859_13 },
	{ "iso-8859-14", &iso_8859_14 }, { "iso8859-14", &iso_8859_14 },
	{ "iso-8859-15", &iso_8859_15 }, { "iso8859-15", &iso_8859_15 },
	{ "iso_8859-15", &iso_8859_15 }, { "latin9", &iso_8859_15 },
	{ "latin-9", &iso_8859_15 },
	{ "iso-8859-16", &iso_8859_16 }, { "latin10", &iso_8859_16 },
	{ "koi8-r", &koi8_r }, { "koi8r", &koi8_r }, { "koi8", &koi8_r },
	{ "cskoi8r", &koi8_r }, { "koi8-u", &koi8_u }, { "koi8-ru", &koi8_u },
	{ "macintosh", &macintosh }, { "mac", &macintosh },
	{ "x-mac-roman", &macintosh },
	{ "x-mac-cyrillic", &x_mac_cyrillic },
	{ "x-mac-ukrainian", &x_mac_cyrillic },
	{ "windows-874", &windows_874 }, { "iso-8859-11", &windows_874 },
	{ "iso8859-11", &windows_874 }, { "tis-620", &windows_874 },
	{ "windows-1250", &windows_1250 }, { "cp1250", &windows_1250 },
	{ "windows-1251", &windows_1251 }, { "cp1251", &windows_1251 },
	{ "windows-1252", &windows_1252 }, { "cp1252", &windows_1252 },
	{ "iso-8859-1", &windows_1252 }, { "iso8859-1", &windows_1252 },
	{ "iso_8859-1", &windows_1252 }, { "latin1", &windows_1252 },
	{ "l1", &windows_1252 }, { "cp819", &windows_1252 },
	{ "ibm819", &windows_1252 }, { "csisolatin1", &windows_1252 },
	{ "windows-1253", &windows_1253 }, { "cp1253", &windows_1253 },
	{ "windows-1254", &windows_1254 }, { "cp1254", &windows_1254 },
	{ "iso-8859-9", &windows_1254 }, { "iso8859-9", &windows_1254 },
	{ "iso_8859-9", &windows_1254 }, { "latin5", &windows_1254 },
	{ "windows-1255", &windows_1255 }, { "cp1255", &windows_1255 },
	{ "windows-1256", &windows_1256 }, { "cp1256", &windows_1256 },
	{ "windows-1257", &windows_1257 }, { "cp1257", &windows_1257 },
	{ "windows-1258", &windows_1258 }, { "cp1258", &windows_1258 },
	{ "shift_jis", &shift_jis }, { "shift-jis", &shift_jis },
	{ "sjis", &shift_jis }, { "ms_kanji", &shift_jis },
	{ "csshiftjis", &shift_jis }, { "windows-31j", &shift_jis },
	{ "x-sjis", &shift_jis }, { "cp932", &shift_jis },
	{ "euc-jp", &euc_jp }, { "x-euc-jp", &euc_jp },
	{ "iso-2022-jp", &iso_2022_jp }, { "csiso2022jp", &iso_2022_jp },
	{ "gb18030", &gb18030 }, { "gbk", &gb18030 }, { "gb2312", &gb18030 },
	{ "gb_2312-80", &gb18030 }, { "csgb2312", &gb18030 },
	{ "x-gbk", &gb18030 }, { "cp936", &gb18030 },
	{ "euc-cn", &gb18030 }, { "chinese", &gb18030 },
	{ "big5", &big5 }, { "big5-hkscs", &big5 }, { "cn-big5", &big5 },
	{ "csbig5", &big5 }, { "x-x-big5", &big5 }, { "cp950", &big5 },
	{ "euc-kr", &euc_kr }, { "ks_c_5601-1987", &euc_kr },
	{ "ks_c_5601-1989", &euc_kr }, { "ksc5601", &euc_kr },
	{ "ksc_5601", &euc_kr }, { "korean", &euc_kr },
	{ "cseuckr", &euc_kr }, { "windows-949", &euc_kr },
	{ "cp949", &euc_kr },
	{ "iso-2022-kr", &replacement }, { "csiso2022kr", &replacement },
	{ "hz-gb-2312", &replacement }, { "iso-2022-cn", &replacement },
	{ "iso-2022-cn-ext", &replacement }, { "replacement", &replacement },
	{ "utf-16be", &utf_16be }, { "unicodefffe", &utf_16be },
	{ "utf-16le", &utf_16le }, { "utf-16", &utf_16le },
	{ "unicode", &utf_16le }, { "unicodefeff", &utf_16le },
	{ "ucs-2", &utf_16le }, { "iso-10646-ucs-2", &utf_16le },
	{ "csunicode", &utf_16le },
	{ "utf-7", &utf_7 }, { "unicode-1-1-utf-7", &utf_7 },
	{ "csunicode11utf7", &utf_7 },
};

/* Byte order marks, which decide the charset (WHATWG's "BOM sniff"). */
static const struct {
	const char		*bom;
	size_t			 len;
	const struct charset	*cs;
} boms[] = {
	{ "\xef\xbb\xbf", 3, &utf_8 },
	{ "\xfe\xff", 2, &utf_16be },
	{ "\xff\xfe", 2, &utf_16le },
};


/* Names that say "ASCII" or nothing: UTF-8 when it is, else 1252. */
static const char *const ascii_names[] = {
	"", "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us",
};

/* The charset named, or NULL when it is none of these. */
static const struct charset *
find(const char *name)
{
	size_t	 i;

	for (i = 0; i < nitems(labels); i++)
		if (strcmp(name, labels[i].name) == 0)
			return labels[i].cs;
	return NULL;
}

static int
ascii_name(const char *name)
{
	size_t	 i;

	for (i = 0; i < nitems(ascii_names); i++)
		if (strcmp(name, ascii_names[i]) == 0)
			return 1;
	return 0;
}

/* Whether in is UTF-8, allowing a character cut short at its end. */
static int
is_utf8(const unsigned char *in, size_t n)
{
	size_t	 i, k, need;

	for (i = 0; i < n; i += k)
		if ((k = utf8_len(in + i, n - i)) == 0)
			break;
	if (i == n)
		return 1;
	need = in[i] >= 0xf0 ? 4 : in[i] >= 0xe0 ? 3 : 2;
	if (in[i] < 0xc2 || in[i] > 0xf4 || n - i >= need)
		return 0;
	for (k = i + 1; k < n; k++)
		if ((in[k] & 0xc0) != 0x80)
			return 0;
	return 1;
}

int
charset_known(const char *name)
{
	return ascii_name(name) || find(name) != NULL;
}

/* Appends cp to out as UTF-8; 0 when it would not fit in size. */
static int
put_utf8(char *out, size_t size, size_t *o, uint32_t cp)
{
	unsigned char	 b[4];
	size_t		 k;

	if (cp >= 0xd800 && cp < 0xe000)
		cp = REPLACEMENT;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		k = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		k = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		k = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | cp >> 18);
		k = 4;
	}
	if (k > 1)
		b[k - 1] = (unsigned char)(0x80 | (cp & 0x3f));
	if (k > 2)
		b[k - 2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	if (k > 3)
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	if (size - *o < k)
		return 0;
	memcpy(out + *o, b, k);
	*o += k;
	return 1;
}

/*
 * The charset in (n bytes) is read in: the one a byte order mark at its
 * start names (*skip its length, else 0), whatever name says; for an
 * ASCII name, UTF-8 when in is, else Windows-1252; else name's.
 */
static const struct charset *
charset_of(const char *name, const unsigned char *in, size_t n,
    size_t *skip)
{
	const struct charset	*cs;
	size_t			 i;

	*skip = 0;
	for (i = 0; i < nitems(boms); i++)
		if (n >= boms[i].len && memcmp(in, boms[i].bom,
		    boms[i].len) == 0) {
			*skip = boms[i].len;
			return boms[i].cs;
		}
	if (ascii_name(name))
		return is_utf8(in, n) ? &utf_8 : &windows_1252;
	return (cs = find(name)) != NULL ? cs : &unknown;
}

size_t
charset_to_utf8(const char *name, const char *in, size_t n, char *out,
    size_t size)
{
	const unsigned char	*p = (const unsigned char *)in;
	struct conv		 c = { NULL, JIS_ASCII, 0, 0, 0 };
	size_t			 i, k, o = 0;
	uint32_t		 cp;

	c.cs = charset_of(name, p, n, &i);
	for (; i < n; i += k) {
		k = c.cs->decode(&c, p + i, n - i, &cp);
		if (cp != NO_CHAR && !put_utf8(out, size, &o, cp))
			break;
	}
	return o;
}
