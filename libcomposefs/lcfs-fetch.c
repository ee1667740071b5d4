/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Fetching objects into a store with the libcurl multi interface. See
 * lcfs-fetch.h for the contract.
 *
 * Up to `jobs` transfers run at once, over HTTP/2 streams of one
 * connection where the server offers it, else over parallel connections.
 * The objects of a run are sorted by name first, so that the store's
 * subdirectories fill in turn. Each transfer owns one unnamed temporary
 * file of the store and one fs-verity hasher; the data goes through both
 * as it arrives, and nothing is read back.
 */
#include "config.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "lcfs-fetch.h"
#include "lcfs-fsverity.h"
#include "lcfs-tools.h"
#include "lcfs-walk.h"

#define DEFAULT_JOBS 16
#define MAX_JOBS 256
#define DEFAULT_RETRIES 5
#define DEFAULT_TIMEOUT 30
/* Delay before the first new attempt; doubled each time up to the cap. */
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 8000
#define MAX_REDIRECTS 5

enum obj_state { OBJ_QUEUED, OBJ_ACTIVE, OBJ_DONE, OBJ_FAILED };

struct fetch_obj {
	uint8_t digest[LCFS_DIGEST_SIZE];
	uint64_t size; /* exact size, or the bound of an image */
	bool is_image;
	bool replace;  /* a damaged object with this name is in the way */
	uint8_t state;
	unsigned attempts;
	uint64_t not_before; /* ms, monotonic: retry delay */
};

struct failure {
	char *name;
	char *reason;
};

struct transfer {
	struct lcfs_fetch *f;
	size_t obj; /* index in f->objs; SIZE_MAX when the slot is free */
	CURL *easy;
	struct lcfs_store_object so;
	struct lcfs_fsverity_stream *hash;
	uint64_t got;
	int write_err; /* errno of a failed write to the temporary file */
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
};

struct lcfs_fetch {
	struct lcfs_store *st;
	char *base;
	unsigned jobs, retries, timeout;
	char *cacert;
	struct curl_slist *headers;
	void (*progress)(void *, uint64_t, uint64_t, uint64_t);
	void *progress_data;

	CURLM *multi;
	struct transfer *slots;
	unsigned active;

	struct fetch_obj *objs;
	size_t n_objs, cap_objs;
	size_t run_start; /* first object of the current run */
	size_t cursor;    /* next queued object never tried */
	size_t *retry;    /* queued objects waiting for a new attempt */
	size_t n_retry, cap_retry;

	struct failure *failures;
	size_t n_failures, cap_failures;
	size_t n_bad_entries; /* failures that are image entries, not objects */
	struct lcfs_fetch_stats stats;
	uint64_t last_progress;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- Setup -------------------------------------------------------------- */

static bool url_scheme_ok(const char *url)
{
	static const char *const schemes[] = { "http://", "https://", "file://" };

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncasecmp(url, schemes[i], strlen(schemes[i])) == 0)
			return true;
	}
	return false;
}

int lcfs_fetch_new(struct lcfs_store *st, const struct lcfs_fetch_options *opts,
		   struct lcfs_fetch **out, struct lcfs_error *err)
{
	struct lcfs_fetch *f;
	size_t len;

