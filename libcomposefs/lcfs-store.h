/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The content-addressed object store filled by mkcomposefs --digest-store
 * (docs/design.md, "Object store"): one file per distinct content,
 * named by its fs-verity digest as STORE/xx/yyyy... (62 hex digits), mode
 * 0644. Private to the library.
 *
 * Nothing below the store directory is followed if it is a symlink: a
 * store that others can write into must not lead a privileged run to
 * write elsewhere. A subdirectory that is not a plain directory is
 * refused; an object name held by anything but a regular file (a
 * symlink, FIFO, device) is replaced by the object.
 *
 * Crash safety: an object gets its final name only once it is complete.
 * New objects are written as unnamed temporary files (O_TMPFILE, or
 * ".tmpXXXXXX" names in the store root where the filesystem lacks it) and
 * linked into place at the end. A run killed at any point leaves complete
 * objects and, at worst, temporary files. Objects are not synced one by
 * one (that would make storing several times slower than copying); an
 * object that a power failure left empty or short has the wrong size for
 * its name and is replaced by the next run that stores that content.
 */
#ifndef _LCFS_STORE_H
#define _LCFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libcomposefs/lcfs-writer.h"

struct lcfs_store;

/* Name of the lock file in the store root. */
#define LCFS_STORE_LOCK_NAME ".lock"

/* Prefix of the temporary files in the store root. */
#define LCFS_STORE_TMP_PREFIX ".tmp"

/*
 * Takes the store lock: a flock() on the file ".lock" in the store root
 * @store_dirfd (borrowed), created with mode 0644 if missing, never
 * through a symlink (a non-regular ".lock" is refused with -EINVAL).
 * Everything that adds objects holds it shared (@exclusive false) for its
 * whole run, so that it can rely on the objects it found; whatever removes
 * objects holds it exclusively. Blocks until granted. Returns the lock's
 * file descriptor (closing it releases the lock) or -errno.
 */
int lcfs_store_lock(int store_dirfd, bool exclusive);

/* Opens the store directory @path (relative to the current directory, ""
 * for the current directory), creating it and its missing parents with
 * mode 0755 (umask applied). A descriptor or -errno. */
int lcfs_store_open_dir(const char *path);

/* Opens the store directory @path as lcfs_store_open_dir() and takes the
 * shared store lock, held until lcfs_store_free(). Removes ".tmp*" files
 * that an interrupted run left in the store root more than an hour ago. 0
 * and *@out, or -errno. */
int lcfs_store_open(const char *path, struct lcfs_store **out);

/* Frees @st (NULL is allowed). */
void lcfs_store_free(struct lcfs_store *st);

/* Makes sure an object named by @digest exists, unless another thread of
 * this run is storing the same content. If none exists (or the one there
 * has the wrong size), the first @size bytes of @fd (a regular file, read
 * from offset 0; the fd offset is not used) are copied into a new object,
 * which gets its name once complete. The copy is hashed and named only if
 * it has @digest: 1 (nothing stored) means that the file no longer has
 * the content @digest was computed from. Another thread of this run that
 * stores the same digest meanwhile relies on this call, so the caller
 * must then fail the run. Thread-safe. 0, 1 or -errno (-ENODATA if the
 * file is shorter than @size). */
int lcfs_store_put(struct lcfs_store *st, int fd, uint64_t size,
		   const uint8_t digest[LCFS_DIGEST_SIZE]);

/* Whether lcfs_store_put_copy() is the better way for the next file: when
 * copies are real copies and most objects have been new so far. */
bool lcfs_store_copy_first(struct lcfs_store *st);

/* Like computing the digest of @fd and then lcfs_store_put(), in the other
 * order: the first @size bytes of @fd are copied first and the copy is
 * hashed (without reading the data out of the page cache again; large
 * objects on a store without reflinks and fs-verity are hashed from the
 * buffer they are written from with O_DIRECT), then named, or dropped if
 * the object exists. The object's content and the digest returned in
 * @digest then come from the same bytes even if the file changes
 * meanwhile. 0 or -errno. */
int lcfs_store_put_copy(struct lcfs_store *st, int fd, uint64_t size,
			uint8_t digest[LCFS_DIGEST_SIZE]);

/* Whether an entry of the store was refused (a subdirectory that is a
 * symlink or not a directory, a directory where an object belongs); if
 * so, the message naming it (with the store path) goes to @buf. The
 * call that met it failed with -ENOTDIR or -EISDIR. Thread-safe. */
