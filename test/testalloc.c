/*
 * testalloc.c — test-only allocation-failure injection, the way SQLite
 * tests itself.  Linked only into build/crash/mailrepd beside
 * test/testvfs.c; the release and ASan binaries never contain it, and
 * the server's code is the same code they run.
 *
 * Three allocators are counted, and any of their allocations can fail:
 *   sqlite	SQLite's, through sqlite3_config(SQLITE_CONFIG_MALLOC),
 *		set from a constructor that runs before SQLite starts;
 *   mailrepd	mailrepd's own: the link wraps malloc, calloc, realloc,
 *		reallocarray, strdup, strndup, asprintf and vasprintf
 *		(ld --wrap), so every call the server's objects make goes
 *		through one function here;
 *   zlib	zlib's: the wrapped deflateInit/inflateInit give a stream
 *		that has no allocator this file's, and compress2() and
 *		uncompress() (one allocation each, as far as failing goes)
 *		fail with Z_MEM_ERROR.
 * mbedTLS allocates inside its shared library with its own calloc
 * (Debian builds it without MBEDTLS_PLATFORM_MEMORY, so
 * mbedtls_platform_set_calloc_free does not exist): not counted.
 *
 * It is driven, as the test VFS, by a file named in the environment:
 *
 *   MAILREPD_ALLOC_FAULTS=PATH	while PATH exists, it holds one line:
 *	"GEN once N"	fail the Nth allocation only,
 *	"GEN on N"	fail the Nth and every later one,
 *	"GEN random PPM SEED"  fail each with probability PPM/1e6,
 *				drawn from a generator seeded with SEED,
 *			counting from the first time the event loop wakes
 *			after generation GEN appeared.  The file is read
 *			each time the loop's ppoll() returns, so a client
 *			that writes it before sending its request has the
 *			request, and nothing before, counted.
 *
 *   MAILREPD_ALLOC_STACKS=1	each failure also logs its call stack
 *				(the sanitizer's), to find the caller.
 *
 * Each failed allocation is logged on stderr ("testalloc: failing ...").
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

enum alloc_mode { MODE_OFF, MODE_ONCE, MODE_ON, MODE_RANDOM };
enum alloc_kind { KIND_SQLITE, KIND_MAILREPD, KIND_ZLIB };

static const char *const kind_names[] = { "sqlite", "mailrepd", "zlib" };

/*
 * The settings are written by the loop's thread and read by any thread
 * that allocates (the password worker): all through __atomic.
 */
static struct {
	const char	*path;
	int		 stacks;
	long		 gen;
	int		 mode;
	long		 at;		/* N, or PPM in random mode */
	uint64_t	 rng;
	long		 count;		/* allocations since the generation */
} A;

void	*__real_malloc(size_t);
void	*__real_calloc(size_t, size_t);
void	*__real_realloc(void *, size_t);
void	*__real_reallocarray(void *, size_t, size_t);
char	*__real_strdup(const char *);
char	*__real_strndup(const char *, size_t);
int	 __real_vasprintf(char **, const char *, va_list);
int	 __real_ppoll(struct pollfd *, nfds_t, const struct timespec *,
	    const sigset_t *);
int	 __real_deflateInit_(z_streamp, int, const char *, int);
int	 __real_deflateInit2_(z_streamp, int, int, int, int, int,
	    const char *, int);
int	 __real_inflateInit_(z_streamp, const char *, int);
int	 __real_inflateInit2_(z_streamp, int, const char *, int);
int	 __real_compress2(Bytef *, uLongf *, const Bytef *, uLong, int);
int	 __real_uncompress(Bytef *, uLongf *, const Bytef *, uLong);

/* weak: the coverage build has no sanitizer, and no stacks */
void	 __sanitizer_print_stack_trace(void) __attribute__((weak));

void	*__wrap_malloc(size_t);
void	*__wrap_calloc(size_t, size_t);
void	*__wrap_realloc(void *, size_t);
void	*__wrap_reallocarray(void *, size_t, size_t);
char	*__wrap_strdup(const char *);
char	*__wrap_strndup(const char *, size_t);
int	 __wrap_vasprintf(char **, const char *, va_list);
int	 __wrap_asprintf(char **, const char *, ...);
int	 __wrap_ppoll(struct pollfd *, nfds_t, const struct timespec *,
	    const sigset_t *);
int	 __wrap_deflateInit_(z_streamp, int, const char *, int);
int	 __wrap_deflateInit2_(z_streamp, int, int, int, int, int,
	    const char *, int);
