/*
 * unit_mime.c — the MIME result helpers test_mime.c and test_spool.c
 * share (unit_mime.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "unit_mime.h"

/* A copy of the n bytes at p with a NUL after them; NULL for NULL. */
static char *
copy_bytes(const void *p, size_t n)
{
	char	*c;

	if (p == NULL)
		return NULL;
	assert_non_null(c = malloc(n + 1));
	memcpy(c, p, n);
	c[n] = '\0';
	return c;
}

static char *
copy_string(const char *s)
{
	return s == NULL ? NULL : copy_bytes(s, strlen(s));
}

void
unit_mime_copy(const struct mime_result *from, struct mime_result *to)
{
	*to = *from;
	to->envelope = copy_string(from->envelope);
	to->bodystructure = copy_string(from->bodystructure);
	to->body = copy_string(from->body);
	to->header = copy_bytes(from->header, from->header_len);
	to->subject = copy_string(from->subject);
	to->from = copy_string(from->from);
	to->to = copy_string(from->to);
	to->message_id = copy_string(from->message_id);
	to->parts = (struct mime_part *)copy_bytes(from->parts,
	    from->nparts * sizeof(*from->parts));
}

/* Both NULL, or the same string. */
static void
same_string(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

void
unit_mime_same(const struct mime_result *a, const struct mime_result *b)
{
	size_t	 i;

	same_string(a->envelope, b->envelope);
	same_string(a->bodystructure, b->bodystructure);
	same_string(a->body, b->body);
	assert_int_equal(a->header_len, b->header_len);
	assert_memory_equal(a->header, b->header, a->header_len);
	same_string(a->subject, b->subject);
	same_string(a->from, b->from);
	same_string(a->to, b->to);
	same_string(a->message_id, b->message_id);
	assert_int_equal(a->date, b->date);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->nparts, b->nparts);
	for (i = 0; i < a->nparts; i++) {
		assert_string_equal(a->parts[i].section, b->parts[i].section);
		assert_int_equal(a->parts[i].header_start,
		    b->parts[i].header_start);
		assert_int_equal(a->parts[i].body_start,
		    b->parts[i].body_start);
		assert_int_equal(a->parts[i].inner_body_start,
		    b->parts[i].inner_body_start);
		assert_int_equal(a->parts[i].body_end, b->parts[i].body_end);
		assert_int_equal(a->parts[i].is_multipart,
		    b->parts[i].is_multipart);
		assert_int_equal(a->parts[i].is_message,
		    b->parts[i].is_message);
	}
}
