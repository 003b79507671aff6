/*
 * fuzz_charset.c — libFuzzer target: mail's charsets converted to
 * UTF-8.  The first byte sizes the output (0: room for everything),
 * the bytes up to the first newline name the charset, the rest is the
 * text.  The output must be valid UTF-8 within its size, and with room
 * for everything it must not stop early: at most 3 bytes of UTF-8 for
 * each byte of input, whatever the charset.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "utf8.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 name[32], *out;
	const uint8_t	*nl;
	size_t		 n, room, len, i, k;

	if (size < 2 || (nl = memchr(data + 1, '\n', size - 1)) == NULL ||
	    (size_t)(nl - data - 1) >= sizeof(name))
		return 0;
	memcpy(name, data + 1, (size_t)(nl - data - 1));
	name[nl - data - 1] = '\0';
	n = size - (size_t)(nl + 1 - data);
	room = data[0] != 0 ? data[0] : 3 * n + 1;
	if ((out = malloc(room)) == NULL)
		return 0;
	len = charset_to_utf8(name, (const char *)nl + 1, n, out, room);
	assert(len <= room);
	assert(data[0] != 0 || len <= 3 * n);
	for (i = 0; i < len; i += k)
		assert((k = utf8_len((unsigned char *)out + i, len - i)) > 0);
	assert(data[0] == 0 || len + 4 > room || len == charset_to_utf8(name,
	    (const char *)nl + 1, n, out, 3 * n + 1));
	free(out);
	return 0;
}