	if (opts->url == NULL || !url_scheme_ok(opts->url))
		return lcfs_error_set(err, EINVAL, "URL '%s' is not http, https or file",
				      opts->url ? opts->url : "");
	if (opts->jobs > MAX_JOBS)
		return lcfs_error_set(err, EINVAL, "at most %d transfers at once", MAX_JOBS);
	pthread_once(&curl_once, curl_init);
	if (curl_init_result != CURLE_OK)
		return lcfs_error_set(err, EIO, "cannot initialise libcurl: %s",
				      curl_easy_strerror(curl_init_result));

	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return lcfs_error_set(err, ENOMEM, "out of memory");
	f->st = st;
	f->jobs = opts->jobs ? opts->jobs : DEFAULT_JOBS;
	f->retries = opts->retries ? opts->retries : DEFAULT_RETRIES;
	f->timeout = opts->timeout ? opts->timeout : DEFAULT_TIMEOUT;
	f->progress = opts->progress;
	f->progress_data = opts->progress_data;
	len = strlen(opts->url);
	while (len > 0 && opts->url[len - 1] == '/')
		len--;
	f->base = strndup(opts->url, len);
	if (opts->cacert != NULL)
		f->cacert = strdup(opts->cacert);
	for (size_t i = 0; opts->headers != NULL && opts->headers[i] != NULL; i++) {
		struct curl_slist *l;

		if (strchr(opts->headers[i], ':') == NULL ||
		    strpbrk(opts->headers[i], "\r\n") != NULL) {
			lcfs_error_set(err, EINVAL, "header '%s' is not 'Name: value'",
				       opts->headers[i]);
			lcfs_fetch_free(f);
			return -EINVAL;
		}
		l = curl_slist_append(f->headers, opts->headers[i]);
		if (l == NULL)
			goto oom;
		f->headers = l;
	}
	f->slots = calloc(f->jobs, sizeof(*f->slots));
	f->multi = curl_multi_init();
	if (f->base == NULL || (opts->cacert != NULL && f->cacert == NULL) ||
	    f->slots == NULL || f->multi == NULL)
		goto oom;
	for (unsigned i = 0; i < f->jobs; i++) {
		f->slots[i].obj = SIZE_MAX;
		f->slots[i].so.fd = -1;
		f->slots[i].so.subfd = -1;
	}
	/* HTTP/2 streams on one connection where offered; never more
	 * connections than transfers. */
	curl_multi_setopt(f->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)f->jobs);
	*out = f;
	return 0;
oom:
	lcfs_fetch_free(f);
	return lcfs_error_set(err, ENOMEM, "out of memory");
}

