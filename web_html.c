/*
 * web_html.c — HTML mail made harmless for the message view
 * (web_html.h): one pass over the decoded HTML that keeps the elements
 * and attributes of an allow-list and drops everything else.
 *
 * The output is written anew, never copied: each kept tag is written
 * from its name and its checked attributes (values double-quoted and
 * escaped), text is written with '<' and '>' escaped, and comments,
 * doctypes and processing instructions go.  So whatever the input, the
 * browser parses exactly the tags written here, and only these:
 * a parser differential can change what the mail looks like, never what
 * it may do.  What executes or loads (script, style sheets and images
 * from elsewhere, frames, forms, meta refresh, base, SVG and MathML) is
 * dropped; links may only lead to http(s) or mailto; images from
 * elsewhere and CSS url() are kept only when the reader asked for remote
 * content.  The page also frames the result in a sandbox without
 * scripts, under a policy that loads nothing (web_message.c): this pass
 * is the second wall, not the only one.
 *
 * No tree is built: memory is the output only, a bounded multiple of
 * the input, which web_message.c bounds (WEB_MAX_HTML).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "web_html.h"

/* What becomes of an element's tags and content. */
enum keep {
	KEEP_TAG,		/* the tag, with its allowed attributes */
	KEEP_CONTENT,		/* the content only (html, body, font...) */
	KEEP_NOTHING,		/* the element and everything up to its end */
	KEEP_STYLE,		/* a style sheet, its url()s checked */
};

#define EL_VOID		0x1	/* has no end tag (br, img) */

