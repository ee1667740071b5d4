/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Subcommands of composefs-store, one file each. */
#ifndef _COMPOSEFS_STORE_FETCH_H
#define _COMPOSEFS_STORE_FETCH_H

/* composefs-store fetch: @argv[0] is "fetch". Returns the exit status. */
int store_fetch_main(int argc, char **argv);

#endif /* _COMPOSEFS_STORE_FETCH_H */