static void transfer_release(struct transfer *t)
{
	if (t->easy != NULL) {
		curl_multi_remove_handle(t->f->multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	if (t->hash != NULL) {
		lcfs_fsverity_stream_free(t->hash);
		t->hash = NULL;
	}
	if (t->so.fd >= 0 || t->so.subfd >= 0 || t->so.tmp_name[0] != '\0')
		lcfs_store_object_discard(t->f->st, &t->so);
	t->so.fd = -1;
	t->so.subfd = -1;
	t->obj = SIZE_MAX;
}

void lcfs_fetch_free(struct lcfs_fetch *f)
{
	if (f == NULL)
		return;
	for (unsigned i = 0; f->slots != NULL && i < f->jobs; i++) {
		if (f->slots[i].obj != SIZE_MAX)
			transfer_release(&f->slots[i]);
	}
	if (f->multi != NULL)
		curl_multi_cleanup(f->multi);
	curl_slist_free_all(f->headers);
	for (size_t i = 0; i < f->n_failures; i++) {
		free(f->failures[i].name);
		free(f->failures[i].reason);
	}
	free(f->failures);
	free(f->slots);
	free(f->objs);
	free(f->retry);
	free(f->base);
	free(f->cacert);
	free(f);
}

/* ---- The list of objects ------------------------------------------------ */

/* Room for one more element in the array @arr of @n elements of @elem
 * bytes, *@cap allocated: the array (moved perhaps), or NULL when out of
 * memory (@arr is then unchanged). */
static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	size_t new_cap;
	void *a;

	if (n < *cap)
		return arr;
	new_cap = *cap ? 2 * *cap : 16;
	a = realloc(arr, new_cap * elem);
	if (a != NULL)
		*cap = new_cap;
	return a;
}

int lcfs_fetch_add(struct lcfs_fetch *f, const uint8_t digest[LCFS_DIGEST_SIZE],
		   uint64_t size, bool is_image)
{
	struct fetch_obj *o, *a;

	a = grow(f->objs, &f->cap_objs, f->n_objs, sizeof(*f->objs));
	if (a == NULL)
		return -ENOMEM;
	f->objs = a;
	o = &f->objs[f->n_objs++];
	memset(o, 0, sizeof(*o));
	memcpy(o->digest, digest, LCFS_DIGEST_SIZE);
	o->size = size;
	o->is_image = is_image;
	o->state = OBJ_QUEUED;
	return 0;
}

static int add_failure(struct lcfs_fetch *f, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int add_failure(struct lcfs_fetch *f, const char *name, const char *fmt, ...)
{
	struct failure *fl, *a;
	va_list ap;
	char *reason;
	int n;

	a = grow(f->failures, &f->cap_failures, f->n_failures, sizeof(*f->failures));
	if (a == NULL)
		return -ENOMEM;
	f->failures = a;
	va_start(ap, fmt);
	n = vasprintf(&reason, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	fl = &f->failures[f->n_failures];
	fl->name = strdup(name);
	if (fl->name == NULL) {
		free(reason);
		return -ENOMEM;
	}
	/* Reasons quote server messages: keep them one harmless line. */
	for (char *p = reason; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	fl->reason = reason;
	f->n_failures++;
	f->stats.failed++;
	return 0;
}

/* Queues the object of one node of an image (lcfs_walk_tree() callback). */
static int add_node(struct lcfs_walk *w, void *data)
{
	struct lcfs_fetch *f = data;
	struct lcfs_node_s *node = w->node;
	const uint8_t *xattr_digest;
	uint8_t digest[LCFS_DIGEST_SIZE];
	const char *payload;

	if ((lcfs_node_get_mode(node) & S_IFMT) != S_IFREG ||
	    lcfs_node_get_hardlink_target(node) != NULL)
		return 0;
	payload = lcfs_node_get_payload(node);
	if (payload == NULL)
		return 0; /* inline or empty */
	xattr_digest = lcfs_node_get_fsverity_digest(node);
	if (!lcfs_digest_from_object_path(payload, digest) ||
	    (xattr_digest != NULL && memcmp(xattr_digest, digest, LCFS_DIGEST_SIZE) != 0)) {
		f->n_bad_entries++;
		return add_failure(f, payload,
				   xattr_digest != NULL && lcfs_digest_from_object_path(payload, digest) ?
					   "the file's fs-verity digest differs from its name" :
					   "not an object name");
	}
	return lcfs_fetch_add(f, digest, lcfs_node_get_size(node), false);
}

int lcfs_fetch_add_image(struct lcfs_fetch *f, int fd, struct lcfs_error *err)
{
	struct lcfs_node_s *root;
	struct stat sb;
	void *map;
	int r;

	if (fstat(fd, &sb) < 0)
		return lcfs_error_set(err, errno, "cannot read image: %s", strerror(errno));
	if (!S_ISREG(sb.st_mode) || sb.st_size == 0 ||
	    (uint64_t)sb.st_size > LCFS_FETCH_IMAGE_MAX)
		return lcfs_error_set(err, EINVAL, "not an image (size %" PRIu64 ")",
				      (uint64_t)sb.st_size);
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return lcfs_error_set(err, errno, "cannot map image: %s", strerror(errno));
	root = lcfs_image_load(map, (size_t)sb.st_size, NULL, err);
	munmap(map, (size_t)sb.st_size);
	if (root == NULL)
		return err != NULL && err->err ? -err->err : -EINVAL;

	r = lcfs_walk_tree(root, 0, add_node, f);
	lcfs_node_unref(root);
	if (r < 0)
		return lcfs_error_set(err, -r, "cannot list the image's objects: %s",
				      strerror(-r));
	return 0;
}

/* ---- Transfers ---------------------------------------------------------- */

int lcfs_fetch_open_object(int dirfd, const char *path)
{
	return lcfs_open_confined(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

/* Whether object @o is already in the store: 1 present, 0 absent (with
 * o->replace set when a wrong file has its name), or -errno. */
static int object_present(int dirfd, struct fetch_obj *o)
{
	char path[LCFS_STORE_PATH_SIZE];
	uint8_t digest[LCFS_DIGEST_SIZE];
	cleanup_fd int fd = -1;
	struct stat sb;
	int r;

	lcfs_store_object_path(o->digest, path);
	fd = lcfs_fetch_open_object(dirfd, path);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EEXIST;
	if (o->is_image) {
		r = lcfs_fsverity_digest_fd_fast(fd, (uint64_t)sb.st_size, digest);
		if (r < 0)
			return r;
		o->replace = memcmp(digest, o->digest, LCFS_DIGEST_SIZE) != 0;
	} else {
		o->replace = (uint64_t)sb.st_size != o->size;
	}
	return !o->replace;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	struct fetch_obj *o = &t->f->objs[t->obj];
	size_t n = size * nmemb;
	int r;

	if (n > o->size - t->got) {
		t->too_big = true;
		return 0; /* aborts the transfer */
	}
	r = lcfs_pwrite_all(t->so.fd, data, n, t->got);
	if (r < 0) {
		t->write_err = -r;
		return 0;
	}
	lcfs_fsverity_stream_update(t->hash, data, n);
	t->got += n;
	t->f->stats.bytes += n;
	return n;
}

static int start_transfer(struct lcfs_fetch *f, struct transfer *t, size_t idx)
{
	struct fetch_obj *o = &f->objs[idx];
	char path[LCFS_STORE_PATH_SIZE];
	char *url;
	CURL *e;
	int r;

	lcfs_store_object_path(o->digest, path);
	t->f = f;
	t->obj = idx;
	t->got = 0;
	t->write_err = 0;
	t->too_big = false;
	t->errbuf[0] = '\0';
	r = lcfs_store_object_create(f->st, o->digest, &t->so);
	if (r < 0) {
		t->obj = SIZE_MAX;
		return r;
	}
	t->hash = lcfs_fsverity_stream_new();
	t->easy = e = curl_easy_init();
	if (asprintf(&url, "%s/%s", f->base, path) < 0)
		url = NULL;
	if (t->hash == NULL || e == NULL || url == NULL) {
		free(url);
		transfer_release(t);
		return -ENOMEM;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the bit masks are deprecated */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS | CURLPROTO_FILE));
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
	curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)f->timeout);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)f->timeout);
	/* Refused before any data when the server announces a larger body. */
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->size);
	if (f->cacert != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, f->cacert);
	if (f->headers != NULL)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers);
	if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
		transfer_release(t);
		return -ENOMEM;
	}
	o->state = OBJ_ACTIVE;
	o->attempts++;
	f->active++;
	return 0;
}