static const struct {
	const char	*name;
	enum keep	 keep;
	int		 flags;
} elements[] = {
	{ "a", KEEP_TAG, 0 }, { "abbr", KEEP_TAG, 0 },
	{ "address", KEEP_TAG, 0 }, { "article", KEEP_TAG, 0 },
	{ "aside", KEEP_TAG, 0 }, { "b", KEEP_TAG, 0 },
	{ "bdi", KEEP_TAG, 0 }, { "bdo", KEEP_TAG, 0 },
	{ "big", KEEP_TAG, 0 }, { "blockquote", KEEP_TAG, 0 },
	{ "br", KEEP_TAG, EL_VOID }, { "caption", KEEP_TAG, 0 },
	{ "center", KEEP_TAG, 0 }, { "cite", KEEP_TAG, 0 },
	{ "code", KEEP_TAG, 0 }, { "col", KEEP_TAG, EL_VOID },
	{ "colgroup", KEEP_TAG, 0 }, { "dd", KEEP_TAG, 0 },
	{ "del", KEEP_TAG, 0 }, { "details", KEEP_TAG, 0 },
	{ "dfn", KEEP_TAG, 0 }, { "div", KEEP_TAG, 0 },
	{ "dl", KEEP_TAG, 0 }, { "dt", KEEP_TAG, 0 },
	{ "em", KEEP_TAG, 0 }, { "figcaption", KEEP_TAG, 0 },
	{ "figure", KEEP_TAG, 0 }, { "font", KEEP_TAG, 0 },
	{ "footer", KEEP_TAG, 0 }, { "h1", KEEP_TAG, 0 },
	{ "h2", KEEP_TAG, 0 }, { "h3", KEEP_TAG, 0 }, { "h4", KEEP_TAG, 0 },
	{ "h5", KEEP_TAG, 0 }, { "h6", KEEP_TAG, 0 },
	{ "header", KEEP_TAG, 0 }, { "hr", KEEP_TAG, EL_VOID },
	{ "i", KEEP_TAG, 0 }, { "img", KEEP_TAG, EL_VOID },
	{ "ins", KEEP_TAG, 0 }, { "kbd", KEEP_TAG, 0 },
	{ "li", KEEP_TAG, 0 }, { "main", KEEP_TAG, 0 },
	{ "mark", KEEP_TAG, 0 }, { "nav", KEEP_TAG, 0 },
	{ "ol", KEEP_TAG, 0 }, { "p", KEEP_TAG, 0 }, { "pre", KEEP_TAG, 0 },
	{ "q", KEEP_TAG, 0 }, { "s", KEEP_TAG, 0 }, { "samp", KEEP_TAG, 0 },
	{ "section", KEEP_TAG, 0 }, { "small", KEEP_TAG, 0 },
	{ "span", KEEP_TAG, 0 }, { "strike", KEEP_TAG, 0 },
	{ "strong", KEEP_TAG, 0 }, { "sub", KEEP_TAG, 0 },
	{ "summary", KEEP_TAG, 0 }, { "sup", KEEP_TAG, 0 },
	{ "table", KEEP_TAG, 0 }, { "tbody", KEEP_TAG, 0 },
	{ "td", KEEP_TAG, 0 }, { "tfoot", KEEP_TAG, 0 },
	{ "th", KEEP_TAG, 0 }, { "thead", KEEP_TAG, 0 },
	{ "time", KEEP_TAG, 0 }, { "tr", KEEP_TAG, 0 },
	{ "tt", KEEP_TAG, 0 }, { "u", KEEP_TAG, 0 }, { "ul", KEEP_TAG, 0 },
	{ "var", KEEP_TAG, 0 }, { "wbr", KEEP_TAG, EL_VOID },
	{ "style", KEEP_STYLE, 0 },
	/* Dropped with everything inside. */
	{ "script", KEEP_NOTHING, 0 }, { "title", KEEP_NOTHING, 0 },
	{ "textarea", KEEP_NOTHING, 0 }, { "xmp", KEEP_NOTHING, 0 },
	{ "iframe", KEEP_NOTHING, 0 }, { "noembed", KEEP_NOTHING, 0 },
	{ "noframes", KEEP_NOTHING, 0 },
	{ "plaintext", KEEP_NOTHING, 0 },
	{ "svg", KEEP_NOTHING, 0 }, { "math", KEEP_NOTHING, 0 },
	{ "template", KEEP_NOTHING, 0 }, { "object", KEEP_NOTHING, 0 },
	{ "applet", KEEP_NOTHING, 0 }, { "select", KEEP_NOTHING, 0 },
	/* Dropped without content: void, or content worth reading. */
	{ "base", KEEP_CONTENT, EL_VOID }, { "link", KEEP_CONTENT, EL_VOID },
	{ "meta", KEEP_CONTENT, EL_VOID }, { "embed", KEEP_CONTENT, EL_VOID },
	{ "frame", KEEP_CONTENT, EL_VOID }, { "input", KEEP_CONTENT, EL_VOID },
	{ "param", KEEP_CONTENT, EL_VOID }, { "source", KEEP_CONTENT, EL_VOID },
	{ "track", KEEP_CONTENT, EL_VOID }, { "area", KEEP_CONTENT, EL_VOID },
	{ "keygen", KEEP_CONTENT, EL_VOID },
};

/* How an attribute's value is checked. */
enum attr_kind {
	ATTR_PLAIN,		/* any text */
	ATTR_STYLE,		/* CSS: url() only with remote content */
	ATTR_LINK,		/* a link: http, https or mailto */
	ATTR_IMAGE,		/* an image: http(s), with remote content */
};

