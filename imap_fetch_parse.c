/*
 * imap_fetch_parse.c — FETCH's items (RFC 3501 6.4.5, RFC 3516 4.2,
 * RFC 7162 3.1.4) parsed into the job that imap_fetch.c steps through,
 * and what a section names in a message: its byte range, and the
 * fields HEADER.FIELDS[.NOT] keeps.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_fetch.h"
#include "imap_session.h"
#include "mime.h"
#include "store.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

const char	 imap_fetch_oom[] = "Out of memory";

static const struct {
	const char	*name;
	enum item_kind	 kind;
} simple_items[] = {
	{ "FLAGS",		ITEM_FLAGS },
	{ "INTERNALDATE",	ITEM_INTERNALDATE },
	{ "SAVEDATE",		ITEM_SAVEDATE },
	{ "RFC822.SIZE",	ITEM_SIZE },
	{ "ENVELOPE",		ITEM_ENVELOPE },
	{ "BODYSTRUCTURE",	ITEM_BODYSTRUCTURE },
	{ "BODY",		ITEM_BODY },
	{ "MODSEQ",		ITEM_MODSEQ },
	{ "EMAILID",		ITEM_EMAILID },
	{ "THREADID",		ITEM_THREADID },
};

/* RFC822, RFC822.HEADER and RFC822.TEXT: sections under older names. */
static const struct {
	const char	*name;
	enum sect_text	 text;
	int		 peek;
} rfc822_items[] = {
	{ "RFC822",		SECT_ALL,	0 },
	{ "RFC822.HEADER",	SECT_HEADER,	1 },
	{ "RFC822.TEXT",	SECT_TEXT,	0 },
};

static const struct {
	const char	*name;
	enum item_kind	 kinds[5];
	size_t		 n;
} macros[] = {
	{ "ALL", { ITEM_FLAGS, ITEM_INTERNALDATE, ITEM_SIZE,
	    ITEM_ENVELOPE }, 4 },
	{ "FAST", { ITEM_FLAGS, ITEM_INTERNALDATE, ITEM_SIZE }, 3 },
	{ "FULL", { ITEM_FLAGS, ITEM_INTERNALDATE, ITEM_SIZE,
	    ITEM_ENVELOPE, ITEM_BODY }, 5 },
};

/* Orders header field names without regard to ASCII case. */
static int
field_cmp(const void *a, const void *b)
{
	const struct field_name	*x = a, *y = b;
	size_t			 i, n = x->len < y->len ? x->len : y->len;
	int			 c;

	for (i = 0; i < n; i++) {
		c = toupper((unsigned char)x->s[i]) -
		    toupper((unsigned char)y->s[i]);
		if (c != 0)
			return c;
	}
	return (x->len > y->len) - (x->len < y->len);
}

/*
 * Parses the header-list of HEADER.FIELDS[.NOT], "(From "X-Spam" ...)"
 * (RFC 3501 9: astrings, at least one), which must end the section.
 * The names are sorted for field_selected().
 */
static const char *
parse_fields(struct fetch_item *it, const char *p)
{
	static const char	 bad[] = "Bad header list in BODY[]";
	struct field_name	*f;
	const char		*q;
	char			*out;
	size_t			 max = 1, n;

	if (*p++ != '(')
		return bad;
	for (q = p; *q != '\0'; q++)
		max += *q == ' ';
	if ((it->fieldbuf = out = malloc(strlen(p) + 1)) == NULL ||
	    (it->fields = calloc(max, sizeof(*it->fields))) == NULL)
		return imap_fetch_oom;
	for (;;) {
		f = &it->fields[it->nfields++];
		f->s = out;
		if (*p == '"') {
			for (p++; *p != '"'; *out++ = *p++) {
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				else if (*p == '\0' || *p == '\\')
					return bad;
			}
			p++;
		} else {
			if ((n = strcspn(p, " ()\"\\{%*")) == 0)
				return bad;
			memcpy(out, p, n);
			out += n;
			p += n;
		}
		f->len = out - f->s;
		if (*p == ')')
			break;
		if (*p++ != ' ')
			return bad;
	}
	if (p[1] != '\0')
		return bad;
	qsort(it->fields, it->nfields, sizeof(*it->fields), field_cmp);
	return NULL;
}

