/*
 * imap_fetch.c — FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8), with
 * CONDSTORE's MODSEQ item and CHANGEDSINCE modifier (RFC 7162 3.1.4),
 * and BINARY's items (RFC 3516 4.2).
 *
 * The command is parsed once into a list of items; a step function then
 * writes one response per message as the client reads.  A response reads
 * only what its items need: the message row always, the pre-parsed MIME
 * data (ENVELOPE, BODYSTRUCTURE, section offsets) for those items, and
 * the blob only for section bytes.  Section bytes go out as a literal one
 * chunk at a time, and a step may stop in the middle of one, so a 50 MiB
 * message costs a chunk of memory, not 50 MiB.
 *
 * BINARY[part] is the part's body with its Content-Transfer-Encoding
 * undone.  Its length comes before its bytes, so a part is decoded
 * twice: once to count (and to see whether it holds a NUL, which only a
 * literal8 "~{n}" may carry), a chunk per turn of the step, then again
 * as it is sent.  BINARY.SIZE[part] is the count alone.
 *
 * Where the RFCs leave a choice we answer as Dovecot 2.3 does: a section
 * that names nothing (BODY[9], BODY[1.HEADER] of a part that is not a
 * message) is an empty string; NULs in a literal are sent as 0x80; a
 * response names a section as the client wrote it, upper-cased.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "imap_search.h"
#include "imap_session.h"
#include "mime.h"
#include "proto.h"
#include "store.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define MAX_DATE	253402300799LL	/* 31-Dec-9999 23:59:59 +0000 */

enum item_kind {
	ITEM_FLAGS,
	ITEM_INTERNALDATE,
	ITEM_SAVEDATE,		/* RFC 8514 */
	ITEM_SIZE,		/* RFC822.SIZE */
	ITEM_ENVELOPE,
	ITEM_BODYSTRUCTURE,
	ITEM_BODY,		/* BODY without a section */
	ITEM_MODSEQ,
	ITEM_EMAILID,		/* RFC 8474 */
	ITEM_THREADID,
	ITEM_SECTION,		/* BODY[...], BODY.PEEK[...], RFC822[.x] */
	ITEM_BINARY,		/* BINARY[...], BINARY.PEEK[...] */
	ITEM_BINARY_SIZE,	/* BINARY.SIZE[...] */
};

/* What of the message, or of a part, a section names. */
enum sect_text {
	SECT_ALL,		/* BODY[], BODY[1.2] */
	SECT_HEADER,
	SECT_FIELDS,		/* HEADER.FIELDS (list) */
	SECT_FIELDS_NOT,	/* HEADER.FIELDS.NOT (list) */
	SECT_TEXT,
	SECT_MIME,
};

struct field_name {
	const char	*s;
	size_t		 len;
};

struct fetch_item {
	enum item_kind		 kind;
	/* the rest is for ITEM_SECTION and ITEM_BINARY[_SIZE] */
	const char		*label;		/* "RFC822...", or NULL */
	char			*atom;		/* the item, upper-cased */
	const char		*spec;		/* in atom, inside [] */
	size_t			 partlen;	/* spec's part number, "1.2" */
	enum sect_text		 text;
	int			 peek;		/* leaves \Seen alone */
	int			 partial;
	uint64_t		 start, len;	/* <start.len> */
	struct field_name	*fields;	/* sorted by field_cmp() */
	size_t			 nfields;
	char			*fieldbuf;	/* the names' bytes */
};

/* Where the bytes of a section come from: [off, end) of mem or blob. */
struct source {
	const char	*mem;		/* NULL: the blob */
	uint64_t	 off, end;
};

/*
 * The decoded body of one part for BINARY: counted first (size, nul),
 * then sent from `pos`, the decoded bytes gone by, keeping those in
 * [want, want_end).  `spec` names the part counted, so that BINARY.SIZE
 * and BINARY of one part in one FETCH count it once.
 */