static bool curl_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static int fail_object(struct lcfs_fetch *f, size_t idx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_object(struct lcfs_fetch *f, size_t idx, const char *fmt, ...)
{
	char hex[2 * LCFS_DIGEST_SIZE + 1];
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	f->objs[idx].state = OBJ_FAILED;
	lcfs_digest_to_hex(f->objs[idx].digest, hex);
	return add_failure(f, hex, "%s", reason);
}

/* Schedules another attempt after a transient failure described by
 * @reason, or gives up when the attempts are used up. */
static int retry_object(struct lcfs_fetch *f, size_t idx, const char *reason)
{
	struct fetch_obj *o = &f->objs[idx];
	uint64_t delay;
	size_t *a;
	uint32_t jitter = 0;

	if (o->attempts > f->retries)
		return fail_object(f, idx, "%s (%u attempts)", reason, o->attempts);
	a = grow(f->retry, &f->cap_retry, f->n_retry, sizeof(*f->retry));
	if (a == NULL)
		return -ENOMEM;
	f->retry = a;
	delay = (uint64_t)BACKOFF_FIRST_MS << (o->attempts - 1 < 6 ? o->attempts - 1 : 6);
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	/* Up to a quarter more, so that many failures do not retry in step. */
	if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != sizeof(jitter))
		jitter = (uint32_t)idx * 2654435761u;
	delay += jitter % (delay / 4 + 1);
	o->state = OBJ_QUEUED;
	o->not_before = now_ms() + delay;
	f->retry[f->n_retry++] = idx;
	return 0;
}

