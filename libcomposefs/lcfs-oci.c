/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * A tree from an OCI image layout: index.json -> (nested indexes) ->
 * manifest -> config and layers, the layers applied in order by the tar
 * reader (lcfs-tar.c) with OCI whiteout semantics. See lcfs-oci.h.
 *
 * Everything in the layout is untrusted. Blobs are opened below the
 * layout without following symlinks, JSON documents are bounded in size
 * and checked against their digest before they are parsed, and each layer
 * is hashed twice while it streams through: compressed (the blob digest
 * and size of its descriptor) and uncompressed (the config's diff_id). A
 * layer that fails either check fails the whole build, and no image is
 * written; objects it put into the store are named by their own content,
 * so they are correct objects whatever the layer's fate.
 */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "lcfs-tar.h"
#include "lcfs-error.h"
#include "lcfs-util.h"

/* Largest index, manifest or config accepted. */
#define JSON_MAX (4u << 20)
/* Nesting of indexes followed, and of JSON values parsed. */
#define INDEX_DEPTH_MAX 8
#define JSON_DEPTH_MAX 64

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REF_ANNOTATION "org.opencontainers.image.ref.name"

static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.oci.image.layer.nondistributable.v1.tar",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	"application/vnd.docker.image.rootfs.diff.tar",
	"application/vnd.docker.image.rootfs.diff.tar.gzip",
	"application/vnd.docker.image.rootfs.diff.tar.zstd",
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

struct oci_ctx {
	int dirfd;
	const char *layout;
	struct lcfs_error *err;
	char os[64], arch[64], variant[64];
};

/* A content descriptor, its strings borrowed from the JSON document. */
struct descriptor {
	const char *media_type; /* NULL if absent */
	const char *digest;
	uint64_t size;
	json_object *obj;
};

/* ---- Digests ---------------------------------------------------------------------------- */

/* The hash of a "ALG:HEX" digest string, checked for form. NULL with
 * *@errp (-EBADMSG malformed, -ENOTSUP unknown algorithm). */
static const EVP_MD *digest_algorithm(const char *digest, int *errp)
{
	const char *hex = strchr(digest, ':');
	const EVP_MD *md;
	size_t want;

	if (hex == NULL) {
		*errp = -EBADMSG;
		return NULL;
	}
	if ((size_t)(hex - digest) == 6 && strncmp(digest, "sha256", 6) == 0) {
		md = EVP_sha256();
		want = 64;
	} else if ((size_t)(hex - digest) == 6 && strncmp(digest, "sha512", 6) == 0) {
		md = EVP_sha512();
		want = 128;
	} else {
		*errp = -ENOTSUP;
		return NULL;
	}
	hex++;
	if (strlen(hex) != want) {
		*errp = -EBADMSG;
		return NULL;
	}
	for (size_t i = 0; i < want; i++) {
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
			*errp = -EBADMSG;
			return NULL;
		}
	}
	return md;
}

/* Whether the finished hash @md matches the digest string @digest (whose
 * form was checked). */
static bool digest_matches(EVP_MD_CTX *md, const char *digest, char *got, size_t got_size)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	const char *hex = strchr(digest, ':') + 1;
	char buf[2 * EVP_MAX_MD_SIZE + 1];

	if (EVP_DigestFinal_ex(md, out, &len) != 1)
		return false;
	for (unsigned int i = 0; i < len; i++)
		snprintf(buf + 2 * i, 3, "%02x", out[i]);
	snprintf(got, got_size, "%.*s:%s", (int)(hex - 1 - digest), digest, buf);
	return strcmp(hex, buf) == 0;
}

/* ---- Blobs ------------------------------------------------------------------------------ */

