/*
 * fuzz_imap_parse.c — libFuzzer target: IMAP framing and parsing.
 *
 * The input is framed as arriving bytes would be (one "+" answered per
 * synchronizing literal), then every complete command is parsed.  Checks
 * the framer's invariants: a complete command never extends past what
 * arrived, and parsing never reads outside it (ASan).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "imap_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct imap_frame_limits max = { 256, 4096, 1024 };
	struct imap_frame	 fs;
	struct imap_cmd		 cmd;
	enum imap_frame_status	 st;
	const char		*err;
	uint64_t		 big;
	size_t			 off = 0, len;

	while (off < size) {
		imap_frame_reset(&fs);
		do {
			st = imap_frame_scan(&fs, (const char *)data + off,
			    size - off, &max, &len, &big);
		} while (st == IMAP_FRAME_CONTINUE);
		if (st != IMAP_FRAME_COMPLETE)
			break;
		assert(len > 0 && len <= size - off);
		if (imap_parse((const char *)data + off, len, IMAP_MAX_DEPTH,
		    64, &cmd, &err) != IMAP_PARSE_NO_TAG)
			imap_cmd_free(&cmd);
		off += len;
	}
	return 0;
}
