/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-store: the subcommand table and the helpers that subcommands
 * kept in files of their own share with composefs-store.c. A subcommand
 * is a function that gets its own argv (argv[0] is its name), parses its
 * options with getopt_long() and returns the exit status.
 */
#ifndef _COMPOSEFS_STORE_H
#define _COMPOSEFS_STORE_H

#include <stdbool.h>
#include <stdio.h>

struct store_command {
	const char *name;
	const char *synopsis; /* options and operands after the name */
	const char *summary;  /* one line for --help */
	int (*run)(int argc, char **argv);
};

/* Opens the existing store directory @path and takes its lock (see
 * lcfs_store_lock()), exclusive or shared. Where the lock file cannot be
 * created (@optional and a read-only filesystem or no write permission)
 * the store is opened without it: nobody can write there either way.
 * Returns the directory fd and *@lockfd (-1 without a lock), or -errno. */
int store_open_locked(const char *path, bool exclusive, bool optional, int *lockfd);

/* Prints "composefs-store SUBCOMMAND SYNOPSIS" and the command's own
 * @options text. */
void store_command_usage(FILE *out, const char *name, const char *options);

#endif /* _COMPOSEFS_STORE_H */
