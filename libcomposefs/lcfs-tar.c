/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Trees from tar streams, read with libarchive, without extracting: every
 * entry becomes a node; file data is hashed (and copied into the object
 * store) as it streams past. See lcfs-oci.h for the rules.
 *
 * Hard links are recorded as identities (node->scratch indexes the key
 * table) on independent copies of the target node, and only turned into
 * links at the end, in depth-first name order as the directory scan does:
 * a later entry may replace or remove any of the names meanwhile, and the
 * image must not depend on which name the stream gave first.
 *
 * File contents are hashed and written into the store by worker threads
 * while this thread goes on reading the stream (see "Worker pool").
 */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <zlib.h>
#include <zstd.h>

#include "erofs-xattr-names.h"
#include "lcfs-tar.h"
#include "lcfs-error.h"
#include "lcfs-util.h"
#include "lcfs-node.h"
#include "lcfs-fsverity.h"
#include "lcfs-build.h"
#include "lcfs-walk.h"

/* Reads of the layer, and decompressed pieces. */
#define INPUT_BLOCK (1u << 20)
#define OUTPUT_BLOCK (256u << 10)

/* Longest path accepted in an entry. */
#define PATH_LEN_MAX (64u << 10)

#define WHITEOUT_PREFIX ".wh."
#define OPAQUE_NAME ".wh..wh..opq"
#define OPAQUE_XATTR LCFS_OVL_PREFIX LCFS_OVL_OPAQUE

/* ---- Pointer set ---------------------------------------------------------------------- */

static size_t ptr_slot(const void *p, size_t cap)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 17) & (cap - 1);
}

/* Adds @p with the value @val (replacing the value if @p is there). */
static int ptrset_put(struct lcfs_ptrset *s, const void *p, void *val)
{
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		const void **slots = calloc(cap, sizeof(*slots));
		void **vals = calloc(cap, sizeof(*vals));

		if (slots == NULL || vals == NULL) {
			free(slots);
			free(vals);
			return -ENOMEM;
		}
		for (size_t j = 0; j < s->cap; j++) {
			if (s->slots[j] == NULL)
				continue;
			for (i = ptr_slot(s->slots[j], cap); slots[i] != NULL;
			     i = (i + 1) & (cap - 1))
				;
			slots[i] = s->slots[j];
			vals[i] = s->vals[j];
		}
		free(s->slots);
		free(s->vals);
		s->slots = slots;
		s->vals = vals;
		s->cap = cap;
	}
	for (i = ptr_slot(p, s->cap); s->slots[i] != NULL; i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == p)
			break;
	if (s->slots[i] == NULL)
		s->n++;
	s->slots[i] = p;
	s->vals[i] = val;
	return 0;
}

static int ptrset_add(struct lcfs_ptrset *s, const void *p)
{
	return ptrset_put(s, p, NULL);
}

/* The slot of @p, or SIZE_MAX. */
static size_t ptrset_find(const struct lcfs_ptrset *s, const void *p)
{
	if (s->cap == 0)
		return SIZE_MAX;
	for (size_t i = ptr_slot(p, s->cap); s->slots[i] != NULL; i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == p)
			return i;
	return SIZE_MAX;
}

static bool ptrset_has(const struct lcfs_ptrset *s, const void *p)
{
	return ptrset_find(s, p) != SIZE_MAX;
}

/* The value of @p, or NULL if absent. */
static void *ptrset_get(const struct lcfs_ptrset *s, const void *p)
{
	size_t i = ptrset_find(s, p);

	return i == SIZE_MAX ? NULL : s->vals[i];
}

/* Removes @p, moving back the entries of its probe run that would no
 * longer be found past the hole. */
static void ptrset_remove(struct lcfs_ptrset *s, const void *p)
{
	size_t mask = s->cap - 1, i = ptrset_find(s, p), j;

	if (i == SIZE_MAX)
		return;
	for (j = (i + 1) & mask; s->slots[j] != NULL; j = (j + 1) & mask) {
		size_t home = ptr_slot(s->slots[j], s->cap);

		/* The entry at j may fill the hole at i unless its home
		 * slot lies cyclically in (i, j]. */
		if (i < j ? (home <= i || home > j) : (home <= i && home > j)) {
			s->slots[i] = s->slots[j];
			s->vals[i] = s->vals[j];
			i = j;
		}
	}
	s->slots[i] = NULL;
	s->vals[i] = NULL;
	s->n--;
}

static void ptrset_clear(struct lcfs_ptrset *s)
{
	free(s->slots);
	free(s->vals);
	s->slots = NULL;
	s->vals = NULL;
	s->cap = s->n = 0;
}

/* ---- Setup ---------------------------------------------------------------------------- */

/* A directory with the defaults for one that no entry describes. */
static struct lcfs_node_s *default_dir(void)
{
	struct lcfs_node_s *n = lcfs_node_new();

	if (n != NULL)
		n->mode = S_IFDIR | 0755;
	return n;
}

static int pool_new(const struct lcfs_oci_options_s *opts, struct lcfs_store *store,
		    struct lcfs_tar_pool **out);
static void pool_free(struct lcfs_tar_pool *p);

int lcfs_tar_tree_init(struct lcfs_tar_tree *t, const struct lcfs_oci_options_s *opts,
		       bool apply_whiteouts, struct lcfs_store *store,
		       struct lcfs_error *err)
{
	memset(t, 0, sizeof(*t));
	t->flags = opts->flags;
	t->apply_whiteouts = apply_whiteouts;
	t->store = store;
	t->err = err;
	t->root = default_dir();
	if (t->root == NULL || pool_new(opts, store, &t->pool) < 0) {
		lcfs_tar_tree_release(t);
		return -ENOMEM;
	}
	return 0;
}

void lcfs_tar_tree_release(struct lcfs_tar_tree *t)
{
	lcfs_node_unref(t->root);
	t->root = NULL;
	free(t->keys);
	t->keys = NULL;
	pool_free(t->pool);
	t->pool = NULL;
	ptrset_clear(&t->layer);
}

static int publish_objects(struct lcfs_node_s *root, struct lcfs_store *store,
			   struct lcfs_error *err);

struct lcfs_node_s *lcfs_tar_tree_finish(struct lcfs_tar_tree *t, struct lcfs_error *err)
{
	struct lcfs_node_s *root = NULL;
	int r = lcfs_link_inodes(t->root, t->keys, t->n_keys, NULL, NULL);

	if (r < 0)
		lcfs_error_set(err, -r, "%s", strerror(-r));
	else if (publish_objects(t->root, t->store, err) == 0)
		root = steal_pointer(&t->root);
	lcfs_tar_tree_release(t);
	return root;
}

int lcfs_tar_store_open(const struct lcfs_oci_options_s *opts, struct lcfs_store **out,
			struct lcfs_error *err)
{
	int r;

	*out = NULL;
	if (opts->flags & ~LCFS_TAR_FLAGS)
		return lcfs_error_set(err, EINVAL, "invalid build flags");
	if (opts->digest_store == NULL)
		return 0;
	r = lcfs_store_open(opts->digest_store, out);
	if (r == 0)
		r = lcfs_store_stage(*out);
	if (r < 0) {
		lcfs_store_free(*out);
		*out = NULL;
		return lcfs_error_set(err, -r, "cannot open object store '%s': %s",
				      opts->digest_store, strerror(-r));
	}
	return 0;
}