/* The outcome of a finished transfer @t (result @rc). 0 or a fatal -errno. */
static int finish_transfer(struct lcfs_fetch *f, struct transfer *t, CURLcode rc)
{
	size_t idx = t->obj;
	struct fetch_obj *o = &f->objs[idx];
	uint8_t digest[LCFS_DIGEST_SIZE];
	char hex[2 * LCFS_DIGEST_SIZE + 1];
	char reason[CURL_ERROR_SIZE + 64];
	long status = 0;
	int r = 0;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	f->active--;
	if (t->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		r = fail_object(f, idx, "response larger than the %" PRIu64 " bytes expected",
				o->size);
	} else if (t->write_err != 0) {
		r = fail_object(f, idx, "cannot write to the store: %s",
				strerror(t->write_err));
	} else if (rc == CURLE_HTTP_RETURNED_ERROR) {
		snprintf(reason, sizeof(reason), "HTTP status %ld", status);
		if (status >= 500 || status == 408 || status == 429)
			r = retry_object(f, idx, reason);
		else
			r = fail_object(f, idx, "%s", reason);
	} else if (rc != CURLE_OK) {
		snprintf(reason, sizeof(reason), "%s",
			 t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(rc));
		if (curl_transient(rc))
			r = retry_object(f, idx, reason);
		else
			r = fail_object(f, idx, "%s", reason);
	} else if (!o->is_image && t->got != o->size) {
		/* A connection closed early without a length given. */
		snprintf(reason, sizeof(reason),
			 "short response: %" PRIu64 " of %" PRIu64 " bytes", t->got, o->size);
		r = retry_object(f, idx, reason);
	} else {
		r = lcfs_fsverity_stream_final(t->hash, digest);
		t->hash = NULL;
		if (r == 0 && memcmp(digest, o->digest, LCFS_DIGEST_SIZE) != 0) {
			lcfs_digest_to_hex(digest, hex);
			r = fail_object(f, idx, "wrong content: its digest is %s", hex);
		} else if (r == 0) {
			r = lcfs_store_object_commit(f->st, &t->so, o->replace);
			if (r < 0) {
				r = fail_object(f, idx, "cannot publish: %s", strerror(-r));
			} else {
				o->state = OBJ_DONE;
				f->stats.fetched++;
			}
		}
	}
	transfer_release(t);
	return r;
}

static int cmp_objs(const void *a, const void *b)
{
	const struct fetch_obj *x = a, *y = b;
	int c = memcmp(x->digest, y->digest, LCFS_DIGEST_SIZE);

	/* Images first, so that a digest listed both ways keeps the bound. */
	return c != 0 ? c : (int)y->is_image - (int)x->is_image;
}

static int cmp_digest(const void *key, const void *elem)
{
	return memcmp(key, ((const struct fetch_obj *)elem)->digest, LCFS_DIGEST_SIZE);
}

bool lcfs_fetch_has(const struct lcfs_fetch *f, const uint8_t digest[LCFS_DIGEST_SIZE])
{
	/* After each run, all objects so far are sorted by name. */
	const struct fetch_obj *o =
		f->run_start == 0 ? NULL :
				    bsearch(digest, f->objs, f->run_start, sizeof(*f->objs), cmp_digest);

	return o != NULL && o->state == OBJ_DONE;
}

/* Sorts the objects of this run by name and drops repeated names, and
 * those already handled by an earlier run. */