int	 __wrap_inflateInit_(z_streamp, const char *, int);
int	 __wrap_inflateInit2_(z_streamp, int, const char *, int);
int	 __wrap_compress2(Bytef *, uLongf *, const Bytef *, uLong, int);
int	 __wrap_uncompress(Bytef *, uLongf *, const Bytef *, uLong);

/* xorshift64*: small, seeded, the same sequence on every machine. */
static uint64_t
rnd(void)
{
	uint64_t	 x = __atomic_load_n(&A.rng, __ATOMIC_RELAXED);

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	__atomic_store_n(&A.rng, x, __ATOMIC_RELAXED);
	return x * 2685821657736338717ULL;
}

/*
 * Ends the current generation, logging how many allocations it counted:
 * a harness arms a failure past the end to learn how many points a
 * scenario has.
 */
static void
alloc_off(void)
{
	if (__atomic_exchange_n(&A.mode, MODE_OFF, __ATOMIC_ACQ_REL) ==
	    MODE_OFF)
		return;
	fprintf(stderr, "testalloc: generation %ld counted %ld "
	    "allocations\n", A.gen, __atomic_load_n(&A.count,
	    __ATOMIC_RELAXED));
}

/*
 * Reads the control file: a new generation starts the count again, a
 * missing or unreadable file turns failing off.  Called by the loop's
 * thread only, between two of its iterations.
 */
static void
alloc_reload(void)
{
	char		 line[128], word[16];
	long		 gen, at, seed = 1;
	int		 n, mode = MODE_OFF;
	FILE		*f;

	if (A.path == NULL)
		return;
	if ((f = fopen(A.path, "r")) != NULL) {
		n = fgets(line, sizeof(line), f) == NULL ? 0 : sscanf(line,
		    "%ld %15s %ld %ld", &gen, word, &at, &seed);
		fclose(f);
		if (n >= 3 && strcmp(word, "once") == 0)
			mode = MODE_ONCE;
		else if (n >= 3 && strcmp(word, "on") == 0)
			mode = MODE_ON;
		else if (n >= 4 && strcmp(word, "random") == 0)
			mode = MODE_RANDOM;
	}
	if (mode != MODE_OFF && gen == A.gen && mode ==
	    __atomic_load_n(&A.mode, __ATOMIC_ACQUIRE))
		return;
	alloc_off();
	if (mode == MODE_OFF)
		return;
	__atomic_store_n(&A.gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&A.at, at, __ATOMIC_RELAXED);
	__atomic_store_n(&A.rng, (uint64_t)seed * 2 + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&A.count, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&A.mode, mode, __ATOMIC_RELEASE);
}

/*
 * Whether this allocation is to fail (counting it); logs each failure
 * with write(2), which allocates nothing.
 */
static int
alloc_fails(enum alloc_kind kind)
{
	char	 msg[128];
	long	 count, at;
	int	 mode, len, fail;

	mode = __atomic_load_n(&A.mode, __ATOMIC_ACQUIRE);
	if (mode == MODE_OFF)
		return 0;
	count = __atomic_add_fetch(&A.count, 1, __ATOMIC_RELAXED);
	at = __atomic_load_n(&A.at, __ATOMIC_RELAXED);
	if (mode == MODE_RANDOM)
		fail = (long)(rnd() % 1000000) < at;
	else
		fail = count == at || (mode == MODE_ON && count > at);
	if (!fail)
		return 0;
	len = snprintf(msg, sizeof(msg), "testalloc: failing %s allocation "
	    "#%ld (gen %ld)\n", kind_names[kind], count,
	    __atomic_load_n(&A.gen, __ATOMIC_RELAXED));
	if (len > 0)
		(void)write(STDERR_FILENO, msg, (size_t)len);
	if (A.stacks && __sanitizer_print_stack_trace != NULL)
		__sanitizer_print_stack_trace();
	return 1;
}

/* mailrepd's own allocations: what its objects call. */

