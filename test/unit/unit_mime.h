/*
 * unit_mime.h — what the unit tests share about MIME pre-parse results:
 * a copy that outlives its parser or spool, and the check that two ways
 * of reaching a message gave the same result.  Linked into every unit
 * test binary (test/unit/unit_mime.c).
 */
#ifndef UNIT_MIME_H
#define UNIT_MIME_H

#include "mime.h"

/* Fills *to with copies of every string and part of *from. */
void	unit_mime_copy(const struct mime_result *from, struct mime_result *to);

/* Fails the running test unless b is what a is, field by field. */
void	unit_mime_same(const struct mime_result *a,
	    const struct mime_result *b);

#endif
