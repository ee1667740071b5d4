/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Shared by the fuzz targets: each target defines LLVMFuzzerTestOneInput()
 * and is linked either with libFuzzer (-Dfuzzers=true, clang) or with
 * fuzz-replay.c, which feeds it the committed corpus and regression inputs
 * so that every build runs them.
 *
 * A target returns 0 for every input, good or bad; a broken invariant
 * (for example an image our own writer produced that our own reader
 * refuses) is reported with fuzz_fail(), which aborts so that libFuzzer
 * and the replay both record it as a crash.
 */
#ifndef _COMPOSEFS_FUZZ_H
#define _COMPOSEFS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "libcomposefs/lcfs-writer.h"
#include "lcfs-error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Prints "fuzz: invariant broken: ..." and aborts. */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* A growable buffer that images are written into. */
struct fuzz_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* lcfs_write_cb appending to a struct fuzz_buf. Refuses to grow past
 * FUZZ_BUF_MAX (an input cannot make the target itself run out of
 * memory: the writer sees an ordinary write error). */
#define FUZZ_BUF_MAX (256u << 20)
ssize_t fuzz_buf_write(void *file, void *buf, size_t count);
void fuzz_buf_release(struct fuzz_buf *b);

/* Writes @root as an image into @out (released first) with the given
 * versions, as mkcomposefs and composefs-dump do. 0 or -errno. */
int fuzz_write_image(struct lcfs_node_s *root, uint32_t version, uint32_t max_version,
		     struct fuzz_buf *out);

/* A stream that discards what is written but still goes through stdio,
 * so the sanitizers see every byte the printers read. */
FILE *fuzz_null_stream(void);

/*
 * Whether the parser's refusal of a printout is one the format itself
 * imposes: the parser caps the raw text of a line's xattrs at 65535 bytes
 * (docs/dumpfile.md, "File types"), while the printer escapes
 * every non-printable byte as four, so xattrs well inside the per-inode
 * budget can print longer than that.
 */
bool fuzz_printout_too_long(const struct lcfs_error *err);

/* Reads every field, name, payload, content byte and xattr of every node
 * below @root (iteratively), so that the sanitizers check them; returns a
 * checksum so the reads are not optimised away. */
uint64_t fuzz_touch_tree(struct lcfs_node_s *root);

#endif
