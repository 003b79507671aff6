/*
 * mime.c — streaming RFC 5322 / MIME pre-parser.
 *
 * The message arrives one line at a time.  Every decision (end of a
 * header, a boundary, the start of a part) is taken at the end of a line,
 * so the parser keeps only the first bytes of the current line, the
 * header block of the part being read (at most MIME_MAX_HEADER bytes) and
 * the stack of open boundaries.  Each part becomes a node of a small tree
 * holding its offsets and its BODYSTRUCTURE fields, already rendered; the
 * IMAP strings and the parts table are written from that tree at the end.
 *
 * What a client sees is meant to be byte for byte what Dovecot 2.3 sends,
 * so the rules below follow Dovecot's message parser, its header parser
 * (values unfolded without CRLF, leading blanks skipped) and its quoting
 * (8-bit bytes, CR, LF or more than four escapes force a literal; NULs in
 * envelope strings become U+FFFD).  Where we differ on purpose: sizes are
 * the stored octets (Dovecot counts a bare LF as CRLF), boundaries are cut
 * at MIME_MAX_BOUNDARY bytes (Dovecot keeps 80), and past MIME_MAX_PARTS
 * a multipart's further parts stay in its own body.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "mime.h"
#include "mime_internal.h"

#define NOIDX		UINT32_MAX
/* the bytes of a line kept for boundary matching */
#define PEEK		(2 + MIME_MAX_BOUNDARY + 8)
#define PARTS_VERSION	1

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL " \
	"\"7bit\" 0 0"

enum nkind { NK_LEAF, NK_MULTIPART, NK_MESSAGE };

/*
 * One body of BODYSTRUCTURE.  An encapsulated message is the single
 * child of its message/rfc822 node.  num is the part's section when
 * hasnum is set; otherwise (a multipart that is a message) it is the
 * prefix its children are numbered under.
 */
struct node {
	uint32_t	 parent;
	uint32_t	 first;
	uint32_t	 last;
	uint32_t	 next;
	uint32_t	 nchild;
	unsigned	 depth;
	enum nkind	 kind;
	int		 text;		/* lines follow the size */
	int		 digest;	/* children default to messages */
	int		 hasnum;
	int		 plain7;	/* BODY is Dovecot's canned one */
	char		 num[sizeof(((struct mime_part *)0)->section)];
	uint64_t	 hstart, bstart, bend;
	uint64_t	 lstart, lend;	/* LFs fed before bstart, bend */
	char		*basic;	/* fields before the size; subtype */
	char		*ext;	/* BODYSTRUCTURE extension fields */
	char		*env;	/* envelope, without parentheses */
};

struct bnd {
	uint32_t	 node;
	size_t		 len;
	char		 s[MIME_MAX_BOUNDARY];
};

struct mime_parser {
	struct node	*nodes;
	uint32_t	 nnodes;
	uint32_t	 capnodes;
	uint32_t	 cur;		/* innermost open node */
	int		 in_header;	/* cur is still in its header */
	struct bnd	 bnd[MIME_MAX_DEPTH];
	size_t		 nbnd;
	struct sbuf	 hdr;		/* cur's header, bounded */
	size_t		 hdr_mark;	/* hdr.len at line start */
	uint64_t	 off;		/* bytes fed */
	uint64_t	 lf;		/* LFs in completed lines */
	size_t		 line_len;	/* bytes of this line so far */
	unsigned char	 peek[PEEK];
	int		 last_cr;	/* the line so far ends with CR */
	int		 pend;		/* last line's EOL length */
	int		 oom;
	int		 finished;
	/* the top-level message, kept when its header ends */
	struct sbuf	 top_header;
	char		*subject, *from, *to, *message_id;
	time_t		 date;
};

/* Dovecot's header data of one part, before it is rendered. */
struct env {
	char		*date, *subject, *msgid, *irt;
	struct sbuf	 addr[6];	/* from sender reply-to to cc bcc */
	struct sbuf	 from_raw, to_raw;
};

struct pinfo {
	int		 mime;		/* has MIME-Version or CT */
	int		 ct_seen;
	int		 ct_ret;
	struct sbuf	 ctype;		/* "type/subtype" as parsed */
	struct kvlist	 params;
	char		*enc, *id, *desc, *md5, *loc, *dispo;
	struct kvlist	 dparams;
	struct sbuf	 lang;		/* rendered language strings */
	int		 want_env;
	struct env	 env;
};

/*
 * Header fields.
 */

static int
hname(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* A copy with NULs as U+FFFD, as Dovecot keeps header strings. */
static char *
env_str(const char *v, size_t n, int *oom)
{
	struct sbuf	 b = { 0 };
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (v[i] == '\0')
			sb_adds(&b, REPLACEMENT);
		else
			sb_addc(&b, v[i]);
	}
	return sb_take(&b, oom);
}

static void
set_str(char **dst, char *s)
{
	free(*dst);
	*dst = s;
}