/* Attributes kept; `only` names the one element they are kept on. */
static const struct {
	const char	*name;
	enum attr_kind	 kind;
	const char	*only;
} attributes[] = {
	{ "abbr", ATTR_PLAIN, NULL }, { "align", ATTR_PLAIN, NULL },
	{ "alt", ATTR_PLAIN, NULL }, { "bgcolor", ATTR_PLAIN, NULL },
	{ "border", ATTR_PLAIN, NULL }, { "cellpadding", ATTR_PLAIN, NULL },
	{ "cellspacing", ATTR_PLAIN, NULL }, { "class", ATTR_PLAIN, NULL },
	{ "clear", ATTR_PLAIN, NULL }, { "color", ATTR_PLAIN, NULL },
	{ "colspan", ATTR_PLAIN, NULL }, { "datetime", ATTR_PLAIN, NULL },
	{ "dir", ATTR_PLAIN, NULL }, { "face", ATTR_PLAIN, NULL },
	{ "headers", ATTR_PLAIN, NULL }, { "height", ATTR_PLAIN, NULL },
	{ "hspace", ATTR_PLAIN, NULL }, { "lang", ATTR_PLAIN, NULL },
	{ "nowrap", ATTR_PLAIN, NULL }, { "open", ATTR_PLAIN, NULL },
	{ "rowspan", ATTR_PLAIN, NULL }, { "scope", ATTR_PLAIN, NULL },
	{ "size", ATTR_PLAIN, NULL }, { "span", ATTR_PLAIN, NULL },
	{ "start", ATTR_PLAIN, NULL }, { "summary", ATTR_PLAIN, NULL },
	{ "title", ATTR_PLAIN, NULL }, { "type", ATTR_PLAIN, NULL },
	{ "valign", ATTR_PLAIN, NULL }, { "vspace", ATTR_PLAIN, NULL },
	{ "width", ATTR_PLAIN, NULL },
	{ "style", ATTR_STYLE, NULL },
	{ "href", ATTR_LINK, "a" },
	{ "src", ATTR_IMAGE, "img" },
};

/* The sanitizer's state over one document. */
struct san {
	const char	*p, *end;
	FILE		*out;
	int		 remote;	/* remote images and CSS allowed */
	const char	*cid;		/* where cid: images are, or NULL */
};

/* One attribute as read from a tag: name and raw value. */
struct attr {
	char		 name[32];
	const char	*value;		/* NULL: no value given */
	size_t		 len;
};

#define REPLACEMENT_CHAR	"\xef\xbf\xbd"	/* U+FFFD in UTF-8 */
#define IS_HTML_SPACE(c)	((c) == ' ' || (c) == '\t' || (c) == '\n' || \
				    (c) == '\r' || (c) == '\f')