static void prepare_run(struct lcfs_fetch *f)
{
	size_t n = f->n_objs - f->run_start, w = 0;
	struct fetch_obj *run;

	f->cursor = f->run_start;
	if (n == 0)
		return;
	run = f->objs + f->run_start;
	qsort(run, n, sizeof(*run), cmp_objs);
	for (size_t i = 0; i < n; i++) {
		if (w > 0 && memcmp(run[w - 1].digest, run[i].digest, LCFS_DIGEST_SIZE) == 0)
			continue;
		if (f->run_start > 0 &&
		    bsearch(run[i].digest, f->objs, f->run_start, sizeof(*f->objs),
			    cmp_digest) != NULL)
			continue;
		run[w++] = run[i];
	}
	f->n_objs = f->run_start + w;
}

/* Next object to start: a retry that is due, else a new one. SIZE_MAX if
 * none now; *@wait_ms then says when a retry falls due. */
static size_t next_object(struct lcfs_fetch *f, uint64_t now, long *wait_ms)
{
	for (size_t i = 0; i < f->n_retry; i++) {
		size_t idx = f->retry[i];
		uint64_t due = f->objs[idx].not_before;

		if (due <= now) {
			f->retry[i] = f->retry[--f->n_retry];
			return idx;
		}
		if ((long)(due - now) < *wait_ms)
			*wait_ms = (long)(due - now);
	}
	if (f->cursor < f->n_objs)
		return f->cursor++;
	return SIZE_MAX;
}

static void report_progress(struct lcfs_fetch *f, bool force)
{
	uint64_t now = now_ms();
	uint64_t done = f->stats.present + f->stats.fetched;

	if (f->progress == NULL || (!force && now - f->last_progress < 100))
		return;
	f->last_progress = now;
	/* Entries of an image that name no object count as failed objects. */
	f->progress(f->progress_data, done + f->stats.failed, f->n_objs + f->n_bad_entries,
		    f->stats.bytes);
}