/* One header field (unfolded value, may hold NULs) of a part. */
static void
field(struct mime_parser *p, struct pinfo *pi, const char *name, size_t nl,
    const char *v, size_t vl)
{
	static const char *const addrs[] = {
		"From", "Sender", "Reply-To", "To", "Cc", "Bcc"
	};
	struct rfc	 r = { (const unsigned char *)v,
	    (const unsigned char *)v + vl, NULL, 0 };
	struct sbuf	 tok = { 0 }, *raw;
	size_t		 i;

	if (hname(name, nl, "MIME-Version"))
		pi->mime = 1;
	else if (hname(name, nl, "Content-Type") && !pi->ct_seen) {
		pi->ct_seen = pi->mime = 1;
		rfc_skip_lwsp(&r);
		if ((pi->ct_ret = rfc_content_type(&r, &pi->ctype)) >= 0)
			rfc_params(&r, &pi->params);
	} else if (hname(name, nl, "Content-Transfer-Encoding") &&
	    pi->enc == NULL) {
		rfc_skip_lwsp(&r);
		if (rfc_run(&r, &tok, 1, 1) >= 0 && rfc_skip_lwsp(&r) == 0 &&
		    tok.len > 0)
			pi->enc = sb_take(&tok, &p->oom);
	} else if (hname(name, nl, "Content-Disposition") &&
	    pi->dparams.n == 0) {
		/* Dovecot reads it again while no parameters were seen */
		rfc_skip_lwsp(&r);
		if (rfc_run(&r, &tok, 1, 1) >= 0) {
			set_str(&pi->dispo, sb_take(&tok, &p->oom));
			kv_free(&pi->dparams);
			rfc_params(&r, &pi->dparams);
		}
	} else if (hname(name, nl, "Content-Language") && pi->lang.len == 0) {
		rfc_skip_lwsp(&r);
		while (rfc_atom(&r, &tok) >= 0) {
			if (pi->lang.len > 0)
				sb_addc(&pi->lang, ' ');
			mime_nstring(&pi->lang, sb_str(&tok));
			sb_trunc(&tok, 0);
			if (r.p == r.end || *r.p != ',')
				break;
			r.p++;
			rfc_skip_lwsp(&r);
		}
	} else if (hname(name, nl, "Content-ID") && pi->id == NULL)
		pi->id = env_str(v, vl, &p->oom);
	else if (hname(name, nl, "Content-Description") && pi->desc == NULL)
		pi->desc = env_str(v, vl, &p->oom);
	else if (hname(name, nl, "Content-MD5") && pi->md5 == NULL)
		pi->md5 = env_str(v, vl, &p->oom);
	else if (hname(name, nl, "Content-Location") && pi->loc == NULL)
		pi->loc = env_str(v, vl, &p->oom);
	else if (pi->want_env) {
		/* the last of each string wins; address lists add up */
		if (hname(name, nl, "Date"))
			set_str(&pi->env.date, env_str(v, vl, &p->oom));
		else if (hname(name, nl, "Subject"))
			set_str(&pi->env.subject, env_str(v, vl, &p->oom));
		else if (hname(name, nl, "Message-ID"))
			set_str(&pi->env.msgid, env_str(v, vl, &p->oom));
		else if (hname(name, nl, "In-Reply-To"))
			set_str(&pi->env.irt, env_str(v, vl, &p->oom));
		for (i = 0; i < 6; i++)
			if (hname(name, nl, addrs[i]) &&
			    mime_addr_parse(v, vl, &pi->env.addr[i]) == -1)
				p->oom = 1;
		raw = hname(name, nl, "From") ? &pi->env.from_raw :
		    hname(name, nl, "To") ? &pi->env.to_raw : NULL;
		if (raw != NULL && raw->len > 0)
			sb_adds(raw, ", ");
		if (raw != NULL)
			mime_decode_2047(raw, v, vl);
	}
	p->oom |= tok.err;
	sb_free(&tok);
}

/*
 * Splits a header block into fields the way Dovecot's header parser does
 * for IMAP: a line starting with a blank continues the field (its line
 * ending stays in the value; the writers drop it), blanks after the colon
 * are skipped (only one if the line holds nothing else), and a line
 * without a colon is a field name with an empty value.
 */