/* Opens @rel below the layout without following symlinks. */
static int open_beneath(struct oci_ctx *c, const char *rel)
{
	return lcfs_open_confined(c->dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
}

/* Opens the blob of @d, a regular file of exactly the descriptor's size.
 * *@mdp gets a hash context for its digest. */
static int open_blob(struct oci_ctx *c, const struct descriptor *d, EVP_MD_CTX **mdp)
{
	char rel[256];
	const EVP_MD *md;
	struct stat st;
	int r = 0, fd;

	md = digest_algorithm(d->digest, &r);
	if (md == NULL)
		return lcfs_error_set(c->err, -r, "blob '%s': %s", d->digest,
				      r == -ENOTSUP ? "unsupported digest algorithm" :
						      "malformed digest");
	snprintf(rel, sizeof(rel), "blobs/%.*s/%s", (int)(strchr(d->digest, ':') - d->digest),
		 d->digest, strchr(d->digest, ':') + 1);
	fd = open_beneath(c, rel);
	if (fd < 0)
		return lcfs_error_set(c->err, -fd, "blob %s: cannot open '%s': %s", d->digest,
				      rel, fd == -ENOENT ? "missing blob" : strerror(-fd));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return lcfs_error_set(c->err, EBADMSG, "blob %s: not a regular file", d->digest);
	}
	if ((uint64_t)st.st_size != d->size) {
		close(fd);
		return lcfs_error_set(c->err, EBADMSG,
				      "blob %s: size %llu, but its descriptor says %llu",
				      d->digest, (unsigned long long)st.st_size,
				      (unsigned long long)d->size);
	}
	*mdp = EVP_MD_CTX_new();
	if (*mdp == NULL || EVP_DigestInit_ex(*mdp, md, NULL) != 1) {
		EVP_MD_CTX_free(*mdp);
		close(fd);
		return lcfs_error_set(c->err, ENOMEM, "%s", strerror(ENOMEM));
	}
	return fd;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* Parses the @len bytes at @buf as one JSON value. */
static json_object *parse_json(struct oci_ctx *c, const char *buf, size_t len,
			       const char *what)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	enum json_tokener_error jerr;
	json_object *obj;
	size_t end;

	if (tok == NULL) {
		lcfs_error_set(c->err, ENOMEM, "%s", strerror(ENOMEM));
		return NULL;
	}
	obj = len > INT32_MAX ? NULL : json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (obj == NULL || jerr != json_tokener_success) {
		json_object_put(obj);
		lcfs_error_set(c->err, EBADMSG, "%s: invalid JSON: %s", what,
			       jerr == json_tokener_continue ? "unexpected end" :
							       json_tokener_error_desc(jerr));
		return NULL;
	}
	for (; end < len; end++) {
		if (buf[end] != ' ' && buf[end] != '\t' && buf[end] != '\n' && buf[end] != '\r') {
			json_object_put(obj);
			lcfs_error_set(c->err, EBADMSG, "%s: invalid JSON: data after the value",
				       what);
			return NULL;
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		lcfs_error_set(c->err, EBADMSG, "%s: not a JSON object", what);
		return NULL;
	}
	return obj;
}

/* The JSON document in the blob of @d, checked against its digest. */
static json_object *load_json_blob(struct oci_ctx *c, const struct descriptor *d,
				   const char *what)
{
	cleanup_free uint8_t *buf = NULL;
	EVP_MD_CTX *md = NULL;
	char label[256], got[160];
	size_t len;
	int fd, r;

	snprintf(label, sizeof(label), "%s %s", what, d->digest);
	if (d->size > JSON_MAX) {
		lcfs_error_set(c->err, EFBIG, "%s: larger than %u bytes", label, JSON_MAX);
		return NULL;
	}
	fd = open_blob(c, d, &md);
	if (fd < 0)
		return NULL;
	r = lcfs_read_all(fd, JSON_MAX, &buf, &len);
	close(fd);
	if (r < 0) {
		EVP_MD_CTX_free(md);
		lcfs_error_set(c->err, -r, "%s: %s", label, strerror(-r));
		return NULL;
	}
	if (len != d->size || EVP_DigestUpdate(md, buf, len) != 1 ||
	    !digest_matches(md, d->digest, got, sizeof(got))) {
		EVP_MD_CTX_free(md);
		lcfs_error_set(c->err, EBADMSG, "%s: content does not match its digest (%s)",
			       label, len != d->size ? "size changed" : got);
		return NULL;
	}
	EVP_MD_CTX_free(md);
	return parse_json(c, (const char *)buf, len, label);
}

static const char *json_string(json_object *obj, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Fills @d from the descriptor object @obj. */
static int parse_descriptor(struct oci_ctx *c, json_object *obj, struct descriptor *d,
			    const char *what)
{
	json_object *size;
	int64_t n;

	memset(d, 0, sizeof(*d));
	d->obj = obj;
	if (!json_object_is_type(obj, json_type_object))
		return lcfs_error_set(c->err, EBADMSG, "%s: a descriptor is not an object",
				      what);
	d->media_type = json_string(obj, "mediaType");
	d->digest = json_string(obj, "digest");
	if (d->digest == NULL)
		return lcfs_error_set(c->err, EBADMSG, "%s: descriptor without a digest", what);
	if (!json_object_object_get_ex(obj, "size", &size) ||
	    !json_object_is_type(size, json_type_int))
		return lcfs_error_set(c->err, EBADMSG, "%s: descriptor %s without a size",
				      what, d->digest);
	errno = 0;
	n = json_object_get_int64(size);
	if (n < 0 || errno != 0)
		return lcfs_error_set(c->err, EBADMSG, "%s: descriptor %s: invalid size",
				      what, d->digest);
	d->size = (uint64_t)n;
	return 0;
}

/* The array @key of @obj. */
static json_object *json_array(struct oci_ctx *c, json_object *obj, const char *key,
			       const char *what)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_array)) {
		lcfs_error_set(c->err, EBADMSG, "%s: no \"%s\" array", what, key);
		return NULL;
	}
	return v;
}

