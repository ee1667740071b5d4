/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Robustness of the dumpfile parser and printer: thousands of
 * deterministic mutations of a valid dump. Each must either fail with a
 * filled error (line within the input, a message) or parse; whatever
 * parses must print to a strict dumpfile that parses and prints the same.
 * Run under ASan/UBSan this is a small fuzzer with a fixed seed.
 */
#include <string.h>

#include "dump-util.h"

static const char seed_dump[] =
	"/ 4096 40755 3 0 0 0 100.5 - - - user.a=1 security.selinux=x\\x00\n"
	"/d 74 40700 2 10 20 0 200.123456789 - - -\n"
	"/d/f 100 100644 1 0 0 0 1.2 35/d02f - "
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
	"/d/h 0 @100644 9 9 9 9 9.9 /d/f - -\n"
	"/d/g 0 @100644 9 9 9 9 9.9 d/h - -\n"
	"/a\\x20b 7 120777 1 0 0 0 0.0 tar=get - -\n"
	"/i 5 100644 1 0 0 0 0.0 - a\\tb\\\\c - user.k\\x3d=v\\x3d\\x20 trusted.overlay.x=-\n"
	"/c 0 20644 1 0 0 1234 0.0 - - -\n"
	"/w 0 20000 1 0 0 0 0.0 - - -\n"
	"/p 0 10644 1 0 0 0 -5.7 - - -\n";

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	/* xorshift64*: deterministic across platforms. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % n;
}

static const char interesting[] = " \n\\x@/-0123456789=.ab\t";

static size_t mutate(char *buf, size_t len, size_t cap)
{
	int rounds = 1 + rnd(3);

	for (int r = 0; r < rounds; r++) {
		size_t pos = len ? rnd(len) : 0;
		char c = rnd(8) == 0 ? (char)rnd(256)
				     : interesting[rnd(sizeof(interesting) - 1)];

		switch (rnd(4)) {
		case 0: /* replace */
			if (len > 0)
				buf[pos] = c;
			break;
		case 1: /* delete */
			if (len > 0) {
				memmove(buf + pos, buf + pos + 1, len - pos - 1);
				len--;
			}
			break;
		case 2: /* insert */
			if (len < cap) {
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = c;
				len++;
			}
			break;
		default: { /* copy a chunk elsewhere */
			size_t from = len ? rnd(len) : 0;
			size_t n = 1 + rnd(40);

			if (from + n > len)
				n = len - from;
			if (len + n <= cap) {
				memmove(buf + pos + n, buf + pos, len - pos);
				memmove(buf + pos, from < pos ? buf + from : buf + from + n, n);
				len += n;
			}
		}
		}
	}
	return len;
}

static unsigned long count_lines(const char *buf, size_t len)
{
	unsigned long n = 0;

	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n';
	return n + (len > 0 && buf[len - 1] != '\n');
}

int main(void)
{
	enum { ROUNDS = 20000, CAP = 4096 };
	char buf[CAP];
	int parsed = 0, rejected = 0;

	for (int i = 0; i < ROUNDS; i++) {
		size_t len = sizeof(seed_dump) - 1;
		unsigned flags = rnd(2) ? LCFS_PARSE_FLAGS_STRICT : 0;
		struct lcfs_error err;
		struct lcfs_node_s *root;
		char *once, *twice;

		memcpy(buf, seed_dump, len);
		len = mutate(buf, len, CAP);
		root = lcfs_dump_parse_buf(buf, len, flags, &err);
		if (root == NULL) {
			rejected++;
			if (err.err == 0 || err.msg[0] == '\0' ||
			    err.line > count_lines(buf, len)) {
				fprintf(stderr, "round %d: bad error %d line %lu \"%s\"\n", i,
					err.err, err.line, err.msg);
				test_failures++;
			}
			continue;
		}
		parsed++;
		once = print_str(root);
		cut_link_cycles(root);
		lcfs_node_unref(root);
		root = once ? parse_str(once, LCFS_PARSE_FLAGS_STRICT, &err) : NULL;
		twice = root ? print_str(root) : NULL;
		if (twice == NULL || strcmp(once, twice) != 0) {
			fprintf(stderr, "round %d: printout does not round-trip (%s)\n%.*s\n", i,
				root ? "differs" : err.msg, (int)len, buf);
			test_failures++;
		}
		if (root != NULL) {
			cut_link_cycles(root);
			lcfs_node_unref(root);
		}
		free(once);
		free(twice);
	}
	printf("%d mutations parsed, %d rejected\n", parsed, rejected);
	test_checks += ROUNDS;
	/* Both outcomes must have been exercised. */
	CHECK(parsed > ROUNDS / 20);
	CHECK(rejected > ROUNDS / 20);
	return test_summary("test-dump-mutate");
}
