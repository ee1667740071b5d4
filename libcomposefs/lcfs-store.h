/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The content-addressed object store filled by mkcomposefs --digest-store
 * (TOOLS-AND-MOUNT.md section 2.6, pass 2): one file per distinct content,
 * named by its fs-verity digest as STORE/xx/yyyy... (62 hex digits), mode
 * 0644. Private to the library.
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

#include "lcfs-internal.h"

struct lcfs_store;

/* Opens (creating it and its missing parents with mode 0755, umask
 * applied) the store directory @path, relative to the current directory.
 * An empty @path is the current directory. Removes ".tmp*" files that an
 * interrupted run left in the store root more than an hour ago. 0 and
 * *@out, or -errno. */
int lcfs_store_open(const char *path, struct lcfs_store **out);

/* Frees @st (NULL is allowed). */
void lcfs_store_free(struct lcfs_store *st);

/* Makes sure an object named by @digest exists, unless another thread of
 * this run is storing the same content. If none exists (or the one there
 * has the wrong size), the first @size bytes of @fd (a regular file, read
 * from offset 0; the fd offset is not used) are copied into a new object,
 * which gets its name once complete. Thread-safe. 0 or -errno (-ENODATA
 * if the file is shorter than @size). */
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
	int fd; /* writable, the data goes here */
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

/* Locks the store whose directory is @store_dirfd: opens (creating it,
 * mode 0644) the file ".lock" in the store root without following a
 * symlink, refuses anything but a regular file (-EINVAL), and waits for a
 * shared (@exclusive false: every writer) or exclusive flock. Returns the
 * fd that holds the lock (closing it releases the lock) or -errno. */
int lcfs_store_lock(int store_dirfd, bool exclusive);

#endif /* _LCFS_STORE_H */