/* ---- Choosing the manifest ------------------------------------------------------------------- */

static bool is_index_type(const char *mt)
{
	return mt != NULL && (strcmp(mt, MT_OCI_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0);
}

static bool platform_matches(struct oci_ctx *c, json_object *desc)
{
	json_object *p;
	const char *os, *arch, *variant;

	if (!json_object_object_get_ex(desc, "platform", &p) ||
	    !json_object_is_type(p, json_type_object))
		return false;
	os = json_string(p, "os");
	arch = json_string(p, "architecture");
	variant = json_string(p, "variant");
	if (os == NULL || arch == NULL || strcmp(os, c->os) != 0 || strcmp(arch, c->arch) != 0)
		return false;
	return c->variant[0] == '\0' || (variant != NULL && strcmp(variant, c->variant) == 0);
}

static bool ref_matches(json_object *desc, const char *ref)
{
	json_object *ann;
	const char *name;

	if (!json_object_object_get_ex(desc, "annotations", &ann) ||
	    !json_object_is_type(ann, json_type_object))
		return false;
	name = json_string(ann, REF_ANNOTATION);
	return name != NULL && strcmp(name, ref) == 0;
}

/*
 * Picks the manifest from the index @index (its "manifests"): by @ref
 * when non-NULL, then by platform when several remain; an index found
 * that way is followed. The manifest document is returned in *@manifest
 * (a reference the caller drops) and its descriptor's digest in @digest.
 */
static int select_manifest(struct oci_ctx *c, json_object *index, const char *what,
			   const char *ref, int depth, json_object **manifest,
			   char *digest, size_t digest_size)
{
	json_object *list = json_array(c, index, "manifests", what);
	struct descriptor chosen = { 0 };
	size_t n_ref = 0, n_platform = 0, len;
	json_object *doc;
	const char *mt;
	int r;

	if (list == NULL)
		return -c->err->err;
	if (depth > INDEX_DEPTH_MAX)
		return lcfs_error_set(c->err, ELOOP, "%s: indexes nested too deeply", what);
	len = json_object_array_length(list);
	for (size_t i = 0; i < len; i++) {
		json_object *o = json_object_array_get_idx(list, i);
		struct descriptor d;

		r = parse_descriptor(c, o, &d, what);
		if (r < 0)
			return r;
		if (ref != NULL && !ref_matches(o, ref))
			continue;
		n_ref++;
		n_platform += platform_matches(c, o);
	}
	if (n_ref == 0) {
		if (ref != NULL)
			return lcfs_error_set(c->err, ENOENT, "%s: no manifest named '%s'", what,
					      ref);
		return lcfs_error_set(c->err, ENOENT, "%s: lists no manifest", what);
	}
	if (n_ref > 1 && n_platform != 1) {
		if (n_platform == 0 && ref == NULL && depth == 0)
			return lcfs_error_set(c->err, EINVAL,
					      "%s: lists %zu manifests and none for %s/%s%s%s; "
					      "name one as LAYOUT:REF",
					      what, n_ref, c->os, c->arch, c->variant[0] ? "/" : "",
					      c->variant);
		return lcfs_error_set(c->err, ENOENT, "%s: %zu manifests for %s/%s%s%s", what,
				      n_platform, c->os, c->arch, c->variant[0] ? "/" : "",
				      c->variant);
	}
	/* The only candidate, or the only one for the platform. */
	for (size_t i = 0; i < len; i++) {
		json_object *o = json_object_array_get_idx(list, i);

		if ((ref == NULL || ref_matches(o, ref)) && (n_ref == 1 || platform_matches(c, o))) {
			r = parse_descriptor(c, o, &chosen, what);
			if (r < 0)
				return r;
			break;
		}
	}

	mt = chosen.media_type;
	if (mt != NULL && !is_index_type(mt) && strcmp(mt, MT_OCI_MANIFEST) != 0 &&
	    strcmp(mt, MT_DOCKER_MANIFEST) != 0)
		return lcfs_error_set(c->err, ENOTSUP, "%s: manifest %s: unsupported media type '%s'",
				      what, chosen.digest, mt);
	doc = load_json_blob(c, &chosen, is_index_type(mt) ? "index" : "manifest");
	if (doc == NULL)
		return -c->err->err;
	/* Without a media type in the descriptor, the document says. */
	if (mt == NULL)
		mt = json_string(doc, "mediaType");
	if (is_index_type(mt) || (mt == NULL && json_object_object_get_ex(doc, "manifests", NULL))) {
		char label[256];

		snprintf(label, sizeof(label), "index %s", chosen.digest);
		r = select_manifest(c, doc, label, NULL, depth + 1, manifest, digest, digest_size);
		json_object_put(doc);
		return r;
	}
	snprintf(digest, digest_size, "%s", chosen.digest);
	*manifest = doc;
	return 0;
}

/* The running host's platform in Go's names, as image indexes use them. */
static void host_platform(struct oci_ctx *c)
{
	static const struct {
		const char *machine, *arch, *variant;
	} map[] = {
		{ "x86_64", "amd64", "" },   { "aarch64", "arm64", "" },
		{ "i686", "386", "" },       { "i386", "386", "" },
		{ "armv7l", "arm", "v7" },   { "armv6l", "arm", "v6" },
		{ "ppc64le", "ppc64le", "" }, { "s390x", "s390x", "" },
		{ "riscv64", "riscv64", "" }, { "loongarch64", "loong64", "" },
	};
	struct utsname u;

	snprintf(c->os, sizeof(c->os), "linux");
	snprintf(c->arch, sizeof(c->arch), "unknown");
	if (uname(&u) < 0)
		return;
	snprintf(c->arch, sizeof(c->arch), "%.63s", u.machine);
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(u.machine, map[i].machine) == 0) {
			snprintf(c->arch, sizeof(c->arch), "%s", map[i].arch);
			snprintf(c->variant, sizeof(c->variant), "%s", map[i].variant);
		}
	}
}