struct binary {
	const char		*spec;		/* NULL: nothing counted */
	size_t			 partlen;
	int			 counted;
	uint64_t		 size;
	int			 nul;		/* a NUL: literal8 */
	uint64_t		 start, off, end;	/* the raw range, read
							   up to off */
	enum mime_cte		 cte;
	struct mime_decoder	 d;
	uint64_t		 pos, want, want_end;
	int			 sending;
};

/* The message whose response is being written. */
struct fetch_msg {
	uint32_t			 seq;
	struct store_message		 m;	/* m.keywords -> keywords */
	char				 keywords[STORE_MAX_KEYWORDS];
	int				 seen_set;	/* we set \Seen */
	int				 have_meta;
	struct store_meta		 meta;
	struct store_blob_reader	*blob;		/* opened when needed */
	size_t				 next;		/* next item to write */
	int				 written;	/* items written */
	char				*membuf;	/* a filtered header */
	struct source			 lit;		/* literal to send */
	struct binary			 bin;
};

struct fetch_job {
	/* the items asked for, and the MODSEQ that CHANGEDSINCE implies */
	struct fetch_item	 items[IMAP_MAX_FETCH_ITEMS + 1];
	size_t			 nitems;
	int			 uid_cmd;	/* UID FETCH */
	int			 uid;		/* UID in every response */
	int			 flags;		/* FLAGS asked for */
	int			 modseq;	/* MODSEQ asked or implied */
	int			 seen;		/* some item sets \Seen */
	unsigned		 need_meta;	/* STORE_META_* to load */
	int			 changedsince;
	int			 vanished;	/* VANISHED (QRESYNC) */
	uint64_t		 since;
	struct imap_seqset	 set;		/* owns the ranges */
	struct imap_view_walk	 walk;		/* where the set is walked */
	int			 active;	/* a response line is open */
	struct fetch_msg	 msg;
	enum store_err		 err;		/* why the command failed */
	int			 unknown_cte;	/* ... a part BINARY cannot decode */
	int			 binary;	/* BINARY items asked for */
	unsigned char		*raw, *dec;	/* their chunk buffers */
};

static const char	 oom[] = "Out of memory";

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
		return oom;
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
		return oom;
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

	for (i = 0; i < j->nitems; i++) {
		it = &j->items[i];
		switch (it->kind) {
		case ITEM_FLAGS:
			j->flags = 1;
			break;
		case ITEM_MODSEQ:
			j->modseq = 1;
			break;
		case ITEM_ENVELOPE:
		case ITEM_BODYSTRUCTURE:
		case ITEM_BODY:
			j->need_meta |= STORE_META_STRUCT;
			break;
		case ITEM_SECTION:
		case ITEM_BINARY:
		case ITEM_BINARY_SIZE:
			j->binary |= it->kind != ITEM_SECTION;
			j->seen |= !it->peek;
			/* only BODY[], BINARY[] and RFC822 go without offsets */
			if (it->partlen > 0 || it->text != SECT_ALL)
				j->need_meta |= STORE_META_SECTIONS;
			break;
		default:
			break;
		}
	}
}

/*
 * Parses "sequence-set items [(modifiers)]" into the job.  Returns NULL,
 * or what to say in the BAD reply (oom when memory ran out).
 */
