/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Shared by the benchmark programs. */
#ifndef _BENCH_UTIL_H
#define _BENCH_UTIL_H

#include <time.h>

/* Monotonic time in seconds. */
static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
