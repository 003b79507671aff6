/*
 * json.h — the little JSON that `mailrepd dev --json`, `mailrepd
 * messages --json` and `mailrepd wait --json` print.
 */
#ifndef MAILREPD_JSON_H
#define MAILREPD_JSON_H

#include <stddef.h>
#include <stdio.h>

/*
 * Writes s (len bytes) as a JSON string, quotes included.  Bytes that
 * are not valid UTF-8 become U+FFFD, so the output always parses; a NULL
 * s is written as null.
 */
void	json_string(FILE *, const char *s, size_t len);

/* What json_string() writes between the quotes (escaped s only). */
void	json_escape(FILE *, const char *s, size_t len);

/* json_string() of a NUL-terminated string, or null. */
void	json_str(FILE *, const char *s);

#endif /* MAILREPD_JSON_H */