/*
 * Parses a section-spec (RFC 3501 9), upper-cased: an optional part
 * number "1.2.3" of non-zero numbers, then HEADER, HEADER.FIELDS[.NOT]
 * (list), TEXT, or, after a part number only, MIME.
 */
static const char *
parse_spec(struct fetch_item *it, const char *spec)
{
	static const char	 bad[] = "Bad section in BODY[]";
	const char		*p = spec;

	while (*p >= '1' && *p <= '9') {
		p += strspn(p, "0123456789");
		if (*p != '.')
			break;
		p++;
	}
	it->partlen = p - spec;
	if (it->partlen > 0 && p[-1] == '.') {
		it->partlen--;
		if (*p == '\0')
			return bad;
	} else if (it->partlen > 0 && *p != '\0')
		return bad;

	if (*p == '\0')
		it->text = SECT_ALL;
	else if (strcmp(p, "HEADER") == 0)
		it->text = SECT_HEADER;
	else if (strcmp(p, "TEXT") == 0)
		it->text = SECT_TEXT;
	else if (strcmp(p, "MIME") == 0 && it->partlen > 0)
		it->text = SECT_MIME;
	else if (strncmp(p, "HEADER.FIELDS ", 14) == 0) {
		it->text = SECT_FIELDS;
		return parse_fields(it, p + 14);
	} else if (strncmp(p, "HEADER.FIELDS.NOT ", 18) == 0) {
		it->text = SECT_FIELDS_NOT;
		return parse_fields(it, p + 18);
	} else
		return bad;
	return NULL;
}

/* Parses "<start.len>" after a section's "]", or nothing. */
static int
parse_partial(struct fetch_item *it, const char *p)
{
	if (*p == '\0')
		return 0;
	if (*p++ != '<' || imap_parse_uint(&p, UINT32_MAX, &it->start) < 0 ||
	    *p++ != '.' || imap_parse_uint(&p, UINT32_MAX, &it->len) < 0 ||
	    strcmp(p, ">") != 0)
		return -1;
	it->partial = 1;
	return 0;
}

/*
 * Copies a section item upper-cased into it->atom and splits it at its
 * brackets: it->spec is what they hold, and a "<partial>" may follow.
 * imap_parse() kept the brackets whole, so there is a "[".
 */