static void
split_header(struct mime_parser *p, struct pinfo *pi, const char *buf,
    size_t len)
{
	struct sbuf	 val = { 0 };
	const char	*line = buf, *end = buf + len, *nl, *colon, *v, *name;
	const char	*prev_eol = buf;
	size_t		 ll, nlen = 0, vl, i;
	int		 have = 0;

	while (line < end) {
		nl = memchr(line, '\n', end - line);
		ll = nl != NULL ? (size_t)(nl - line) : (size_t)(end - line);
		if (nl != NULL && ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (nl != NULL && ll == 0)
			break;	/* the blank line ending the header */
		if (have && IS_LWSP(line[0])) {
			/* the previous line's ending stays in the value */
			sb_add(&val, prev_eol, (size_t)(line - prev_eol));
			sb_add(&val, line, ll);
		} else {
			if (have)
				field(p, pi, name, nlen, sb_str(&val), val.len);
			have = 1;
			sb_trunc(&val, 0);
			name = line;
			if ((colon = memchr(line, ':', ll)) == NULL)
				nlen = ll;
			else {
				for (nlen = colon - line; nlen > 0 &&
				    IS_LWSP(line[nlen - 1]); nlen--)
					;
				v = colon + 1;
				vl = line + ll - v;
				for (i = 0; i < vl && IS_LWSP(v[i]); i++)
					;
				if (i == vl && vl > 0)
					i = 1;
				sb_add(&val, v + i, vl - i);
			}
		}
		if (nl == NULL)
			break;
		prev_eol = line + ll;
		line = nl + 1;
	}
	if (have)
		field(p, pi, name, nlen, sb_str(&val), val.len);
	p->oom |= val.err;
	sb_free(&val);
}

/* Drops the Content-* data of a part that is not MIME. */
static void
forget_content(struct pinfo *pi)
{
	sb_free(&pi->ctype);
	kv_free(&pi->params);
	kv_free(&pi->dparams);
	free(pi->enc);
	free(pi->id);
	free(pi->desc);
	free(pi->md5);
	free(pi->loc);
	free(pi->dispo);
	pi->enc = pi->id = pi->desc = pi->md5 = pi->loc = pi->dispo = NULL;
	sb_free(&pi->lang);
}

static void
pinfo_free(struct pinfo *pi)
{
	size_t	 i;

	forget_content(pi);
	free(pi->env.date);
	free(pi->env.subject);
	free(pi->env.msgid);
	free(pi->env.irt);
	for (i = 0; i < 6; i++)
		sb_free(&pi->env.addr[i]);
	sb_free(&pi->env.from_raw);
	sb_free(&pi->env.to_raw);
}

/* ("k" "v" ...) or NIL, with charset us-ascii added for text parts. */
static void
write_params(struct sbuf *o, const struct kvlist *l, int text)
{
	size_t	 i;
	int	 charset = 0;

	if (!text && l->n == 0) {
		sb_adds(o, "NIL");
		return;
	}
	sb_addc(o, '(');
	for (i = 0; i < l->n; i++) {
		if (i > 0)
			sb_addc(o, ' ');
		charset |= strcasecmp(l->a[i].k, "charset") == 0;
		mime_nstring(o, l->a[i].k);
		sb_addc(o, ' ');
		mime_nstring(o, l->a[i].v);
	}
	if (text && !charset)
		sb_adds(o, i > 0 ? " \"charset\" \"us-ascii\"" :
		    "\"charset\" \"us-ascii\"");
	sb_addc(o, ')');
}

/* The disposition, language and location extension fields. */
static void
write_common(struct sbuf *o, const struct pinfo *pi)
{
	if (pi->dispo == NULL)
		sb_adds(o, " NIL");
	else {
		sb_adds(o, " (");
		mime_nstring(o, pi->dispo);
		sb_addc(o, ' ');
		write_params(o, &pi->dparams, 0);
		sb_addc(o, ')');
	}
	if (pi->lang.len == 0)
		sb_adds(o, " NIL");
	else {
		sb_adds(o, " (");
		sb_add(o, pi->lang.s, pi->lang.len);
		sb_addc(o, ')');
	}
	sb_addc(o, ' ');
	mime_nstring_nolf(o, pi->loc);
}

/* The ENVELOPE fields of a message, without the parentheses. */
static void
write_env(struct sbuf *o, const struct env *e)
{
	static const int from_if_empty[6] = { 0, 1, 1, 0, 0, 0 };
	const struct sbuf	*a;
	int			 i;

	mime_nstring_nolf(o, e->date);
	sb_addc(o, ' ');
	if (e->subject == NULL)
		sb_adds(o, "NIL");
	else
		mime_humans(o, e->subject);
	for (i = 0; i < 6; i++) {
		a = &e->addr[i];
		if (a->len == 0 && from_if_empty[i])
			a = &e->addr[0];
		if (a->len == 0)
			sb_adds(o, " NIL");
		else {
			sb_adds(o, " (");
			sb_add(o, a->s, a->len);
			sb_addc(o, ')');
		}
	}
	sb_addc(o, ' ');
	mime_nstring_nolf(o, e->irt);
	sb_addc(o, ' ');
	mime_nstring_nolf(o, e->msgid);
}

/*
 * Nodes and the line state machine.
 */

/* Adds a child of parent starting at hstart; NOIDX when out of room. */
static uint32_t
node_add(struct mime_parser *p, uint32_t parent, uint64_t hstart)
{
	struct node	*n, *nodes;
	uint32_t	 cap, i;

	if (p->nnodes >= MIME_MAX_PARTS)
		return NOIDX;
	if (p->nnodes == p->capnodes) {
		cap = p->capnodes > 0 ? p->capnodes * 2 : 8;
		if (cap > MIME_MAX_PARTS)
			cap = MIME_MAX_PARTS;
		nodes = reallocarray(p->nodes, cap, sizeof(*nodes));
		if (nodes == NULL) {
			p->oom = 1;
			return NOIDX;
		}
		p->nodes = nodes;
		p->capnodes = cap;
	}
	i = p->nnodes++;
	n = &p->nodes[i];
	memset(n, 0, sizeof(*n));
	n->parent = parent;
	n->first = n->last = n->next = NOIDX;
	n->hstart = hstart;
	if (parent != NOIDX) {
		n->depth = p->nodes[parent].depth + 1;
		if (p->nodes[parent].last == NOIDX)
			p->nodes[parent].first = i;
		else
			p->nodes[p->nodes[parent].last].next = i;
		p->nodes[parent].last = i;
		p->nodes[parent].nchild++;
	}
	return i;
}

/* Makes node i the current one, at the start of its header. */
static void
enter_header(struct mime_parser *p, uint32_t i)
{
	p->cur = i;
	p->in_header = 1;
	p->pend = 0;
	sb_trunc(&p->hdr, 0);
	p->hdr_mark = 0;
}

/* Renders node n's BODYSTRUCTURE fields from its header data. */
static void
render(struct mime_parser *p, struct node *n, struct pinfo *pi, int has_type)
{
	struct sbuf	 b = { 0 }, x = { 0 };
	const char	*ct = sb_str(&pi->ctype), *slash = strchr(ct, '/');
	char		*type;

	if (n->kind == NK_MULTIPART) {
		mime_nstring(&b, slash + 1);
		sb_addc(&x, ' ');
		write_params(&x, &pi->params, 0);
	} else {
		if (n->kind == NK_MESSAGE)
			sb_adds(&b, "\"message\" \"rfc822\"");
		else if (!has_type) {
			sb_adds(&b, "\"text\" \"plain\"");
			n->text = 1;
		} else {
			type = mime_strcopy(ct, slash != NULL ?
			    (size_t)(slash - ct) : strlen(ct), &p->oom);
			if (type != NULL) {
				n->text = strcasecmp(type, "text") == 0;
				mime_nstring(&b, type);
			}
			free(type);
			sb_addc(&b, ' ');
			mime_nstring(&b, slash != NULL ? slash + 1 : "");
		}
		sb_addc(&b, ' ');
		write_params(&b, &pi->params, n->text);
		sb_addc(&b, ' ');
		mime_nstring_nolf(&b, pi->id);
		sb_addc(&b, ' ');
		mime_nstring_nolf(&b, pi->desc);
		sb_addc(&b, ' ');
		mime_nstring(&b, pi->enc != NULL ? pi->enc : "7bit");
		sb_addc(&x, ' ');
		mime_nstring_nolf(&x, pi->md5);
	}
	write_common(&x, pi);
	n->basic = sb_take(&b, &p->oom);
	n->ext = sb_take(&x, &p->oom);
}

/*
 * Tells whether a top-level part is plain 7-bit text with nothing but
 * charset=us-ascii, for which Dovecot answers BODY with a fixed string.
 */
static int
is_plain7(const struct pinfo *pi, enum nkind kind)
{
	const char	*ct = sb_str(&pi->ctype), *sub = strchr(ct, '/');
	const struct kv	*k = pi->params.a;

	if (kind != NK_LEAF || (pi->ct_seen && (sub == NULL ||
	    strncasecmp(ct, "text/", 5) != 0 ||
	    strcasecmp(sub + 1, "plain") != 0)))
		return 0;
	if (pi->params.n > 1 || (pi->params.n == 1 &&
	    (strcasecmp(k[0].k, "charset") != 0 ||
	    strcasecmp(k[0].v, "us-ascii") != 0)))
		return 0;
	return pi->id == NULL && pi->desc == NULL && (pi->enc == NULL ||
	    strcasecmp(pi->enc, "7bit") == 0) && pi->md5 == NULL &&
	    pi->dispo == NULL && pi->lang.len == 0 && pi->loc == NULL;
}

/* Keeps what the result reports about the top-level message. */
static void
keep_top(struct mime_parser *p, struct pinfo *pi)
{
	struct sbuf	 b = { 0 };
	const char	*s;
	size_t		 n;

	sb_add(&p->top_header, sb_str(&p->hdr), p->hdr.len);
	if (pi->env.subject != NULL)
		mime_decode_2047(&b, pi->env.subject, strlen(pi->env.subject));
	p->subject = sb_take(&b, &p->oom);
	p->from = sb_take(&pi->env.from_raw, &p->oom);
	p->to = sb_take(&pi->env.to_raw, &p->oom);
	if (pi->env.date != NULL)
		p->date = mime_parse_date(pi->env.date, strlen(pi->env.date));
	if ((s = pi->env.msgid) != NULL) {
		/* unfolded, without blanks around it */
		for (n = strlen(s); n > 0 && IS_LWSP(s[n - 1]); n--)
			;
		for (; *s != '\0' && n > 0; s++, n--)
			if (*s != '\r' && *s != '\n' &&
			    (b.len > 0 || !IS_LWSP(*s)))
				sb_addc(&b, *s);
		p->message_id = sb_take(&b, &p->oom);
	}
}

/*
 * Ends the header of the current node at offset end (with lfe LFs before
 * it); eoh tells it ended with its blank line rather than at a boundary
 * or the end of the message.  Decides what the part is, pushes a
 * multipart's boundary and opens an encapsulated message, within the
 * limits: a container too deep, or a message with no room for its
 * contents, is described as an opaque part, as Dovecot does past its own
 * limits.
 */
static void
end_header(struct mime_parser *p, uint64_t end, uint64_t lfe, int eoh)
{
	struct pinfo	 pi;
	struct sbuf	 e = { 0 };
	struct node	*n, *par;
	struct kv	*kv;
	struct bnd	*b;
	const char	*ct;
	uint32_t	 i = p->cur, child;
	size_t		 k;
	int		 pmulti, digest, root;

	assert(p->in_header);
	memset(&pi, 0, sizeof(pi));
	/* A header cut short by a failed allocation would describe
	 * another message: the parse fails instead. */
	p->oom |= p->hdr.err;
	par = p->nodes[i].parent != NOIDX ? &p->nodes[p->nodes[i].parent] :
	    NULL;
	root = par == NULL;
	pmulti = par != NULL && par->kind == NK_MULTIPART;
	digest = pmulti && par->digest;
	pi.want_env = root || par->kind == NK_MESSAGE;
	split_header(p, &pi, sb_str(&p->hdr), p->hdr.len);
	n = &p->nodes[i];
	n->bstart = n->bend = end;
	n->lstart = n->lend = lfe;
	ct = sb_str(&pi.ctype);
	n->kind = NK_LEAF;
	if (pi.ct_seen) {
		if (strcasecmp(ct, "message/rfc822") == 0)
			n->kind = NK_MESSAGE;
		else if (strncasecmp(ct, "multipart/", 10) == 0) {
			n->kind = NK_MULTIPART;
			n->digest = strcasecmp(ct + 10, "digest") == 0;
		}
	} else if (digest)
		n->kind = NK_MESSAGE;
	/* Without MIME-Version or Content-Type, Content-* headers count
	 * for nothing. */
	if (!pi.mime && !pmulti)
		forget_content(&pi);
	if (n->depth >= MIME_MAX_DEPTH)
		n->kind = NK_LEAF;
	if (pi.want_env) {
		n->hasnum = n->kind != NK_MULTIPART;
		if (root)
			snprintf(n->num, sizeof(n->num), "%s",
			    n->hasnum ? "1" : "");
		else
			snprintf(n->num, sizeof(n->num), n->hasnum ?
			    "%s.1" : "%s", par->num);
	}
	/* its contents are numbered under num: "num.1" must fit */
	if (n->kind == NK_MESSAGE && (p->nnodes >= MIME_MAX_PARTS ||
	    strlen(n->num) + 2 >= sizeof(n->num)))
		n->kind = NK_LEAF;
	if (n->kind != NK_MULTIPART)
		n->digest = 0;
	render(p, n, &pi, pi.ct_seen);
	if (pi.want_env) {
		write_env(&e, &pi.env);
		n->env = sb_take(&e, &p->oom);
	}
	/* Dovecot takes the first boundary, and only at a blank line */
	for (k = 0; n->kind == NK_MULTIPART && eoh && pi.ct_ret >= 0 &&
	    k < pi.params.n; k++) {
		kv = &pi.params.a[k];
		if (strcasecmp(kv->k, "boundary") != 0)
			continue;
		/* containers above MIME_MAX_DEPTH were made leaves */
		assert(p->nbnd < MIME_MAX_DEPTH);
		b = &p->bnd[p->nbnd++];
		b->len = strnlen(kv->v, sizeof(b->s));
		memcpy(b->s, kv->v, b->len);
		b->node = i;
		break;
	}
	if (root) {
		n->plain7 = is_plain7(&pi, n->kind);
		keep_top(p, &pi);
	}
	pinfo_free(&pi);
	p->in_header = 0;
	p->pend = 0;
	if (p->nodes[i].kind != NK_MESSAGE)
		return;
	if ((child = node_add(p, i, end)) == NOIDX)
		p->nodes[i].kind = NK_LEAF;	/* out of memory */
	else
		enter_header(p, child);
}

/*
 * Ends every open node up to (not including) owner at offset end: nodes
 * still in their header end it there with an empty body; an encapsulated
 * message opened on the way is ended too.
 */
static void
close_to(struct mime_parser *p, uint32_t owner, uint64_t end, uint64_t lfe)
{
	struct node	*n;

	while (p->cur != owner) {
		if (p->in_header) {
			end_header(p, end, lfe, 0);
			continue;
		}
		n = &p->nodes[p->cur];
		n->bend = end;
		n->lend = lfe;
		p->cur = n->parent;
	}
}

/*
 * Returns the index in p->bnd of the boundary the line just ended opens
 * with, or -1; *close tells it is a close-delimiter.  As in Dovecot the
 * line need only begin with "--" and the boundary (the longest match
 * wins, the innermost among equals); CRLF and a trailing "--" are not
 * part of what is matched.
 */
static int
bnd_match(const struct mime_parser *p, int eol, int *close)
{
	const struct bnd	*b;
	size_t			 n, i;
	int			 best = -1;

	*close = 0;
	if (p->nbnd == 0 || p->line_len < 2 || p->peek[0] != '-' ||
	    p->peek[1] != '-')
		return -1;
	n = p->line_len - 2 - (size_t)eol;
	/* a tail "--" can only matter on lines short enough to peek at */
	if (eol > 0 && n > 2 && 2 + n <= PEEK && p->peek[n] == '-' &&
	    p->peek[n + 1] == '-')
		n -= 2;
	for (i = p->nbnd; i-- > 0;) {
		b = &p->bnd[i];
		if (b->len <= n && memcmp(p->peek + 2, b->s, b->len) == 0 &&
		    (best == -1 || p->bnd[best].len < b->len))
			best = (int)i;
	}
	if (best >= 0) {
		b = &p->bnd[best];
		*close = p->line_len >= b->len + 4 &&
		    p->peek[b->len + 2] == '-' && p->peek[b->len + 3] == '-';
	}
	return best;
}

/*
 * The line just ended is boundary bi.  The line ending before it belongs
 * to the boundary, so the parts it closes end before that; a delimiter
 * opens the owner's next part on the following line, unless the parts
 * table is full or the section would not fit, when what follows stays in
 * the owner's body.
 */
static void
boundary(struct mime_parser *p, size_t bi, int close, int eol, uint64_t end,
    uint64_t lfe)
{
	struct node	*m;
	uint32_t	 owner = p->bnd[bi].node, child;
	char		 num[sizeof(m->num)];
	int		 len;

	close_to(p, owner, end, lfe);
	p->nbnd = close ? bi : bi + 1;
	p->pend = 0;
	if (close || eol == 0)
		return;	/* no part after a boundary at the very end */
	m = &p->nodes[owner];
	len = snprintf(num, sizeof(num), m->num[0] != '\0' ? "%s.%u" :
	    "%s%u", m->num, m->nchild + 1);
	if (len < 0 || (size_t)len >= sizeof(num) ||
	    (child = node_add(p, owner, p->off)) == NOIDX)
		return;
	memcpy(p->nodes[child].num, num, sizeof(num));
	p->nodes[child].hasnum = 1;
	enter_header(p, child);
}

/* The current line is complete; eol is the length of its ending. */
static void
end_line(struct mime_parser *p, int eol)
{
	uint64_t	 start = p->off - p->line_len, lfb = p->lf, end, lfe;
	uint32_t	 x;
	int		 bi, close;

	if (eol > 0)
		p->lf++;
	bi = bnd_match(p, eol, &close);
	if (p->in_header && eol > 0 && p->line_len == (size_t)eol)
		end_header(p, p->off, p->lf, 1);	/* the blank line */
	else if (bi < 0)
		p->pend = eol;
	else {
		end = start - (uint64_t)p->pend;
		lfe = lfb - (p->pend > 0);
		if (p->in_header) {
			/* The header ends before the line ending, which
			 * Dovecot gives to the parent's body. */
			sb_trunc(&p->hdr, p->hdr_mark);
			x = p->cur;
			assert(p->nodes[x].parent != NOIDX);
			end_header(p, end, lfe, 0);
			close_to(p, p->nodes[x].parent, end, lfe);
			end = start;
			lfe = lfb;
		}
		boundary(p, (size_t)bi, close, eol, end, lfe);
	}
	p->line_len = 0;
	p->last_cr = 0;
	p->hdr_mark = p->hdr.len;
}

/* Takes n bytes of the current line (the LF, if any, last). */
static void
take(struct mime_parser *p, const char *s, size_t n)
{
	size_t	 k;

	if (p->line_len < PEEK) {
		k = PEEK - p->line_len < n ? PEEK - p->line_len : n;
		memcpy(p->peek + p->line_len, s, k);
	}
	if (p->in_header && p->hdr.len < MIME_MAX_HEADER)
		sb_add(&p->hdr, s, MIME_MAX_HEADER - p->hdr.len < n ?
		    MIME_MAX_HEADER - p->hdr.len : n);
	p->line_len += n;
	p->off += n;
}

struct mime_parser *
mime_parser_new(void)
{
	struct mime_parser	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->date = -1;
	if (node_add(p, NOIDX, 0) == NOIDX) {
		free(p);
		return NULL;
	}
	enter_header(p, 0);
	return p;
}

void
mime_parser_feed(struct mime_parser *p, const char *line, size_t len)
{
	const char	*nl;
	size_t		 n;
	int		 cr;

	assert(!p->finished);
	while (len > 0) {
		nl = memchr(line, '\n', len);
		n = nl != NULL ? (size_t)(nl - line) + 1 : len;
		/* a CR may end one feed and its LF begin the next */
		cr = n >= 2 ? line[n - 2] == '\r' : p->last_cr;
		take(p, line, n);
		p->last_cr = line[n - 1] == '\r';
		if (nl != NULL)
			end_line(p, cr ? 2 : 1);
		line += n;
		len -= n;
	}
}

/*
 * Writes node i as BODY (ext 0) or BODYSTRUCTURE (ext 1), without the
 * parentheses around it, as Dovecot's imap_bodystructure_write() does.
 */
static void
write_body(const struct mime_parser *p, uint32_t i, struct sbuf *o, int ext)
{
	const struct node	*n = &p->nodes[i];
	uint32_t		 c;

	if (n->kind == NK_MULTIPART) {
		if (n->first == NOIDX)
			sb_adds(o, ext ? EMPTY_BODY " NIL NIL NIL NIL)" :
			    EMPTY_BODY ")");
		for (c = n->first; c != NOIDX; c = p->nodes[c].next) {
			sb_addc(o, '(');
			write_body(p, c, o, ext);
			sb_addc(o, ')');
		}
		sb_addc(o, ' ');
		sb_adds(o, n->basic);
		if (ext)
			sb_adds(o, n->ext);
		return;
	}
	if (n->plain7 && !ext)
		sb_adds(o, "\"text\" \"plain\" (\"charset\" \"us-ascii\") "
		    "NIL NIL \"7bit\"");
	else
		sb_adds(o, n->basic);
	sb_addc(o, ' ');
	sb_addu(o, n->bend - n->bstart);
	if (n->kind == NK_MESSAGE) {
		assert(n->first != NOIDX && n->first == n->last);
		sb_adds(o, " (");
		sb_adds(o, p->nodes[n->first].env);
		sb_adds(o, ") (");
		write_body(p, n->first, o, ext);
		sb_addc(o, ')');
	}
	if (n->text || n->kind == NK_MESSAGE) {
		sb_addc(o, ' ');
		sb_addu(o, n->lend - n->lstart);
	}
	if (ext)
		sb_adds(o, n->ext);
}

static void
put_part(struct mime_part *d, const struct mime_parser *p,
    const struct node *n, const char *section)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->section, sizeof(d->section), "%s", section);
	d->header_start = n->hstart;
	d->body_start = d->inner_body_start = n->bstart;
	d->body_end = n->bend;
	d->is_multipart = n->kind == NK_MULTIPART;
	d->is_message = n->kind == NK_MESSAGE;
	if (d->is_message)
		d->inner_body_start = p->nodes[n->first].bstart;
	assert(d->header_start <= d->body_start &&
	    d->body_start <= d->inner_body_start &&
	    d->inner_body_start <= d->body_end);
}

