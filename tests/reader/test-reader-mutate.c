/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Mutation test of the image reader, the library's main fuzz target: the
 * reference images and a hand-built image (hard links, shared xattrs,
 * escapes, a multi-block directory) are truncated at many lengths, have
 * bits flipped, bytes and words overwritten and 32-byte slots copied over
 * each other, and are loaded each time. Requirements: no crash, no
 * sanitizer report, and a failure is always EINVAL, ENOTSUP or ELOOP with
 * a message; a success yields a tree that can be walked completely.
 * Precise corruptions of the reference images must give precise errors.
 *
 * Reproducible: the seed is fixed (READER_MUTATE_SEED overrides it) and
 * printed; READER_MUTATE_SCALE multiplies the number of mutations.
 */
#include "reader-util.h"
#include "image-builder.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

struct stats {
	unsigned long loads, ok, einval, enotsup, eloop;
};

static struct stats stats;

static uint16_t get16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

/* Loads a mutated image and checks the outcome is an orderly one. */
static bool try_load(const uint8_t *img, size_t size, const char *what,
		     unsigned long iter)
{
	struct lcfs_error e = { 0 };
	struct lcfs_node_s *root = lcfs_image_load(img, size, NULL, &e);

	stats.loads++;
	if (root != NULL) {
		stats.ok++;
		CHECK_MSG(e.err == 0, "%s #%lu: error recorded on success", what, iter);
		test_touch_tree(root);
		lcfs_node_unref(root);
		return true;
	}
	switch (e.err) {
	case EINVAL:
		stats.einval++;
		break;
	case ENOTSUP:
		stats.enotsup++;
		break;
	case ELOOP:
		stats.eloop++;
		break;
	default:
		CHECK_MSG(false, "%s #%lu: unexpected error %d (%s)", what, iter, e.err, e.msg);
		break;
	}
	CHECK_MSG(e.msg[0] != '\0', "%s #%lu: error without a message", what, iter);
	return false;
}

static const uint32_t interesting[] = {
	0,	    1,		2,	    3,		4,	    7,	       8,
	12,	    13,	    24,		32,	    36,		64,	   255,
	256,	    4095,	    4096,	    4097,	    0x7fff,	0x8000,	   0xffff,
	0x10000,    0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff,
};

/* One random mutation of @img in place. @hot_end: end of the metadata
 * area, where mutations are most interesting. */
static void mutate(uint8_t *img, size_t size, size_t hot_end)
{
	int n = 1 + rnd_below(4);

	for (int i = 0; i < n; i++) {
		size_t pos = rnd_below(10) < 7 && hot_end > 1024
				     ? 1024 + rnd_below(hot_end - 1024)
				     : rnd_below(size);
		uint32_t v = interesting[rnd_below(sizeof(interesting) / sizeof(interesting[0]))];

		switch (rnd_below(6)) {
		case 0: /* bit flip */
			img[pos] ^= 1u << rnd_below(8);
			break;
		case 1: /* random byte */
			img[pos] = rnd();
			break;
		case 2: /* interesting byte */
			img[pos] = v;
			break;
		case 3: /* interesting 16-bit word */
			if (pos + 2 <= size)
				tb_put16(img + pos, v);
			break;
		case 4: /* interesting 32-bit word */
			if (pos + 4 <= size)
				tb_put32(img + pos, v);
			break;
		case 5: { /* copy one 32-byte slot over another */
			size_t from = rnd_below(hot_end / 32) * 32, to = rnd_below(hot_end / 32) * 32;

			if (from + 32 <= size && to + 32 <= size)
				memmove(img + to, img + from, 32);
			break;
		}
		}
	}
}

static size_t hot_end_of(const uint8_t *img, size_t size)
{
	/* Inodes and the shared xattr table end before the data blocks; take
	 * the xattr block plus one. */
	uint64_t end = ((uint64_t)get32(img + 1068) + 2) * 4096;

	return end < size ? end : size;
}

static void fuzz_image(const char *what, const uint8_t *orig, size_t size,
		       unsigned long n_mutations)
{
	uint8_t *img = malloc(size);
	size_t hot = hot_end_of(orig, size);
	unsigned long before = stats.loads;
	clock_t start = clock();
	size_t step = hot / 1000 < 97 ? 97 : (hot / 1000) | 1;

	if (img == NULL)
		abort();

	/* The unmodified image loads. */
	CHECK_MSG(try_load(orig, size, what, 0), "%s: does not load", what);

	/* Truncations: through the metadata (about 1000 lengths, with an
	 * odd stride), then at random. */
	for (size_t len = 0; len < hot; len += step)
		try_load(orig, len, what, len);
	for (unsigned long i = 0; i < n_mutations / 8; i++)
		try_load(orig, rnd_below(size), what, i);

	for (unsigned long i = 0; i < n_mutations; i++) {
		memcpy(img, orig, size);
		mutate(img, size, hot);
		try_load(img, size, what, i);
	}
	printf("# %s: %lu loads, %.2f s\n", what, stats.loads - before,
	       (double)(clock() - start) / CLOCKS_PER_SEC);
	free(img);
}