static const char *
split_section(struct fetch_item *it, const char *atom)
{
	char	*p, *close;

	if ((it->atom = strdup(atom)) == NULL)
		return imap_fetch_oom;
	for (p = it->atom; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	p = strchr(it->atom, '[') + 1;
	if ((close = strrchr(p, ']')) == NULL)
		return "Missing ] in a section";
	*close = '\0';
	it->spec = p;
	if (parse_partial(it, close + 1) < 0)
		return "Bad <partial> in a section";
	return NULL;
}

/* Parses "BODY[spec]<partial>" or "BODY.PEEK[...]", in any case. */
static const char *
parse_body_section(struct fetch_item *it, const char *atom)
{
	const char	*err;

	it->kind = ITEM_SECTION;
	if ((err = split_section(it, atom)) != NULL)
		return err;
	it->peek = strncmp(it->atom, "BODY.PEEK[", 10) == 0;
	return parse_spec(it, it->spec);
}

/*
 * Parses BINARY[part]<partial>, BINARY.PEEK[...] or BINARY.SIZE[part]
 * (RFC 3516 4.1): the part is a part number or nothing, never HEADER or
 * TEXT, and a size takes no partial.
 */
static const char *
parse_binary_section(struct fetch_item *it, const char *atom)
{
	const char	*err, *p;

	if ((err = split_section(it, atom)) != NULL)
		return err;
	it->peek = strncmp(it->atom, "BINARY[", 7) != 0;
	it->kind = strncmp(it->atom, "BINARY.SIZE[", 12) == 0 ?
	    ITEM_BINARY_SIZE : ITEM_BINARY;
	if (it->kind == ITEM_BINARY_SIZE && it->partial)
		return "BINARY.SIZE takes no <partial>";
	it->text = SECT_ALL;
	it->partlen = strlen(it->spec);
	for (p = it->spec; *p != '\0'; p++) {
		if (*p < '1' || *p > '9')
			return "Bad part number in BINARY[]";
		p += strspn(p, "0123456789");
		if (*p == '\0')
			break;
		if (*p != '.' || p[1] == '\0')
			return "Bad part number in BINARY[]";
	}
	return NULL;
}

/* The items that name a section, by what they start with. */
static const struct {
	const char	*prefix;
	const char	*(*parse)(struct fetch_item *, const char *);
} sections[] = {
	{ "BODY[",		parse_body_section },
	{ "BODY.PEEK[",		parse_body_section },
	{ "BINARY[",		parse_binary_section },
	{ "BINARY.PEEK[",	parse_binary_section },
	{ "BINARY.SIZE[",	parse_binary_section },
};

/* Adds an item that takes no arguments, once. */
static void
add_simple(struct fetch_job *j, enum item_kind kind)
{
	size_t	 i;

	for (i = 0; i < j->nitems; i++)
		if (j->items[i].kind == kind)
			return;
	assert(j->nitems < nitems(j->items));
	j->items[j->nitems++].kind = kind;
}

/* Parses one fetch-att (RFC 3501 9) into the job. */
static const char *
parse_item(struct fetch_job *j, const char *atom)
{
	struct fetch_item	*it;
	size_t			 i;

	if (strcasecmp(atom, "UID") == 0) {
		j->uid = 1;
		return NULL;
	}
	for (i = 0; i < nitems(simple_items); i++) {
		if (strcasecmp(atom, simple_items[i].name) == 0) {
			add_simple(j, simple_items[i].kind);
			return NULL;
		}
	}
	assert(j->nitems < nitems(j->items));
	it = &j->items[j->nitems];
	for (i = 0; i < nitems(rfc822_items); i++) {
		if (strcasecmp(atom, rfc822_items[i].name) == 0) {
			it->kind = ITEM_SECTION;
			it->label = rfc822_items[i].name;
			it->spec = "";
			it->text = rfc822_items[i].text;
			it->peek = rfc822_items[i].peek;
			j->nitems++;
			return NULL;
		}
	}
	for (i = 0; i < nitems(sections); i++) {
		if (strncasecmp(atom, sections[i].prefix,
		    strlen(sections[i].prefix)) == 0) {
			j->nitems++;	/* fetch_free() frees what it holds */
			return sections[i].parse(it, atom);
		}
	}
	return "Unknown FETCH item";
}

/* Adds the items of ALL, FAST or FULL; returns 0 when name is none. */
static int
add_macro(struct fetch_job *j, const char *name)
{
	size_t	 i, k;

	for (i = 0; i < nitems(macros); i++) {
		if (strcasecmp(name, macros[i].name) == 0) {
			for (k = 0; k < macros[i].n; k++)
				add_simple(j, macros[i].kinds[k]);
			return 1;
		}
	}
	return 0;
}

/* Parses the items: a macro, one fetch-att, or a list of fetch-atts. */
static const char *
parse_items(struct fetch_job *j, const struct imap_arg *a)
{
	const struct imap_arg	*v = a;
	const char		*err;
	size_t			 n = 1, i;

	if (a->type == IMAP_ARG_ATOM && add_macro(j, a->str))
		return NULL;
	if (a->type == IMAP_ARG_LIST) {
		v = a->list;
		n = a->nlist;
		if (n == 0)
			return "Empty FETCH item list";
	} else if (a->type != IMAP_ARG_ATOM)
		return "Bad FETCH items";
	if (n > IMAP_MAX_FETCH_ITEMS)
		return "[LIMIT] Too many FETCH items";
	for (i = 0; i < n; i++) {
		if (v[i].type != IMAP_ARG_ATOM)
			return "FETCH items must be atoms";
		if ((err = parse_item(j, v[i].str)) != NULL)
			return err;
	}
	return NULL;
}

/*
 * Parses the modifier list: CHANGEDSINCE n, and QRESYNC's VANISHED
 * (RFC 7162 3.2.6), which only UID FETCH with CHANGEDSINCE may carry.
 */
static const char *
parse_modifiers(struct fetch_job *j, const struct imap_arg *a)
{
	const struct imap_arg	*v = a->list;
	const char		*p;
	size_t			 i;

	if (a->type != IMAP_ARG_LIST || a->nlist == 0)
		return "Bad FETCH modifiers";
	for (i = 0; i < a->nlist; i++) {
		if (v[i].type == IMAP_ARG_ATOM &&
		    strcasecmp(v[i].str, "VANISHED") == 0) {
			j->vanished = 1;
			continue;
		}
		if (v[i].type != IMAP_ARG_ATOM ||
		    strcasecmp(v[i].str, "CHANGEDSINCE") != 0)
			return "Unknown FETCH modifier";
		p = ++i < a->nlist && v[i].type == IMAP_ARG_ATOM ?
		    v[i].str : "";
		if (imap_parse_uint(&p, INT64_MAX, &j->since) < 0 || *p != '\0')
			return "Bad CHANGEDSINCE value";
		j->changedsince = 1;
	}
	if (j->vanished && (!j->uid_cmd || !j->changedsince))
		return "VANISHED needs UID FETCH with CHANGEDSINCE";
	return NULL;
}

/* Works out from the items what every message will need. */
static void
summarize(struct fetch_job *j)
{
	const struct fetch_item	*it;
	size_t			 i;

	j->rows_only = 1;
	for (i = 0; i < j->nitems; i++) {
		it = &j->items[i];
		switch (it->kind) {
		case ITEM_FLAGS:
			j->flags = 1;
			break;
		case ITEM_MODSEQ:
			j->modseq = 1;
			break;
		case ITEM_INTERNALDATE:
		case ITEM_SAVEDATE:
			break;
		case ITEM_ENVELOPE:
		case ITEM_BODYSTRUCTURE:
		case ITEM_BODY:
			j->need_meta |= STORE_META_STRUCT;
			j->rows_only = 0;
			break;
		case ITEM_SECTION:
		case ITEM_BINARY:
		case ITEM_BINARY_SIZE:
			j->binary |= it->kind != ITEM_SECTION;
			j->seen |= !it->peek;
			/* only BODY[], BINARY[] and RFC822 go without offsets */
			if (it->partlen > 0 || it->text != SECT_ALL)
				j->need_meta |= STORE_META_SECTIONS;
			j->rows_only = 0;
			break;
		default:	/* RFC822.SIZE, EMAILID, THREADID: the blob's */
			j->rows_only = 0;
			break;
		}
	}
}

/*
 * Parses "sequence-set items [(modifiers)]" into the job.  Returns NULL,
 * or what to say in the BAD reply (imap_fetch_oom when memory ran out).
 */
const char *
imap_fetch_parse(struct fetch_job *j, const struct imap_view *v,
    const struct imap_arg *args, size_t nargs)
{
	const char	*err;

	if (nargs < 2 || nargs > 3)
		return "Syntax: FETCH sequence-set items [(modifiers)]";
	if (imap_view_seqset(v, &args[0], j->uid_cmd, &j->set) < 0)
		return "Bad sequence set";
	if ((err = parse_items(j, &args[1])) != NULL ||
	    (nargs == 3 && (err = parse_modifiers(j, &args[2])) != NULL))
		return err;
	if (j->changedsince)
		add_simple(j, ITEM_MODSEQ);
	summarize(j);
	imap_view_walk_start(&j->walk, &j->set, j->uid_cmd);
	return NULL;
}

/* The part a section names ("" is the message itself), or NULL. */
const struct mime_part *
imap_fetch_find_part(const struct store_meta *meta, const char *part,
    size_t len)
{
	const char	*sect;
	size_t		 i;

	for (i = 0; i < meta->nparts; i++) {
		sect = meta->parts[i].section;
		if (strnlen(sect, sizeof(meta->parts[i].section)) == len &&
		    memcmp(sect, part, len) == 0)
			return &meta->parts[i];
	}
	return NULL;
}

/*
 * Where section `it` lies in the message: [*start, *end).  HEADER and
 * TEXT are those of the message, or of the message a message/rfc822
 * part holds (mime.h).  Returns 0 when the section names nothing: no
 * such part, or HEADER or TEXT of a part that is not a message.
 */
int
imap_fetch_section_range(const struct store_meta *meta, uint64_t size,
    const struct fetch_item *it, uint64_t *start, uint64_t *end)
{
	const struct mime_part	*p;
	uint64_t		 hdr, text;

	if (it->partlen == 0 && it->text == SECT_ALL) {
		*start = 0;
		*end = size;
		return 1;
	}
	if ((p = imap_fetch_find_part(meta, it->spec, it->partlen)) == NULL)
		return 0;
	if (it->text == SECT_ALL || it->text == SECT_MIME) {
		*start = it->text == SECT_ALL ? p->body_start : p->header_start;
		*end = it->text == SECT_ALL ? p->body_end : p->body_start;
		return 1;
	}
	if (it->partlen == 0) {
		hdr = p->header_start;
		text = p->body_start;
	} else if (p->is_message) {
		hdr = p->body_start;
		text = p->inner_body_start;
	} else
		return 0;
	*start = it->text == SECT_TEXT ? text : hdr;
	*end = it->text == SECT_TEXT ? p->body_end : text;
	return 1;
}

int
imap_section_range(const char *spec, const struct store_meta *meta,
    uint64_t size, uint64_t *start, uint64_t *end)
{
	struct fetch_item	 it;
	char			 buf[IMAP_MAX_SECTION] = "";
	size_t			 i, n = strlen(spec);
	int			 r = -1;

	if (n >= sizeof(buf))
		return -1;
	memset(&it, 0, sizeof(it));
	for (i = 0; i <= n; i++)
		buf[i] = (char)toupper((unsigned char)spec[i]);
	it.spec = buf;
	if (parse_spec(&it, buf) == NULL && it.text != SECT_FIELDS &&
	    it.text != SECT_FIELDS_NOT)
		r = imap_fetch_section_range(meta, size, &it, start, end);
	free(it.fields);
	free(it.fieldbuf);
	return r;
}

/* Whether line[0, n) is the empty line that ends a header block. */
static int
blank_line(const char *line, size_t n)
{
	return (n == 1 && line[0] == '\n') ||
	    (n == 2 && line[0] == '\r' && line[1] == '\n');
}

/* Whether HEADER.FIELDS[.NOT] keeps the field starting with line[0, n). */
static int
field_selected(const struct fetch_item *it, const char *line, size_t n)
{
	struct field_name	 key;
	const char		*colon;
	int			 listed;

	colon = memchr(line, ':', n);
	key.s = line;
	key.len = colon != NULL ? (size_t)(colon - line) : n;
	while (key.len > 0 && (line[key.len - 1] == ' ' ||
	    line[key.len - 1] == '\t'))
		key.len--;
	listed = bsearch(&key, it->fields, it->nfields, sizeof(*it->fields),
	    field_cmp) != NULL;
	return listed != (it->text == SECT_FIELDS_NOT);
}

/*
 * Filters the header block buf[0, len) in place: keeps the fields that
 * HEADER.FIELDS (or .NOT) selects, each with its continuation lines, and
 * ends with the blank line that ended the block, or CRLF when there was
 * none (after ending a last line that was cut short).  buf has room for
 * 4 more bytes.  Returns the new length.
 */
size_t
imap_fetch_header_filter(char *buf, size_t len, const struct fetch_item *it)
{
	const char	*nl;
	size_t		 in = 0, out = 0, n;
	int		 keep = 0;

	while (in < len) {
		nl = memchr(buf + in, '\n', len - in);
		n = nl != NULL ? (size_t)(nl - (buf + in)) + 1 : len - in;
		if (blank_line(buf + in, n)) {
			memmove(buf + out, buf + in, n);
			return out + n;
		}
		if (buf[in] != ' ' && buf[in] != '\t')
			keep = field_selected(it, buf + in, n);
		if (keep) {
			memmove(buf + out, buf + in, n);
			out += n;
		}
		in += n;
	}
	if (out > 0 && buf[out - 1] != '\n') {
		buf[out++] = '\r';
		buf[out++] = '\n';
	}
	buf[out++] = '\r';
	buf[out++] = '\n';
	return out;
}