int
mime_parser_finish(struct mime_parser *p, struct mime_result *out)
{
	struct sbuf	 bs = { 0 }, body = { 0 }, env = { 0 };
	uint32_t	 i;
	size_t		 k = 0;

	assert(!p->finished);
	memset(out, 0, sizeof(*out));
	if (p->line_len > 0)
		end_line(p, 0);
	close_to(p, NOIDX, p->off, p->lf);
	p->finished = 1;
	out->date = -1;
	if (p->oom)
		return -1;
	sb_addc(&bs, '(');
	write_body(p, 0, &bs, 1);
	sb_addc(&bs, ')');
	sb_addc(&body, '(');
	write_body(p, 0, &body, 0);
	sb_addc(&body, ')');
	sb_addc(&env, '(');
	sb_adds(&env, p->nodes[0].env);
	sb_addc(&env, ')');
	out->bodystructure = sb_take(&bs, &p->oom);
	out->body = sb_take(&body, &p->oom);
	out->envelope = sb_take(&env, &p->oom);
	out->header_len = p->top_header.len;
	out->header = sb_take(&p->top_header, &p->oom);
	out->subject = p->subject;
	out->from = p->from;
	out->to = p->to;
	out->message_id = p->message_id;
	p->subject = p->from = p->to = p->message_id = NULL;
	out->date = p->date;
	out->size = p->off;
	out->parts = calloc(p->nnodes + 1, sizeof(*out->parts));
	if (out->parts == NULL || p->oom) {
		mime_result_free(out);
		return -1;
	}
	put_part(&out->parts[k++], p, &p->nodes[0], "");
	for (i = 0; i < p->nnodes; i++)
		if (p->nodes[i].hasnum)
			put_part(&out->parts[k++], p, &p->nodes[i],
			    p->nodes[i].num);
	out->nparts = k;
	return 0;
}

