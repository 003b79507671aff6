/*
 * imap_parse.c — IMAP command framing and parsing.
 *
 * Parsed strings are copied into one arena per command (at most twice
 * the command's length), so the input buffer is left as it came and a
 * command's arguments never alias each other.
 */
#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "imap_parse.h"

#define LITERAL_DIGITS	20	/* more digits than any uint64_t */

void
imap_frame_reset(struct imap_frame *fs)
{
	memset(fs, 0, sizeof(*fs));
}

/*
 * If the line [start, lf) ends with "{N}" or "{N+}", returns 1 and the
 * size and whether it is non-synchronizing; 0 if it announces no literal;
 * -1 if it has a "{...}" that is not a valid literal.
 */
static int
line_literal(const char *start, const char *lf, uint64_t *size, int *plus,
    const char **brace)
{
	const char	*end = lf, *p;
	uint64_t	 n = 0;

	if (end > start && end[-1] == '\r')
		end--;
	if (end == start || end[-1] != '}')
		return 0;
	p = end - 1;
	*plus = p > start && p[-1] == '+';
	if (*plus)
		p--;
	while (p > start && isdigit((unsigned char)p[-1]))
		p--;
	if (p == start || p[-1] != '{')
		return 0;
	*brace = p - 1;
	if (p == end - 1 - *plus || end - 1 - *plus - p > LITERAL_DIGITS)
		return -1;
	for (; p < end - 1 - *plus; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*size = n;
	return 1;
}

enum imap_frame_status
imap_frame_scan(struct imap_frame *fs, const char *buf, size_t avail,
    const struct imap_frame_limits *max, size_t *len, uint64_t *literal_size)
{
	const char	*lf, *brace = NULL;
	uint64_t	 size;
	size_t		 at, after;
	int		 plus, has;

	for (;;) {
		assert(fs->scanned >= fs->line_start && fs->scanned <= avail);
		lf = memchr(buf + fs->scanned, '\n', avail - fs->scanned);
		if (lf == NULL) {
			fs->scanned = avail;
			return avail - fs->line_start > max->line ?
			    IMAP_FRAME_TOO_LONG : IMAP_FRAME_MORE;
		}
		at = lf - buf;
		if (at + 1 - fs->line_start > max->line)
			return IMAP_FRAME_TOO_LONG;
		has = line_literal(buf + fs->line_start, lf, &size, &plus,
		    &brace);
		if (has < 0)
			return IMAP_FRAME_BAD_LITERAL;
		if (has == 0) {
			*len = at + 1;
			return IMAP_FRAME_COMPLETE;
		}
		fs->lit_brace = brace - buf;
		fs->lit_lf = at;
		fs->lit_plus = plus;
		fs->literal = size;	/* APPEND streams it from here */
		if (plus && size > max->nonsync) {
			*literal_size = size;
			return IMAP_FRAME_NONSYNC_TOO_BIG;
		}
		if (size > max->literal) {
			*literal_size = size;
			return IMAP_FRAME_TOO_BIG;
		}
		fs->scanned = at;	/* look at this line again next time */
		if (!plus && !fs->continued) {
			fs->continued = 1;
			return IMAP_FRAME_CONTINUE;
		}
		after = at + 1;
		if (avail - after < size)
			return IMAP_FRAME_MORE;
		fs->line_start = fs->scanned = after + (size_t)size;
		fs->continued = 0;
	}
}

int
imap_is_atom_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && strchr("(){\"\\]", c) == NULL;
}

/*
 * Quoted strings stay short and single-line; anything else (and 8-bit
 * data, unless UTF8=ACCEPT is on) goes as a literal, which is always
 * correct.
 */
int
imap_is_quotable(const char *p, size_t n, int utf8)
{
	size_t	 i;

	if (n > IMAP_MAX_QUOTED)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r' || c == '\n' || c == '\0' || (c >= 0x80 && !utf8))
			return 0;
	}
	return 1;
}

/*
 * RFC 3501 5.1.3: printable ASCII stands for itself, except "&", which
 * opens modified BASE64 (A-Z a-z 0-9 + ,) of UTF-16, closed by "-";
 * "&-" is "&".  The shifted run must hold whole 16-bit units.
 */
int
imap_mutf7_valid(const char *p)
{
	size_t	 n;

	for (; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return 0;
		if (*p != '&')
			continue;
		for (n = 0; isalnum((unsigned char)p[n + 1]) ||
		    p[n + 1] == '+' || p[n + 1] == ','; n++)
			;
		if (p[n + 1] != '-' || (n * 6) % 16 >= 6)
			return 0;
		p += n + 1;
	}
	return 1;
}

/* The state of parsing one command. */
struct parser {
	const char	*p, *end;
	char		*arena;		/* where the next string is copied */
	int		 max_depth;
	size_t		 max_args, nargs;
	int		 literal8;	/* a ~{N} was read */
	const char	*error;
	enum imap_parse_status status;
};

