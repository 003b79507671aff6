/*
 * fuzz_settings.c — libFuzzer target: the config-file parser and the
 * settings table.
 *
 * The input is a config file.  When it parses, it must parse the same way
 * a second time; every value must be one the table allows; the same
 * "key = value" lines given as --key=value options must give the same
 * settings (the file and the options come from one table); and the
 * settings printed as a config file must read back to the same settings.
 * A file that does not parse must not leak what it had set so far.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "settings.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	 path[] = "/tmp/mailrepd-fuzz-settings-XXXXXX";
static int	 fd = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	if ((fd = mkstemp(path)) < 0)
		abort();
	return 0;
}

/* Replaces the config file's contents with data[0..size). */
static void
write_config(const void *data, size_t size)
{
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();
}

/* Parses argv[0..argc) as `mailrepd serve ...` would; 0 or -1. */
static int
parse(struct settings *set, int argc, char **argv)
{
	int	 npos = 0;

	return settings_parse(set, argc, argv, 2, NULL, 0, NULL, &npos);
}

/* Parses the config file alone. */
static int
parse_file(struct settings *set)
{
	char	*args[] = { "mailrepd", "serve", "--config", path };

	return parse(set, 4, args);
}

/* The settings as config-file text; malloc'd. */
static char *
print(const struct settings *set)
{
	char	*text = NULL;
	size_t	 len = 0;
	FILE	*f;

	if ((f = open_memstream(&text, &len)) == NULL)
		abort();
	settings_print(f, set);
	if (fclose(f) != 0)
		abort();
	return text;
}

/* Trims white space as the config reader does; returns the start. */
static char *
trim(char *s)
{
	char	*e = s + strlen(s);

	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	while (e > s && (e[-1] == ' ' || (e[-1] >= '\t' && e[-1] <= '\r')))
		*--e = '\0';
	return s;
}

/*
 * The "key = value" lines of a config file (which parsed) as options
 * "--key=value" after argv[0..2); returns the count, or -1 when there is
 * no memory.  text is cut up in place.
 */
static int
lines_to_options(char *text, char **argv, int max)
{
	char	*line, *next, *eq, *hash;
	int	 argc = 2;

	for (line = text; line != NULL && argc < max; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		line = trim(line);
		if (*line == '\0')
			continue;
		if ((eq = strchr(line, '=')) == NULL)
			abort();	/* the file parsed: every line has one */
		*eq = '\0';
		if (asprintf(&argv[argc], "--%s=%s", trim(line),
		    trim(eq + 1)) < 0)
			return -1;
		argc++;
	}
	return argc;
}

/* Checks that the --key=value form of the file gives `want`. */
static void
check_options(const uint8_t *data, size_t size, const char *want)
{
	struct settings	 set;
	char		*text, **argv, *got;
	int		 argc, i;

	/* The reader sees C strings: a NUL ends what it reads of a line. */
	if (memchr(data, '\0', size) != NULL)
		return;
	if ((text = strndup((const char *)data, size)) == NULL ||
	    (argv = calloc(size + 3, sizeof(*argv))) == NULL)
		abort();
	argv[0] = "mailrepd";
	argv[1] = "serve";
	if ((argc = lines_to_options(text, argv, (int)size + 2)) < 0)
		abort();
	if (parse(&set, argc, argv) < 0)
		abort();	/* a setting the file took, the option refused */
	got = print(&set);
	if (strcmp(got, want) != 0)
		abort();	/* the option form set something else */
	free(got);
	settings_free(&set);
	for (i = 2; i < argc; i++)
		free(argv[i]);
	free(argv);
	free(text);
}

/* Checks that the printed settings read back to the same settings. */
static void
check_printed(const char *want)
{
	struct settings	 set;
	char		*got;

	write_config(want, strlen(want));
	if (parse_file(&set) < 0)
		abort();
	got = print(&set);
	if (strcmp(got, want) != 0)
		abort();
	free(got);
	settings_free(&set);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings	 a, b;
	const char	*bad;
	char		*ta, *tb;

	write_config(data, size);
	if (parse_file(&a) < 0) {
		settings_free(&a);
		return 0;
	}
	if (settings_check(&a, &bad) < 0) {
		fprintf(stderr, "setting '%s' out of bounds\n", bad);
		abort();
	}
	if (parse_file(&b) < 0)
		abort();	/* parsed once, refused the second time */
	ta = print(&a);
	tb = print(&b);
	if (strcmp(ta, tb) != 0)
		abort();
	free(tb);
	settings_free(&b);
	settings_free(&a);
	check_options(data, size, ta);
	/* A value with '#' or a line end cannot come from a file. */
	check_printed(ta);
	free(ta);
	return 0;
}