void
mime_parser_free(struct mime_parser *p)
{
	uint32_t	 i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nnodes; i++) {
		free(p->nodes[i].basic);
		free(p->nodes[i].ext);
		free(p->nodes[i].env);
	}
	free(p->nodes);
	sb_free(&p->hdr);
	sb_free(&p->top_header);
	free(p->subject);
	free(p->from);
	free(p->to);
	free(p->message_id);
	free(p);
}

void
mime_result_free(struct mime_result *r)
{
	if (r == NULL)
		return;
	free(r->envelope);
	free(r->bodystructure);
	free(r->body);
	free(r->header);
	free(r->subject);
	free(r->from);
	free(r->to);
	free(r->message_id);
	free(r->parts);
	memset(r, 0, sizeof(*r));
	r->date = -1;
}

int
mime_parse_buffer(const char *msg, size_t len, struct mime_result *out)
{
	struct mime_parser	*p;
	int			 ret;

	if ((p = mime_parser_new()) == NULL) {
		memset(out, 0, sizeof(*out));
		out->date = -1;
		return -1;
	}
	mime_parser_feed(p, msg, len);
	ret = mime_parser_finish(p, out);
	mime_parser_free(p);
	return ret;
}

/*
 * The parts table on disk: a version byte, the count, then per part its
 * section (length and bytes), header_start and the three gaps to the next
 * offset as LEB128 varints, and a flags byte (1 multipart, 2 message).
 */

