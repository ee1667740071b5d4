/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Dumpfile parser: every error of docs/dumpfile.md, "Error messages" (and the
 * ones we add where the reference accepts garbage) with its line, field and
 * message; escapes, integers, optional fields, xattrs, hard links, strict
 * mode, reading from a file descriptor in chunks, and big inputs, which
 * are read on two threads.
 */
#include "dump-util.h"

#include <string.h>
#include <sys/wait.h>

#define ROOT "/ 4096 40755 2 0 0 0 0.0 - - -\n"
#define DIGEST64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"

struct bad_case {
	const char *input;
	size_t len; /* 0: strlen(input) */
	unsigned flags;
	unsigned long line;
	const char *field; /* NULL: the whole line */
	const char *msg;
};

#define S LCFS_PARSE_FLAGS_STRICT

static const struct bad_case bad_cases[] = {
	/* docs/dumpfile.md, "Lines" */
	{ ROOT "/a\0b 0 100644 1 0 0 0 0.0 - - -\n", sizeof(ROOT "/a\0b 0 100644 1 0 0 0 0.0 - - -\n") - 1,
	  0, 2, NULL, "Invalid embedded NUL character at position 2" },
	{ "\n", 0, 0, 1, "PATH", "Invalid empty path" },
	{ ROOT "\n", 0, 0, 2, "PATH", "Invalid empty path" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - -\n\n", 0, 0, 3, "PATH", "Invalid empty path" },
	{ "", 0, 0, 0, NULL, "No files in dump file" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - -", 0, S, 2, NULL, "Missing trailing newline" },
	{ "/ 4096 40755 2 0 0 0 0.0 - - -", 0, S, 1, NULL, "Missing trailing newline" },
	/* docs/dumpfile.md, "Fields": two spaces make an empty field */
	{ ROOT "/a  0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "MODE", "Invalid mode 0" },
	{ ROOT "/a 0 100644 1 0 0 0\n", 0, 0, 2, "MTIME", "Invalid integer " },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - - user.a=1  \n", 0, 0, 2, "XATTR",
	  "Missing = in xattr" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - -  \n", 0, 0, 2, "XATTR", "Missing = in xattr" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - - user.a\n", 0, 0, 2, "XATTR",
	  "Missing = in xattr" },
	/* docs/dumpfile.md, "Escapes" */
	{ ROOT "/a\\ 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH", "No character after escape" },
	{ ROOT "/a\\x4 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH",
	  "No hex characters after hex escape" },
	{ ROOT "/a\\x 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH",
	  "No hex characters after hex escape" },
	{ ROOT "/a\\xg1 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH",
	  "Invalid hex characters after hex escape" },
	{ ROOT "/a\\q 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH", "Unsupported escape type q" },
	{ ROOT "/a 3 100644 1 0 0 0 0.0 \\y - -\n", 0, 0, 2, "PAYLOAD", "Unsupported escape type y" },
	{ ROOT "/a 3 100644 1 0 0 0 0.0 - ab\\ -\n", 0, 0, 2, "CONTENT", "No character after escape" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - \\z\n", 0, 0, 2, "DIGEST", "Unsupported escape type z" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - - k\\x=v\n", 0, 0, 2, "XATTR",
	  "No hex characters after hex escape" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - - k=v\\xZZ\n", 0, 0, 2, "XATTR",
	  "Invalid hex characters after hex escape" },
	/* docs/dumpfile.md, "Numbers", "Fixed fields" */
	{ "/ x 40755 2 0 0 0 0.0 - - -\n", 0, 0, 1, "SIZE", "Invalid integer x" },
	{ "/ 4096 4075z 2 0 0 0 0.0 - - -\n", 0, 0, 1, "MODE", "Invalid integer 4075z" },
	{ "/ 4096 40758 2 0 0 0 0.0 - - -\n", 0, 0, 1, "MODE", "Invalid integer 40758" },
	{ ROOT "/a 0 @ 1 0 0 0 0.0 /b - -\n", 0, 0, 2, "MODE", "Invalid integer " },
	{ ROOT "/a 0 0x8000 1 0 0 0 0.0 - - -\n", 0, 0, 2, "MODE", "Invalid integer 0x8000" },
	{ ROOT "/a 0 644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "MODE", "Invalid mode 644" },
	{ ROOT "/a 0 @644 1 0 0 0 0.0 /b - -\n", 0, 0, 2, "MODE", "Invalid mode 644" },
	{ ROOT "/a 0 170644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "MODE", "Invalid mode 170644" },
	{ "/ 4096 40755 2.0 0 0 0 0.0 - - -\n", 0, 0, 1, "NLINK", "Invalid integer 2.0" },
	{ "/ 4096 40755 2 u 0 0 0.0 - - -\n", 0, 0, 1, "UID", "Invalid integer u" },
	{ "/ 4096 40755 2 0 0x1 0 0.0 - - -\n", 0, 0, 1, "GID", "Invalid integer 0x1" },
	/* The reference accepts these when UID is not 0; we never do. */
	{ "/ 4096 40755 2 5 zz 0 0.0 - - -\n", 0, 0, 1, "GID", "Invalid integer zz" },
	{ "/ 4096 40755 2 5 0 r 0.0 - - -\n", 0, 0, 1, "RDEV", "Invalid integer r" },
	{ "/ 4096 40755 2 0 0 0 5 - - -\n", 0, 0, 1, "MTIME", "Invalid integer 5" },
	{ "/ 4096 40755 2 0 0 0 5. - - -\n", 0, 0, 1, "MTIME", "Invalid integer " },
	{ "/ 4096 40755 2 0 0 0 x.5 - - -\n", 0, 0, 1, "MTIME", "Invalid integer x" },
	{ "/ 4096 40755 2 0 0 0 1.2.3 - - -\n", 0, 0, 1, "MTIME", "Invalid integer 2.3" },
	{ "/ 4096 40755 2 0 0 0 + - - -\n", 0, 0, 1, "MTIME", "Invalid integer +" },
	{ "/ 4096 40755 2 0 0 0 0.0 - - -\r\n", 0, 0, 1, "DIGEST", "Invalid digest" },
	/* docs/dumpfile.md, "Paths" */
	{ "/a 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 1, "PATH", "Root node not present" },
	{ "./ 4096 40755 2 0 0 0 0.0 - - -\n", 0, 0, 1, "PATH", "Root node not present" },
	{ "/ 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 1, "MODE", "Root must be a directory" },
	{ ROOT ROOT, 0, 0, 2, "PATH", "Can't have multiple roots" },
	{ ROOT "/a/b 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH",
	  "Parent directory missing for /a/b" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - -\n/a/b 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 3,
	  "PATH", "Parent must be a directory for /a/b" },
	{ ROOT "/d 0 40755 1 0 0 0 0.0 - - -\n/d/./b 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 3,
	  "PATH", "Parent directory missing for /d/./b" },
	{ ROOT "/f 0 100644 1 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /f - -\n"
	       "/h/x 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 4, "PATH",
	  "Parent must be a directory for /h/x" },
	{ ROOT "/. 4096 40555 2 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH", "Invalid . or .. in path: /." },
	{ ROOT "/d 0 40755 1 0 0 0 0.0 - - -\n/d/.. 0 40755 1 0 0 0 0.0 - - -\n", 0, 0, 3,
	  "PATH", "Invalid . or .. in path: /d/.." },
	{ ROOT "// 4096 40555 2 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH", "Can't add child" },
	{ ROOT "/d 0 40755 1 0 0 0 0.0 - - -\n/d/ 0 40755 1 0 0 0 0.0 - - -\n", 0, 0, 3,
	  "PATH", "Can't add child" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 3,
	  "PATH", "Path /a already exists" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - -\n//a 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 3,
	  "PATH", "Path //a already exists" },
	/* In a directory given its entries out of order, duplicates are
	 * found once it is sorted, and reported on the line met first. */
	{ ROOT "/b 0 40755 2 0 0 0 0.0 - - -\n/a 0 40755 2 0 0 0 0.0 - - -\n"
	       "/a 0 40755 2 0 0 0 0.0 - - -\n/a/f 0 100644 1 0 0 0 0.0 - - -\n"
	       "/c 0 1z0644 1 0 0 0 0.0 - - -\n",
	  0, 0, 4, "PATH", "Path /a already exists" },
	{ ROOT "/b 0 40755 2 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n"
	       "/c 0 1z0644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n",
	  0, 0, 4, "MODE", "Invalid integer 1z0644" },
	{ ROOT "/b 0 40755 2 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n"
	       "/a 0 100644 1 0 0 0 0.0z - - -\n",
	  0, 0, 4, "PATH", "Path /a already exists" },
	{ ROOT "/b 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n"
	       "/c 0 100644 1 0 0 0 0.0 - - -\n/b 0 100644 1 0 0 0 0.0 - - -\n"
	       "/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n",
	  0, 0, 5, "PATH", "Path /b already exists" },
	{ ROOT "/d 0 40755 2 0 0 0 0.0 - - -\n/d/y 0 100644 1 0 0 0 0.0 - - -\n"
	       "/d/x 0 100644 1 0 0 0 0.0 - - -\n/d/z 0 100644 1 0 0 0 0.0 - - -\n"
	       "/d/x 0 100644 1 0 0 0 0.0 - - -\n/d/x 0 100644 1 0 0 0 0.0 - - -\n",
	  0, 0, 6, "PATH", "Path /d/x already exists" },
	/* A directory looked up through a path of another spelling is
	 * indexed, and checked at once from then on. */
	{ ROOT "/d 0 40755 2 0 0 0 0.0 - - -\n/d/y 0 100644 1 0 0 0 0.0 - - -\n"
	       "/d/x 0 100644 1 0 0 0 0.0 - - -\n/d//y 0 100644 1 0 0 0 0.0 - - -\n",
	  0, 0, 5, "PATH", "Path /d//y already exists" },
	{ ROOT "/b 0 40755 2 0 0 0 0.0 - - -\n/a 0 40755 2 0 0 0 0.0 - - -\n"
	       "//a/f 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n",
	  0, 0, 5, "PATH", "Path /a already exists" },
	/* docs/dumpfile.md, "Hard links" */
	{ ROOT "/rootlink 4096 @40555 2 0 0 0 0.0 / - -\n", 0, 0, 2, "MODE",
	  "Directories can't be hardlinked" },
	{ ROOT "/h 0 @100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PAYLOAD",
	  "No target path for the hardlink" },
	{ ROOT "/h 0 @100644 1 0 0 0 0.0 /nope - -\n", 0, 0, 2, "PAYLOAD",
	  "No target at /nope for hardlink" },
	{ ROOT "/h 0 @100644 1 0 0 0 0.0 /h - -\n", 0, 0, 2, "PAYLOAD",
	  "Self-referential hardlink /h" },
	{ ROOT "/h 0 @100644 1 0 0 0 0.0 h - -\n", 0, 0, 2, "PAYLOAD",
	  "Self-referential hardlink h" },
	{ ROOT "/d 0 40755 1 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /d - -\n", 0, 0, 3,
	  "PAYLOAD", "Hardlink target /d is a directory" },
	{ ROOT "/h 0 @100644 1 0 0 0 0.0 / - -\n", 0, 0, 2, "PAYLOAD",
	  "Hardlink target / is a directory" },
	{ ROOT "/h 0 @100644 1 0 0 0 0.0\n", 0, 0, 2, "PAYLOAD",
	  "Empty target path for the hardlink" },
	{ ROOT "/h 0 @100644 1 0 0 0 0.0 /a\\q - -\n", 0, 0, 2, "PAYLOAD",
	  "Unsupported escape type q" },
	/* Resolution runs backwards: the last bad link is reported. */
	{ ROOT "/h1 0 @100644 1 0 0 0 0.0 /x - -\n/h2 0 @100644 1 0 0 0 0.0 /y - -\n", 0, 0, 3,
	  "PAYLOAD", "No target at /y for hardlink" },
	/* docs/dumpfile.md, "File types" */
	{ ROOT "/a 3 100644 1 0 0 0 0.0 - ab -\n", 0, 0, 2, "CONTENT",
	  "Invalid content size 2, must match size 3" },
	{ ROOT "/a 3 100644 1 0 0 0 0.0 -\n", 0, 0, 2, "CONTENT",
	  "Invalid content size 0, must match size 3" },
	{ ROOT "/a 1 120777 1 0 0 0 0.0 b a\\x00 -\n", 0, 0, 2, "CONTENT",
	  "Invalid content size 2, must match size 1" },
	{ ROOT "/a 0 100644 1 0 0 5 0.0 - - -\n", 0, S, 2, "RDEV", "Non-zero devnum on non-device" },
	{ ROOT "/l 0 120777 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PAYLOAD", "Invalid symlink" },
	{ ROOT "/l 0 120777 1 0 0 0 0.0  - -\n", 0, 0, 2, "PAYLOAD", "Invalid symlink" },
	{ ROOT "/l 0 120777 1 0 0 0 0.0 \\x00a - -\n", 0, 0, 2, "PAYLOAD",
	  "Invalid escaped NUL character in symlink target" },
	{ ROOT "/l 3 120777 1 0 0 0 0.0 ab - -\n", 0, S, 2, "SIZE",
	  "Invalid symlink size 2, must match size 3" },
	{ ROOT "/l 2 120777 1 0 0 0 0.0 ab ab -\n", 0, S, 2, "CONTENT",
	  "Symlink cannot have content" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - 0123\n", 0, 0, 2, "DIGEST", "Invalid digest" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - " DIGEST64 "0\n", 0, 0, 2, "DIGEST",
	  "Invalid digest" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - " DIGEST64 "\n" "/b 0 100644 1 0 0 0 0.0 - - "
	       "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
	  0, 0, 3, "DIGEST", "Invalid digest" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - \n", 0, 0, 2, "DIGEST", "Invalid digest" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - 0123456789abcdef0123456789abcdef\\x00"
	       "123456789abcdef0123456789abcdef\n", 0, 0, 2, "DIGEST",
	  "Invalid escaped NUL character in digest" },
	/* docs/dumpfile.md, "Extended attributes" */
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - - =somevalue\n", 0, 0, 2, "XATTR", "Can't set xattr" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - - \\x00b=v\n", 0, 0, 2, "XATTR",
	  "Invalid escaped NUL character in xattr name" },
	/* An escaped NUL never cuts a C-string field short. */
	{ ROOT "/a\\x00b 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH",
	  "Invalid escaped NUL character in path" },
	{ ROOT "/a\\x00 0 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "PATH",
	  "Invalid escaped NUL character in path" },
	{ ROOT "/a 9 100644 1 0 0 0 0.0 ab/c\\x00d - -\n", 0, 0, 2, "PAYLOAD",
	  "Invalid escaped NUL character in payload" },
	{ ROOT "/l 3 120777 1 0 0 0 0.0 ab\\x00c - -\n", 0, 0, 2, "PAYLOAD",
	  "Invalid escaped NUL character in symlink target" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /a\\x00x - -\n", 0, 0,
	  3, "PAYLOAD", "Invalid escaped NUL character in hard link target" },
	{ ROOT "/a 0 100644 1 0 0 0 0.0 - - - user.t\\x00rest=1\n", 0, 0, 2, "XATTR",
	  "Invalid escaped NUL character in xattr name" },
	/* A number that does not fit its field is refused, never wrapped or
	 * saturated. */
	{ ROOT "/a 99999999999999999999 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "SIZE",
	  "Integer 99999999999999999999 is out of range" },
	{ ROOT "/a 18446744073709551616 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "SIZE",
	  "Integer 18446744073709551616 is out of range" },
	{ ROOT "/a -1 100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "SIZE", "Negative integer -1" },
	{ ROOT "/a 0 40000100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "MODE",
	  "Integer 40000100644 is out of range (at most 4294967295)" },
	{ ROOT "/a 0 1000000000000000000000100644 1 0 0 0 0.0 - - -\n", 0, 0, 2, "MODE",
	  "Integer 1000000000000000000000100644 is out of range" },
	{ ROOT "/a 0 -37777677134 1 0 0 0 0.0 - - -\n", 0, 0, 2, "MODE",
	  "Negative integer -37777677134" },
	{ ROOT "/a 0 @40000100644 1 0 0 0 0.0 /b - -\n", 0, 0, 2, "MODE",
	  "Integer 40000100644 is out of range (at most 4294967295)" },
	{ ROOT "/a 0 100644 4294967296 0 0 0 0.0 - - -\n", 0, 0, 2, "NLINK",
	  "Integer 4294967296 is out of range (at most 4294967295)" },
	{ ROOT "/a 0 100644 -1 0 0 0 0.0 - - -\n", 0, 0, 2, "NLINK", "Negative integer -1" },
	{ ROOT "/a 0 100644 1 4294967297 0 0 0.0 - - -\n", 0, 0, 2, "UID",
	  "Integer 4294967297 is out of range (at most 4294967295)" },
	{ ROOT "/a 0 100644 1 -2 0 0 0.0 - - -\n", 0, 0, 2, "UID", "Negative integer -2" },
	{ ROOT "/a 0 100644 1 0 4294967298 0 0.0 - - -\n", 0, 0, 2, "GID",
	  "Integer 4294967298 is out of range (at most 4294967295)" },
	{ ROOT "/a 0 100644 1 0 \t-7 0 0.0 - - -\n", 0, 0, 2, "GID", "Negative integer \\x09-7" },
	{ ROOT "/c 0 20644 1 0 0 4294967299 0.0 - - -\n", 0, 0, 2, "RDEV",
	  "Integer 4294967299 is out of range (at most 4294967295)" },
	{ ROOT "/a 0 100644 1 0 0 99999999999999999999 0.0 - - -\n", 0, 0, 2, "RDEV",
	  "Integer 99999999999999999999 is out of range" },
	{ ROOT "/c 0 20644 1 0 0 -1 0.0 - - -\n", 0, 0, 2, "RDEV", "Negative integer -1" },
	{ ROOT "/a 0 100644 1 0 0 0 99999999999999999999.999999999 - - -\n", 0, 0, 2, "MTIME",
	  "Seconds 99999999999999999999 are out of range" },
	{ ROOT "/a 0 100644 1 0 0 0 9223372036854775808.0 - - -\n", 0, 0, 2, "MTIME",
	  "Seconds 9223372036854775808 are out of range" },
	{ ROOT "/a 0 100644 1 0 0 0 -9223372036854775809.0 - - -\n", 0, 0, 2, "MTIME",
	  "Seconds -9223372036854775809 are out of range" },
	{ ROOT "/a 0 100644 1 0 0 0 18446744073709551615.0 - - -\n", 0, 0, 2, "MTIME",
	  "Seconds 18446744073709551615 are out of range" },
	{ ROOT "/a 0 100644 1 0 0 0 0.4294967296 - - -\n", 0, 0, 2, "MTIME",
	  "Integer 4294967296 is out of range (at most 4294967295)" },
	{ ROOT "/a 0 100644 1 0 0 0 0.99999999999999999999 - - -\n", 0, 0, 2, "MTIME",
	  "Integer 99999999999999999999 is out of range" },
	{ ROOT "/a 0 100644 1 0 0 0 0.-1 - - -\n", 0, 0, 2, "MTIME", "Negative integer -1" },
	{ ROOT "/a 0 100644 1 0 0 0 .5 - - -\n", 0, 0, 2, "MTIME", "Invalid integer " },
};

/*
 * Over 1 MiB of input, the parser reads on one thread and places the nodes
 * in the tree on another. FILL_LINES lines of a directory of their own
 * (about 1.1 MB) go after the root line of a case, so that its lines come
 * to the threads in the middle of a run.
 */
#define FILL_LINES 25000
#define FILL_DIR "/zzfill"

static char *fill_text(size_t *len)
{
	char *text = NULL;
	FILE *m = open_memstream(&text, len);

	if (m == NULL)
		abort();
	fputs(FILL_DIR " 0 40755 2 0 0 0 0.0 - - -\n", m);
	for (int i = 0; i < FILL_LINES; i++)
		fprintf(m, FILL_DIR "/f%06d 0 100644 1 0 0 0 0.0 - - -\n", i);
	if (fclose(m) != 0)
		abort();
	return text;
}

/* @input (@len bytes, beginning with ROOT) with the fill after its root
 * line; its lines are FILL_LINES + 1 further down. */
static char *with_fill(const char *input, size_t len, size_t *out_len)
{
	size_t fill_len, root_len = strlen(ROOT);
	char *fill = fill_text(&fill_len);
	char *s = malloc(len + fill_len);

	if (s == NULL)
		abort();
	memcpy(s, ROOT, root_len);
	memcpy(s + root_len, fill, fill_len);
	memcpy(s + root_len + fill_len, input + root_len, len - root_len);
	*out_len = len + fill_len;
	free(fill);
	return s;
}

/* Lines for the cases that need long fields, built at run time. */
static char *repeat_line(const char *prefix, char c, size_t n, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	char *s = malloc(pl + n + sl + 1);

	if (s == NULL)
		abort();
	memcpy(s, prefix, pl);
	memset(s + pl, c, n);
	memcpy(s + pl + n, suffix, sl + 1);
	return s;
}

static void check_bad(const char *input, size_t len, unsigned flags,
		      unsigned long line, const char *field, const char *msg,
		      int case_line)
{
	struct lcfs_error err;
	struct lcfs_node_s *root;

	errno = 0;
	root = lcfs_dump_parse_buf(input, len, flags, &err);
	test_checks++;
	if (root != NULL) {
		fprintf(stderr, "case %d: parsed, want \"%s\"\n", case_line, msg);
		test_failures++;
		cut_link_cycles(root);
		lcfs_node_unref(root);
		return;
	}
	if (err.line != line || strcmp(err.msg, msg) != 0 ||
	    (field == NULL) != (err.field == NULL) ||
	    (field != NULL && strcmp(field, err.field) != 0) || err.err == 0 ||
	    errno != err.err) {
		fprintf(stderr,
			"case %d: got %lu/%s/\"%s\" (errno %d), want %lu/%s/\"%s\"\n",
			case_line, err.line, err.field ? err.field : "-", err.msg, err.err,
			line, field ? field : "-", msg);
		test_failures++;
	}
}

static void test_bad_table(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];

		check_bad(c->input, c->len ? c->len : strlen(c->input), c->flags, c->line,
			  c->field, c->msg, (int)i);
	}
}

/* The table again, each case behind the fill: the same error, further
 * down. */
static void test_bad_table_threads(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->input), big_len;
		char *big;

		if (c->line < 2 || strncmp(c->input, ROOT, strlen(ROOT)) != 0)
			continue;
		big = with_fill(c->input, len, &big_len);
		check_bad(big, big_len, c->flags, c->line + FILL_LINES + 1, c->field,
			  c->msg, (int)i);
		free(big);
	}
}

/* On two threads, the error of the earlier line wins, and on one line the
 * path's (placed first) over the other fields'. */
static void test_threads_order(void)
{
	static const struct {
		const char *lines;
		unsigned long line;
		const char *field, *msg;
	} cases[] = {
		/* placer, then reader */
		{ "/x/a 0 100644 1 0 0 0 0.0 - - -\n/b 0 1z0644 1 0 0 0 0.0 - - -\n", 2,
		  "PATH", "Parent directory missing for /x/a" },
		/* reader, then placer */
		{ "/b 0 1z0644 1 0 0 0 0.0 - - -\n/x/a 0 100644 1 0 0 0 0.0 - - -\n", 2,
		  "MODE", "Invalid integer 1z0644" },
		/* one line: the path */
		{ "/x/a 0 100644 1 0 0 0 0.0z - - -\n", 2, "PATH",
		  "Parent directory missing for /x/a" },
		/* one line: the other field, when the path is good */
		{ "/a 0 100644 1 0 0 0 0.0z - - -\n", 2, "MTIME", "Invalid integer 0z" },
		/* a duplicate far from the first */
		{ FILL_DIR "/f000007 0 100644 1 0 0 0 0.0 - - -\n", 2, "PATH",
		  "Path " FILL_DIR "/f000007 already exists" },
		/* a hard link line whose target does not exist */
		{ "/h 0 @100644 1 0 0 0 0.0 /nothing - -\n", 2, "PAYLOAD",
		  "No target at /nothing for hardlink" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *input, *big;
		size_t len;

		if (asprintf(&input, ROOT "%s", cases[i].lines) < 0)
			abort();
		big = with_fill(input, strlen(input), &len);
		check_bad(big, len, 0, cases[i].line + FILL_LINES + 1, cases[i].field,
			  cases[i].msg, __LINE__ + (int)i);
		free(big);
		free(input);
	}
}

/* A big tree through both threads, unsorted and with hard links from the
 * end to the beginning, prints back as the same tree. */
static void test_threads_tree(void)
{
	char *fill, *input, *text, *expect = NULL;
	size_t fill_len, expect_len = 0;
	struct lcfs_error err;
	struct lcfs_node_s *root;
	FILE *m;

	fill = fill_text(&fill_len);
	if (asprintf(&input,
		     ROOT "%s/b 0 40755 2 0 0 0 0.0 - - -\n"
			  "/a 0 @100644 1 0 0 0 0.0 " FILL_DIR "/f000003 - -\n"
			  "/b/c 0 @100644 1 0 0 0 0.0 /a - -\n",
		     fill) < 0)
		abort();
	root = parse_str(input, 0, &err);
	CHECK(root != NULL);
	if (root == NULL) {
		fprintf(stderr, "line %lu: %s\n", err.line, err.msg);
		goto out;
	}
	CHECK(root->n_children == 3);
	m = open_memstream(&expect, &expect_len);
	if (m == NULL)
		abort();
	fputs(ROOT, m);
	/* Both links end at the target (which keeps its own NLINK). */
	fputs("/a 0 @100644 1 0 0 0 0.0 " FILL_DIR "/f000003 - -\n", m);
	fputs("/b 0 40755 2 0 0 0 0.0 - - -\n", m);
	fputs("/b/c 0 @100644 1 0 0 0 0.0 " FILL_DIR "/f000003 - -\n", m);
	fputs(fill, m);
	if (fclose(m) != 0)
		abort();
	text = print_str(root);
	CHECK(text != NULL && strcmp(text, expect) == 0);
	free(text);
	lcfs_node_unref(root);
out:
	free(expect);
	free(input);
	free(fill);
}

/* Directories that get their entries backwards and interleaved, in an
 * input big enough for two threads (which then both sort them), print
 * back sorted. */
/* A large tree given out of order is moved into the writer's order on two
 * threads (lcfs-node.c, RELOCATE_SPLIT_MIN), its names and payloads
 * copied: it must print back sorted, and every chunk of its slabs must be
 * unmapped once it is freed. */
static void test_threads_sort(void)
{
	enum { DIRS = 40, SUBDIRS = 50, FILES = 30000 };
	char *input = NULL, *expect = NULL, *text;
	size_t input_len = 0, expect_len = 0, chunks;
	struct lcfs_error err;
	struct lcfs_node_s *root;
	FILE *in = open_memstream(&input, &input_len);
	FILE *ex = open_memstream(&expect, &expect_len);

	if (in == NULL || ex == NULL)
		abort();
	/* File i is in directory i % DIRS, right there when i is even, else
	 * in its subdirectory (i / DIRS) % SUBDIRS: the second half of the
	 * move starts among directories that have entries. */
	fputs(ROOT, in);
	for (int d = 0; d < DIRS; d++)
		fprintf(in, "/d%02d 0 40755 2 0 0 0 0.0 - - -\n", d);
	for (int d = 0; d < DIRS; d++)
		for (int sd = 0; sd < SUBDIRS; sd++)
			fprintf(in, "/d%02d/s%02d 0 40755 2 0 0 0 0.0 - - -\n", d, sd);
	for (int i = FILES - 1; i >= 0; i--) {
		fprintf(in, "/d%02d/", i % DIRS);
		if (i % 2 != 0)
			fprintf(in, "s%02d/", (i / DIRS) % SUBDIRS);
		fprintf(in, "f%06d%.*s 1 100644 1 0 0 0 0.0 %02x/p%d - -\n", i,
			i % 5, "xxxx", i % 256, i);
	}
	/* A hard link from the last directory to the first file. */
	fprintf(in, "/d%02d/link 0 @100644 1 0 0 0 0.0 /d00/f000000 - -\n", DIRS - 1);

	fputs(ROOT, ex);
	for (int d = 0; d < DIRS; d++) {
		fprintf(ex, "/d%02d 0 40755 2 0 0 0 0.0 - - -\n", d);
		for (int i = d; i < FILES && d % 2 == 0; i += DIRS)
			fprintf(ex, "/d%02d/f%06d%.*s 1 100644 1 0 0 0 0.0 %02x/p%d - -\n",
				d, i, i % 5, "xxxx", i % 256, i);
		if (d == DIRS - 1)
			fprintf(ex, "/d%02d/link 1 @100644 1 0 0 0 0.0 /d00/f000000 - -\n", d);
		for (int sd = 0; sd < SUBDIRS; sd++) {
			fprintf(ex, "/d%02d/s%02d 0 40755 2 0 0 0 0.0 - - -\n", d, sd);
			for (int i = d; i < FILES && d % 2 != 0; i += DIRS) {
				if ((i / DIRS) % SUBDIRS != sd)
					continue;
				fprintf(ex, "/d%02d/s%02d/f%06d%.*s 1 100644 1 0 0 0 0.0 %02x/p%d - -\n",
					d, sd, i, i % 5, "xxxx", i % 256, i);
			}
		}
	}
	if (fclose(in) != 0 || fclose(ex) != 0)
		abort();
	CHECK(input_len > 1024 * 1024);
	chunks = lcfs_slab_chunks_mapped();
	root = lcfs_dump_parse_buf(input, input_len, LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL);
	if (root != NULL) {
		struct lcfs_node_s *first = root->children[0];

		/* Moved: breadth first, each node right after the one before. */
		CHECK(first == root + 1 && root->children[DIRS - 1] == root + DIRS);
		CHECK(first->children[0] == root + DIRS + 1);
		text = print_str(root);
		CHECK(text != NULL && strcmp(text, expect) == 0);
		free(text);
		lcfs_node_unref(root);
	}
	CHECK(lcfs_slab_chunks_mapped() == chunks);
	free(input);
	free(expect);
}

static void check_bad_alloc(char *input, unsigned flags, unsigned long line,
			    const char *field, const char *msg, int case_line)
{
	check_bad(input, strlen(input), flags, line, field, msg, case_line);
	free(input);
}

static void test_bad_long(void)
{
	char *s;

	/* 4096-byte symlink target and payload; 4095 is fine. */
	check_bad_alloc(repeat_line(ROOT "/l 1 120777 1 0 0 0 0.0 ", 'a', 4096, " - -\n"), 0,
			2, "PAYLOAD", "Invalid symlink", __LINE__);
	check_bad_alloc(repeat_line(ROOT "/f 1 100644 1 0 0 0 0.0 ", 'a', 4096, " - -\n"), 0,
			2, "PAYLOAD", "Invalid payload", __LINE__);
	s = repeat_line(ROOT "/l 1 120777 1 0 0 0 0.0 ", 'a', 4095, " - -\n");
	{
		struct lcfs_error err;
		struct lcfs_node_s *r = parse_str(s, 0, &err);

		CHECK(r != NULL);
		if (r != NULL) {
			CHECK(r->children[0]->size == 4095);
			lcfs_node_unref(r);
		}
	}
	free(s);
	/* Inline content over 5000 bytes. */
	check_bad_alloc(repeat_line(ROOT "/f 5001 100644 1 0 0 0 0.0 - ", 'x', 5001, " -\n"),
			0, 2, "CONTENT", "Inline content size 5001 exceeds maximum 5000",
			__LINE__);
	/* A 256-byte name. */
	check_bad_alloc(repeat_line(ROOT "/", 'n', 256, " 0 100644 1 0 0 0 0.0 - - -\n"), 0,
			2, "PATH", "Can't add child", __LINE__);
	/* Xattr text over 65535 bytes; exactly 65535 passes that cap (and
	 * then busts the per-file budget). */
	check_bad_alloc(repeat_line(ROOT "/f 0 100644 1 0 0 0 0.0 - - - user.a=", 'v',
				    65535 - 7 + 1, "\n"),
			0, 2, "XATTR", "Too many xattrs", __LINE__);
	check_bad_alloc(repeat_line(ROOT "/f 0 100644 1 0 0 0 0.0 - - - user.a=", 'v', 65535 - 7,
				    "\n"),
			0, 2, "XATTR", "Can't set xattr", __LINE__);
	/* A 256-byte key. */
	check_bad_alloc(repeat_line(ROOT "/f 0 100644 1 0 0 0 0.0 - - - ", 'k', 256, "=v\n"),
			0, 2, "XATTR", "Can't set xattr", __LINE__);
	/* Per-file budget: 12 + (7 + 6 + 32700) fits; one more xattr of
	 * cost 52 does not. */
	check_bad_alloc(repeat_line(ROOT "/f 0 100644 1 0 0 0 0.0 - - - user.a=", 'v', 32700,
				    " user.b=123456789012345678901234567890123456789\n"),
			0, 2, "XATTR", "Can't set xattr", __LINE__);
	s = repeat_line(ROOT "/f 0 100644 1 0 0 0 0.0 - - - user.a=", 'v', 32767 - 12 - 7 - 6,
			"\n");
	{
		struct lcfs_error err;
		struct lcfs_node_s *r = parse_str(s, 0, &err);

		CHECK(r != NULL);
		lcfs_node_unref(r);
	}
	free(s);
	check_bad_alloc(repeat_line(ROOT "/f 0 100644 1 0 0 0 0.0 - - - user.a=", 'v',
				    32767 - 12 - 7 - 6 + 1, "\n"),
			0, 2, "XATTR", "Can't set xattr", __LINE__);
}

/* Escapes in every textual field (docs/dumpfile.md, "Escapes"). */
static void test_escapes(void)
{
	struct lcfs_error err;
	struct lcfs_node_s *root, *n;
	const char *v;
	size_t len;

	root = parse_str(ROOT "/a\\x20b\\\\c\\t 4 100644 1 0 0 0 0.0 - \\x00\\n\\r\\xFf -"
			      " user.k\\x3d=v=w\\x00x user.t=1 user.dash=-\n"
			      "/l 2 120777 1 0 0 0 0.0 \\x2d\\x2D - -\n"
			      "/p 9 100644 1 0 0 0 0.0 \\x2d - -\n",
			 LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL);
	if (root == NULL) {
		fprintf(stderr, "%lu: %s\n", err.line, err.msg);
		return;
	}
	CHECK(root->n_children == 3);
	n = lcfs_node_lookup_child(root, "a b\\c\t");
	CHECK(n != NULL);
	if (n != NULL) {
		CHECK(n->size == 4 && n->content != NULL &&
		      memcmp(n->content, "\0\n\r\xff", 4) == 0);
		v = lcfs_node_get_xattr(n, "user.k=", &len);
		CHECK(v != NULL && len == 5 && memcmp(v, "v=w\0x", 5) == 0);
		v = lcfs_node_get_xattr(n, "user.t", &len);
		CHECK(v != NULL && len == 1 && v[0] == '1');
		v = lcfs_node_get_xattr(n, "user.dash", &len);
		CHECK(v != NULL && len == 1 && v[0] == '-');
	}
	n = lcfs_node_lookup_child(root, "l");
	CHECK(n != NULL && n->payload != NULL && strcmp(n->payload, "--") == 0 &&
	      n->size == 2);
	n = lcfs_node_lookup_child(root, "p");
	CHECK(n != NULL && n->payload != NULL && strcmp(n->payload, "-") == 0);
	lcfs_node_unref(root);
}

/* strtoull() syntax, the extremes of each field, optional fields
 * (docs/dumpfile.md, "Numbers", "Optional fields"). */
static void test_fields(void)
{
	struct lcfs_error err;
	struct lcfs_node_s *root, *n;

	root = parse_str("/ 4096 40755 \t2 +0 0 0 -5.7 - - -\n"
			 "/big 18446744073709551615 100644 1 4294967295 +4294967294 0 "
			 "9223372036854775807.4294967295 - - -\n"
			 "/old 0 100644 1 -0 0 0 -9223372036854775808.0 - - -\n"
			 "/hi 0 1100644 1 0 0 0 0.0 - - -\n"
			 "/dev 7 20644 1 0 0 4294967295 0.0 x\\x2dy - -\n"
			 "/fifo 3 10644 1 0 0 0 1695368732.385062094 - - -\n"
			 "/nodig 0 100644 1 0 0 0 0.0 - -\n"
			 "/empty 0 100644 1 0 0 0 0.0\n"
			 "/dig 10 100644 1 0 0 0 0.0 ab/cd - " DIGEST64 "\n",
			 0, &err);
	CHECK(root != NULL);
	if (root == NULL) {
		fprintf(stderr, "%lu: %s\n", err.line, err.msg);
		return;
	}
	CHECK(root->nlink == 2 && root->mtime_sec == -5 && root->mtime_nsec == 7);
	n = lcfs_node_lookup_child(root, "big");
	CHECK(n != NULL && n->size == UINT64_MAX && n->uid == UINT32_MAX &&
	      n->gid == UINT32_MAX - 1 && n->mtime_sec == INT64_MAX &&
	      n->mtime_nsec == UINT32_MAX);
	n = lcfs_node_lookup_child(root, "old");
	CHECK(n != NULL && n->uid == 0 && n->mtime_sec == INT64_MIN);
	n = lcfs_node_lookup_child(root, "hi");
	CHECK(n != NULL && n->mode == 01100644);
	n = lcfs_node_lookup_child(root, "dev");
	CHECK(n != NULL && n->rdev == UINT32_MAX && n->size == 7 && n->payload != NULL &&
	      strcmp(n->payload, "x-y") == 0);
	n = lcfs_node_lookup_child(root, "fifo");
	CHECK(n != NULL && n->size == 3 && n->mtime_sec == 1695368732 &&
	      n->mtime_nsec == 385062094);
	/* A missing DIGEST field is "no digest". */
	n = lcfs_node_lookup_child(root, "nodig");
	CHECK(n != NULL && !n->digest_set);
	/* Missing PAYLOAD and CONTENT are empty: an empty payload, no
	 * content. */
	n = lcfs_node_lookup_child(root, "empty");
	CHECK(n != NULL && n->payload != NULL && n->payload[0] == '\0' &&
	      n->content == NULL && !n->digest_set);
	n = lcfs_node_lookup_child(root, "dig");
	CHECK(n != NULL && n->digest_set && n->digest[0] == 0x01 && n->digest[31] == 0xef &&
	      n->size == 10 && strcmp(n->payload, "ab/cd") == 0);
	lcfs_node_unref(root);

	/* RDEV is dropped on non-devices outside strict mode; the symlink
	 * size becomes the target length; content on a symlink is ignored. */
	root = parse_str(ROOT "/f 0 100644 1 0 0 9 0.0 - - -\n"
			      "/l 9 120777 1 0 0 0 0.0 tgt tgt -\n"
			      "/l2 3 120777 1 0 0 0 0.0 tgt - -\n",
			 LCFS_PARSE_FLAGS_NO_CONTENT_CHECK, &err);
	CHECK(root != NULL);
	if (root != NULL) {
		n = lcfs_node_lookup_child(root, "f");
		CHECK(n != NULL && n->rdev == 0);
		n = lcfs_node_lookup_child(root, "l");
		CHECK(n != NULL && n->size == 3 && n->content == NULL);
		lcfs_node_unref(root);
	}
	/* Without the flag, CONTENT must match SIZE even for a symlink. */
	root = parse_str(ROOT "/l 9 120777 1 0 0 0 0.0 tgt tgt -\n", 0, &err);
	CHECK(root == NULL && strcmp(err.msg, "Invalid content size 3, must match size 9") == 0);
	/* The content check can be turned off (fuzzing). */
	root = parse_str(ROOT "/f 9 100644 1 0 0 0 0.0 - abc -\n",
			 LCFS_PARSE_FLAGS_NO_CONTENT_CHECK, &err);
	CHECK(root != NULL && root->children[0]->size == 3 && root->children[0]->content);
	lcfs_node_unref(root);
	/* Strict mode accepts what it should. */
	root = parse_str(ROOT "/l 3 120777 1 0 0 0 0.0 tgt - -\n"
			      "/c 0 20777 1 0 0 1234 0.0 - - -\n",
			 LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL && root->children[0]->rdev == 1234);
	lcfs_node_unref(root);
	/* Strict mode only refuses non-empty content on a symlink. */
	root = parse_str(ROOT "/l 3 120777 1 0 0 0 0.0 tgt  -\n",
			 LCFS_PARSE_FLAGS_STRICT | LCFS_PARSE_FLAGS_NO_CONTENT_CHECK, &err);
	CHECK(root != NULL && root->children[0]->content == NULL);
	lcfs_node_unref(root);
	/* Non-strict: a last line without newline is parsed. */
	root = parse_str(ROOT "/a 0 100644 1 0 0 0 0.0 - - -", 0, &err);
	CHECK(root != NULL && root->n_children == 1);
	lcfs_node_unref(root);
	/* One trailing space after DIGEST or after an xattr is harmless. */
	root = parse_str("/ 4096 40755 2 0 0 0 0.0 - - - \n/a 0 100644 1 0 0 0 0.0 - - - "
			 "user.a=1 \n",
			 LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL && root->children[0]->n_xattrs == 1);
	lcfs_node_unref(root);
}

/* Path forms and the parent cache (docs/dumpfile.md, "Paths"). */
static void test_paths(void)
{
	struct lcfs_error err;
	struct lcfs_node_s *root, *n;

	root = parse_str(ROOT "a 0 40755 1 0 0 0 0.0 - - -\n"
			      "/b 0 40755 1 0 0 0 0.0 - - -\n"
			      "//a///x 0 40755 1 0 0 0 0.0 - - -\n"
			      "/b/y 0 40755 1 0 0 0 0.0 - - -\n"
			      "/a/x/z 0 100644 1 0 0 0 0.0 - - -\n"
			      "/b/y/w 0 100644 1 0 0 0 0.0 - - -\n"
			      "/a/x/a 0 100644 1 0 0 0 0.0 - - -\n"
			      "/0 0 100644 1 0 0 0 0.0 - - -\n"
			      "/a/b 0 40755 1 0 0 0 0.0 - - -\n"
			      "/a/b/c 0 100644 1 0 0 0 0.0 - - -\n"
			      "/b/b 0 40755 1 0 0 0 0.0 - - -\n"
			      "/b/b/c 0 100644 1 0 0 0 0.0 - - -\n",
			 LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL);
	if (root == NULL) {
		fprintf(stderr, "%lu: %s\n", err.line, err.msg);
		return;
	}
	/* Children sorted whatever the input order. */
	CHECK(root->n_children == 3);
	CHECK(strcmp(root->children[0]->name, "0") == 0);
	CHECK(strcmp(root->children[1]->name, "a") == 0);
	n = lcfs_node_lookup_child(root, "a");
	n = n ? lcfs_node_lookup_child(n, "x") : NULL;
	CHECK(n != NULL && n->n_children == 2 && strcmp(n->children[0]->name, "a") == 0 &&
	      strcmp(n->children[1]->name, "z") == 0);
	n = lcfs_node_lookup_child(root, "b");
	n = n ? lcfs_node_lookup_child(n, "b") : NULL;
	CHECK(n != NULL && n->n_children == 1 && n->parent->parent == root);
	n = lcfs_node_lookup_child(root, "a");
	n = n ? lcfs_node_lookup_child(n, "b") : NULL;
	CHECK(n != NULL && n->n_children == 1);
	lcfs_node_unref(root);
}

/* Hard links (docs/dumpfile.md, "Hard links"). */
static void test_hardlinks(void)
{
	struct lcfs_error err;
	struct lcfs_node_s *root, *a, *b, *c, *h;

	/* Forward reference, fields other than PATH/MODE/PAYLOAD ignored
	 * (not even parsed), target NLINK kept. */
	root = parse_str(ROOT "/h junk @100644 x y z w v /d//f garbage zz user.x\n"
			      "/d 0 40755 1 0 0 0 0.0 - - -\n"
			      "/d/f 5 100644 3 7 8 0 9.1 ab/cd - -\n",
			 LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL);
	if (root != NULL) {
		h = lcfs_node_lookup_child(root, "h");
		a = lcfs_node_lookup_child(root, "d");
		a = a ? lcfs_node_lookup_child(a, "f") : NULL;
		CHECK(h != NULL && a != NULL && h->link_to == a && a->nlink == 3);
		CHECK(h != NULL && h->mode == 0100644 && h->n_xattrs == 0);
		lcfs_node_unref(root);
	}

	/* Chains: /a -> /b -> /c (a link to a link); the parser points
	 * every link at the end of its chain. */
	root = parse_str(ROOT "/a 0 @100644 1 0 0 0 0.0 /b - -\n"
			      "/b 0 @100644 1 0 0 0 0.0 /c - -\n"
			      "/c 0 100644 2 0 0 0 0.0 - - -\n",
			 0, &err);
	CHECK(root != NULL);
	if (root != NULL) {
		a = lcfs_node_lookup_child(root, "a");
		b = lcfs_node_lookup_child(root, "b");
		c = lcfs_node_lookup_child(root, "c");
		CHECK(a->link_to == c && b->link_to == c && c->link_to == NULL);
		CHECK(lcfs_node_resolve_link(a) == c && c->nlink == 2);
		lcfs_node_unref(root);
	}

	/* A cycle parses (the writer refuses it) and nothing loops. */
	root = parse_str(ROOT "/a 0 @100644 1 0 0 0 0.0 /c - -\n"
			      "/b 0 @100644 1 0 0 0 0.0 /a - -\n"
			      "/c 0 @100644 1 0 0 0 0.0 /a - -\n",
			 0, &err);
	CHECK(root != NULL);
	if (root != NULL) {
		char *text;

		a = lcfs_node_lookup_child(root, "a");
		CHECK(lcfs_node_resolve_link(a) == NULL);
		text = print_str(root);
		CHECK(text != NULL);
		free(text);
		cut_link_cycles(root);
		lcfs_node_unref(root);
	}

	/* A failure after a cycle was made must not leak it. */
	root = parse_str(ROOT "/x 0 @100644 1 0 0 0 0.0 /nope - -\n"
			      "/a 0 @100644 1 0 0 0 0.0 /c - -\n"
			      "/c 0 @100644 1 0 0 0 0.0 /a - -\n",
			 0, &err);
	CHECK(root == NULL && err.line == 2 &&
	      strcmp(err.msg, "No target at /nope for hardlink") == 0);
}

/* Identical xattrs are shared; the last value of a key wins. */
static void test_xattrs(void)
{
	struct lcfs_error err;
	struct lcfs_node_s *root;
	const char *v;
	size_t len;

	root = parse_str("/ 4096 40755 2 0 0 0 0.0 - - - security.selinux=system_u:object_r:root_t:s0\n"
			 "/a 0 100644 1 0 0 0 0.0 - - - security.selinux=system_u:object_r:lib_t:s0\n"
			 "/b 0 100644 1 0 0 0 0.0 - - - security.selinux=system_u:object_r:lib_t:s0\n"
			 "/c 0 100644 1 0 0 0 0.0 - - - user.k=1 user.j=2 user.k=3 foo=\n",
			 0, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	CHECK(root->n_children == 3);
	CHECK(root->children[0]->xattrs[0] == root->children[1]->xattrs[0]);
	CHECK(root->xattrs[0] != root->children[0]->xattrs[0]);
	CHECK(root->children[0]->xattrs[0]->ref == 2);
	v = lcfs_node_get_xattr(root->children[2], "user.k", &len);
	CHECK(v != NULL && len == 1 && v[0] == '3');
	CHECK(root->children[2]->n_xattrs == 3);
	v = lcfs_node_get_xattr(root->children[2], "foo", &len);
	CHECK(v != NULL && len == 0);
	lcfs_node_unref(root);
}

/* Deep trees: no recursion anywhere. */
static void test_deep(void)
{
	enum { DEPTH = 4000 };
	size_t cap = (size_t)DEPTH * (DEPTH + 40) + 100, len = 0;
	char *buf = malloc(cap), *text;
	struct lcfs_error err;
	struct lcfs_node_s *root;

	if (buf == NULL)
		abort();
	len += sprintf(buf, ROOT);
	for (int d = 1; d <= DEPTH; d++) {
		for (int i = 0; i < d; i++) {
			buf[len++] = '/';
			buf[len++] = 'd';
		}
		len += sprintf(buf + len, " 0 40755 2 0 0 0 0.0 - - -\n");
	}
	root = lcfs_dump_parse_buf(buf, len, LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL);
	if (root != NULL) {
		text = print_str(root);
		CHECK(text != NULL && strlen(text) == len && memcmp(text, buf, len) == 0);
		free(text);
		lcfs_node_unref(root);
	}
	free(buf);
}

/* Reading from a file descriptor: many chunks and a line longer than the
 * first read buffer. */
static void test_fd(void)
{
	FILE *tmp = tmpfile();
	struct lcfs_error err;
	struct lcfs_node_s *root;
	int pipefd[2];
	pid_t pid;
	char *text, *expect = NULL;
	size_t expect_len = 0;
	FILE *mem = open_memstream(&expect, &expect_len);

	if (tmp == NULL || mem == NULL)
		abort();
	fputs(ROOT, mem);
	for (int i = 0; i < 20000; i++)
		fprintf(mem, "/f%06d 0 100644 1 0 0 0 %d.%d - - - user.n=%d\n", i, i, i % 7,
			i % 13);
	fclose(mem);
	fwrite(expect, 1, expect_len, tmp);
	fflush(tmp);
	rewind(tmp);
	root = lcfs_dump_parse_fd(fileno(tmp), LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(root != NULL && root->n_children == 20000);
	if (root != NULL) {
		text = print_str(root);
		CHECK(text != NULL && strcmp(text, expect) == 0);
		free(text);
		lcfs_node_unref(root);
	}
	fclose(tmp);

	/* Through a pipe, with a 3 MiB line (whose xattr text is too long)
	 * after a good one: the error names line 3. */
	if (pipe(pipefd) < 0)
		abort();
	pid = fork();
	if (pid == 0) {
		static char chunk[65536];
		FILE *w;

		close(pipefd[0]);
		w = fdopen(pipefd[1], "w");
		memset(chunk, 'v', sizeof(chunk));
		fputs(expect, w);
		fputs("/zz 0 100644 1 0 0 0 0.0 - - - user.v=", w);
		for (int i = 0; i < 48; i++)
			fwrite(chunk, 1, sizeof(chunk), w);
		fputs("\n", w);
		fclose(w);
		_exit(0);
	}
	close(pipefd[1]);
	root = lcfs_dump_parse_fd(pipefd[0], 0, &err);
	CHECK(root == NULL && err.line == 20002 && strcmp(err.msg, "Too many xattrs") == 0);
	close(pipefd[0]);
	waitpid(pid, NULL, 0);

	/* A read error is reported. */
	root = lcfs_dump_parse_fd(-1, 0, &err);
	CHECK(root == NULL && err.err == EBADF && errno == EBADF);
	free(expect);
}

static bool xattr_is(struct lcfs_node_s *node, const char *key, const char *want)
{
	size_t len;
	const char *v = lcfs_node_get_xattr(node, key, &len);

	return v != NULL && len == strlen(want) && memcmp(v, want, len) == 0;
}

/*
 * Whatever order the lines come in, the parser hands back its nodes laid
 * out in memory in the order the writer visits them (breadth first,
 * children by name), and the tree behaves like any other: hard links,
 * xattrs (including the slot a node keeps for its only one), references
 * that outlive the root, names and payloads replaced through the API.
 */
static void test_relocated(void)
{
	static const char shuffled[] =
		ROOT "/d 0 40755 2 0 0 0 0.0 - - - user.one=1\n"
		"/z 0 40755 2 0 0 0 0.0 - - -\n"
		"/z/f 5 100644 2 0 0 0 0.0 ab/cdef - - user.a=x user.b=y\n"
		"/d/e 0 40755 2 0 0 0 0.0 - - -\n"
		"/a 0 @100644 1 0 0 0 0.0 /z/f - -\n"
		"/d/e/g 3 100644 1 0 0 0 0.0 - abc - user.one=1\n"
		"/d/c 0 120777 1 0 0 0 0.0 /target - -\n"
		"/b 0 100644 1 0 0 0 0.0 - - -\n";
	static const char *const bfs[] = { "", "a", "b", "d", "z", "c", "e", "f", "g" };
	struct lcfs_node_s *order[9], *root, *f, *g, *other;
	struct lcfs_error err;
	size_t n = 0, k = 0;
	char *text;

	root = parse_str(shuffled, 0, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	order[n++] = root;
	while (k < n && n <= 9) {
		struct lcfs_node_s *node = order[k++];

		for (size_t i = 0; i < node->n_children && n < 9; i++)
			order[n++] = node->children[i];
	}
	CHECK(n == 9);
	for (size_t i = 1; i < n; i++) {
		CHECK_STR(order[i]->name, bfs[i]);
		CHECK((char *)order[i] - (char *)order[i - 1] ==
		      (ptrdiff_t)sizeof(struct lcfs_node_s));
	}
	f = order[7];
	g = order[8];
	CHECK(order[1]->link_to == f && f->nlink == 2);
	CHECK(f->parent == order[4] && order[6]->parent == order[3]);
	CHECK(xattr_is(order[3], "user.one", "1"));
	CHECK(xattr_is(f, "user.b", "y"));
	CHECK_STR(lcfs_node_get_payload(order[5]), "/target");
	CHECK(g->content != NULL && memcmp(g->content, "abc", 3) == 0);
	text = print_str(root);
	CHECK(text != NULL && strstr(text, "\n/a 5 @100644 2 0 0 0 0.0 /z/f - - user.a=x user.b=y\n") != NULL);
	free(text);

	/* Nodes that outlive their tree, changed and moved to another. */
	lcfs_node_ref(f);
	lcfs_node_ref(g);
	CHECK(lcfs_node_set_payload(f, "12/3456") == 0);
	lcfs_node_unref(root);
	CHECK(f->name == NULL && f->parent == NULL);
	CHECK(xattr_is(g, "user.one", "1"));
	other = lcfs_node_new();
	CHECK(other != NULL);
	if (other == NULL)
		return;
	lcfs_node_set_mode(other, S_IFDIR | 0755);
	CHECK(lcfs_node_add_child(other, f, "f2") == 0);
	CHECK(lcfs_node_add_child(other, g, "g2") == 0);
	CHECK_STR(lcfs_node_get_payload(f), "12/3456");
	CHECK_STR(lcfs_node_get_name(g), "g2");
	lcfs_node_unref(other);
}

int main(void)
{
	TEST_CASE(test_bad_table);
	TEST_CASE(test_bad_table_threads);
	TEST_CASE(test_threads_order);
	TEST_CASE(test_threads_tree);
	TEST_CASE(test_threads_sort);
	TEST_CASE(test_bad_long);
	TEST_CASE(test_escapes);
	TEST_CASE(test_fields);
	TEST_CASE(test_paths);
	TEST_CASE(test_hardlinks);
	TEST_CASE(test_relocated);
	TEST_CASE(test_xattrs);
	TEST_CASE(test_deep);
	TEST_CASE(test_fd);
	return test_summary("test-dump-parse");
}