static int parse_platform(struct oci_ctx *c, const char *platform)
{
	const char *slash = strchr(platform, '/');
	const char *slash2 = slash ? strchr(slash + 1, '/') : NULL;
	size_t os_len = slash ? (size_t)(slash - platform) : 0;
	size_t arch_len = slash2 ? (size_t)(slash2 - slash - 1) : (slash ? strlen(slash + 1) : 0);

	if (slash == NULL || os_len == 0 || arch_len == 0 || os_len >= sizeof(c->os) ||
	    arch_len >= sizeof(c->arch) || (slash2 && (slash2[1] == '\0' ||
						       strlen(slash2 + 1) >= sizeof(c->variant) ||
						       strchr(slash2 + 1, '/') != NULL)))
		return lcfs_error_set(c->err, EINVAL, "invalid platform '%s' (OS/ARCH[/VARIANT])",
				      platform);
	snprintf(c->os, sizeof(c->os), "%.*s", (int)os_len, platform);
	snprintf(c->arch, sizeof(c->arch), "%.*s", (int)arch_len, slash + 1);
	snprintf(c->variant, sizeof(c->variant), "%s", slash2 ? slash2 + 1 : "");
	return 0;
}

/* ---- Layers ------------------------------------------------------------------------------- */

static const EVP_MD *diff_id_md(struct oci_ctx *c, const char *diff_id, const char *what)
{
	int r = 0;
	const EVP_MD *md = digest_algorithm(diff_id, &r);

	if (md == NULL)
		lcfs_error_set(c->err, -r, "%s: diff_id '%s': %s", what, diff_id,
			       r == -ENOTSUP ? "unsupported digest algorithm" : "malformed digest");
	return md;
}