static void
put_varint(struct sbuf *b, uint64_t v)
{
	while (v >= 0x80) {
		sb_addc(b, (char)((v & 0x7f) | 0x80));
		v >>= 7;
	}
	sb_addc(b, (char)v);
}

static int
get_varint(const unsigned char **s, const unsigned char *e, uint64_t *v)
{
	unsigned	 shift;

	*v = 0;
	for (shift = 0; *s < e && shift < 64; shift += 7) {
		if (shift == 63 && **s > 1)
			return -1;
		*v |= (uint64_t)(**s & 0x7f) << shift;
		if ((*(*s)++ & 0x80) == 0)
			return 0;
	}
	return -1;
}

int
mime_parts_encode(const struct mime_part *parts, size_t n, char **out,
    size_t *outlen)
{
	struct sbuf	 b = { 0 };
	size_t		 i, sl;
	int		 oom = 0;

	sb_addc(&b, PARTS_VERSION);
	put_varint(&b, n);
	for (i = 0; i < n; i++) {
		/* offsets are stored as gaps, so they must be in order */
		assert(parts[i].header_start <= parts[i].body_start &&
		    parts[i].body_start <= parts[i].inner_body_start &&
		    parts[i].inner_body_start <= parts[i].body_end);
		sl = strnlen(parts[i].section, sizeof(parts[i].section) - 1);
		put_varint(&b, sl);
		sb_add(&b, parts[i].section, sl);
		put_varint(&b, parts[i].header_start);
		put_varint(&b, parts[i].body_start - parts[i].header_start);
		put_varint(&b, parts[i].inner_body_start -
		    parts[i].body_start);
		put_varint(&b, parts[i].body_end - parts[i].inner_body_start);
		sb_addc(&b, (char)((parts[i].is_multipart ? 1 : 0) |
		    (parts[i].is_message ? 2 : 0)));
	}
	*outlen = b.len;
	if ((*out = sb_take(&b, &oom)) == NULL)
		return -1;
	return 0;
}