/* Copies n bytes into the arena, NUL-terminated; returns the copy. */
static char *
arena_copy(struct parser *ps, const char *s, size_t n)
{
	char	*out = ps->arena;

	memcpy(out, s, n);
	out[n] = '\0';
	ps->arena += n + 1;
	return out;
}

static int
fail(struct parser *ps, enum imap_parse_status status, const char *error)
{
	ps->status = status;
	ps->error = error;
	return -1;
}

/*
 * An atom, with bracketed sections taken whole: "BODY[HEADER.FIELDS
 * (From To)]<0.100>" is one atom.  A '[' that no ']' closes is an atom
 * character like any other (RFC 3501 excludes only ']' from atoms), so
 * "x[y" is one atom.  A flag ("\Seen", "\*") is an atom with a leading
 * backslash.
 */
static int
parse_atom(struct parser *ps, struct imap_arg *a)
{
	const char	*start = ps->p;
	int		 depth = 0;

	if (*ps->p == '\\' && ps->p + 1 < ps->end && (ps->p[1] == '*' ||
	    imap_is_atom_char((unsigned char)ps->p[1])))
		ps->p++;

	while (ps->p < ps->end) {
		unsigned char c = (unsigned char)*ps->p;

		if (c == '[')
			depth++;
		else if (c == ']' && depth > 0)
			depth--;
		else if (depth == 0 ? !imap_is_atom_char(c) :
		    c == '\r' || c == '\n' || c == 0)
			break;
		ps->p++;
	}
	if (depth != 0) {		/* unclosed '[': a plain atom */
		for (ps->p = start; ps->p < ps->end &&
		    imap_is_atom_char((unsigned char)*ps->p); ps->p++)
			;
	}
	if (ps->p == start)
		return fail(ps, IMAP_PARSE_BAD, "invalid atom");
	a->len = ps->p - start;
	a->str = arena_copy(ps, start, a->len);
	a->type = a->len == 3 && strncasecmp(start, "NIL", 3) == 0 ?
	    IMAP_ARG_NIL : IMAP_ARG_ATOM;
	return 0;
}

/* A quoted string, unescaping \" and \\ as it is copied. */
static int
parse_quoted(struct parser *ps, struct imap_arg *a)
{
	char	*out = ps->arena;
	size_t	 n = 0;

	for (ps->p++; ps->p < ps->end && *ps->p != '"'; ps->p++) {
		if (*ps->p == '\r' || *ps->p == '\n' || *ps->p == '\0')
			return fail(ps, IMAP_PARSE_BAD, "invalid quoted string");
		if (*ps->p == '\\') {
			if (++ps->p == ps->end ||
			    (*ps->p != '"' && *ps->p != '\\'))
				return fail(ps, IMAP_PARSE_BAD,
				    "invalid escape in quoted string");
		}
		out[n++] = *ps->p;
	}
	if (ps->p == ps->end)
		return fail(ps, IMAP_PARSE_BAD, "unterminated quoted string");
	ps->p++;
	out[n] = '\0';
	ps->arena += n + 1;
	a->type = IMAP_ARG_STRING;
	a->str = out;
	a->len = n;
	return 0;
}

/*
 * "{N}" or "{N+}", the line end, then N bytes (framing checked sizes);
 * or BINARY's literal8 (RFC 3516 4.4), the same after a "~".
 */
static int
parse_literal(struct parser *ps, struct imap_arg *a)
{
	uint64_t	 n = 0;

	if (*ps->p == '~') {
		a->literal8 = ps->literal8 = 1;
		ps->p++;
	}
	for (ps->p++; ps->p < ps->end && isdigit((unsigned char)*ps->p);
	    ps->p++)
		n = n * 10 + (uint64_t)(*ps->p - '0');
	if (ps->p < ps->end && *ps->p == '+')
		ps->p++;
	if (ps->p < ps->end && *ps->p == '}')
		ps->p++;
	else
		return fail(ps, IMAP_PARSE_BAD, "invalid literal");
	if (ps->p < ps->end && *ps->p == '\r')
		ps->p++;
	if (ps->p >= ps->end || *ps->p != '\n' ||
	    (uint64_t)(ps->end - ps->p - 1) < n)
		return fail(ps, IMAP_PARSE_BAD, "literal not followed by its "
		    "data");
	ps->p++;
	a->type = IMAP_ARG_STRING;
	a->literal = 1;
	a->len = (size_t)n;
	a->str = arena_copy(ps, ps->p, a->len);
	ps->p += a->len;
	return 0;
}

static int	parse_items(struct parser *, struct imap_arg **, size_t *,
		    int depth);
static void	free_args(struct imap_arg *, size_t);