/* ---- Precise corruptions of reference images ------------------------------------ */

struct root_info {
	uint64_t nid, off, isz;
	uint8_t *chunk;
	size_t chunk_len;
};

/* The first dirent chunk of the root. */
static bool find_root(uint8_t *img, size_t size, struct root_info *ri)
{
	uint16_t format, icount;
	uint32_t isize, u;
	size_t xsz;

	ri->nid = get16(img + 1038);
	ri->off = ri->nid * 32;
	format = get16(img + ri->off);
	icount = get16(img + ri->off + 2);
	isize = get32(img + ri->off + 8); /* low half of the extended u64 */
	u = get32(img + ri->off + 16);
	ri->isz = format & 1 ? 64 : 32;
	xsz = icount ? 12 + 4 * (icount - 1) : 0;
	if (((format >> 1) & 7) == 2 && isize < 4096) {
		ri->chunk = img + ri->off + ri->isz + xsz;
		ri->chunk_len = isize;
	} else {
		ri->chunk = img + (uint64_t)u * 4096;
		ri->chunk_len = isize < 4096 ? isize : 4096;
	}
	return ri->chunk + ri->chunk_len <= img + size;
}

static void precise(const char *what, uint8_t *orig, size_t size)
{
	uint8_t *img = malloc(size);
	struct root_info ri;
	char name[256];
	size_t count;
	bool looped = false;

	if (img == NULL)
		abort();
	memcpy(img, orig, size);
	if (!find_root(img, size, &ri)) {
		printf("# %s: root layout not recognised, precise cases skipped\n", what);
		free(img);
		return;
	}

	snprintf(name, sizeof(name), "%s: root nid out of range", what);
	tb_put16(img + 1038, (size / 32) < 0xffff ? 0xffff : 0);
	if (size / 32 < 0xffff)
		test_expect_error(img, size, NULL, EINVAL, "outside the image", name);
	memcpy(img, orig, size);

	snprintf(name, sizeof(name), "%s: chunk-based root", what);
	tb_put16(img + ri.off, (get16(img + ri.off) & 1) | 4 << 1);
	test_expect_error(img, size, NULL, EINVAL, "chunk-based", name);
	memcpy(img, orig, size);

	snprintf(name, sizeof(name), "%s: huge root", what);
	tb_put16(img + ri.off, get16(img + ri.off) & 1);
	tb_put32(img + ri.off + 8, 0xfffff000);
	test_expect_error(img, size, NULL, EINVAL, "past the end of the image", name);
	memcpy(img, orig, size);

	snprintf(name, sizeof(name), "%s: root shared count", what);
	if (get16(img + ri.off + 2) != 0) {
		img[ri.off + ri.isz + 4] = 255;
		test_expect_error(img, size, NULL, EINVAL, "do not fit", name);
		memcpy(img, orig, size);
	}

	snprintf(name, sizeof(name), "%s: first nameoff", what);
	tb_put16(ri.chunk + 8, get16(ri.chunk + 8) + 1);
	test_expect_error(img, size, NULL, EINVAL, "multiple of 12", name);
	memcpy(img, orig, size);

	count = get16(ri.chunk + 8) / 12;
	snprintf(name, sizeof(name), "%s: nameoff past the end", what);
	if (count >= 2) {
		tb_put16(ri.chunk + 12 * (count - 1) + 8, ri.chunk_len + 1);
		test_expect_error(img, size, NULL, EINVAL, "past the end", name);
		memcpy(img, orig, size);
	}

	/* A subdirectory entry pointing back at the root. */
	for (size_t i = 0; i < count; i++) {
		uint8_t *rec = ri.chunk + 12 * i;
		size_t start = get16(rec + 8);

		if (rec[10] != 2 || ri.chunk[start] == '.')
			continue;
		tb_put64(rec, ri.nid);
		snprintf(name, sizeof(name), "%s: subdirectory loops to the root", what);
		test_expect_error(img, size, NULL, ELOOP, "loops back", name);
		memcpy(img, orig, size);
		looped = true;
		break;
	}
	if (!looped)
		printf("# %s: no subdirectory in the root's first block\n", what);
	free(img);
}

/* ---- A hand-built image with what the reference images lack -------------------- */

