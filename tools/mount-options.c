/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * mount.composefs option string (docs/design.md, "mount.composefs"; see
 * mount-options.h). Kept out of the tool's main file so that a test and a
 * fuzz target can call it: errors are returned, never fatal.
 */
#include "mount-options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int __attribute__((format(printf, 4, 5)))
opt_error(char *msg, size_t msg_size, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msg_size, fmt, ap);
	va_end(ap);
	return -err;
}

/* Removes the backslashes that protect characters in an option value. */
static char *unescape_value(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t n = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len)
			i++;
		out[n++] = s[i];
	}
	out[n] = '\0';
	return out;
}

/* basedir=A:B:C, empty components rejected. Takes @value. */
static int set_basedir(struct mount_args *a, char *value, char *msg, size_t msg_size)
{
	size_t n = 1;

	for (const char *p = value; *p; p++)
		n += *p == ':';
	free(a->basedir);
	free(a->objdirs);
	a->basedir = value;
	a->n_objdirs = 0;
	a->objdirs = malloc(n * sizeof(*a->objdirs));
	if (a->objdirs == NULL)
		return opt_error(msg, msg_size, ENOMEM, "out of memory");
	for (char *p = value;;) {
		char *colon = strchr(p, ':');

		if (colon != NULL)
			*colon = '\0';
		if (*p == '\0')
			return opt_error(msg, msg_size, EINVAL,
					 "Value for basedir option has incorrect format");
		a->objdirs[a->n_objdirs++] = p;
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	return 0;
}

static void set_string(char **field, char *value)
{
	free(*field);
	*field = value;
}

/* One KEY[=VALUE] item; @value is NULL when there was no '='. Takes
 * @value. */
static int apply_option(struct mount_args *a, const char *key, char *value,
			char *msg, size_t msg_size)
{
	static const char *const need_value[] = {
		"basedir", "digest", "upperdir", "workdir", "idmap", "remote",
	};

	for (size_t i = 0; i < sizeof(need_value) / sizeof(need_value[0]); i++) {
		if (strcmp(key, need_value[i]) == 0 && value == NULL)
			return opt_error(msg, msg_size, EINVAL,
					 "No value specified for %s option", key);
	}
	if (strcmp(key, "basedir") == 0)
		return set_basedir(a, value, msg, msg_size);
	if (strcmp(key, "digest") == 0) {
		set_string(&a->digest, value);
		a->require_verity = true;
		return 0;
	}
	if (strcmp(key, "upperdir") == 0) {
		set_string(&a->upperdir, value);
		return 0;
	}
	if (strcmp(key, "workdir") == 0) {
		set_string(&a->workdir, value);
		return 0;
	}
	if (strcmp(key, "idmap") == 0) {
		set_string(&a->idmap, value);
		return 0;
	}
	if (strcmp(key, "remote") == 0) {
		set_string(&a->remote, value);
		return 0;
	}
	free(value);
	if (strcmp(key, "verity") == 0) {
		a->require_verity = true;
	} else if (strcmp(key, "tryverity") == 0) {
		a->try_verity = true;
	} else if (strcmp(key, "noverity") == 0) {
		/* Cancels verity, tryverity and digest's verity given
		 * before it; a digest= value is still checked. */
		a->require_verity = false;
		a->try_verity = false;
	} else if (strcmp(key, "ro") == 0) {
		a->readonly = true;
	} else if (strcmp(key, "rw") == 0) {
		a->readonly = false;
	} else if (strcmp(key, "fuse") == 0) {
		a->fuse = true;
	} else {
		return opt_error(msg, msg_size, EINVAL, "Unsupported option %s", key);
	}
	return 0;
}

/*
 * Items are separated by ','; inside an item '\' protects the next
 * character and the first unprotected '=' separates key from value. The
 * key is taken as written, the value loses its protecting backslashes.
 */
int mount_options_parse(struct mount_args *a, const char *opts, char *msg,
			size_t msg_size)
{
	const char *item = opts;

	for (;;) {
		const char *p = item, *eq = NULL;
		char *key, *value = NULL;
		int r;

		while (*p && *p != ',') {
			if (*p == '\\' && p[1] != '\0') {
				p += 2;
				continue;
			}
			if (*p == '=' && eq == NULL)
				eq = p;
			p++;
		}
		key = strndup(item, (size_t)((eq ? eq : p) - item));
		if (eq != NULL)
			value = unescape_value(eq + 1, (size_t)(p - eq - 1));
		if (key == NULL || (eq != NULL && value == NULL)) {
			free(key);
			free(value);
			return opt_error(msg, msg_size, ENOMEM, "out of memory");
		}
		r = apply_option(a, key, value, msg, msg_size);
		free(key);
		if (r < 0)
			return r;
		if (*p == '\0')
			break;
		item = p + 1;
	}
	return 0;
}

void mount_args_release(struct mount_args *a)
{
	free(a->basedir);
	free(a->objdirs);
	free(a->digest);
	free(a->upperdir);
	free(a->workdir);
	free(a->idmap);
	free(a->remote);
	memset(a, 0, sizeof(*a));
}