static int
parse_item(struct parser *ps, struct imap_arg *a, int depth)
{
	memset(a, 0, sizeof(*a));
	if (++ps->nargs > ps->max_args)
		return fail(ps, IMAP_PARSE_TOO_MANY, "too many arguments");
	switch (*ps->p) {
	case '(':
		if (depth >= ps->max_depth)
			return fail(ps, IMAP_PARSE_TOO_DEEP,
			    "parentheses nested too deep");
		ps->p++;
		a->type = IMAP_ARG_LIST;
		if (parse_items(ps, &a->list, &a->nlist, depth + 1) < 0)
			return -1;
		if (ps->p >= ps->end || *ps->p != ')')
			return fail(ps, IMAP_PARSE_BAD, "missing ')'");
		ps->p++;
		return 0;
	case '"':
		return parse_quoted(ps, a);
	case '{':
		return parse_literal(ps, a);
	case '~':
		if (ps->p + 1 < ps->end && ps->p[1] == '{')
			return parse_literal(ps, a);
		return parse_atom(ps, a);
	default:
		return parse_atom(ps, a);
	}
}

/*
 * Items separated by single spaces, up to ')' (inside a list) or the end
 * of the command.  *out is malloc'd, grown as items come.
 */
static int
parse_items(struct parser *ps, struct imap_arg **out, size_t *n, int depth)
{
	struct imap_arg	*v = NULL, *grown;
	size_t		 cap = 0;

	*out = NULL;
	*n = 0;
	while (ps->p < ps->end && *ps->p != ')') {
		if (*n > 0) {
			if (*ps->p != ' ' || ++ps->p == ps->end)
				goto bad;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			if ((grown = reallocarray(v, cap, sizeof(*v))) ==
			    NULL) {
				*out = v;
				return fail(ps, IMAP_PARSE_NOMEM,
				    "out of memory");
			}
			v = grown;
		}
		*out = v;
		if (parse_item(ps, &v[*n], depth) < 0) {
			++*n;	/* so that the caller frees it */
			return -1;
		}
		++*n;
	}
	*out = v;
	if (depth == 0 && ps->p < ps->end)
		goto bad;	/* a ')' with no '(' */
	return 0;
bad:
	*out = v;
	return fail(ps, IMAP_PARSE_BAD, "invalid argument syntax");
}

enum imap_parse_status
imap_parse(const char *buf, size_t len, int max_depth, size_t max_args,
    struct imap_cmd *cmd, const char **error)
{
	struct parser	 ps;
	const char	*t;
	char		*arena;
	size_t		 n;

	memset(cmd, 0, sizeof(*cmd));
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	/* Every string plus its NUL fits in twice the input. */
	if ((arena = malloc(2 * len + 2)) == NULL) {
		*error = "out of memory";
		return IMAP_PARSE_NOMEM;
	}
	memset(&ps, 0, sizeof(ps));
	ps.p = buf;
	ps.end = buf + len;
	ps.arena = arena;
	ps.max_depth = max_depth;
	ps.max_args = max_args;
	for (t = ps.p; t < ps.end && imap_is_atom_char(*t) && *t != '+'; t++)
		;
	if (t == ps.p || (t < ps.end && *t != ' ')) {
		free(arena);
		*error = "missing or invalid tag";
		return IMAP_PARSE_NO_TAG;
	}
	/* The tag is the arena's first string: freeing it frees all. */
	cmd->tag = arena_copy(&ps, ps.p, t - ps.p);
	assert(cmd->tag == arena);
	ps.p = t;
	if (ps.p == ps.end || ++ps.p == ps.end ||
	    !isalpha((unsigned char)*ps.p)) {
		*error = "missing command";
		return IMAP_PARSE_BAD;
	}
	for (t = ps.p; t < ps.end && isalnum((unsigned char)*t); t++)
		;
	cmd->name = arena_copy(&ps, ps.p, t - ps.p);
	for (n = 0; cmd->name[n] != '\0'; n++)
		cmd->name[n] = (char)toupper((unsigned char)cmd->name[n]);
	ps.p = t;
	ps.status = IMAP_PARSE_OK;
	if (ps.p < ps.end && (*ps.p != ' ' || ++ps.p == ps.end))
		fail(&ps, IMAP_PARSE_BAD, "invalid command name");
	else
		parse_items(&ps, &cmd->args, &cmd->nargs, 0);
	cmd->literal8 = ps.literal8;
	*error = ps.error;
	if (ps.status != IMAP_PARSE_OK) {
		free_args(cmd->args, cmd->nargs);
		cmd->args = NULL;
		cmd->nargs = 0;
		cmd->name = NULL;
	}
	return ps.status;
}

static void
free_args(struct imap_arg *v, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (v[i].type == IMAP_ARG_LIST)
			free_args(v[i].list, v[i].nlist);
	free(v);
}

void
imap_cmd_free(struct imap_cmd *cmd)
{
	free_args(cmd->args, cmd->nargs);
	free(cmd->tag);		/* the arena begins with the tag */
	memset(cmd, 0, sizeof(*cmd));
}

int
imap_parse_uint(const char **pp, uint64_t max, uint64_t *out)
{
	const char	*p = *pp;
	uint64_t	 v = 0;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (max - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*pp = p;
	*out = v;
	return 0;
}