/* Applies the layer @d (uncompressed digest @diff_id) to @tree. */
static int apply_layer(struct oci_ctx *c, struct lcfs_tar_tree *tree,
		       const struct descriptor *d, const char *diff_id)
{
	struct lcfs_tar_input in = { .fd = -1 };
	EVP_MD_CTX *blob_md = NULL, *diff_md = NULL;
	struct archive *tar = NULL;
	const EVP_MD *dmd;
	char what[256], got[160];
	int fd, r = 0;

	snprintf(what, sizeof(what), "layer %s", d->digest);
	if (d->media_type == NULL)
		return lcfs_error_set(c->err, EBADMSG, "%s: no media type", what);
	r = -ENOTSUP;
	for (size_t i = 0; i < sizeof(layer_types) / sizeof(layer_types[0]); i++)
		if (strcmp(d->media_type, layer_types[i]) == 0)
			r = 0;
	if (r < 0)
		return lcfs_error_set(c->err, ENOTSUP, "%s: unsupported media type '%s'", what,
				      d->media_type);
	dmd = diff_id_md(c, diff_id, what);
	if (dmd == NULL)
		return -c->err->err;
	fd = open_blob(c, d, &blob_md);
	if (fd < 0)
		return fd;
	diff_md = EVP_MD_CTX_new();
	tar = lcfs_tar_reader_new();
	if (diff_md == NULL || EVP_DigestInit_ex(diff_md, dmd, NULL) != 1 || tar == NULL ||
	    lcfs_tar_input_init(&in, fd, d->size, blob_md, diff_md) < 0) {
		r = lcfs_error_set(c->err, ENOMEM, "%s: cannot set up the reader", what);
		goto out;
	}
	r = lcfs_tar_input_open(&in, tar);
	if (r < 0) {
		lcfs_error_set(c->err, -r, "%s: %s", what, in.msg);
		goto out;
	}
	r = lcfs_tar_tree_apply(tree, tar, what);
	if (r < 0)
		goto out;
	/* Whatever follows the end of the archive counts for both digests. */
	r = lcfs_tar_input_drain(&in);
	if (r < 0) {
		lcfs_error_set(c->err, -r, "%s: %s", what, in.msg);
		goto out;
	}
	if (in.raw_done != d->size) {
		r = lcfs_error_set(c->err, EBADMSG,
				   "%s: blob size does not match its descriptor's (%llu bytes)",
				   what, (unsigned long long)d->size);
		goto out;
	}
	if (!digest_matches(blob_md, d->digest, got, sizeof(got))) {
		r = lcfs_error_set(c->err, EBADMSG,
				   "%s: content does not match its digest (found %s)", what, got);
		goto out;
	}
	if (!digest_matches(diff_md, diff_id, got, sizeof(got))) {
		r = lcfs_error_set(c->err, EBADMSG,
				   "%s: uncompressed content does not match diff_id %s (found %s)",
				   what, diff_id, got);
		goto out;
	}
out:
	if (tar != NULL)
		archive_read_free(tar);
	lcfs_tar_input_release(&in);
	EVP_MD_CTX_free(blob_md);
	EVP_MD_CTX_free(diff_md);
	close(fd);
	return r;
}

/* ---- The whole image ------------------------------------------------------------------------- */