/* Starts transfers until all slots are busy or nothing is ready. */
static int fill_slots(struct lcfs_fetch *f, long *wait_ms)
{
	unsigned slot = 0;

	while (f->active < f->jobs) {
		uint64_t now = now_ms();
		size_t idx = next_object(f, now, wait_ms);
		int r;

		if (idx == SIZE_MAX)
			break;
		if (f->objs[idx].attempts == 0) {
			r = object_present(lcfs_store_dirfd(f->st), &f->objs[idx]);
			if (r < 0) {
				char path[LCFS_STORE_PATH_SIZE];

				lcfs_store_object_path(f->objs[idx].digest, path);
				r = fail_object(f, idx, "cannot check '%s' in the store: %s", path,
						strerror(-r));
				if (r < 0)
					return r;
				continue;
			}
			if (r > 0) {
				f->objs[idx].state = OBJ_DONE;
				f->stats.present++;
				report_progress(f, false);
				continue;
			}
		}
		while (f->slots[slot].obj != SIZE_MAX)
			slot++;
		r = start_transfer(f, &f->slots[slot], idx);
		if (r < 0) {
			r = fail_object(f, idx, "cannot create a temporary file: %s",
					strerror(-r));
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int lcfs_fetch_run(struct lcfs_fetch *f)
{
	size_t failed_before = f->n_failures;
	int r = 0;

	prepare_run(f);
	for (;;) {
		long wait_ms = 1000;
		int running = 0, finished;
		CURLMsg *msg;
		int left;

		r = fill_slots(f, &wait_ms);
		if (r < 0)
			break;
		if (f->active == 0 && f->n_retry == 0 && f->cursor == f->n_objs)
			break;
		if (f->active == 0) {
			/* Only retries are left: wait for the first one due. */
			struct timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if (curl_multi_perform(f->multi, &running) != CURLM_OK) {
			r = -EIO;
			break;
		}
		finished = 0;
		while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
			char *priv = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			r = finish_transfer(f, (struct transfer *)priv, msg->data.result);
			if (r < 0)
				break;
			finished++;
		}
		if (r < 0)
			break;
		report_progress(f, false);
		/* Slots were freed: fill them before waiting. */
		if (finished == 0 &&
		    curl_multi_poll(f->multi, NULL, 0, (int)wait_ms, NULL) != CURLM_OK) {
			r = -EIO;
			break;
		}
	}
	report_progress(f, true);
	/* Whatever stopped the run, no transfer stays half done. */
	for (unsigned i = 0; i < f->jobs; i++) {
		if (f->slots[i].obj != SIZE_MAX) {
			f->objs[f->slots[i].obj].state = OBJ_QUEUED;
			transfer_release(&f->slots[i]);
		}
	}
	f->active = 0;
	f->n_retry = 0;
	/* Later runs look up earlier objects by name. */
	if (f->n_objs > 0)
		qsort(f->objs, f->n_objs, sizeof(*f->objs), cmp_objs);
	f->run_start = f->n_objs;
	if (r < 0)
		return r;
	return f->n_failures > failed_before ? -EIO : 0;
}

void lcfs_fetch_get_stats(const struct lcfs_fetch *f, struct lcfs_fetch_stats *stats)
{
	*stats = f->stats;
}

bool lcfs_fetch_failure(const struct lcfs_fetch *f, size_t i, const char **name,
			const char **reason)
{
	if (i >= f->n_failures)
		return false;
	*name = f->failures[i].name;
	*reason = f->failures[i].reason;
	return true;
}

/* ---- On-demand fetches ------------------------------------------------------- */

struct inflight {
	struct inflight *next;
	uint8_t digest[LCFS_DIGEST_SIZE];
	bool done;
	int result;
	struct lcfs_error err;
	unsigned waiters;
};

struct lcfs_fetcher {
	char *store;  /* absolute path */
	int dirfd;    /* the store directory, for presence checks */
	struct lcfs_fetch_options opts; /* the strings below are copies */
	char *url, *cacert;
	char **headers;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct inflight *inflight;
};

void lcfs_fetcher_free(struct lcfs_fetcher *fr)
{
	if (fr == NULL)
		return;
	if (fr->dirfd >= 0)
		close(fr->dirfd);
	free(fr->store);
	free(fr->url);
	free(fr->cacert);
	for (size_t i = 0; fr->headers != NULL && fr->headers[i] != NULL; i++)
		free(fr->headers[i]);
	free(fr->headers);
	pthread_mutex_destroy(&fr->lock);
	pthread_cond_destroy(&fr->cond);
	free(fr);
}

int lcfs_fetcher_new(const char *store, const struct lcfs_fetch_options *opts,
		     struct lcfs_fetcher **out, struct lcfs_error *err)
{
	struct lcfs_fetch *probe = NULL;
	struct lcfs_store *st = NULL;
	struct lcfs_fetcher *fr;
	size_t n = 0;
	int r;

	/* Creates the store if need be, and checks the options once with
	 * the rules of every fetch. */
	r = lcfs_store_open(store, &st);
	if (r < 0)
		return lcfs_error_set(err, -r, "cannot open store '%s': %s", store, strerror(-r));
	r = lcfs_fetch_new(st, opts, &probe, err);
	lcfs_fetch_free(probe);
	lcfs_store_free(st);
	if (r < 0)
		return r;
	fr = calloc(1, sizeof(*fr));
	if (fr == NULL)
		return lcfs_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&fr->lock, NULL);
	pthread_cond_init(&fr->cond, NULL);
	/* Absolute: a daemon changes its directory. */
	fr->store = realpath(store, NULL);
	fr->dirfd = fr->store == NULL ? -1 :
		open(fr->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fr->dirfd < 0) {
		r = -errno;
		lcfs_fetcher_free(fr);
		return lcfs_error_set(err, -r, "cannot open store '%s': %s", store, strerror(-r));
	}
	fr->opts = *opts;
	fr->opts.progress = NULL;
	fr->url = strdup(opts->url);
	fr->cacert = opts->cacert ? strdup(opts->cacert) : NULL;
	while (opts->headers != NULL && opts->headers[n] != NULL)
		n++;
	fr->headers = calloc(n + 1, sizeof(char *));
	if (fr->url == NULL || (opts->cacert && fr->cacert == NULL) || fr->headers == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		fr->headers[i] = strdup(opts->headers[i]);
		if (fr->headers[i] == NULL)
			goto oom;
	}
	fr->opts.url = fr->url;
	fr->opts.cacert = fr->cacert;
	fr->opts.headers = (const char *const *)fr->headers;
	fr->opts.jobs = 1;
	*out = fr;
	return 0;
oom:
	lcfs_fetcher_free(fr);
	return lcfs_error_set(err, ENOMEM, "out of memory");
}

/* One object, fetched by the calling thread. The store is opened (which
 * takes its shared lock, held until it is freed) for this object only: a mount must not keep the
 * store locked for its whole life. */
static int fetch_one(struct lcfs_fetcher *fr, const uint8_t digest[LCFS_DIGEST_SIZE],
		     uint64_t size, struct lcfs_error *err)
{
	struct lcfs_store *st = NULL;
	struct lcfs_fetch *f = NULL;
	const char *name, *reason;
	int r;

	r = lcfs_store_open(fr->store, &st);
	if (r < 0)
		return lcfs_error_set(err, -r, "cannot open the store: %s", strerror(-r));
	r = lcfs_fetch_new(st, &fr->opts, &f, err);
	if (r == 0)
		r = lcfs_fetch_add(f, digest, size, false);
	if (r == 0)
		r = lcfs_fetch_run(f);
	if (r == -EIO && lcfs_fetch_failure(f, 0, &name, &reason))
		lcfs_error_set(err, EIO, "%s", reason);
	else if (r < 0)
		lcfs_error_set(err, -r, "%s", strerror(-r));
	lcfs_fetch_free(f);
	lcfs_store_free(st);
	return r;
}

int lcfs_fetcher_get(struct lcfs_fetcher *fr, const uint8_t digest[LCFS_DIGEST_SIZE],
		     uint64_t size, struct lcfs_error *err)
{
	struct fetch_obj o = { .size = size };
	struct inflight *in, **pp;
	int r;

	/* The common case: it is there. */
	memcpy(o.digest, digest, LCFS_DIGEST_SIZE);
	if (object_present(fr->dirfd, &o) > 0)
		return 0;

	pthread_mutex_lock(&fr->lock);
	for (in = fr->inflight; in != NULL; in = in->next) {
		if (memcmp(in->digest, digest, LCFS_DIGEST_SIZE) == 0)
			break;
	}
	if (in != NULL) {
		/* Someone is downloading it: wait for that outcome. */
		in->waiters++;
		while (!in->done)
			pthread_cond_wait(&fr->cond, &fr->lock);
		r = in->result;
		if (r < 0 && err != NULL)
			*err = in->err;
		if (--in->waiters == 0)
			free(in);
		pthread_mutex_unlock(&fr->lock);
		return r;
	}
	in = calloc(1, sizeof(*in));
	if (in == NULL) {
		pthread_mutex_unlock(&fr->lock);
		return lcfs_error_set(err, ENOMEM, "out of memory");
	}
	memcpy(in->digest, digest, LCFS_DIGEST_SIZE);
	in->waiters = 1;
	in->next = fr->inflight;
	fr->inflight = in;
	pthread_mutex_unlock(&fr->lock);

	r = fetch_one(fr, digest, size, &in->err);

	pthread_mutex_lock(&fr->lock);
	for (pp = &fr->inflight; *pp != in; pp = &(*pp)->next)
		;
	*pp = in->next;
	in->done = true;
	in->result = r;
	if (r < 0 && err != NULL)
		*err = in->err;
	pthread_cond_broadcast(&fr->cond);
	if (--in->waiters == 0)
		free(in);
	pthread_mutex_unlock(&fr->lock);
	return r;
}
