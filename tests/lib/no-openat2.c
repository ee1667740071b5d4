/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Preloaded into composefs-fuse by the tests to make openat2() fail with
 * ENOSYS, as on Linux before 5.6, so that the fallback path that walks
 * backing file paths by hand is exercised. Every other system call goes
 * through unchanged.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/syscall.h>

#include "lcfs-compat.h"

long syscall(long number, ...);

long syscall(long number, ...)
{
	static long (*real)(long, ...);
	long arg[6];
	va_list ap;

	if (number == SYS_openat2) {
		errno = ENOSYS;
		return -1;
	}
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		arg[i] = va_arg(ap, long);
	va_end(ap);
	if (real == NULL)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(number, arg[0], arg[1], arg[2], arg[3], arg[4], arg[5]);
}
