/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Filling an object store from a remote copy of it: any server that
 * answers BASE/xx/yyyy... with the object of that name (a static web
 * server, a bucket, a file:// directory). Private to the library and the
 * tools.
 *
 * Nothing from the server is trusted: every response is streamed into an
 * unnamed temporary file in the store while it is hashed, refused as soon
 * as it grows past the size the image records for it, and published
 * (linked under its name) only when its fs-verity digest equals that name.
 * A run that is interrupted leaves published objects only, so a new run
 * fetches just the rest.
 */
#ifndef _LCFS_FETCH_H
#define _LCFS_FETCH_H

#include "lcfs-error.h"
#include "lcfs-store.h"

/* Images are fetched before their size is known: this bounds them. */
#define LCFS_FETCH_IMAGE_MAX (UINT64_C(1) << 32)

struct lcfs_fetch_options {
	const char *url;            /* store base URL (http, https, file) */
	unsigned jobs;              /* transfers at once; 0: 16 */
	unsigned retries;           /* new attempts after a transient failure; 0: 5 */
	unsigned timeout;           /* seconds without any data before an
				     * attempt is abandoned (retried); 0: 30 */
	const char *cacert;         /* CA bundle for https, or NULL */
	const char *const *headers; /* extra "Name: value" request headers,
				     * NULL-terminated, or NULL */
	/* Called from lcfs_fetch_run() now and then (after each object and
	 * at least once a second) with the totals so far; NULL for none. */
	void (*progress)(void *data, uint64_t objects_done, uint64_t objects_total,
			 uint64_t bytes);
	void *progress_data;
};

/* One fetch: a list of objects, fetched by lcfs_fetch_run(). Not
 * thread-safe. */
struct lcfs_fetch;

/* New fetch into @st (borrowed; it must outlive the fetch). @opts and the
 * strings it points to are copied. 0 and *@out, or -errno with @err
 * saying why (bad URL, libcurl setup). */
int lcfs_fetch_new(struct lcfs_store *st, const struct lcfs_fetch_options *opts,
		   struct lcfs_fetch **out, struct lcfs_error *err);

void lcfs_fetch_free(struct lcfs_fetch *f);

/* Adds the object named @digest, at most @size bytes. With @is_image,
 * @size is only a bound and a present local object is checked by hashing
 * it (its size is not known beforehand); other objects count as present
 * when a regular file of exactly @size bytes has their name. Adding one
 * digest twice fetches it once. 0 or -ENOMEM. */
int lcfs_fetch_add(struct lcfs_fetch *f, const uint8_t digest[LCFS_DIGEST_SIZE],
		   uint64_t size, bool is_image);

/* Adds every object that the image in @fd (borrowed) refers to. An entry
 * whose payload is not an object name is recorded as a failure. 0, or
 * -errno with @err when the image cannot be read. */
int lcfs_fetch_add_image(struct lcfs_fetch *f, int fd, struct lcfs_error *err);

/* Fetches everything added since the last run, many transfers at once,
 * retrying transient failures with a growing delay. 0 when all objects
 * are now in the store, -EIO when some could not be fetched (see
 * lcfs_fetch_failure()), or another -errno when the run could not go on
 * (libcurl failure, out of memory). */
int lcfs_fetch_run(struct lcfs_fetch *f);

/* Totals so far: objects that were already present, objects fetched and
 * published, bytes received (including attempts that failed). */
struct lcfs_fetch_stats {
	uint64_t present;
	uint64_t fetched;
	uint64_t failed;
	uint64_t bytes;
};
void lcfs_fetch_get_stats(const struct lcfs_fetch *f, struct lcfs_fetch_stats *stats);

/* The @i-th failure (0 <= @i < stats.failed): its name (a digest in hex,
 * or an image entry) and the reason, both owned by @f. false past the end. */
bool lcfs_fetch_failure(const struct lcfs_fetch *f, size_t i, const char **name,
			const char **reason);

/* Whether @digest is one of the objects published or found present. */
bool lcfs_fetch_has(const struct lcfs_fetch *f, const uint8_t digest[LCFS_DIGEST_SIZE]);


/* Opens the object @path ("xx/yyyy...") of the store directory @dirfd
 * read-only, following no symlink. fd or -errno. */
int lcfs_fetch_open_object(int dirfd, const char *path);

/*
 * On-demand fetches of single objects for a mounted image: thread-safe;
 * two callers asking for the same missing object wait for one download.
 * The store is opened and its shared lock held only while an object is
 * being fetched.
 */
struct lcfs_fetcher;

/* New fetcher into the store directory @store (created if missing; the
 * path is resolved now, so the current directory may change later). @opts
 * and its strings are copied; its progress callback is not used. 0 and
 * *@out, or -errno with @err saying why. */
int lcfs_fetcher_new(const char *store, const struct lcfs_fetch_options *opts,
		     struct lcfs_fetcher **out, struct lcfs_error *err);
void lcfs_fetcher_free(struct lcfs_fetcher *fr);

/* Makes sure the object @digest of @size bytes is in the store, fetching
 * it if need be. 0, or -errno (-EIO for a failed fetch) with @err saying
 * why. */
int lcfs_fetcher_get(struct lcfs_fetcher *fr, const uint8_t digest[LCFS_DIGEST_SIZE],
		     uint64_t size, struct lcfs_error *err);

#endif /* _LCFS_FETCH_H */