static void build_sample(struct tb *b)
{
	static const struct tb_xattr fx[] = {
		{ 4, "overlay.metacopy", "\0\x24\0\x01" "0123456789abcdef0123456789abcdef", 36 },
		{ 4, "overlay.redirect", "/ab/cdef", 8 },
	};
	static const struct tb_xattr dx[] = {
		{ 4, "overlay.overlay.opaque", "x", 1 },
		{ 1, "overlay.whiteouts", "", 0 },
	};
	static const struct tb_xattr wx[] = { { 4, "overlay.overlay.whiteout", "", 0 } };
	static const int sh[] = { 0, 1 };
	static char names[300][8];
	int d, f, big;

	tb_init(b);
	tb_add(b, -1, NULL, S_IFDIR | 0755);
	tb_add_shared(b, 6, "selinux", "label_t", 7);
	tb_add_shared(b, 1, "shared", "value", 5);
	b->nodes[0].shared = sh;
	b->nodes[0].n_shared = 2;
	d = tb_add(b, 0, "d", S_IFDIR | 0755);
	b->nodes[d].xattrs = dx;
	b->nodes[d].n_xattrs = 2;
	f = tb_add(b, d, "f", S_IFREG | 0644);
	b->nodes[f].size = 12345;
	b->nodes[f].nlink = 3;
	b->nodes[f].xattrs = fx;
	b->nodes[f].n_xattrs = 2;
	b->nodes[f].shared = sh;
	b->nodes[f].n_shared = 2;
	tb_add_link(b, 0, "link1", f);
	tb_add_link(b, d, "link2", f);
	f = tb_add(b, d, "wh", S_IFREG | 0644);
	b->nodes[f].xattrs = wx;
	b->nodes[f].n_xattrs = 1;
	f = tb_add(b, 0, "s", S_IFLNK | 0777);
	b->nodes[f].data = "../target";
	b->nodes[f].data_len = 9;
	big = tb_add(b, 0, "big", S_IFDIR | 0755);
	for (int i = 0; i < 300; i++) {
		snprintf(names[i], sizeof(names[i]), "e%03d", i);
		f = tb_add(b, big, names[i], i % 3 ? S_IFREG | 0644 : S_IFDIR | 0700);
		if (i % 5 == 0) {
			b->nodes[f].shared = sh + 1;
			b->nodes[f].n_shared = 1;
		}
	}
	tb_build(b);
}

int main(void)
{
	const char *shared = getenv("COMPOSEFS_SHARED");
	const char *seed_env = getenv("READER_MUTATE_SEED");
	const char *scale_env = getenv("READER_MUTATE_SCALE");
	unsigned long scale = scale_env ? strtoul(scale_env, NULL, 10) : 1;
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed2024c0ffeeULL;
	static const struct {
		const char *file;
		unsigned long mutations;
	} goldens[] = {
		{ "special.dump.cfs", 30000 },
		{ "special_v1.dump.cfs", 10000 },
		{ "honggfuzz-bigfile-with-acl.dump.cfs", 5000 },
		{ "honggfuzz-long-symlink.dump.cfs", 5000 },
		{ "honggfuzz-longlink-unterminated.dump.cfs", 5000 },
		{ "longlink.dump.cfs", 5000 },
		{ "bigfile-xattr.dump.cfs", 3000 },
		{ "no-newline.dump.cfs", 3000 },
		{ "config.dump.cfs.gz", 300 },
	};
	struct tb b;
	clock_t start = clock();

	if (seed == 0)
		seed = 1;
	rng_state = seed;
	printf("# seed 0x%llx (READER_MUTATE_SEED), scale %lu\n", (unsigned long long)seed,
	       scale);

	build_sample(&b);
	precise("sample", b.img, b.size);
	fuzz_image("sample", b.img, b.size, 30000 * scale);
	tb_free(&b);

	if (shared == NULL)
		printf("# COMPOSEFS_SHARED unset: reference images not mutated\n");
	for (size_t i = 0; shared != NULL && i < sizeof(goldens) / sizeof(goldens[0]); i++) {
		char path[4096];
		size_t len;
		uint8_t *img;

		snprintf(path, sizeof(path), "%s/golden/%s", shared, goldens[i].file);
		img = test_read_file(path, &len);
		if (img == NULL) {
			printf("# %s absent\n", goldens[i].file);
			continue;
		}
		precise(goldens[i].file, img, len);
		fuzz_image(goldens[i].file, img, len, goldens[i].mutations * scale);
		free(img);
	}

	printf("# %lu loads: %lu ok, %lu EINVAL, %lu ENOTSUP, %lu ELOOP; %.1f s\n", stats.loads,
	       stats.ok, stats.einval, stats.enotsup, stats.eloop,
	       (double)(clock() - start) / CLOCKS_PER_SEC);
	if (test_failures)
		fprintf(stderr, "seed 0x%llx\n", (unsigned long long)seed);
	return test_summary("test-reader-mutate");
}