int
mime_parts_decode(const char *in, size_t inlen, struct mime_part **out,
    size_t *n)
{
	const unsigned char	*s = (const unsigned char *)in;
	const unsigned char	*e = s + inlen;
	struct mime_part	*a, *d;
	uint64_t		 cnt, v[5];
	size_t			 i, j;

	*out = NULL;
	*n = 0;
	if (inlen < 2 || *s++ != PARTS_VERSION ||
	    get_varint(&s, e, &cnt) == -1 || cnt > (uint64_t)(e - s) / 6)
		return -1;
	if ((a = calloc(cnt + 1, sizeof(*a))) == NULL)
		return -1;
	for (i = 0; i < cnt; i++) {
		d = &a[i];
		if (get_varint(&s, e, &v[0]) == -1 ||
		    v[0] >= sizeof(d->section) || v[0] > (uint64_t)(e - s))
			goto bad;
		memcpy(d->section, s, v[0]);
		s += v[0];
		if (strspn(d->section, "0123456789.") != v[0])
			goto bad;
		for (j = 1; j < 5; j++)
			if (get_varint(&s, e, &v[j]) == -1)
				goto bad;
		d->header_start = v[1];
		if (v[2] > UINT64_MAX - v[1] ||
		    v[3] > UINT64_MAX - v[1] - v[2] ||
		    v[4] > UINT64_MAX - v[1] - v[2] - v[3] || s >= e ||
		    *s > 3)
			goto bad;
		d->body_start = v[1] + v[2];
		d->inner_body_start = d->body_start + v[3];
		d->body_end = d->inner_body_start + v[4];
		d->is_multipart = (*s & 1) != 0;
		d->is_message = (*s++ & 2) != 0;
	}
	if (s != e)
		goto bad;
	*out = a;
	*n = cnt;
	return 0;
bad:
	free(a);
	return -1;
}
