/*
 * mime_decode.c — undoing a part's Content-Transfer-Encoding (RFC 2045
 * 6) one chunk at a time, for SEARCH BODY/TEXT and FETCH BINARY.
 *
 * The decoders are lenient, as Dovecot's are: base64 skips whatever is
 * not in its alphabet, and quoted-printable keeps an "=" that starts no
 * escape.  Quoted-printable drops the blanks that end a line (RFC 2045
 * 6.7 (3): they are transport padding), so a run of blanks is held back
 * until the next byte says whether it ends a line.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "mime.h"

#define IS_BLANK(c)	((c) == ' ' || (c) == '\t')

static const struct {
	const char	*name;
	enum mime_cte	 cte;
} ctes[] = {
	{ "7bit",		MIME_CTE_IDENTITY },
	{ "8bit",		MIME_CTE_IDENTITY },
	{ "binary",		MIME_CTE_IDENTITY },
	{ "base64",		MIME_CTE_BASE64 },
	{ "quoted-printable",	MIME_CTE_QP },
};

enum mime_cte
mime_cte_parse(const char *v, size_t n)
{
	size_t	 i;

	while (n > 0 && IS_BLANK(*v)) {
		v++;
		n--;
	}
	while (n > 0 && (IS_BLANK(v[n - 1]) || v[n - 1] == '\r' ||
	    v[n - 1] == '\n'))
		n--;
	for (i = 0; i < sizeof(ctes) / sizeof(ctes[0]); i++)
		if (strlen(ctes[i].name) == n &&
		    strncasecmp(v, ctes[i].name, n) == 0)
			return ctes[i].cte;
	return MIME_CTE_UNKNOWN;
}

void
mime_decoder_init(struct mime_decoder *d, enum mime_cte cte)
{
	memset(d, 0, sizeof(*d));
	d->cte = cte;
}

/* Base64: 6 bits a digit; bytes outside the alphabet are skipped. */
static size_t
decode_base64(struct mime_decoder *d, const unsigned char *in, size_t n,
    unsigned char *out)
{
	size_t	 i, o = 0;
	int	 v;

	for (i = 0; i < n; i++) {
		if ((v = crypto_base64_digit(in[i])) < 0)
			continue;
		d->acc = d->acc << 6 | (uint32_t)v;
		if ((d->nbits += 6) >= 8) {
			d->nbits -= 8;
			out[o++] = (unsigned char)(d->acc >> d->nbits);
		}
	}
	return o;
}

/* Writes the held blanks (and the "=" before them, if any). */
static size_t
qp_release(struct mime_decoder *d, unsigned char *out)
{
	size_t	 o = d->nheld;

	memcpy(out, d->held, d->nheld);
	d->nheld = 0;
	return o;
}

/*
 * One byte of quoted-printable text (not inside an escape): blanks are
 * held, a line end drops them, anything else writes them first.
 */
static size_t
qp_text(struct mime_decoder *d, unsigned char c, unsigned char *out)
{
	size_t	 o = 0;

	if (IS_BLANK(c)) {
		if (d->nheld == sizeof(d->held))
			o = qp_release(d, out);
		d->held[d->nheld++] = c;
		return o;
	}
	if (c == '\r' || c == '\n')
		d->nheld = 0;
	else
		o = qp_release(d, out);
	if (c == '=') {
		d->qp = MIME_QP_EQUALS;
		return o;
	}
	out[o++] = c;
	return o;
}

/*
 * Quoted-printable: "=XX" is a byte; "=" then blanks then a line end is
 * a soft line break; an "=" followed by anything else is written as it
 * is.
 */
static size_t
decode_qp(struct mime_decoder *d, const unsigned char *in, size_t n,
    unsigned char *out)
{
	size_t		 i, o = 0;
	unsigned char	 c;

	for (i = 0; i < n; i++) {
		c = in[i];
		switch (d->qp) {
		case MIME_QP_TEXT:
			o += qp_text(d, c, out + o);
			continue;
		case MIME_QP_EQUALS:
			if (d->nheld == 0 && crypto_hex_digit(c) >= 0) {
				d->hex = c;
				d->qp = MIME_QP_HEX;
				continue;
			}
			if (IS_BLANK(c) && d->nheld + 1 < sizeof(d->held)) {
				if (d->nheld == 0)
					d->held[d->nheld++] = '=';
				d->held[d->nheld++] = c;
				continue;
			}
			d->qp = MIME_QP_TEXT;
			if (c == '\n') {
				d->nheld = 0;
				continue;
			}
			if (c == '\r') {
				d->nheld = 0;
				d->qp = MIME_QP_SOFT_CR;
				continue;
			}
			if (d->nheld == 0)
				out[o++] = '=';
			o += qp_release(d, out + o);
			break;
		case MIME_QP_HEX:
			d->qp = MIME_QP_TEXT;
			if (crypto_hex_digit(c) >= 0) {
				out[o++] = (unsigned char)((unsigned)
				    crypto_hex_digit(d->hex) << 4 |
				    (unsigned)crypto_hex_digit(c));
				continue;
			}
			out[o++] = '=';
			out[o++] = d->hex;
			break;
		case MIME_QP_SOFT_CR:
			d->qp = MIME_QP_TEXT;
			if (c == '\n')
				continue;
			break;
		}
		o += qp_text(d, c, out + o);
	}
	return o;
}

size_t
mime_decode(struct mime_decoder *d, const unsigned char *in, size_t n,
    unsigned char *out)
{
	switch (d->cte) {
	case MIME_CTE_BASE64:
		return decode_base64(d, in, n, out);
	case MIME_CTE_QP:
		return decode_qp(d, in, n, out);
	case MIME_CTE_IDENTITY:
	case MIME_CTE_UNKNOWN:
		break;
	}
	memcpy(out, in, n);
	return n;
}

size_t
mime_decode_end(struct mime_decoder *d, unsigned char *out)
{
	size_t	 o = 0;

	if (d->cte == MIME_CTE_QP && d->qp == MIME_QP_HEX) {
		out[o++] = '=';
		out[o++] = d->hex;
	}
	/*
	 * The part's last line has no line end of its own (that belongs to
	 * the boundary): an "=" ending it is a soft line break, and blanks
	 * ending it are padding.
	 */
	d->nheld = 0;
	d->qp = MIME_QP_TEXT;
	return o;
}
