/*
 * unit_faults.c — SQLite's allocations counted, one failed on demand
 * (unit_faults.h).
 */
#include <stddef.h>

#include <sqlite3.h>

#include "unit_faults.h"

long				 countdown = -1;
long				 counted;
static sqlite3_mem_methods	 real;

static void *
fault_malloc(int n)
{
	counted++;
	if (countdown >= 0 && countdown-- == 0)
		return NULL;
	return real.xMalloc(n);
}

static void *
fault_realloc(void *p, int n)
{
	counted++;
	if (countdown >= 0 && countdown-- == 0)
		return NULL;
	return real.xRealloc(p, n);
}

int
faults_install(void)
{
	static sqlite3_mem_methods	 faulty;

	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real) != SQLITE_OK)
		return -1;
	faulty = real;
	faulty.xMalloc = fault_malloc;
	faulty.xRealloc = fault_realloc;
	return sqlite3_config(SQLITE_CONFIG_MALLOC, &faulty) == SQLITE_OK ?
	    0 : -1;
}

void
arm(long n)
{
	counted = 0;
	countdown = n;
}

void
disarm(void)
{
	countdown = -1;
}