static int build_image(struct oci_ctx *c, const char *ref, struct lcfs_tar_tree *tree)
{
	json_object *index = NULL, *manifest = NULL, *config = NULL;
	json_object *layers, *diff_ids, *rootfs, *cfg_obj;
	struct descriptor cfg;
	char mdigest[160], what[256];
	cleanup_free uint8_t *buf = NULL;
	size_t len, n;
	int fd, r;

	fd = open_beneath(c, "index.json");
	if (fd < 0)
		return lcfs_error_set(c->err, -fd, "cannot open '%s/index.json': %s", c->layout,
				      strerror(-fd));
	r = lcfs_read_all(fd, JSON_MAX, &buf, &len);
	close(fd);
	if (r < 0)
		return lcfs_error_set(c->err, -r, "cannot read '%s/index.json': %s", c->layout,
				      r == -EFBIG ? "file too large" : strerror(-r));
	index = parse_json(c, (const char *)buf, len, "index.json");
	if (index == NULL)
		return -c->err->err;
	r = select_manifest(c, index, "index.json", ref, 0, &manifest, mdigest,
			    sizeof(mdigest));
	json_object_put(index);
	if (r < 0)
		return r;

	snprintf(what, sizeof(what), "manifest %s", mdigest);
	if (!json_object_object_get_ex(manifest, "config", &cfg_obj)) {
		r = lcfs_error_set(c->err, EBADMSG, "%s: no config", what);
		goto out;
	}
	r = parse_descriptor(c, cfg_obj, &cfg, what);
	if (r < 0)
		goto out;
	layers = json_array(c, manifest, "layers", what);
	if (layers == NULL) {
		r = -c->err->err;
		goto out;
	}
	config = load_json_blob(c, &cfg, "config");
	if (config == NULL) {
		r = -c->err->err;
		goto out;
	}
	snprintf(what, sizeof(what), "config %s", cfg.digest);
	if (!json_object_object_get_ex(config, "rootfs", &rootfs) ||
	    !json_object_is_type(rootfs, json_type_object)) {
		r = lcfs_error_set(c->err, EBADMSG, "%s: no rootfs", what);
		goto out;
	}
	diff_ids = json_array(c, rootfs, "diff_ids", what);
	if (diff_ids == NULL) {
		r = -c->err->err;
		goto out;
	}
	n = json_object_array_length(layers);
	if (json_object_array_length(diff_ids) != n) {
		r = lcfs_error_set(c->err, EBADMSG, "%s: %zu diff_ids for %zu layers", what,
				   json_object_array_length(diff_ids), n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *id = json_object_array_get_idx(diff_ids, i);
		struct descriptor d;

		if (!json_object_is_type(id, json_type_string)) {
			r = lcfs_error_set(c->err, EBADMSG, "%s: diff_id %zu is not a string",
					   what, i);
			goto out;
		}
		r = parse_descriptor(c, json_object_array_get_idx(layers, i), &d, mdigest);
		if (r == 0)
			r = apply_layer(c, tree, &d, json_object_get_string(id));
		if (r < 0)
			goto out;
	}
out:
	json_object_put(manifest);
	json_object_put(config);
	return r;
}

struct lcfs_node_s *lcfs_oci_build(const char *layout, const char *ref,
				   const struct lcfs_oci_options_s *opts,
				   struct lcfs_error *err)
{
	struct oci_ctx c = { .layout = layout, .err = err };
	struct lcfs_store *store = NULL;
	struct lcfs_tar_tree tree;
	struct lcfs_node_s *root = NULL;
	int r;

	host_platform(&c);
	if (opts->platform != NULL && parse_platform(&c, opts->platform) < 0)
		return NULL;
	c.dirfd = open(layout, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.dirfd < 0) {
		lcfs_error_set(err, errno, "cannot open '%s': %s", layout, strerror(errno));
		return NULL;
	}
	if (lcfs_tar_store_open(opts, &store, err) < 0) {
		close(c.dirfd);
		return NULL;
	}
	r = lcfs_tar_tree_init(&tree, opts, true, store, err);
	if (r < 0) {
		lcfs_error_set(err, -r, "%s", strerror(-r));
	} else {
		r = build_image(&c, ref, &tree);
		if (r == 0)
			root = lcfs_tar_tree_finish(&tree, err);
		else
			lcfs_tar_tree_release(&tree);
	}
	lcfs_store_free(store);
	close(c.dirfd);
	return root;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_load_node_from_oci(const char *layout, const char *ref,
							const struct lcfs_oci_options_s *opts,
							char **error_out)
{
	struct lcfs_oci_options_s defaults = { 0 };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;

	if (error_out != NULL)
		*error_out = NULL;
	if (layout == NULL) {
		errno = EINVAL;
		return NULL;
	}
	root = lcfs_oci_build(layout, ref, opts != NULL ? opts : &defaults, &err);
	if (root == NULL)
		lcfs_error_to_public(&err, error_out);
	return root;
}