/* With a store in staging mode: publishes the objects of the regular
 * files left in the tree @root (the others, overwritten or deleted by
 * later entries, are dropped when the store is freed). */
static int publish_objects(struct lcfs_node_s *root, struct lcfs_store *store,
			   struct lcfs_error *err)
{
	struct lcfs_walk w;
	int r;

	if (store == NULL)
		return 0;
	lcfs_walk_init(&w, root, LCFS_WALK_PATH);
	while ((r = lcfs_walk_next(&w)) > 0) {
		struct lcfs_node_s *node = w.node;

		if (S_ISREG(node->mode) && node->link_to == NULL && node->digest_set &&
		    node->content == NULL) {
			int e = lcfs_store_publish(store, node->digest);

			if (e < 0) {
				e = lcfs_error_set(err, -e, "cannot store '%s': %s", w.path,
						   strerror(-e));
				lcfs_walk_release(&w);
				return e;
			}
		}
	}
	lcfs_walk_release(&w);
	if (r < 0)
		return lcfs_error_set(err, -r, "%s", strerror(-r));
	return 0;
}

struct archive *lcfs_tar_reader_new(void)
{
	struct archive *a = archive_read_new();

	if (a == NULL)
		return NULL;
	/* ustar, PAX and GNU; nothing else, and no external programs. */
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_format_gnutar(a) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* ---- Errors --------------------------------------------------------------------------- */

static int entry_fail(struct lcfs_tar_tree *t, const char *what, const char *path,
		      int err, const char *reason)
{
	if (what != NULL)
		return lcfs_error_set(t->err, err, "%s: entry '%s': %s", what, path, reason);
	return lcfs_error_set(t->err, err, "entry '%s': %s", path, reason);
}

static int archive_fail(struct lcfs_tar_tree *t, struct archive *a, const char *what,
			const char *path)
{
	const char *msg = archive_error_string(a);
	int err = archive_errno(a);

	/* libarchive reports a bad stream with a message and errno -1 or
	 * EINVAL and the like; read and memory errors are kept. */
	if (err != EIO && err != ENOMEM)
		err = EILSEQ;
	if (msg == NULL)
		msg = "corrupt or truncated tar stream";
	if (path == NULL) {
		if (what != NULL)
			return lcfs_error_set(t->err, err, "%s: %s", what, msg);
		return lcfs_error_set(t->err, err, "%s", msg);
	}
	return entry_fail(t, what, path, err, msg);
}

/* ---- Worker pool ------------------------------------------------------------------------ */

/*
 * The contents of regular files (all but the inline ones) are hashed, and
 * written into the store, by worker threads while this thread reads and
 * decompresses the stream and builds the tree. Each file is a job: this
 * thread copies its data into blocks and hands them over as they fill;
 * the workers take the jobs in stream order, one worker per job, and
 * stream its blocks through the hasher into a new object (small files are
 * hashed first and stored only if the store lacks them). All blocks held
 * at any time, queued or being worked on, fit in a fixed budget: the
 * reader waits for room, so memory does not grow with file sizes.
 *
 * Workers only fill in the job's digest or error. The digests go onto the
 * nodes on this thread when it collects finished jobs, oldest first: the
 * tree, and so the image, never depend on the threads' timing.
 */

/* Pooled data blocks: page-aligned, so that the store can write them with
 * O_DIRECT. */
#define BLOCK_SIZE (1u << 20)
/* Files below this size take a buffer of their own size instead. */
#define BLOCK_SMALL (64u << 10)
#define BUDGET_DEFAULT (16u << 20)
#define PAGE_ALIGN 4096u
#define WORKERS_MAX 64u

struct data_block {
	struct data_block *next;
	uint8_t *data;
	size_t len, cap;
};

struct tar_job {
	struct tar_job *next_queued; /* waiting for a worker */
	struct tar_job *next;        /* all uncollected jobs, in stream order */
	struct data_block *head, *tail; /* handed over, not yet taken */
	uint64_t size;
	bool fed;       /* all data handed over, or given up */
	bool abandoned; /* given up: no object */
	bool done;      /* the worker is finished with it */
	int err;        /* -errno of the worker */
	uint8_t digest[LCFS_DIGEST_SIZE];
	/* Reader's side only: the entry's name, for messages, and the nodes
	 * that get the digest (the file and hard links made to it before it
	 * was collected). */
	char *path;
	struct lcfs_node_s **nodes;
	size_t n_nodes;
};

struct lcfs_tar_pool {
	pthread_mutex_t lock;
	pthread_cond_t work; /* workers: a job, data or the stop arrived */
	pthread_cond_t room; /* reader: blocks were freed, or a job failed */
	pthread_cond_t done; /* reader: a job is finished */
	struct tar_job *queue, *queue_tail;
	struct data_block *free_blocks; /* pooled blocks not in use */
	size_t used, budget;            /* block capacity held, and its bound */
	bool stop, failed;
	struct lcfs_store *store; /* borrowed, or NULL: digests only */
	unsigned want_threads, n_threads;
	pthread_t threads[WORKERS_MAX];
	/* Reader's side only. */
	struct tar_job *jobs, *jobs_tail; /* uncollected, oldest first */
	struct data_block *cur;           /* block being filled */
	struct lcfs_ptrset pending;       /* node -> its uncollected job */
};

static void block_free(struct data_block *b)
{
	if (b != NULL) {
		free(b->data);
		free(b);
	}
}

/* A block of @cap bytes (BLOCK_SIZE: pooled), once the budget has room
 * for it. NULL with *@errp: -ECANCELED when a job failed meanwhile,
 * -ENOMEM. */
static struct data_block *block_get(struct lcfs_tar_pool *p, size_t cap, int *errp)
{
	struct data_block *b = NULL;

	pthread_mutex_lock(&p->lock);
	while (p->used > 0 && p->used + cap > p->budget && !p->failed)
		pthread_cond_wait(&p->room, &p->lock);
	if (p->failed) {
		pthread_mutex_unlock(&p->lock);
		*errp = -ECANCELED;
		return NULL;
	}
	p->used += cap;
	if (cap == BLOCK_SIZE && p->free_blocks != NULL) {
		b = p->free_blocks;
		p->free_blocks = b->next;
	}
	pthread_mutex_unlock(&p->lock);
	if (b == NULL) {
		void *mem = NULL;

		b = calloc(1, sizeof(*b));
		if (b != NULL && posix_memalign(&mem, PAGE_ALIGN, cap) != 0)
			mem = NULL;
		if (b == NULL || mem == NULL) {
			free(b);
			pthread_mutex_lock(&p->lock);
			p->used -= cap;
			pthread_cond_broadcast(&p->room);
			pthread_mutex_unlock(&p->lock);
			*errp = -ENOMEM;
			return NULL;
		}
		b->data = mem;
		b->cap = cap;
	}
	b->next = NULL;
	b->len = 0;
	return b;
}

/* Gives the room of @b back to the budget. */
static void block_put(struct lcfs_tar_pool *p, struct data_block *b)
{
	pthread_mutex_lock(&p->lock);
	p->used -= b->cap;
	if (b->cap == BLOCK_SIZE) {
		b->next = p->free_blocks;
		p->free_blocks = b;
		b = NULL;
	}
	pthread_cond_signal(&p->room);
	pthread_mutex_unlock(&p->lock);
	block_free(b);
}

/* The next block of @job for its worker, or NULL once all its data was
 * taken (or the job was given up). */
static struct data_block *job_take(struct lcfs_tar_pool *p, struct tar_job *job)
{
	struct data_block *b;