#define LCFS_STORE_PROBLEM_SIZE 512
bool lcfs_store_get_problem(struct lcfs_store *st, char *buf, size_t size);

/* Like lcfs_store_put() for @size bytes held in memory at @data, whose
 * digest the caller computed. A large object from a page-aligned buffer
 * may be written with O_DIRECT (see lcfs_store_writer_new()). 0 or -errno. */
int lcfs_store_put_data(struct lcfs_store *st, const void *data, size_t size,
			const uint8_t digest[LCFS_DIGEST_SIZE]);

/*
 * An object whose content arrives piece by piece (from a tar stream): the
 * data goes into a new temporary file and is hashed on the way; commit
 * names the object after its digest, or drops the copy if the object is
 * there already. Not thread-safe (one writer per thread).
 */
struct lcfs_store_writer;

/* Starts a new object of @size bytes (UINT64_MAX: not known). A known
 * size lets a large object be written with O_DIRECT where the store
 * copies large objects that way (see lcfs-store.c), as long as the
 * writes come from page-aligned buffers in multiples of 4096 bytes (but
 * the last). 0 and *@out, or -errno. */
int lcfs_store_writer_new(struct lcfs_store *st, uint64_t size,
			  struct lcfs_store_writer **out);
/* Appends @len bytes. 0 or -errno. */
int lcfs_store_writer_write(struct lcfs_store_writer *w, const void *data, size_t len);
/* Completes the object: its digest in @digest. 0 or -errno; either way the
 * writer must then be freed. */
int lcfs_store_writer_commit(struct lcfs_store_writer *w,
			     uint8_t digest[LCFS_DIGEST_SIZE]);
/* Frees @w; an uncommitted object leaves nothing behind. NULL allowed. */
void lcfs_store_writer_free(struct lcfs_store_writer *w);

/*
 * Staging, for callers that learn only at the end which objects they
 * need (layers that later layers overwrite) and that verify their input
 * last: after lcfs_store_stage(), new objects are complete files in a
 * private temporary directory of the store, and only
 * lcfs_store_publish() gives one its name. Whatever was not published is
 * removed by lcfs_store_free() (or, after a crash, by a later run once it
 * is an hour old). 0 or -errno.
 */
int lcfs_store_stage(struct lcfs_store *st);
/* Publishes the staged object for @digest; 0 if this run staged none (the
 * object was present). 0 or -errno. */
int lcfs_store_publish(struct lcfs_store *st, const uint8_t digest[LCFS_DIGEST_SIZE]);

/* Object path relative to the store for @digest: "xx/" + 62 hex digits and
 * a NUL (LCFS_STORE_PATH_SIZE bytes). */
#define LCFS_STORE_PATH_SIZE (2 * LCFS_DIGEST_SIZE + 2)
void lcfs_store_object_path(const uint8_t digest[LCFS_DIGEST_SIZE],
			    char path[LCFS_STORE_PATH_SIZE]);

/* Directory of the open store (borrowed). */
int lcfs_store_dirfd(const struct lcfs_store *st);

/* An object being written from outside this module (a download): an
 * unnamed O_TMPFILE file in its subdirectory, or one named @tmp_name in
 * the store root where the filesystem lacks O_TMPFILE. */
#define LCFS_STORE_TMP_NAME_SIZE 20
struct lcfs_store_object {
	int fd;    /* writable, the data goes here */
	int subfd; /* the object's subdirectory once open, the store's to close */
	char tmp_name[LCFS_STORE_TMP_NAME_SIZE];
	char path[LCFS_STORE_PATH_SIZE];
};

/* Creates the empty temporary file of the object named by @digest in @o.
 * 0 or -errno (@o->fd is then -1). */
int lcfs_store_object_create(struct lcfs_store *st, const uint8_t digest[LCFS_DIGEST_SIZE],
			     struct lcfs_store_object *o);

/* Publishes the complete data of @o under its name (mode 0644, fs-verity
 * where supported). The caller has checked the digest. @replace: an object
 * with the wrong content is in the way and is replaced atomically;
 * otherwise an object that appeared meanwhile is kept. @o still needs
 * lcfs_store_object_discard(). 0 or -errno. */
int lcfs_store_object_commit(struct lcfs_store *st, struct lcfs_store_object *o,
			     bool replace);

/* Closes @o and removes its temporary file if it has not been published. */
void lcfs_store_object_discard(struct lcfs_store *st, struct lcfs_store_object *o);

#endif /* _LCFS_STORE_H */
