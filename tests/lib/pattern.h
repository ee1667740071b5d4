/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Test data of the fs-verity tests: an allocator that exits on failure,
 * the pseudo-random pattern behind their known answers (xorshift32 from
 * 2463534242, the top byte of each state), and a xorshift64 step for
 * pseudo-random sizes.
 */
#ifndef _COMPOSEFS_TEST_PATTERN_H
#define _COMPOSEFS_TEST_PATTERN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

static inline uint8_t *pattern(size_t n)
{
	uint8_t *p = xmalloc(n);
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)(x >> 24);
	}
	return p;
}

/* The next value of the xorshift64 generator whose state (never 0) is
 * *@state. */
static inline uint64_t xorshift64(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

#endif
