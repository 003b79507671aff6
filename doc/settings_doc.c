/*
 * settings_doc.c — writes the settings table (settings.c) as the README's
 * configuration table, the man page's SETTINGS section or the example
 * config file, so that all of them say what --help says.
 *
 * usage: settings_doc markdown|roff|conf
 * scripts/docs puts the output in place (make docs) or compares it with
 * what is committed (make lint).
 */
#include <stdio.h>
#include <string.h>

#include "settings.h"

/* Values the example config sets rather than leaves as a comment. */
static const struct {
	const char	*name;
	const char	*value;
} conf_examples[] = {
	{ "data", "/var/lib/mailrepd" },
	{ "lmtp", "127.0.0.1:24" },
	{ "imap", "0.0.0.0:143" },
	{ "imaps", "0.0.0.0:993" },
};

#define CONF_WIDTH	72	/* columns of the example config's comments */

/* Writes s with every character in `special` preceded by a backslash. */
static void
put_escaped(FILE *f, const char *s, const char *special)
{
	for (; *s != '\0'; s++) {
		if (strchr(special, *s) != NULL)
			fputc('\\', f);
		fputc(*s, f);
	}
}

/* One table row: | `name` | takes | default | meaning |. */
static void
write_markdown(FILE *f, const struct setting_doc *d)
{
	fprintf(f, "| `%s` | ", d->name);
	put_escaped(f, d->value, "|");
	if (d->range[0] != '\0')
		fprintf(f, ", %s", d->range);
	fprintf(f, " | ");
	if (d->def[0] != '\0')
		fprintf(f, "`%s`", d->def);
	fprintf(f, " | ");
	put_escaped(f, d->help, "|*_<>");
	fprintf(f, " |\n");
}

/* Writes s as roff text: backslashes and dashes escaped. */
static void
put_roff(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

/* One tagged paragraph of the man page's SETTINGS section. */
static void
write_roff(FILE *f, const struct setting_doc *d)
{
	fputs(".TP\n.BI \"\\-\\-", f);
	put_roff(f, d->name);
	fputs(" \" ", f);
	put_roff(f, d->value);
	fputs("\n\\&", f);
	put_roff(f, d->help);
	fputs(".\n", f);
	if (d->range[0] != '\0' || d->def[0] != '\0') {
		fputs(".br\n", f);
		if (d->range[0] != '\0') {
			fputs("A number ", f);
			put_roff(f, d->range);
			fputs(d->def[0] != '\0' ? "; default " : ".\n", f);
		} else if (d->def[0] != '\0')
			fputs("Default ", f);
		if (d->def[0] != '\0') {
			fputs("\\fB", f);
			put_roff(f, d->def);
			fputs("\\fR.\n", f);
		}
	}
}

/* Writes text as '#' comment lines no wider than CONF_WIDTH. */
static void
put_comment(FILE *f, const char *text)
{
	const char	*word, *end;
	size_t		 col = 0, len;

	for (word = text; *word != '\0'; word = end) {
		while (*word == ' ')
			word++;
		if ((end = strchr(word, ' ')) == NULL)
			end = word + strlen(word);
		len = end - word;
		if (col > 0 && col + 1 + len > CONF_WIDTH) {
			fputc('\n', f);
			col = 0;
		}
		col += fprintf(f, "%s%.*s", col == 0 ? "# " : " ", (int)len,
		    word);
	}
	fputc('\n', f);
}

/* One commented setting of the example config; 'config' has none. */
static void
write_conf(FILE *f, const struct setting_doc *d)
{
	const char	*value = d->def;
	char		 help[512];
	size_t		 i;

	if (strcmp(d->name, "config") == 0)
		return;
	/* "text" says nothing that the help does not. */
	if (strcmp(d->value, "text") == 0)
		snprintf(help, sizeof(help), "%s", d->help);
	else
		snprintf(help, sizeof(help), "%s (%s%s%s)", d->help, d->value,
		    d->range[0] != '\0' ? " " : "", d->range);
	fputc('\n', f);
	put_comment(f, help);
	for (i = 0; i < sizeof(conf_examples) / sizeof(*conf_examples); i++)
		if (strcmp(conf_examples[i].name, d->name) == 0) {
			fprintf(f, "%s = %s\n", d->name,
			    conf_examples[i].value);
			return;
		}
	fprintf(f, "#%s =%s%s\n", d->name, value[0] != '\0' ? " " : "", value);
}

static const struct {
	const char	*format;
	const char	*head;
	void		(*write)(FILE *, const struct setting_doc *);
} formats[] = {
	{ "markdown", "| setting | takes | default | meaning |\n"
	    "| --- | --- | --- | --- |\n", write_markdown },
	{ "roff", "", write_roff },
	{ "conf", "# mailrepd.conf: one setting a line, 'key = value'; '#' "
	    "starts a comment.\n# A command-line option --key VALUE "
	    "overrides the line.  Commented-out\n# lines show the default.\n",
	    write_conf },
};

int
main(int argc, char **argv)
{
	struct setting_doc	 doc;
	size_t			 i, f;

	for (f = 0; argc == 2 && f < sizeof(formats) / sizeof(*formats); f++)
		if (strcmp(argv[1], formats[f].format) == 0)
			break;
	if (argc != 2 || f == sizeof(formats) / sizeof(*formats)) {
		fprintf(stderr, "usage: settings_doc markdown|roff|conf\n");
		return 2;
	}
	fputs(formats[f].head, stdout);
	for (i = 0; settings_doc(i, &doc) == 0; i++)
		formats[f].write(stdout, &doc);
	return fflush(stdout) == 0 ? 0 : 1;
}