/* The element called name, or -1 when it is unknown (then dropped). */
static int
element_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(elements) / sizeof(*elements); i++)
		if (strcmp(elements[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * Writes text with the characters that could start markup escaped: a
 * '&' stays when it starts a character reference, which can only ever
 * make text, and is written "&amp;" otherwise.  A NUL becomes U+FFFD,
 * as a browser reads it (dropping it could join "ur" and "l(").
 */
static void
put_text(struct san *sn, const char *s, size_t n, int quoted)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		switch (s[i]) {
		case '<':
			fputs("&lt;", sn->out);
			break;
		case '>':
			fputs("&gt;", sn->out);
			break;
		case '"':
			fputs(quoted ? "&quot;" : "\"", sn->out);
			break;
		case '&':
			fputs(i + 1 < n && (isalnum((unsigned char)s[i + 1]) ||
			    s[i + 1] == '#') ? "&" : "&amp;", sn->out);
			break;
		case '\0':		/* as a browser reads it */
			fputs(REPLACEMENT_CHAR, sn->out);
			break;
		default:
			putc(s[i], sn->out);
		}
}

/*
 * A URL's scheme as a browser reads it, lower-cased into buf with its
 * ':' (the first bytes, when there is none): character references
 * decoded, tabs, line ends and other controls and blanks dropped.  A
 * named reference that is not "&amp;" before the ':' makes the URL
 * unreadable (-1): "&colon;" would hide a scheme.
 */
static int
url_start(const char *v, size_t n, char *buf, size_t size)
{
	size_t		 i, j, o = 0;
	unsigned long	 c;
	int		 hex;

	for (i = 0; i < n && o + 1 < size; i++) {
		c = (unsigned char)v[i];
		if (c == '&' && i + 1 < n && v[i + 1] == '#') {
			j = i + 2;
			hex = j < n && (v[j] == 'x' || v[j] == 'X');
			j += (size_t)hex;
			for (c = 0; j < n && (hex ? isxdigit((unsigned char)
			    v[j]) : isdigit((unsigned char)v[j])); j++)
				c = c < 0x110000 ? c * (hex ? 16 : 10) +
				    (unsigned long)(isdigit((unsigned char)v[j]) ?
				    v[j] - '0' : tolower((unsigned char)v[j]) -
				    'a' + 10) : c;
			if (j == i + 2 + (size_t)hex)
				return -1;
			i = j - (j == n || v[j] != ';');
		} else if (c == '&') {
			if (n - i < 5 || strncasecmp(v + i, "&amp;", 5) != 0)
				return -1;
			i += 4;
		}
		if (c == 0)		/* U+FFFD to a browser: no scheme */
			buf[o++] = '?';
		else if (c > 0x20 && c != 0x7f)
			buf[o++] = c < 0x7f ? (char)tolower((int)c) : '?';
		if (c == ':')
			break;		/* the scheme ends: the rest is no matter */
	}
	buf[o] = '\0';
	return 0;
}

/* Whether a link or image URL may stay (and *remote: it loads). */
static int
url_allowed(struct san *sn, enum attr_kind kind, const char *v, size_t n)
{
	char	 start[16];

	if (url_start(v, n, start, sizeof(start)) < 0)
		return 0;
	if (strncmp(start, "http:", 5) == 0 ||
	    strncmp(start, "https:", 6) == 0) {
		return kind == ATTR_LINK || sn->remote;
	}
	return kind == ATTR_LINK && strncmp(start, "mailto:", 7) == 0;
}

/*
 * Whether CSS could load something: url(), image-set(), @import, and
 * backslash escapes that could spell them.  Case does not matter.
 */
static int
css_loads(const char *v, size_t n)
{
	static const char *const loads[] = {
		"url(", "image-set(", "@import", "\\", "image(",
	};
	size_t	 i, k, len;

	for (i = 0; i < n; i++)
		for (k = 0; k < sizeof(loads) / sizeof(*loads); k++) {
			len = strlen(loads[k]);
			if (n - i >= len && strncasecmp(v + i, loads[k],
			    len) == 0)
				return 1;
		}
	return 0;
}

/* Whether an attribute may stay on element el, as it is. */
static int
attr_allowed(struct san *sn, const char *el, const struct attr *a)
{
	size_t	 i;

	for (i = 0; i < sizeof(attributes) / sizeof(*attributes); i++) {
		if (strcmp(attributes[i].name, a->name) != 0 ||
		    (attributes[i].only != NULL &&
		    strcmp(attributes[i].only, el) != 0))
			continue;
		switch (attributes[i].kind) {
		case ATTR_PLAIN:
			return 1;
		case ATTR_STYLE:
			return sn->remote || css_loads(a->value, a->len) == 0;
		case ATTR_LINK:
		case ATTR_IMAGE:
			return a->value != NULL && url_allowed(sn,
			    attributes[i].kind, a->value, a->len);
		}
	}
	return 0;
}

/* Reads a name (tag or attribute) at sn->p, lower-cased, cut to size. */
static void
read_name(struct san *sn, char *name, size_t size, const char *stop)
{
	size_t	 n = 0;

	while (sn->p < sn->end && !IS_HTML_SPACE(*sn->p) &&
	    (*sn->p == '\0' || strchr(stop, *sn->p) == NULL)) {
		if (n + 1 < size)
			name[n++] = (char)tolower((unsigned char)*sn->p);
		sn->p++;
	}
	name[n] = '\0';
}

static void
skip_space(struct san *sn)
{
	while (sn->p < sn->end && IS_HTML_SPACE(*sn->p))
		sn->p++;
}

/*
 * Reads the next attribute of a tag.  Returns 1 with *a set, 0 at the
 * tag's '>' (consumed), -1 when the input ends first.
 */
static int
read_attr(struct san *sn, struct attr *a)
{
	char	 q;

	skip_space(sn);
	while (sn->p < sn->end && *sn->p == '/')
		sn->p++, skip_space(sn);
	if (sn->p == sn->end)
		return -1;
	if (*sn->p == '>') {
		sn->p++;
		return 0;
	}
	if (*sn->p == '=')	/* a name may start with '=' */
		sn->p++;
	read_name(sn, a->name, sizeof(a->name), "/>=");
	a->value = NULL;
	a->len = 0;
	skip_space(sn);
	if (sn->p == sn->end || *sn->p != '=')
		return 1;
	sn->p++;
	skip_space(sn);
	if (sn->p < sn->end && (*sn->p == '"' || *sn->p == '\'')) {
		q = *sn->p++;
		a->value = sn->p;
		while (sn->p < sn->end && *sn->p != q)
			sn->p++;
		if (sn->p == sn->end)
			return -1;
		a->len = (size_t)(sn->p++ - a->value);
	} else {
		a->value = sn->p;
		while (sn->p < sn->end && !IS_HTML_SPACE(*sn->p) &&
		    *sn->p != '>')
			sn->p++;
		a->len = (size_t)(sn->p - a->value);
	}
	return 1;
}

/*
 * Skips to the end tag of a raw-text element (or past the end of an
 * element dropped whole), and returns where its content ended.
 */
static const char *
skip_to_end_tag(struct san *sn, const char *name)
{
	size_t		 n = strlen(name);
	const char	*q, *content_end;

	for (q = sn->p; (q = memchr(q, '<', (size_t)(sn->end - q))) != NULL;
	    q++)
		if ((size_t)(sn->end - q) > n + 2 && q[1] == '/' &&
		    strncasecmp(q + 2, name, n) == 0 &&
		    (IS_HTML_SPACE(q[n + 2]) || q[n + 2] == '>' ||
		    q[n + 2] == '/'))
			break;
	if (q == NULL) {
		sn->p = sn->end;
		return sn->end;
	}
	content_end = q;
	q = memchr(q, '>', (size_t)(sn->end - q));
	sn->p = q != NULL ? q + 1 : sn->end;
	return content_end;
}

/*
 * A style sheet's text: '<' becomes a blank, so that it can neither
 * close the sheet early nor, gone, join "@im" and "port"; without
 * remote content a sheet that could load anything is dropped whole.
 */
static void
put_style(struct san *sn, const char *s, size_t n)
{
	size_t	 i;

	if (!sn->remote && css_loads(s, n))
		return;
	fputs("<style>", sn->out);
	for (i = 0; i < n; i++)
		if (s[i] == '\0')
			fputs(REPLACEMENT_CHAR, sn->out);
		else
			putc(s[i] == '<' ? ' ' : s[i], sn->out);
	fputs("</style>", sn->out);
}

/* Bytes a cid's part of an image URL keeps; others are %-escaped. */
#define CID_SAFE	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
			"0123456789-._~!$'()*+,;=:@%"

/*
 * Writes an image's src that names a part of this message: "cid:X" as
 * written (no character reference may spell it), or the URL this
 * writes for it; returns 0 (nothing written) for any other src.
 */
static int
put_cid(struct san *sn, const char *el, const struct attr *a)
{
	const char	*v = a->value;
	size_t		 n = a->len, plen, i;

	if (sn->cid == NULL || strcmp(el, "img") != 0 ||
	    strcmp(a->name, "src") != 0 || v == NULL)
		return 0;
	while (n > 0 && IS_HTML_SPACE(*v))
		v++, n--;
	while (n > 0 && IS_HTML_SPACE(v[n - 1]))
		n--;
	plen = strlen(sn->cid);
	if (n > plen && strncmp(v, sn->cid, plen) == 0 &&
	    strspn(v + plen, CID_SAFE) >= n - plen)
		v += plen, n -= plen;		/* written by this pass */
	else if (n > 4 && strncasecmp(v, "cid:", 4) == 0)
		v += 4, n -= 4;
	else
		return 0;
	fprintf(sn->out, " src=\"%s", sn->cid);
	for (i = 0; i < n; i++)
		fprintf(sn->out, v[i] != '\0' && strchr(CID_SAFE, v[i]) !=
		    NULL ? "%c" : "%%%02X", (unsigned char)v[i]);
	putc('"', sn->out);
	return 1;
}

/* Writes the kept attributes of a start tag, reading it to its '>'. */
static int
put_attrs(struct san *sn, const char *el)
{
	struct attr	 a;
	int		 r, link = 0;

	while ((r = read_attr(sn, &a)) > 0) {
		if (a.name[0] == '\0' || put_cid(sn, el, &a) ||
		    !attr_allowed(sn, el, &a))
			continue;
		fprintf(sn->out, " %s", a.name);
		if (a.value != NULL) {
			fputs("=\"", sn->out);
			put_text(sn, a.value, a.len, 1);
			putc('"', sn->out);
		}
		link |= strcmp(a.name, "href") == 0;
	}
	if (link)
		fputs(" target=\"_blank\" rel=\"noopener noreferrer\"",
		    sn->out);
	return r;
}

/* A start tag at sn->p (after '<'): written, dropped or skipped whole. */
static void
start_tag(struct san *sn)
{
	char		 name[16];
	const char	*content, *content_end;
	struct attr	 a;
	int		 el, r;

	read_name(sn, name, sizeof(name), "/>");
	el = element_find(name);
	if (el >= 0 && elements[el].keep == KEEP_TAG) {
		fprintf(sn->out, "<%s", name);
		r = put_attrs(sn, name);
		putc('>', sn->out);
	} else
		while ((r = read_attr(sn, &a)) > 0)
			;
	if (r < 0) {
		sn->p = sn->end;	/* an unended tag: the rest goes */
		return;
	}
	if (el < 0 || elements[el].keep == KEEP_TAG ||
	    elements[el].keep == KEEP_CONTENT)
		return;
	content = sn->p;
	content_end = skip_to_end_tag(sn, name);
	if (elements[el].keep == KEEP_STYLE)
		put_style(sn, content, (size_t)(content_end - content));
}

/* An end tag at sn->p (after "</"): written when its element is kept. */
static void
end_tag(struct san *sn)
{
	char	 name[16];
	int	 el;

	read_name(sn, name, sizeof(name), "/>");
	sn->p = memchr(sn->p, '>', (size_t)(sn->end - sn->p));
	sn->p = sn->p != NULL ? sn->p + 1 : sn->end;
	el = element_find(name);
	if (el >= 0 && elements[el].keep == KEEP_TAG &&
	    !(elements[el].flags & EL_VOID))
		fprintf(sn->out, "</%s>", name);
}

/* Skips a comment, doctype or processing instruction at '<'. */
static void
skip_markup(struct san *sn)
{
	const char	*q = NULL;

	if (sn->end - sn->p >= 4 && memcmp(sn->p, "<!--", 4) == 0)
		q = memmem(sn->p + 4, (size_t)(sn->end - sn->p - 4), "-->",
		    3);
	else
		q = memchr(sn->p, '>', (size_t)(sn->end - sn->p));
	sn->p = q != NULL ? q + (*q == '-' ? 3 : 1) : sn->end;
}

int
web_html_sanitize(const char *html, size_t len, int remote,
    const char *cid_prefix, char **out, size_t *outlen)
{
	struct san	 sn;
	const char	*lt;

	memset(&sn, 0, sizeof(sn));
	sn.p = html;
	sn.end = html + len;
	sn.remote = remote;
	sn.cid = cid_prefix;
	*out = NULL;
	if ((sn.out = open_memstream(out, outlen)) == NULL)
		return -1;
	while (sn.p < sn.end) {
		lt = memchr(sn.p, '<', (size_t)(sn.end - sn.p));
		if (lt == NULL)
			lt = sn.end;
		put_text(&sn, sn.p, (size_t)(lt - sn.p), 0);
		if ((sn.p = lt) == sn.end)
			break;
		if (sn.end - sn.p >= 2 && isalpha((unsigned char)sn.p[1])) {
			sn.p++;
			start_tag(&sn);
		} else if (sn.end - sn.p >= 3 && sn.p[1] == '/' &&
		    isalpha((unsigned char)sn.p[2])) {
			sn.p += 2;
			end_tag(&sn);
		} else if (sn.end - sn.p >= 2 && (sn.p[1] == '!' ||
		    sn.p[1] == '?' || sn.p[1] == '/'))
			skip_markup(&sn);
		else {
			fputs("&lt;", sn.out);
			sn.p++;
		}
	}
	if (fclose(sn.out) != 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}
