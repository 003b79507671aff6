/*
 * imap_parse.h — framing and parsing of IMAP commands (RFC 3501 9,
 * RFC 7888 LITERAL+).
 *
 * Framing finds where a command ends in the input buffer: at a line end
 * that does not announce a literal.  A synchronizing literal {N} needs a
 * "+" continuation from the server before the client sends it; the framer
 * says when.  A literal past the limit is refused before it is sent (a
 * synchronizing one is never answered with "+").
 *
 * Parsing then turns one framed command into a tag, a name and a tree of
 * arguments, copied out of the input buffer into memory the command
 * owns.
 */
#ifndef MAILREPD_IMAP_PARSE_H
#define MAILREPD_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum imap_frame_status {
	IMAP_FRAME_MORE,	/* the command is not complete yet */
	IMAP_FRAME_COMPLETE,	/* *len bytes hold one whole command */
	IMAP_FRAME_CONTINUE,	/* send "+ ..." then wait for more */
	IMAP_FRAME_TOO_LONG,	/* a line past the line limit */
	IMAP_FRAME_TOO_BIG,	/* a literal past the literal limit */
	IMAP_FRAME_NONSYNC_TOO_BIG, /* a "{N+}" past the non-synchronizing
				   limit (LITERAL-) */
	IMAP_FRAME_BAD_LITERAL,	/* "{" not followed by a valid size */
};

/*
 * Framing state across calls for one command; zero it (imap_frame_reset)
 * before each command.
 */
struct imap_frame {
	size_t		scanned;	/* bytes known to be inside the command */
	size_t		line_start;	/* where the current line began */
	uint64_t	literal;	/* size of the literal announced last */
	int		continued;	/* "+" already sent for that literal */
	/*
	 * Where the literal announced last sits: its "{" and the LF that
	 * ends its line, and whether it is non-synchronizing ("{N+}").
	 * Set whenever a scan stops at or past such a line, so that APPEND
	 * can take its message literal over before it is buffered.
	 */
	size_t		lit_brace;
	size_t		lit_lf;
	int		lit_plus;
};

void	imap_frame_reset(struct imap_frame *);

/*
 * What framing allows: bytes of a line, of a literal, and of a
 * non-synchronizing literal (RFC 7888 LITERAL-: 4096; UINT64_MAX when
 * only `literal` bounds it, LITERAL+).
 */
struct imap_frame_limits {
	size_t		line;
	uint64_t	literal;
	uint64_t	nonsync;
};

/*
 * Looks at the `avail` bytes at buf.  On IMAP_FRAME_COMPLETE, *len is
 * the command's length including its final CRLF (or LF).  On
 * IMAP_FRAME_TOO_BIG and IMAP_FRAME_NONSYNC_TOO_BIG, *literal_size is
 * the size the client announced, and the literal's line ends at
 * lit_lf.
 */
enum imap_frame_status imap_frame_scan(struct imap_frame *, const char *buf,
	    size_t avail, const struct imap_frame_limits *, size_t *len,
	    uint64_t *literal_size);

enum imap_arg_type {
	IMAP_ARG_ATOM,		/* includes section atoms: BODY[1.2]<0.10> */
	IMAP_ARG_STRING,	/* quoted or literal; may hold NULs */
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,		/* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type	 type;
	char			*str;		/* NUL-terminated */
	size_t			 len;
	int			 literal;	/* a STRING sent as a literal */
	int			 literal8;	/* ... as a literal8, ~{N} */
	struct imap_arg		*list;		/* IMAP_ARG_LIST children */
	size_t			 nlist;
};

/* A parsed command.  `args` and lists are malloc'd; see imap_cmd_free. */
struct imap_cmd {
	char		*tag;
	char		*name;		/* upper-cased in place */
	struct imap_arg	*args;
	size_t		 nargs;
	int		 literal8;	/* some argument is a literal8 */
};

enum imap_parse_status {
	IMAP_PARSE_OK,
	IMAP_PARSE_NO_TAG,	/* no usable tag: answer "* BAD" */
	IMAP_PARSE_BAD,		/* syntax error: answer "TAG BAD" */
	IMAP_PARSE_TOO_DEEP,	/* lists nested past max_depth */
	IMAP_PARSE_TOO_MANY,	/* more than max_args arguments */
	IMAP_PARSE_NOMEM,	/* out of memory: answer "TAG NO", the tag
				   taken from the input (cmd->tag may be
				   NULL) */
};

/*
 * Parses one framed command of `len` bytes at buf (which is not
 * changed).  On any status but IMAP_PARSE_NO_TAG and IMAP_PARSE_NOMEM,
 * cmd->tag is set and
 * the caller must imap_cmd_free(cmd); on IMAP_PARSE_OK the rest is set
 * too.  *error points at a static description when not OK.
 */
enum imap_parse_status imap_parse(const char *buf, size_t len, int max_depth,
	    size_t max_args, struct imap_cmd *cmd, const char **error);

void	imap_cmd_free(struct imap_cmd *);

/* Whether an atom character (RFC 3501 ATOM-CHAR, plus ']' in atoms). */
int	imap_is_atom_char(unsigned char);

/*
 * Whether n bytes can be sent as a quoted string (RFC 3501 quoted: no
 * CR, LF or NUL, 7-bit unless utf8, and short); otherwise they go as a
 * literal.
 */
int	imap_is_quotable(const char *, size_t n, int utf8);

/* Whether a mailbox name is valid modified UTF-7 (RFC 3501 5.1.3). */
int	imap_mutf7_valid(const char *);

/*
 * Reads a decimal number of at most `max` at *pp and moves past it.
 * Returns 0, or -1 when there are no digits or the number is too big.
 */
int	imap_parse_uint(const char **pp, uint64_t max, uint64_t *out);

#endif /* MAILREPD_IMAP_PARSE_H */
