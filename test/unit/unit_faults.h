/*
 * unit_faults.h — SQLite's allocations counted, and one of them failed on
 * demand, the way SQLite tests itself (test_store_faults.c,
 * test_guard_faults.c).  Linked into every unit test binary
 * (test/unit/unit_faults.c); only a test that calls faults_install()
 * has its allocations counted.
 */
#ifndef UNIT_FAULTS_H
#define UNIT_FAULTS_H

extern long	countdown;	/* allocations before the one to fail; -1 */
extern long	counted;	/* allocations since arm() */

/* SQLite's allocator is counted from now on: 0, or -1. */
int	faults_install(void);
/* Fails SQLite's allocation number n from now (counting from 0), once. */
void	arm(long n);
void	disarm(void);

#endif