void *
__wrap_malloc(size_t size)
{
	if (alloc_fails(KIND_MAILREPD)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(size);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	if (alloc_fails(KIND_MAILREPD)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, size);
}

/* A realloc that fails leaves the old block as it was. */
void *
__wrap_realloc(void *p, size_t size)
{
	if (alloc_fails(KIND_MAILREPD)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, size);
}

void *
__wrap_reallocarray(void *p, size_t n, size_t size)
{
	if (alloc_fails(KIND_MAILREPD)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_reallocarray(p, n, size);
}

char *
__wrap_strdup(const char *s)
{
	if (alloc_fails(KIND_MAILREPD)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	if (alloc_fails(KIND_MAILREPD)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strndup(s, n);
}

int
__wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	if (alloc_fails(KIND_MAILREPD)) {
		errno = ENOMEM;
		return -1;
	}
	return __real_vasprintf(out, fmt, ap);
}

int
__wrap_asprintf(char **out, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = __wrap_vasprintf(out, fmt, ap);
	va_end(ap);
	return rc;
}

/* The event loop's wait: where a new generation is noticed. */
int
__wrap_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
    const sigset_t *mask)
{
	int	 rc, saved;

	rc = __real_ppoll(fds, n, timeout, mask);
	saved = errno;
	alloc_reload();
	errno = saved;
	return rc;
}

/* zlib's allocations, for streams mailrepd opens without an allocator. */

static voidpf
z_alloc(voidpf opaque, uInt n, uInt size)
{
	(void)opaque;
	if (alloc_fails(KIND_ZLIB))
		return Z_NULL;
	return __real_calloc(n, size);
}

static void
z_free(voidpf opaque, voidpf p)
{
	(void)opaque;
	free(p);
}

static void
z_hook(z_streamp z)
{
	if (z->zalloc == Z_NULL && z->zfree == Z_NULL) {
		z->zalloc = z_alloc;
		z->zfree = z_free;
	}
}

int
__wrap_deflateInit_(z_streamp z, int level, const char *version, int size)
{
	z_hook(z);
	return __real_deflateInit_(z, level, version, size);
}

int
__wrap_deflateInit2_(z_streamp z, int level, int method, int bits,
    int memlevel, int strategy, const char *version, int size)
{
	z_hook(z);
	return __real_deflateInit2_(z, level, method, bits, memlevel,
	    strategy, version, size);
}

int
__wrap_inflateInit_(z_streamp z, const char *version, int size)
{
	z_hook(z);
	return __real_inflateInit_(z, version, size);
}

int
__wrap_inflateInit2_(z_streamp z, int bits, const char *version, int size)
{
	z_hook(z);
	return __real_inflateInit2_(z, bits, version, size);
}

int
__wrap_compress2(Bytef *dst, uLongf *dlen, const Bytef *src, uLong slen,
    int level)
{
	if (alloc_fails(KIND_ZLIB))
		return Z_MEM_ERROR;
	return __real_compress2(dst, dlen, src, slen, level);
}

int
__wrap_uncompress(Bytef *dst, uLongf *dlen, const Bytef *src, uLong slen)
{
	if (alloc_fails(KIND_ZLIB))
		return Z_MEM_ERROR;
	return __real_uncompress(dst, dlen, src, slen);
}

/*
 * SQLite's allocator: each block carries its size in front (8 bytes,
 * which keeps SQLite's 8-byte alignment), as SQLite's own mem1.c does
 * where malloc_usable_size is not used.
 */

static void *
s_malloc(int size)
{
	uint64_t	*p;

	if (size <= 0 || alloc_fails(KIND_SQLITE))
		return NULL;
	if ((p = __real_malloc((size_t)size + sizeof(*p))) == NULL)
		return NULL;
	p[0] = (uint64_t)size;
	return p + 1;
}

static void
s_free(void *p)
{
	if (p != NULL)
		free((uint64_t *)p - 1);
}

static void *
s_realloc(void *p, int size)
{
	uint64_t	*q;

	if (p == NULL)
		return s_malloc(size);
	if (size <= 0 || alloc_fails(KIND_SQLITE))
		return NULL;
	q = __real_realloc((uint64_t *)p - 1, (size_t)size + sizeof(*q));
	if (q == NULL)
		return NULL;
	q[0] = (uint64_t)size;
	return q + 1;
}

static int
s_size(void *p)
{
	return p == NULL ? 0 : (int)((uint64_t *)p)[-1];
}

static int
s_roundup(int size)
{
	return (size + 7) & ~7;
}

static int
s_init(void *arg)
{
	(void)arg;
	return SQLITE_OK;
}

static void
s_shutdown(void *arg)
{
	(void)arg;
}

static const sqlite3_mem_methods s_methods = {
	s_malloc, s_free, s_realloc, s_size, s_roundup, s_init, s_shutdown,
	NULL
};

/*
 * Installs SQLite's allocator before anything starts SQLite: the
 * priority runs this before test/testvfs.c's constructor, which
 * registers its VFS and so initializes SQLite.
 */
__attribute__((constructor(101))) static void
testalloc_init(void)
{
	A.path = getenv("MAILREPD_ALLOC_FAULTS");
	A.stacks = getenv("MAILREPD_ALLOC_STACKS") != NULL;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &s_methods) != SQLITE_OK) {
		fprintf(stderr, "testalloc: SQLite started before its "
		    "allocator could be set\n");
		_exit(70);
	}
}