static const char *
fetch_parse(struct fetch_job *j, const struct imap_view *v,
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

/* Releases what the current message loaded; its response is over. */
static void
msg_end(struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;

	if (fm->have_meta)
		store_meta_free(&fm->meta);
	fm->have_meta = 0;
	store_blob_close(fm->blob);
	fm->blob = NULL;
	free(fm->membuf);
	fm->membuf = NULL;
	memset(&fm->lit, 0, sizeof(fm->lit));
	memset(&fm->bin, 0, sizeof(fm->bin));
	j->active = 0;
}

/* Frees a job in any state: the step_free of imap_start_steps(). */
static void
fetch_free(void *arg)
{
	struct fetch_job	*j = arg;
	size_t			 i;

	if (j == NULL)
		return;
	msg_end(j);
	for (i = 0; i < j->nitems; i++) {
		free(j->items[i].atom);
		free(j->items[i].fields);
		free(j->items[i].fieldbuf);
	}
	imap_seqset_free(&j->set);
	free(j->raw);
	free(j->dec);
	free(j);
}

/*
 * Checks that the MIME data has the strings the items write as they
 * are: those of the groups loaded (STORE_META_*).
 */
static int
meta_complete(const struct store_meta *meta, unsigned what)
{
	if ((what & STORE_META_STRUCT) && (meta->envelope == NULL ||
	    meta->bodystructure == NULL || meta->body == NULL))
		return 0;
	return (what & STORE_META_SECTIONS) == 0 ||
	    (meta->header != NULL && meta->nparts > 0);
}

/*
 * Loads message seq: its row, its MIME data when an item needs it, then
 * sets \Seen when an item asks (before the response, RFC 3501 6.4.5).
 * Returns 1, 0 to skip it (expunged elsewhere, or not changed since
 * CHANGEDSINCE), or -1 on a store error (in j->err).
 */
static int
msg_load(struct session *s, struct fetch_job *j, uint32_t seq)
{
	struct imap_view	*v = imap_of(s)->view;
	struct store		*st = s->srv->store;
	struct fetch_msg	*fm = &j->msg;

	fm->seq = seq;
	fm->seen_set = 0;
	j->err = store_message_get(st, v->mb.id, imap_view_uid(v, seq), &fm->m);
	if (j->err != STORE_OK)
		return j->err == STORE_NOTFOUND ? 0 : -1;
	if (j->changedsince && fm->m.modseq <= j->since)
		return 0;
	/* m.keywords lives only until the next store call */
	snprintf(fm->keywords, sizeof(fm->keywords), "%s",
	    fm->m.keywords != NULL ? fm->m.keywords : "");
	fm->m.keywords = fm->keywords;
	if (j->need_meta) {
		j->err = store_message_meta(st, fm->m.guid, j->need_meta,
		    &fm->meta);
		if (j->err != STORE_OK)
			return -1;
		fm->have_meta = 1;
		if (!meta_complete(&fm->meta, j->need_meta)) {
			j->err = STORE_IO;
			return -1;
		}
	}
	if (j->seen && !v->readonly && (fm->m.flags & FLAG_SEEN) == 0) {
		j->err = store_message_set_flags(st, v->mb.id, fm->m.uid,
		    fm->m.flags | FLAG_SEEN, fm->keywords, &fm->m.modseq);
		if (j->err != STORE_OK)
			return j->err == STORE_NOTFOUND ? 0 : -1;
		fm->m.flags |= FLAG_SEEN;
		fm->seen_set = 1;
		imap_view_own_change(v, fm->m.modseq, fm->m.uid);
	}
	return 1;
}

/* Writes a string as it is: FETCH output goes through no printf. */
static void
put_str(struct session *s, const char *str)
{
	session_write(s, str, strlen(str));
}

/* Writes prefix, then v in decimal. */
static void
put_uint(struct session *s, const char *prefix, uint64_t v)
{
	char	 digits[20], *p = digits + sizeof(digits);

	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put_str(s, prefix);
	session_write(s, p, digits + sizeof(digits) - p);
}

/* Writes one space between two items of a response. */
static void
item_sep(struct session *s, struct fetch_msg *fm)
{
	if (fm->written++ > 0)
		session_write(s, " ", 1);
}

/* FLAGS, with \Recent when this session is the first to see it. */
static void
put_flags(struct session *s, const struct fetch_msg *fm)
{
	const struct imap_view	*v = imap_of(s)->view;

	session_write(s, "FLAGS ", 6);
	imap_put_flags(s, fm->m.flags, fm->keywords,
	    imap_view_is_recent(v, fm->m.uid));
}

/* MODSEQ (RFC 7162 3.1.4): the message's, after any \Seen we set. */
static void
put_modseq(struct session *s, const struct fetch_msg *fm)
{
	put_uint(s, "MODSEQ (", fm->m.modseq);
	session_write(s, ")", 1);
}

/*
 * A date-time item, INTERNALDATE or SAVEDATE: name "02-Dec-2026
 * 01:02:03 +0000" (the store keeps UTC).
 */
static void
put_date_time(struct session *s, const char *name, int64_t when)
{
	static const char	 months[12][4] = { "Jan", "Feb", "Mar", "Apr",
				    "May", "Jun", "Jul", "Aug", "Sep", "Oct",
				    "Nov", "Dec" };
	time_t			 t = when >= 0 && when <= MAX_DATE ? when : 0;
	struct tm		 tm;

	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	session_printf(s, "%s \"%02d-%s-%04d %02d:%02d:%02d +0000\"", name,
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

/*
 * Opens the response line of the loaded message with what comes first:
 * the UID, then, when this FETCH set \Seen, the new FLAGS (RFC 3501
 * 6.4.5) and with CONDSTORE the UID and MODSEQ that RFC 7162 3.1 wants
 * in every FETCH response it causes.
 */
static void
msg_open(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;
	int			 condstore = fm->seen_set &&
				    imap_of(s)->condstore;

	/* A keyword set elsewhere since the last update: FLAGS first. */
	imap_view_keywords(s, imap_of(s)->view, fm->keywords);
	put_uint(s, "* ", fm->seq);
	put_str(s, " FETCH (");
	j->active = 1;
	fm->next = 0;
	fm->written = 0;
	if (j->uid || condstore) {
		item_sep(s, fm);
		put_uint(s, "UID ", fm->m.uid);
	}
	if (fm->seen_set && !j->flags) {
		item_sep(s, fm);
		put_flags(s, fm);
	}
	if (condstore && !j->modseq) {
		item_sep(s, fm);
		put_modseq(s, fm);
	}
}

/* The part a section names ("" is the message itself), or NULL. */
static const struct mime_part *
find_part(const struct store_meta *meta, const char *part, size_t len)
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
static int
section_range(const struct store_meta *meta, uint64_t size,
    const struct fetch_item *it, uint64_t *start, uint64_t *end)
{
	const struct mime_part	*p;
	uint64_t		 hdr, text;

	if (it->partlen == 0 && it->text == SECT_ALL) {
		*start = 0;
		*end = size;
		return 1;
	}
	if ((p = find_part(meta, it->spec, it->partlen)) == NULL)
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
		r = section_range(meta, size, &it, start, end);
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
static size_t
header_filter(char *buf, size_t len, const struct fetch_item *it)
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

/* Opens the message's blob on first use. */
static int
blob_need(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;

	if (fm->blob != NULL)
		return 0;
	j->err = store_blob_open(s->srv->store, fm->m.guid, &fm->blob, NULL);
	return j->err == STORE_OK ? 0 : -1;
}

/*
 * HEADER.FIELDS[.NOT] of the header block [start, end): the message's
 * header is in its MIME data; a part's is read from the blob, as far as
 * the MIME parser read it (MIME_MAX_HEADER bytes).
 */
static int
fields_source(struct session *s, struct fetch_job *j,
    const struct fetch_item *it, uint64_t start, uint64_t end,
    struct source *src)
{
	struct fetch_msg	*fm = &j->msg;
	size_t			 len;

	if (it->partlen == 0)
		len = fm->meta.header_len;
	else
		len = end - start < MIME_MAX_HEADER ? end - start :
		    MIME_MAX_HEADER;
	if ((fm->membuf = malloc(len + 4)) == NULL) {
		j->err = STORE_IO;
		return -1;
	}
	if (it->partlen == 0)
		memcpy(fm->membuf, fm->meta.header, len);
	else if (blob_need(s, j) < 0 ||
	    store_blob_read(fm->blob, start, fm->membuf, len) != (ssize_t)len) {
		j->err = STORE_IO;
		return -1;
	}
	src->mem = fm->membuf;
	src->end = header_filter(fm->membuf, len, it);
	return 0;
}

/*
 * Works out the bytes of section `it`: a range of the blob, or bytes in
 * memory (the message's header, a filtered header).  Returns 0, or -1
 * on a store error.
 */
static int
section_source(struct session *s, struct fetch_job *j,
    const struct fetch_item *it, struct source *src)
{
	struct fetch_msg	*fm = &j->msg;
	uint64_t		 start, end;

	free(fm->membuf);
	fm->membuf = NULL;
	memset(src, 0, sizeof(*src));
	if (!section_range(&fm->meta, fm->m.size, it, &start, &end))
		return 0;
	if (it->text == SECT_FIELDS || it->text == SECT_FIELDS_NOT)
		return fields_source(s, j, it, start, end, src);
	if (it->partlen == 0 && it->text == SECT_HEADER &&
	    fm->meta.header_len == end - start) {
		src->mem = fm->meta.header;
		src->end = end - start;
		return 0;
	}
	if (blob_need(s, j) < 0)
		return -1;
	src->off = start;
	src->end = end;
	return 0;
}

/*
 * Writes a section's name and literal header; literal_send() then sends
 * its bytes.  The response names a partial by its start only (RFC 3501
 * 7.4.2).
 */
static int
section_write(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;
	struct source		 src;

	if (section_source(s, j, it, &src) < 0)
		return -1;
	if (it->partial) {
		src.off += it->start < src.end - src.off ? it->start :
		    src.end - src.off;
		if (src.end - src.off > it->len)
			src.end = src.off + it->len;
	}
	item_sep(s, fm);
	if (it->label != NULL)
		put_str(s, it->label);
	else {
		put_str(s, "BODY[");
		put_str(s, it->spec);
		if (it->partial)
			put_uint(s, "]<", it->start);
		put_str(s, it->partial ? ">" : "]");
	}
	put_uint(s, " {", src.end - src.off);
	session_write(s, "}\r\n", 3);
	fm->lit = src;
	return 0;
}

/*
 * Sets bin on the part `it` names: its raw range and its decoder.
 * BINARY[] is the message as it is, and so is a multipart or a
 * message/rfc822 part, which have no encoding of their own (RFC 2045
 * 6.4); a part that does not exist is empty, as its BODY[] is.  Returns
 * 0, or -1 on a store error or an encoding it cannot undo.
 */
static int
binary_start(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;
	struct binary		*b = &fm->bin;
	const struct mime_part	*p = NULL;

	memset(b, 0, sizeof(*b));
	b->spec = it->spec;
	b->partlen = it->partlen;
	b->cte = MIME_CTE_IDENTITY;
	if (it->partlen == 0)
		b->end = fm->m.size;
	else if ((p = find_part(&fm->meta, it->spec, it->partlen)) != NULL) {
		b->start = p->body_start;
		b->end = p->body_end;
	}
	b->off = b->start;
	b->counted = b->start == b->end;
	if (b->counted)
		return 0;
	if (blob_need(s, j) < 0)
		return -1;
	if (p != NULL && !p->is_multipart && !p->is_message) {
		if (imap_part_cte(fm->blob, p, (char *)j->raw, IO_CHUNK,
		    &b->cte) < 0) {
			j->err = STORE_IO;
			return -1;
		}
		if (b->cte == MIME_CTE_UNKNOWN) {
			j->unknown_cte = 1;
			return -1;
		}
	}
	mime_decoder_init(&b->d, b->cte);
	return 0;
}

/*
 * Reads and decodes the next chunk of bin's raw range into j->dec.
 * Returns how many bytes it decoded to, or -1 on a store error.
 */
static ssize_t
binary_chunk(struct fetch_job *j)
{
	struct binary	*b = &j->msg.bin;
	size_t		 n, got;

	n = b->end - b->off < IO_CHUNK ? (size_t)(b->end - b->off) :
	    IO_CHUNK;
	if (store_blob_read(j->msg.blob, b->off, j->raw, n) != (ssize_t)n) {
		j->err = STORE_IO;
		return -1;
	}
	b->off += n;
	got = mime_decode(&b->d, j->raw, n, j->dec);
	if (b->off == b->end)
		got += mime_decode_end(&b->d, j->dec + got);
	return (ssize_t)got;
}

/*
 * Counts the decoded bytes of the part `it` names, one chunk a call,
 * unless this message's last count was of that part.  Returns 1 when
 * bin holds the count, 0 when more is left, -1 on an error.
 */
static int
binary_count(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct binary	*b = &j->msg.bin;
	ssize_t		 got;

	if ((b->spec == NULL || b->partlen != it->partlen ||
	    memcmp(b->spec, it->spec, it->partlen) != 0) &&
	    binary_start(s, j, it) < 0)
		return -1;
	if (b->counted)
		return 1;
	if ((got = binary_chunk(j)) < 0)
		return -1;
	b->size += (uint64_t)got;
	b->nul |= memchr(j->dec, '\0', (size_t)got) != NULL;
	b->counted = b->off == b->end;
	return b->counted;
}

/*
 * Writes BINARY.SIZE[part] n, or BINARY[part]<start> and the header of
 * its literal (literal8 when the part holds a NUL), which binary_send()
 * then sends.  The partial is of the decoded bytes.  Returns as
 * item_write() does.
 */
static int
binary_write(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;
	struct binary		*b = &fm->bin;
	uint64_t		 start = 0, len;
	int			 r;

	if ((r = binary_count(s, j, it)) != 1)
		return r;
	item_sep(s, fm);
	if (it->kind == ITEM_BINARY_SIZE) {
		put_str(s, "BINARY.SIZE[");
		put_str(s, it->spec);
		put_uint(s, "] ", b->size);
		return 1;
	}
	if (it->partial)
		start = it->start < b->size ? it->start : b->size;
	len = b->size - start;
	if (it->partial && len > it->len)
		len = it->len;
	put_str(s, "BINARY[");
	put_str(s, it->spec);
	if (it->partial)
		put_uint(s, "]<", it->start);
	put_str(s, it->partial ? "> " : "] ");
	put_uint(s, b->nul ? "~{" : "{", len);
	session_write(s, "}\r\n", 3);
	b->off = b->start;
	mime_decoder_init(&b->d, b->cte);
	b->pos = 0;
	b->want = start;
	b->want_end = start + len;
	b->sending = len > 0;
	return 1;
}

/*
 * Sends what is left of a BINARY literal, decoding a chunk at a time,
 * until the output is full.  Returns as literal_send() does.
 */
static int
binary_send(struct session *s, struct fetch_job *j)
{
	struct binary	*b = &j->msg.bin;
	uint64_t	 lo, hi;
	ssize_t		 got;

	while (b->sending) {
		if (session_output_high(s))
			return 0;
		/* The count said more: the blob changed under its GUID. */
		if (b->off == b->end) {
			j->err = STORE_IO;
			return -1;
		}
		if ((got = binary_chunk(j)) < 0)
			return -1;
		lo = b->pos > b->want ? b->pos : b->want;
		hi = b->pos + (uint64_t)got < b->want_end ?
		    b->pos + (uint64_t)got : b->want_end;
		if (lo < hi)
			session_write(s, j->dec + (lo - b->pos),
			    (size_t)(hi - lo));
		b->pos += (uint64_t)got;
		b->sending = b->pos < b->want_end;
	}
	return 1;
}

/*
 * EMAILID (RFC 8474 5.1): "M" and the GUID in hex, so that a message and
 * its copies have one id, on every node, for ever.
 */
static void
put_emailid(struct session *s, const struct fetch_msg *fm)
{
	char	 hex[2 * GUID_LEN + 1];

	crypto_hex(fm->m.guid, GUID_LEN, hex);
	session_printf(s, "EMAILID (M%s)", hex);
}

/*
 * Writes one item of the response; a section starts its literal.
 * Returns 1 when it is written, 0 when a BINARY item is still counting
 * (call again), -1 on a store error.
 */
static int
item_write(struct session *s, struct fetch_job *j,
    const struct fetch_item *it)
{
	struct fetch_msg	*fm = &j->msg;

	if (it->kind == ITEM_SECTION)
		return section_write(s, j, it) < 0 ? -1 : 1;
	if (it->kind == ITEM_BINARY || it->kind == ITEM_BINARY_SIZE)
		return binary_write(s, j, it);
	item_sep(s, fm);
	switch (it->kind) {
	case ITEM_FLAGS:
		put_flags(s, fm);
		break;
	case ITEM_INTERNALDATE:
		put_date_time(s, "INTERNALDATE", fm->m.internaldate);
		break;
	case ITEM_SAVEDATE:
		put_date_time(s, "SAVEDATE", fm->m.savedate);
		break;
	case ITEM_SIZE:
		put_uint(s, "RFC822.SIZE ", fm->m.size);
		break;
	case ITEM_ENVELOPE:
		put_str(s, "ENVELOPE ");
		put_str(s, fm->meta.envelope);
		break;
	case ITEM_BODYSTRUCTURE:
		put_str(s, "BODYSTRUCTURE ");
		put_str(s, fm->meta.bodystructure);
		break;
	case ITEM_BODY:
		put_str(s, "BODY ");
		put_str(s, fm->meta.body);
		break;
	case ITEM_MODSEQ:
		put_modseq(s, fm);
		break;
	case ITEM_EMAILID:
		put_emailid(s, fm);
		break;
	case ITEM_THREADID:	/* no thread ids kept: NIL (RFC 8474 5.2) */
		put_str(s, "THREADID NIL");
		break;
	case ITEM_SECTION:	/* section_write(), above */
	case ITEM_BINARY:	/* binary_write(), above */
	case ITEM_BINARY_SIZE:
		break;
	}
	return 1;
}

/*
 * Sends what is left of the literal, a chunk at a time, until the output
 * is full.  The bytes are read straight into the output buffer.  NULs go
 * out as 0x80 as Dovecot sends them: a literal may not hold NUL (RFC
 * 3501 9, CHAR8).  Returns 1 when the literal is sent, 0 when the output
 * is full (or the session closing), -1 when the blob could not be read.
 */
static int
literal_send(struct session *s, struct fetch_job *j)
{
	struct source	*lit = &j->msg.lit;
	char		*dst, *p, *end;
	size_t		 n;

	while (lit->off < lit->end) {
		if (session_output_high(s))
			return 0;
		n = lit->end - lit->off < BLOB_CHUNK_SIZE ?
		    lit->end - lit->off : BLOB_CHUNK_SIZE;
		if ((dst = session_reserve(s, n, &n)) == NULL)
			return 0;
		if (lit->mem != NULL)
			memcpy(dst, lit->mem + lit->off, n);
		else if (store_blob_read(j->msg.blob, lit->off, dst, n) !=
		    (ssize_t)n) {
			j->err = STORE_IO;
			return -1;
		}
		end = dst + n;
		for (p = dst; (p = memchr(p, '\0', end - p)) != NULL; p++)
			*p = (char)0x80;
		session_commit(s, n);
		lit->off += n;
	}
	return 1;
}

/*
 * Writes on with the loaded message's response: the literal being sent,
 * then each item left.  Returns 1 when the response is complete, 0 when
 * the output is full or a step's work is done, -1 on a store error.
 */
static int
msg_write(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;
	int			 r;

	for (;;) {
		if ((r = literal_send(s, j)) != 1 ||
		    (r = binary_send(s, j)) != 1)
			return r;
		if (fm->next == j->nitems)
			break;
		if (session_output_high(s))
			return 0;
		if ((r = item_write(s, j, &j->items[fm->next])) != 1)
			return r;
		fm->next++;
	}
	session_write(s, ")\r\n", 3);
	msg_end(j);
	return 1;
}

/*
 * Loads the next message of the set and opens its response line, or
 * passes over it (expunged elsewhere, unchanged since CHANGEDSINCE).
 * Returns 1, 0 when the set is done, or -1 on a store error.
 */
static int
msg_next(struct session *s, struct fetch_job *j)
{
	uint32_t	 seq;
	int		 r;

	if ((seq = imap_view_walk_next(&j->walk, imap_of(s)->view)) == 0)
		return 0;
	if ((r = msg_load(s, j, seq)) == 1) {
		msg_open(s, j);
		return 1;
	}
	msg_end(j);
	return r < 0 ? -1 : 1;
}

/*
 * Ends the command after a store error.  A literal cut short cannot be
 * finished, so the connection is closed, as Dovecot does.  Otherwise the
 * open response line is closed (with the UID if it is still empty: RFC
 * 3501 has no empty FETCH response) and the command fails.
 */
static void
fetch_fail(struct session *s, struct fetch_job *j)
{
	struct fetch_msg	*fm = &j->msg;

	if (fm->lit.off < fm->lit.end || fm->bin.sending)
		session_close(s);
	else if (j->active && fm->written == 0)
		session_printf(s, "UID %u)\r\n", fm->m.uid);
	else if (j->active)
		session_write(s, ")\r\n", 3);
	msg_end(j);
	if (j->unknown_cte)
		imap_reply(s, "NO [UNKNOWN-CTE] A part's Content-Transfer-"
		    "Encoding is not one BINARY can undo");
	else
		imap_reply_store_error(s, j->err, IMAP_MISSING_MESSAGE,
		    "FETCH");
}

/*
 * Writes responses until the output reaches the high-water mark, the
 * step's time is used up, or the set is done.  Returns 1 once the
 * command has its reply.  The time counts too: messages that write
 * nothing (CHANGEDSINCE, expunged elsewhere) fill no output, and a
 * FETCH of a big mailbox's FLAGS makes 256 KiB of them slowly.  No cap
 * on messages per step, unlike STORE: FETCH writes nothing to the store
 * (but \Seen) and streams best in big steps.
 */
static int
fetch_run(struct session *s, struct fetch_job *j)
{
	struct imap_step_budget	 b;
	int			 r;

	imap_step_begin(&b);
	while (!session_output_high(s) && imap_step_time_left(&b)) {
		if (j->active)
			r = msg_write(s, j);
		else if ((r = msg_next(s, j)) == 0) {
			imap_reply(s, "OK %sFETCH completed",
			    j->uid_cmd ? "UID " : "");
			return 1;
		}
		if (r < 0) {
			fetch_fail(s, j);
			return 1;
		}
	}
	return 0;
}

/*
 * The step function: one fetch_run() inside one read snapshot, so that
 * the look-ups of a step's messages share one lock of the store.
 */
static int
fetch_step(struct session *s, void *arg)
{
	struct store	*st = s->srv->store;
	int		 r;

	store_read_begin(st);
	r = fetch_run(s, arg);
	store_read_end(st);
	return r;
}

/*
 * Parses the command and hands it to fetch_step(), or replies BAD.  The
 * session is in the selected state (imap.c checks).
 */
void
imap_cmd_fetch(struct session *s, const struct imap_arg *args, size_t nargs,
    int uid)
{
	struct imap_session	*is = imap_of(s);
	struct fetch_job	*j;
	const char		*err;

	assert(is->view != NULL);
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		imap_reply(s, "NO [UNAVAILABLE] %s", oom);
		return;
	}
	j->uid_cmd = j->uid = uid;
	if ((err = fetch_parse(j, is->view, args, nargs)) != NULL) {
		imap_reply(s, "%s %s", err == oom ? "NO [UNAVAILABLE]" : "BAD",
		    err);
		fetch_free(j);
		return;
	}
	if (j->binary && ((j->raw = malloc(IO_CHUNK)) == NULL ||
	    (j->dec = malloc(IO_CHUNK + MIME_DECODE_SLACK)) == NULL)) {
		imap_reply(s, "NO [UNAVAILABLE] %s", oom);
		fetch_free(j);
		return;
	}
	if (j->vanished && !is->qresync) {
		imap_reply(s, "BAD VANISHED needs ENABLE QRESYNC first");
		fetch_free(j);
		return;
	}
	/* MODSEQ and CHANGEDSINCE enable CONDSTORE (RFC 7162 3.1) */
	if (j->modseq)
		imap_condstore_enable(s);
	/* What went comes before what changed (RFC 7162 3.2.6). */
	if (j->vanished && imap_vanished_earlier(s, is->view, &j->set,
	    j->since) < 0) {
		imap_reply(s, "NO [UNAVAILABLE] Cannot read the mailbox");
		fetch_free(j);
		return;
	}
	imap_start_steps(s, fetch_step, fetch_free, j);
}