	pthread_mutex_lock(&p->lock);
	while (job->head == NULL && !job->fed)
		pthread_cond_wait(&p->work, &p->lock);
	b = job->head;
	if (b != NULL) {
		job->head = b->next;
		if (job->head == NULL)
			job->tail = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	return b;
}

static bool job_abandoned(struct lcfs_tar_pool *p, struct tar_job *job)
{
	bool r;

	pthread_mutex_lock(&p->lock);
	r = job->abandoned;
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Hashes (and stores) a file that came in one block. */
static int run_small_job(struct lcfs_tar_pool *p, struct tar_job *job)
{
	struct data_block *b = job_take(p, job), *extra;
	int r = 0;

	/* One block holds it all; its data is complete once handed over
	 * whole, or the reader gave up on the file. */
	while ((extra = job_take(p, job)) != NULL) {
		r = -EIO;
		block_put(p, extra);
	}
	if (b == NULL || job_abandoned(p, job)) {
		r = 0;
	} else if (r == 0 && b->len != job->size) {
		r = -EIO;
	} else if (r == 0) {
		if (lcfs_compute_fsverity_from_data(job->digest, b->data, b->len) < 0)
			r = -errno;
		if (r == 0 && p->store != NULL)
			r = lcfs_store_put_data(p->store, b->data, b->len, job->digest);
	}
	if (b != NULL)
		block_put(p, b);
	return r;
}

/* Streams a file's blocks through the hasher (into a new object). */
static int run_large_job(struct lcfs_tar_pool *p, struct tar_job *job)
{
	struct lcfs_store_writer *w = NULL;
	struct lcfs_fsverity_stream *s = NULL;
	struct data_block *b;
	int r;

	if (p->store != NULL)
		r = lcfs_store_writer_new(p->store, job->size, &w);
	else
		r = (s = lcfs_fsverity_stream_new()) != NULL ? 0 : -ENOMEM;
	/* After a failure the blocks are still taken, to free their room. */
	while ((b = job_take(p, job)) != NULL) {
		if (r == 0 && w != NULL)
			r = lcfs_store_writer_write(w, b->data, b->len);
		else if (r == 0)
			lcfs_fsverity_stream_update(s, b->data, b->len);
		block_put(p, b);
	}
	if (r == 0 && !job_abandoned(p, job)) {
		if (w != NULL)
			r = lcfs_store_writer_commit(w, job->digest);
		else
			r = lcfs_fsverity_stream_final(lcfs_steal_pointer(&s), job->digest);
	}
	lcfs_store_writer_free(w);
	if (s != NULL)
		lcfs_fsverity_stream_free(s);
	return r;
}

static void *worker_main(void *arg)
{
	struct lcfs_tar_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct tar_job *job;
		int r;

		while (p->queue == NULL && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		job = p->queue;
		if (job == NULL)
			break;
		p->queue = job->next_queued;
		if (p->queue == NULL)
			p->queue_tail = NULL;
		pthread_mutex_unlock(&p->lock);

		if (job->size <= BLOCK_SIZE)
			r = run_small_job(p, job);
		else
			r = run_large_job(p, job);

		pthread_mutex_lock(&p->lock);
		job->err = r;
		job->done = true;
		if (r < 0) {
			p->failed = true;
			pthread_cond_broadcast(&p->room);
		}
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int pool_new(const struct lcfs_oci_options_s *opts, struct lcfs_store *store,
		    struct lcfs_tar_pool **out)
{
	struct lcfs_tar_pool *p = calloc(1, sizeof(*p));
	unsigned threads = opts->threads ? opts->threads : lcfs_cpu_count();

	if (p == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->room, NULL);
	pthread_cond_init(&p->done, NULL);
	p->store = store;
	p->budget = opts->data_buffer_size ? opts->data_buffer_size : BUDGET_DEFAULT;
	if (p->budget < BLOCK_SIZE)
		p->budget = BLOCK_SIZE;
	p->want_threads = threads < WORKERS_MAX ? threads : WORKERS_MAX;
	*out = p;
	return 0;
}

/* Starts the workers, with the first job. 0 if at least one runs. */
static int pool_start(struct lcfs_tar_pool *p)
{
	int r = 0;

	while (p->n_threads < p->want_threads) {
		r = pthread_create(&p->threads[p->n_threads], NULL, worker_main, p);
		if (r != 0)
			break;
		p->n_threads++;
	}
	return p->n_threads > 0 ? 0 : -r;
}

static void job_free(struct tar_job *job)
{
	struct data_block *b;

	while ((b = job->head) != NULL) {
		job->head = b->next;
		block_free(b);
	}
	for (size_t i = 0; i < job->n_nodes; i++)
		lcfs_node_unref(job->nodes[i]);
	free(job->nodes);
	free(job->path);
	free(job);
}

/* Gives up the uncollected jobs (a failed run: their objects are not
 * needed), waits for the workers and frees @p. */
static void pool_free(struct lcfs_tar_pool *p)
{
	struct data_block *b;
	struct tar_job *job;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	for (job = p->jobs; job != NULL; job = job->next) {
		job->abandoned = true;
		job->fed = true;
	}
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	while ((job = p->jobs) != NULL) {
		p->jobs = job->next;
		job_free(job);
	}
	block_free(p->cur);
	while ((b = p->free_blocks) != NULL) {
		p->free_blocks = b->next;
		block_free(b);
	}
	ptrset_clear(&p->pending);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->room);
	pthread_cond_destroy(&p->done);
	free(p);
}

static int job_add_node(struct tar_job *job, struct lcfs_node_s *node)
{
	struct lcfs_node_s **v = realloc(job->nodes, (job->n_nodes + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	job->nodes = v;
	v[job->n_nodes++] = lcfs_node_ref(node);
	return 0;
}

/* A new job for the content (@node->size bytes) of @node, the entry
 * @path, queued for the workers. 0 or -errno. */
static int pool_job_new(struct lcfs_tar_pool *p, struct lcfs_node_s *node,
			const char *path, struct tar_job **out)
{
	struct tar_job *job;
	int r;

	if (p->n_threads == 0 && (r = pool_start(p)) < 0)
		return r;
	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return -ENOMEM;
	job->size = node->size;
	job->path = strdup(path);
	r = job->path != NULL ? job_add_node(job, node) : -ENOMEM;
	if (r == 0)
		r = ptrset_put(&p->pending, node, job);
	if (r < 0) {
		job_free(job);
		return r;
	}
	if (p->jobs_tail != NULL)
		p->jobs_tail->next = job;
	else
		p->jobs = job;
	p->jobs_tail = job;
	pthread_mutex_lock(&p->lock);
	if (p->queue_tail != NULL)
		p->queue_tail->next_queued = job;
	else
		p->queue = job;
	p->queue_tail = job;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	*out = job;
	return 0;
}

/* Hands the filled block over to @job's worker. */
static void pool_push(struct lcfs_tar_pool *p, struct tar_job *job)
{
	struct data_block *b = steal_pointer(&p->cur);

	pthread_mutex_lock(&p->lock);
	if (job->tail != NULL)
		job->tail->next = b;
	else
		job->head = b;
	job->tail = b;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
}

/* Appends @len bytes of @data (zeros if NULL) to @job's content. */
static int pool_feed(struct lcfs_tar_pool *p, struct tar_job *job, const uint8_t *data,
		     uint64_t len)
{
	int r = 0;

	while (len > 0) {
		size_t n;

		if (p->cur == NULL) {
			size_t cap = job->size < BLOCK_SMALL ? (size_t)job->size : BLOCK_SIZE;

			p->cur = block_get(p, cap, &r);
			if (p->cur == NULL)
				return r;
		}
		n = p->cur->cap - p->cur->len;
		if (n > len)
			n = (size_t)len;
		if (data != NULL) {
			memcpy(p->cur->data + p->cur->len, data, n);
			data += n;
		} else {
			memset(p->cur->data + p->cur->len, 0, n);
		}
		p->cur->len += n;
		len -= n;
		if (p->cur->len == p->cur->cap)
			pool_push(p, job);
	}
	return 0;
}

/* All of @job's content was handed over (@complete), or the reader gives
 * it up. */
static void pool_job_end(struct lcfs_tar_pool *p, struct tar_job *job, bool complete)
{
	if (p->cur != NULL && p->cur->len > 0 && complete)
		pool_push(p, job);
	block_free(steal_pointer(&p->cur));
	pthread_mutex_lock(&p->lock);
	job->fed = true;
	job->abandoned = !complete;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Collects the finished jobs, oldest first: their digests go onto their
 * nodes. With @wait, waits for all jobs (the end of a layer), else stops
 * at the first unfinished one. After a failed job, the first failed one
 * is reported (and 0 never returned). 0 or -errno with @t->err filled.
 */
static int pool_collect(struct lcfs_tar_tree *t, const char *what, bool wait)
{
	struct lcfs_tar_pool *p = t->pool;
	struct tar_job *job;
	bool failed;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	failed = p->failed;
	pthread_mutex_unlock(&p->lock);
	if (failed)
		wait = true;
	while ((job = p->jobs) != NULL) {
		pthread_mutex_lock(&p->lock);
		while (wait && !job->done)
			pthread_cond_wait(&p->done, &p->lock);
		pthread_mutex_unlock(&p->lock);
		if (!job->done)
			break;
		if (job->err < 0) {
			char problem[LCFS_STORE_PROBLEM_SIZE];

			/* A refused entry of the store says which. */
			if ((job->err == -ENOTDIR || job->err == -EISDIR) && p->store != NULL &&
			    lcfs_store_get_problem(p->store, problem, sizeof(problem)))
				return entry_fail(t, what, job->path, -job->err, problem);
			return entry_fail(t, what, job->path, -job->err, strerror(-job->err));
		}
		for (size_t i = 0; i < job->n_nodes && r == 0 && !job->abandoned; i++)
			r = lcfs_node_set_digest_result(job->nodes[i], job->digest,
							LCFS_BUILD_COMPUTE_DIGEST |
								LCFS_BUILD_BY_DIGEST);
		if (r < 0)
			return lcfs_error_set(t->err, -r, "%s", strerror(-r));
		p->jobs = job->next;
		if (p->jobs == NULL)
			p->jobs_tail = NULL;
		for (size_t i = 0; i < job->n_nodes; i++)
			ptrset_remove(&p->pending, job->nodes[i]);
		job_free(job);
	}
	return 0;
}

/* ---- Paths ------------------------------------------------------------------------------ */

/*
 * Splits a copy of @path into its components, skipping empty ones and
 * ".": *@copy and *@comps are malloc'd (the caller frees both). Returns
 * the count, or -EINVAL for an absolute path or a ".." (tar streams from
 * image builders never need one, and following one could leave the tree),
 * -ENAMETOOLONG, -ENOMEM.
 */
static int split_path(const char *path, char **copy, char ***comps)
{
	size_t len = strnlen(path, PATH_LEN_MAX + 1), n = 0, max = 1;
	char **v;
	char *p;

	*copy = NULL;
	*comps = NULL;
	if (len > PATH_LEN_MAX)
		return -ENAMETOOLONG;
	if (path[0] == '/')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		max += path[i] == '/';
	*copy = p = strdup(path);
	*comps = v = malloc(max * sizeof(*v));
	if (p == NULL || v == NULL)
		return -ENOMEM;
	while (*p != '\0') {
		char *s = p;

		while (*p != '\0' && *p != '/')
			p++;
		if (*p == '/')
			*p++ = '\0';
		if (s[0] == '\0' || strcmp(s, ".") == 0)
			continue;
		if (strcmp(s, "..") == 0)
			return -EINVAL;
		v[n++] = s;
	}
	return (int)n;
}

static int remember_layer(struct lcfs_tar_tree *t, struct lcfs_node_s *n)
{
	return t->apply_whiteouts ? ptrset_add(&t->layer, n) : 0;
}

/*
 * The directory holding the last of @n components: missing ones are
 * created with the defaults when @create. NULL with *@errp: -ENOENT
 * (missing), -ENOTDIR (a component is not a directory), -ENOMEM.
 */
static struct lcfs_node_s *walk_parent(struct lcfs_tar_tree *t, char **comps, size_t n,
				       bool create, int *errp)
{
	struct lcfs_node_s *dir = t->root;

	for (size_t i = 0; i + 1 < n; i++) {
		struct lcfs_node_s *c = lcfs_node_lookup_child(dir, comps[i]);
		int r;

		if (c == NULL) {
			if (!create) {
				*errp = -ENOENT;
				return NULL;
			}
			c = default_dir();
			if (c == NULL) {
				*errp = -ENOMEM;
				return NULL;
			}
			r = lcfs_node_add_child_n(dir, c, comps[i], strlen(comps[i]));
			if (r == 0)
				r = remember_layer(t, c);
			if (r < 0) {
				if (c->parent == NULL)
					lcfs_node_unref(c);
				*errp = r;
				return NULL;
			}
		} else if (!S_ISDIR(c->mode)) {
			*errp = -ENOTDIR;
			return NULL;
		}
		dir = c;
	}
	return dir;
}

static void remove_child(struct lcfs_node_s *dir, const char *name)
{
	(void)lcfs_node_remove_child_n(dir, name, strlen(name));
}

/* ---- Entries ---------------------------------------------------------------------------- */

static int set_xattrs(struct lcfs_tar_tree *t, struct lcfs_node_s *node,
		      struct archive_entry *e)
{
	const char *name;
	const void *value;
	size_t size;

	if (t->flags & LCFS_BUILD_SKIP_XATTRS)
		return 0;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		int r;

		if (name == NULL || name[0] == '\0')
			return -EINVAL;
		if ((t->flags & LCFS_BUILD_USER_XATTRS) && strncmp(name, "user.", 5) != 0)
			continue;
		if (size > LCFS_MAX_XATTR_VALUE)
			return -E2BIG;
		r = lcfs_node_set_xattr_n(node, name, strlen(name), value ? value : "", size);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Kernel tags of POSIX ACL entries, in their sort order. */
static int acl_tag(int archive_tag)
{
	switch (archive_tag) {
	case ARCHIVE_ENTRY_ACL_USER_OBJ:
		return 0x01;
	case ARCHIVE_ENTRY_ACL_USER:
		return 0x02;
	case ARCHIVE_ENTRY_ACL_GROUP_OBJ:
		return 0x04;
	case ARCHIVE_ENTRY_ACL_GROUP:
		return 0x08;
	case ARCHIVE_ENTRY_ACL_MASK:
		return 0x10;
	case ARCHIVE_ENTRY_ACL_OTHER:
		return 0x20;
	default:
		return -1;
	}
}

struct acl_item {
	uint16_t tag, perm;
	uint32_t id;
};

static int acl_item_cmp(const void *a, const void *b)
{
	const struct acl_item *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * POSIX ACLs that libarchive parsed from text records (SCHILY.acl.*):
 * libarchive derives the group bits of the mode from the group entry, the
 * kernel from the mask, so the mask goes back into the mode; and when the
 * stream did not also carry the binary xattr, it is made from the entries
 * (version 2 header, then tag, permissions and id, sorted, little-endian).
 */
static int set_acl(struct lcfs_node_s *node, struct archive_entry *e, int type,
		   const char *xattr)
{
	struct acl_item items[256];
	uint8_t value[4 + 8 * 256];
	size_t n = 0;
	int atype, perm, tag, qual;
	const char *name;

	if (archive_entry_acl_reset(e, type) <= 0)
		return 0;
	while (archive_entry_acl_next(e, type, &atype, &perm, &tag, &qual, &name) ==
	       ARCHIVE_OK) {
		int t = acl_tag(tag);

		if (t < 0 || n == 256)
			return -EINVAL;
		items[n].tag = (uint16_t)t;
		items[n].perm = (uint16_t)(perm & 7);
		items[n].id = (t == 0x02 || t == 0x08) ? (uint32_t)qual : UINT32_MAX;
		if (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && t == 0x10)
			node->mode = (node->mode & ~070u) | (uint32_t)(items[n].perm << 3);
		n++;
	}
	if (lcfs_node_get_xattr(node, xattr, NULL) != NULL)
		return 0;
	qsort(items, n, sizeof(items[0]), acl_item_cmp);
	value[0] = 2;
	value[1] = value[2] = value[3] = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = value + 4 + 8 * i;

		p[0] = (uint8_t)items[i].tag;
		p[1] = (uint8_t)(items[i].tag >> 8);
		p[2] = (uint8_t)items[i].perm;
		p[3] = 0;
		for (int b = 0; b < 4; b++)
			p[4 + b] = (uint8_t)(items[i].id >> (8 * b));
	}
	return lcfs_node_set_xattr_n(node, xattr, strlen(xattr), (const char *)value,
				     4 + 8 * n);
}

static int set_acls(struct lcfs_tar_tree *t, struct lcfs_node_s *node,
		    struct archive_entry *e)
{
	int r;

	if (t->flags & (LCFS_BUILD_SKIP_XATTRS | LCFS_BUILD_USER_XATTRS))
		return 0;
	r = set_acl(node, e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, LCFS_XATTR_ACL_ACCESS);
	if (r == 0 && S_ISDIR(node->mode))
		r = set_acl(node, e, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT,
			    LCFS_XATTR_ACL_DEFAULT);
	return r;
}

static void set_mtime(struct lcfs_tar_tree *t, struct lcfs_node_s *node,
		      struct archive_entry *e)
{
	if (t->flags & LCFS_BUILD_USE_EPOCH)
		return;
	node->mtime_sec = (int64_t)archive_entry_mtime(e);
	node->mtime_nsec = (uint32_t)archive_entry_mtime_nsec(e);
	if (node->mtime_nsec >= 1000000000u)
		node->mtime_nsec = 0;
}

/* Reads exactly @len bytes of the entry's data into @buf. */
static int read_exact(struct archive *a, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		la_ssize_t n = archive_read_data(a, buf + done, len - done);

		if (n < 0)
			return -EILSEQ;
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

/*
 * Content of the regular file @node (its size set): inline, or handed to
 * the workers, which hash and store it (the digest is set when the job is
 * collected). The data comes as libarchive holds it, without a copy of its
 * own; the holes of a sparse file are zeros. *@reason says what was wrong
 * for -EILSEQ without a libarchive message.
 */
static int read_content(struct lcfs_tar_tree *t, struct archive *a, struct archive_entry *e,
			struct lcfs_node_s *node, const char **reason)
{
	uint8_t digest[LCFS_DIGEST_SIZE];
	uint64_t size = node->size, pos = 0;
	struct tar_job *job;
	int r;

	if (size == 0)
		return 0;
	if (lcfs_content_is_inline(size, t->flags)) {
		uint8_t *data = malloc((size_t)size);

		if (data == NULL)
			return -ENOMEM;
		r = read_exact(a, data, (size_t)size);
		if (r == 0 && lcfs_compute_fsverity_from_data(digest, data, (size_t)size) < 0)
			r = -errno;
		if (r < 0) {
			free(data);
			return r;
		}
		lcfs_node_take_content(node, data, (size_t)size);
		return lcfs_node_set_digest_result(node, digest,
						   LCFS_BUILD_COMPUTE_DIGEST |
							   LCFS_BUILD_BY_DIGEST);
	}
	r = pool_job_new(t->pool, node, archive_entry_pathname(e), &job);
	if (r < 0)
		return r;
	while (r == 0) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int ar = archive_read_data_block(a, &buf, &len, &off);

		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			r = -EILSEQ;
		} else if (off < 0 || (uint64_t)off < pos || (uint64_t)off > size ||
			   len > size - (uint64_t)off) {
			*reason = "file data out of place";
			r = -EILSEQ;
		} else {
			r = pool_feed(t->pool, job, NULL, (uint64_t)off - pos);
			if (r == 0)
				r = pool_feed(t->pool, job, buf, len);
			pos = (uint64_t)off + len;
		}
	}
	/* A sparse file may end in a hole; any other file ending early is
	 * a truncated stream. */
	if (r == 0 && pos < size) {
		if (archive_entry_sparse_count(e) > 0)
			r = pool_feed(t->pool, job, NULL, size - pos);
		else
			r = -ENODATA;
	}
	pool_job_end(t->pool, job, r == 0);
	return r;
}

/* A node for a non-hard-link entry, with its content read. *@reason says
 * what was wrong with the entry when it returns -EINVAL. */
static int node_from_entry(struct lcfs_tar_tree *t, struct archive *a,
			   struct archive_entry *e, struct lcfs_node_s **out,
			   const char **reason)
{
	struct lcfs_node_s *node;
	mode_t type = archive_entry_filetype(e);
	int r = 0;

	switch (type) {
	case AE_IFREG:
	case AE_IFDIR:
	case AE_IFLNK:
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
		break;
	default:
		*reason = "unsupported entry type";
		return -EINVAL;
	}
	if (archive_entry_uid(e) < 0 || archive_entry_uid(e) > UINT32_MAX ||
	    archive_entry_gid(e) < 0 || archive_entry_gid(e) > UINT32_MAX) {
		*reason = "owner out of range";
		return -EINVAL;
	}
	node = lcfs_node_new();
	if (node == NULL)
		return -ENOMEM;
	node->mode = (uint32_t)(type | (archive_entry_perm(e) & 07777));
	node->uid = (uint32_t)archive_entry_uid(e);
	node->gid = (uint32_t)archive_entry_gid(e);
	set_mtime(t, node, e);
	if (type == AE_IFCHR || type == AE_IFBLK)
		lcfs_node_set_rdev64(node, makedev(archive_entry_rdevmajor(e),
						   archive_entry_rdevminor(e)));
	r = set_xattrs(t, node, e);
	if (r == 0)
		r = set_acls(t, node, e);
	if (r < 0) {
		*reason = "bad extended attribute";
	} else if (type == AE_IFLNK) {
		const char *target = archive_entry_symlink(e);

		if (target == NULL || target[0] == '\0') {
			*reason = "empty symlink target";
			r = -EINVAL;
		} else if (strlen(target) > LCFS_MAX_PAYLOAD) {
			*reason = "symlink target too long";
			r = -ENAMETOOLONG;
		} else {
			r = lcfs_node_set_symlink_payload(node, target) < 0 ? -errno : 0;
		}
	} else if (type == AE_IFREG) {
		la_int64_t size = archive_entry_size(e);

		node->size = size > 0 ? (uint64_t)size : 0;
		r = read_content(t, a, e, node, reason);
		if (r == -ENODATA) {
			*reason = "file data ends early";
			r = -EILSEQ;
		}
	}
	if (r < 0) {
		lcfs_node_unref(node);
		return r;
	}
	*out = node;
	return 0;
}

/* Hard link identity of @n, created on first use. */
static int inode_key_for(struct lcfs_tar_tree *t, struct lcfs_node_s *n, uint64_t ino)
{
	if (t->n_keys == t->cap_keys) {
		size_t cap = t->cap_keys ? 2 * t->cap_keys : 64;
		struct lcfs_inode_key *v;

		if (cap > UINT32_MAX - 1)
			return -ENOMEM;
		v = realloc(t->keys, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		t->keys = v;
		t->cap_keys = cap;
	}
	t->keys[t->n_keys] = (struct lcfs_inode_key){ 0, (ino_t)ino, n };
	n->scratch = (uint32_t)++t->n_keys;
	return 0;
}

/* A copy of the node at @target_path sharing its identity. */
static int hardlink_node(struct lcfs_tar_tree *t, const char *target_path,
			 struct lcfs_node_s **out, const char **reason)
{
	cleanup_free char **comps = NULL;
	cleanup_free char *copy = NULL;
	struct lcfs_node_s *dir, *target, *n;
	int r = 0, nc;

	nc = split_path(target_path, &copy, &comps);
	if (nc == -EINVAL || nc == 0) {
		*reason = "hard link target outside the tree";
		return -EINVAL;
	}
	if (nc < 0)
		return nc;
	dir = walk_parent(t, comps, (size_t)nc, false, &r);
	target = dir != NULL ? lcfs_node_lookup_child(dir, comps[nc - 1]) : NULL;
	if (target == NULL) {
		*reason = "hard link to a path not seen before";
		return -EINVAL;
	}
	if (S_ISDIR(target->mode)) {
		*reason = "hard link to a directory";
		return -EINVAL;
	}
	if (target->scratch == 0) {
		r = inode_key_for(t, target, ++t->next_inode);
		if (r < 0)
			return r;
	}
	n = lcfs_node_clone(target);
	if (n == NULL)
		return -ENOMEM;
	r = inode_key_for(t, n, t->keys[target->scratch - 1].ino);
	if (r == 0) {
		/* The target's content may still be with a worker: the copy
		 * gets the digest along with it. */
		struct tar_job *job = ptrset_get(&t->pool->pending, target);

		if (job != NULL) {
			r = job_add_node(job, n);
			if (r == 0)
				r = ptrset_put(&t->pool->pending, n, job);
		}
	}
	if (r < 0) {
		lcfs_node_unref(n);
		return r;
	}
	*out = n;
	return 0;
}

/* Puts @node at @name in @dir, replacing what is there; a directory over
 * a directory keeps the old one's children. Takes @node's reference. */
static int place_node(struct lcfs_tar_tree *t, struct lcfs_node_s *dir, const char *name,
		      struct lcfs_node_s *node)
{
	struct lcfs_node_s *old = lcfs_node_lookup_child(dir, name);
	int r;

	if (old != NULL) {
		if (S_ISDIR(old->mode) && S_ISDIR(node->mode)) {
			lcfs_node_take_children(node, old);
		}
		remove_child(dir, name);
	}
	r = lcfs_node_add_child_n(dir, node, name, strlen(name));
	if (r == 0)
		r = remember_layer(t, node);
	else if (node->parent == NULL)
		lcfs_node_unref(node);
	return r;
}

/* New attributes for the root directory from a "./" entry. */
static int set_root(struct lcfs_tar_tree *t, struct lcfs_node_s *node)
{
	struct lcfs_node_s *old = t->root;

	lcfs_node_take_children(node, old);
	lcfs_node_unref(old);
	t->root = node;
	t->root_seen = true;
	return remember_layer(t, node);
}

/* In a flattened image: removes from @dir what lower layers put there. */
static void make_opaque(struct lcfs_tar_tree *t, struct lcfs_node_s *dir)
{
	for (size_t i = dir->n_children; i-- > 0;)
		if (!ptrset_has(&t->layer, dir->children[i]))
			lcfs_node_remove_child_at(dir, i);
}

/* The overlay whiteout for a ".wh.NAME" entry. */
static struct lcfs_node_s *whiteout_node(struct lcfs_tar_tree *t, struct archive_entry *e)
{
	struct lcfs_node_s *n = lcfs_node_new();

	if (n != NULL) {
		n->mode = S_IFCHR;
		set_mtime(t, n, e);
	}
	return n;
}

static int apply_entry(struct lcfs_tar_tree *t, struct archive *a, struct archive_entry *e,
		       const char *what)
{
	const char *path = archive_entry_pathname(e);
	const char *hardlink = archive_entry_hardlink(e);
	const char *reason = NULL;
	cleanup_free char **comps = NULL;
	cleanup_free char *copy = NULL;
	struct lcfs_node_s *dir, *node = NULL;
	const char *name;
	bool is_whiteout;
	int r = 0, nc;

	if (path == NULL)
		return entry_fail(t, what, "", EINVAL, "entry without a name");
	nc = split_path(path, &copy, &comps);
	if (nc < 0)
		return entry_fail(t, what, path, -nc,
				  nc == -EINVAL ? "path outside the tree" : strerror(-nc));

	if (nc == 0) {
		if (hardlink != NULL || archive_entry_filetype(e) != AE_IFDIR)
			return entry_fail(t, what, path, EINVAL,
					  "the root entry is not a directory");
		r = node_from_entry(t, a, e, &node, &reason);
		if (r == 0)
			r = set_root(t, node);
		if (r < 0)
			return entry_fail(t, what, path, -r, reason ? reason : strerror(-r));
		return 0;
	}

	name = comps[nc - 1];
	is_whiteout = strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0;
	/* A whiteout below a path that is no longer a directory has nothing
	 * to hide (umoci writes those after replacing a directory by a
	 * file), nor, when layers are flattened, below a path that is gone. */
	dir = walk_parent(t, comps, (size_t)nc, !(is_whiteout && t->apply_whiteouts), &r);
	if (dir == NULL && is_whiteout && (r == -ENOTDIR || (t->apply_whiteouts && r == -ENOENT)))
		return 0;
	if (dir == NULL)
		return entry_fail(t, what, path, -r,
				  r == -ENOTDIR ? "a parent is not a directory" :
						  strerror(-r));

	if (is_whiteout) {
		const char *target = name + strlen(WHITEOUT_PREFIX);

		if (strcmp(name, OPAQUE_NAME) == 0) {
			if (t->apply_whiteouts) {
				make_opaque(t, dir);
				return 0;
			}
			r = lcfs_node_set_xattr_n(dir, OPAQUE_XATTR, strlen(OPAQUE_XATTR), "y", 1);
			return r < 0 ? entry_fail(t, what, path, -r, strerror(-r)) : 0;
		}
		/* Other ".wh..wh." names are aufs bookkeeping, not files. */
		if (strncmp(target, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0)
			return 0;
		if (target[0] == '\0' || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
			return entry_fail(t, what, path, EINVAL, "whiteout without a name");
		if (t->apply_whiteouts) {
			remove_child(dir, target);
			return 0;
		}
		node = whiteout_node(t, e);
		if (node == NULL)
			return entry_fail(t, what, path, ENOMEM, strerror(ENOMEM));
		r = place_node(t, dir, target, node);
		return r < 0 ? entry_fail(t, what, path, -r, strerror(-r)) : 0;
	}

	if (hardlink != NULL)
		r = hardlink_node(t, hardlink, &node, &reason);
	else
		r = node_from_entry(t, a, e, &node, &reason);
	if (r < 0)
		return entry_fail(t, what, path, -r, reason ? reason : strerror(-r));

	/* A character device 0/0 is a whiteout to overlayfs: in a
	 * flattened image it deletes, like ".wh.NAME". */
	if (t->apply_whiteouts && S_ISCHR(node->mode) && node->rdev == 0) {
		lcfs_node_unref(node);
		remove_child(dir, name);
		return 0;
	}
	if ((t->flags & LCFS_BUILD_SKIP_DEVICES) &&
	    (S_ISCHR(node->mode) || S_ISBLK(node->mode))) {
		lcfs_node_unref(node);
		return 0;
	}
	r = place_node(t, dir, name, node);
	if (r < 0)
		return entry_fail(t, what, path, -r, strerror(-r));
	return 0;
}

int lcfs_tar_tree_apply(struct lcfs_tar_tree *t, struct archive *a, const char *what)
{
	struct archive_entry *e;
	int r;

	ptrset_clear(&t->layer);
	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return archive_fail(t, a, what, NULL);
		r = apply_entry(t, a, e, what);
		if (r == -EILSEQ && archive_error_string(a) != NULL) {
			/* The data of the entry could not be read: say why. */
			t->err->err = 0;
			t->err->msg[0] = '\0';
			return archive_fail(t, a, what, archive_entry_pathname(e));
		}
		/* A worker failed (the entry was given up for it): its
		 * error, rather than this entry's, is the one to report. */
		if (r == -ECANCELED || (r == 0 && (r = pool_collect(t, what, false)) < 0)) {
			t->err->err = 0;
			t->err->msg[0] = '\0';
			r = pool_collect(t, what, true);
			return r < 0 ? r : lcfs_error_set(t->err, EIO, "a worker thread failed");
		}
		if (r < 0)
			return r;
	}
	/* Every digest of the layer is known before it is checked, and
	 * before a later layer can refer to its files. */
	r = pool_collect(t, what, true);
	if (r < 0)
		return r;
	ptrset_clear(&t->layer);
	return 0;
}

/* ---- Decompression -------------------------------------------------------------------------- */

enum { INPUT_PLAIN, INPUT_GZIP, INPUT_ZSTD };

static int input_fail(struct lcfs_tar_input *in, int err, const char *msg)
{
	if (in->err == 0) {
		in->err = err;
		snprintf(in->msg, sizeof(in->msg), "%s", msg);
	}
	return -in->err;
}

/* More raw bytes into @in->in (after the unconsumed ones): 1 if some
 * were read, 0 at the end of the input, or -errno. */
static int input_fill(struct lcfs_tar_input *in)
{
	ssize_t n;

	if (in->raw_eof)
		return 0;
	if (in->in_pos > 0) {
		memmove(in->in, in->in + in->in_pos, in->in_len - in->in_pos);
		in->in_len -= in->in_pos;
		in->in_pos = 0;
	}
	if (in->in_len == INPUT_BLOCK)
		return 1;
	do
		n = read(in->fd, in->in + in->in_len, INPUT_BLOCK - in->in_len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = errno;

		return input_fail(in, err, strerror(err));
	}
	if (n == 0) {
		in->raw_eof = true;
		return 0;
	}
	if ((uint64_t)n > in->limit - in->raw_done)
		return input_fail(in, EBADMSG, "more data than its descriptor's size");
	in->raw_done += (uint64_t)n;
	if (in->raw_md != NULL)
		EVP_DigestUpdate(in->raw_md, in->in + in->in_len, (size_t)n);
	in->in_len += (size_t)n;
	return 1;
}

int lcfs_tar_input_init(struct lcfs_tar_input *in, int fd, uint64_t limit,
			EVP_MD_CTX *raw_md, EVP_MD_CTX *plain_md)
{
	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->limit = limit;
	in->raw_md = raw_md;
	in->plain_md = plain_md;
	in->in = malloc(INPUT_BLOCK);
	in->out = malloc(OUTPUT_BLOCK);
	if (in->in == NULL || in->out == NULL) {
		lcfs_tar_input_release(in);
		return -ENOMEM;
	}
	return 0;
}

void lcfs_tar_input_release(struct lcfs_tar_input *in)
{
	if (in->z != NULL) {
		inflateEnd(in->z);
		free(in->z);
	}
	ZSTD_freeDStream(in->zs);
	free(in->in);
	free(in->out);
	in->z = in->zs = NULL;
	in->in = in->out = NULL;
}

/* Tells the compression apart by the first bytes. */
static int input_detect(struct lcfs_tar_input *in)
{
	static const uint8_t gz[] = { 0x1f, 0x8b }, zst[] = { 0x28, 0xb5, 0x2f, 0xfd };
	int r;

	while (in->in_len < sizeof(zst) && (r = input_fill(in)) > 0)
		;
	if (in->err)
		return -in->err;
	in->kind = INPUT_PLAIN;
	if (in->in_len >= sizeof(gz) && memcmp(in->in, gz, sizeof(gz)) == 0) {
		z_stream *z = calloc(1, sizeof(*z));

		if (z == NULL || inflateInit2(z, 16 + MAX_WBITS) != Z_OK) {
			free(z);
			return input_fail(in, ENOMEM, strerror(ENOMEM));
		}
		in->z = z;
		in->kind = INPUT_GZIP;
	} else if (in->in_len >= sizeof(zst) && memcmp(in->in, zst, sizeof(zst)) == 0) {
		in->zs = ZSTD_createDStream();
		if (in->zs == NULL)
			return input_fail(in, ENOMEM, strerror(ENOMEM));
		in->kind = INPUT_ZSTD;
		in->zstd_hint = 1;
	}
	return 0;
}

/* The next piece of the decompressed stream in *@out (valid until the
 * next call): plain input as read, else up to OUTPUT_BLOCK bytes
 * decompressed into @in->out. The count, 0 at the end, or -errno. */
static ssize_t input_produce(struct lcfs_tar_input *in, const uint8_t **out)
{
	int r;

	if (in->err)
		return -in->err;
	if (in->kind == INPUT_PLAIN) {
		if (in->in_pos == in->in_len && (r = input_fill(in)) <= 0)
			return r;
		size_t n = in->in_len - in->in_pos;

		*out = in->in + in->in_pos;
		in->in_pos += n;
		if (in->plain_md != NULL)
			EVP_DigestUpdate(in->plain_md, *out, n);
		return (ssize_t)n;
	}
	*out = in->out;
	for (;;) {
		size_t produced;

		if (in->in_pos == in->in_len) {
			r = input_fill(in);
			if (r < 0)
				return r;
			if (r == 0) {
				bool done = in->kind == INPUT_GZIP ? in->member_done :
								     in->zstd_hint == 0;

				if (!done)
					return input_fail(in, EILSEQ,
							  in->kind == INPUT_GZIP ?
								  "truncated gzip stream" :
								  "truncated zstd stream");
				return 0;
			}
		}
		if (in->kind == INPUT_GZIP) {
			z_stream *z = in->z;

			if (in->member_done) {
				/* Another member, or the end. */
				if (in->in[in->in_pos] != 0x1f)
					return input_fail(in, EILSEQ,
							  "data after the end of the gzip stream");
				inflateReset(z);
				in->member_done = false;
			}
			z->next_in = in->in + in->in_pos;
			z->avail_in = (uInt)(in->in_len - in->in_pos);
			z->next_out = in->out;
			z->avail_out = OUTPUT_BLOCK;
			r = inflate(z, Z_NO_FLUSH);
			in->in_pos = in->in_len - z->avail_in;
			produced = OUTPUT_BLOCK - z->avail_out;
			if (r == Z_STREAM_END) {
				in->member_done = true;
			} else if (r != Z_OK && r != Z_BUF_ERROR) {
				char msg[128];

				snprintf(msg, sizeof(msg), "corrupt gzip stream: %s",
					 z->msg ? z->msg : "inflate failed");
				return input_fail(in, EILSEQ, msg);
			}
		} else {
			ZSTD_inBuffer ib = { in->in, in->in_len, in->in_pos };
			ZSTD_outBuffer ob = { in->out, OUTPUT_BLOCK, 0 };
			size_t ret = ZSTD_decompressStream(in->zs, &ob, &ib);

			if (ZSTD_isError(ret)) {
				char msg[128];

				snprintf(msg, sizeof(msg), "corrupt zstd stream: %s",
					 ZSTD_getErrorName(ret));
				return input_fail(in, EILSEQ, msg);
			}
			in->zstd_hint = ret;
			in->in_pos = ib.pos;
			produced = ob.pos;
		}
		if (produced > 0) {
			if (in->plain_md != NULL)
				EVP_DigestUpdate(in->plain_md, in->out, produced);
			return (ssize_t)produced;
		}
	}
}

static la_ssize_t input_read_cb(struct archive *a, void *data, const void **buf)
{
	struct lcfs_tar_input *in = data;
	const uint8_t *out = NULL;
	ssize_t n = input_produce(in, &out);

	if (n < 0) {
		archive_set_error(a, in->err, "%s", in->msg);
		return -1;
	}
	*buf = out;
	return n;
}

int lcfs_tar_input_open(struct lcfs_tar_input *in, struct archive *a)
{
	int r = input_detect(in);

	if (r < 0)
		return r;
	if (archive_read_open(a, in, NULL, input_read_cb, NULL) != ARCHIVE_OK) {
		const char *msg = archive_error_string(a);

		return input_fail(in, EILSEQ, msg ? msg : "not a tar stream");
	}
	return 0;
}

int lcfs_tar_input_drain(struct lcfs_tar_input *in)
{
	const uint8_t *out;
	ssize_t n;

	while ((n = input_produce(in, &out)) > 0)
		;
	return (int)n;
}

/* ---- The single-layer mode -------------------------------------------------------------------- */

struct lcfs_node_s *lcfs_tar_build(int fd, const struct lcfs_oci_options_s *opts,
				   struct lcfs_error *err)
{
	struct lcfs_store *store = NULL;
	struct lcfs_tar_input in = { .fd = -1 };
	struct lcfs_tar_tree t;
	struct lcfs_node_s *root = NULL;
	struct archive *a;
	int r;

	if (lcfs_tar_store_open(opts, &store, err) < 0)
		return NULL;
	r = lcfs_tar_tree_init(&t, opts, false, store, err);
	if (r < 0) {
		lcfs_error_set(err, -r, "%s", strerror(-r));
		lcfs_store_free(store);
		return NULL;
	}
	a = lcfs_tar_reader_new();
	if (a == NULL || lcfs_tar_input_init(&in, fd, UINT64_MAX, NULL, NULL) < 0) {
		r = lcfs_error_set(err, ENOMEM, "cannot set up the tar reader");
	} else {
		r = lcfs_tar_input_open(&in, a);
		if (r < 0)
			lcfs_error_set(err, -r, "%s", in.msg);
		if (r == 0)
			r = lcfs_tar_tree_apply(&t, a, NULL);
		/* The end of a compressed stream carries its checksum. */
		if (r == 0 && (r = lcfs_tar_input_drain(&in)) < 0)
			lcfs_error_set(err, -r, "%s", in.msg);
	}
	if (a != NULL)
		archive_read_free(a);
	lcfs_tar_input_release(&in);
	if (r == 0)
		root = lcfs_tar_tree_finish(&t, err);
	else
		lcfs_tar_tree_release(&t);
	lcfs_store_free(store);
	return root;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_load_node_from_tar(int fd,
							const struct lcfs_oci_options_s *opts,
							char **error_out)
{
	struct lcfs_oci_options_s defaults = { 0 };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;

	if (error_out != NULL)
		*error_out = NULL;
	root = lcfs_tar_build(fd, opts != NULL ? opts : &defaults, &err);
	if (root == NULL)
		lcfs_error_to_public(&err, error_out);
	return root;
}
