#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# mkcomposefs --from-file: output handling (temporary file and rename, no
# partial output, "-" for stdout, modes), error messages naming file, line
# and field, version options, strict mode, and the printed digests against
# fsverity-utils (docs/design.md, "mkcomposefs"; docs/compatibility.md).
# Usage: test-mkcomposefs.py MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP

import os
import stat
import subprocess

from cfstools import (Skip, check, equal, fails, fsverity_digest, image_version,
                       main, ok, read, run, write)

GOOD = (
    "/ 4096 40755 2 0 0 0 100.0 - - -\n"
    "/f 10 100644 1 0 0 0 100.0 ab/cdef - "
    "1111111111111111111111111111111111111111111111111111111111111111\n"
    "/s 3 120777 1 0 0 0 100.0 xyz - -\n"
)
# The image of GOOD at version 0 (docs/image-format.md, "External file and
# symlink").
GOOD_SHA256 = "2d4ecd22093ba2dd20cf5f99cb5b390d4d6c8f87c5394e6119cab300b09500ae"

# Error on line 2, in the MODE field.
BAD = (
    "/ 4096 40755 2 0 0 0 0.0 - - -\n"
    "/a 0 644 1 0 0 0 0.0 - - -\n"
)

WHITEOUT = (
    "/ 4096 40755 2 0 0 0 0.0 - - -\n"
    "/wh 0 20644 1 0 0 0 0.0 - - -\n"
)


def sha256(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


def others(tmp, *keep):
    return sorted(set(os.listdir(tmp)) - set(keep))


def test_writes_reference_image(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    out = os.path.join(tmp, "out.cfs")
    ok(run([t.mkcomposefs, "--from-file", d, out]))
    equal(sha256(read(out)), GOOD_SHA256, "image SHA-256")
    check(others(tmp, "in.dump", "out.cfs") == [], "stray files: %s" % os.listdir(tmp))


def test_option_permutation_and_abbreviation(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    out = os.path.join(tmp, "out.cfs")
    # Options after the operands, and unambiguous prefixes.
    ok(run([t.mkcomposefs, d, out, "--from"]))
    equal(sha256(read(out)), GOOD_SHA256, "image SHA-256")
    os.unlink(out)
    ok(run([t.mkcomposefs, d, "--from-f", out, "--min-v=0", "--max=0"]))
    equal(sha256(read(out)), GOOD_SHA256, "image SHA-256")


def test_bad_dump_leaves_nothing(t, tmp):
    d = write(os.path.join(tmp, "bad.dump"), BAD)
    out = os.path.join(tmp, "out.cfs")
    r = fails(run([t.mkcomposefs, "--from-file", d, out]))
    # mkcomposefs: FILE:LINE: FIELD: MESSAGE
    check(r.err.startswith("mkcomposefs: %s:2: " % d), "file and line in message", r)
    check("Invalid mode 644" in r.err, "reason in message", r)
    check(len(r.err.splitlines()) == 1, "one line", r)
    check(others(tmp, "bad.dump") == [], "left behind: %s" % os.listdir(tmp))


def test_bad_dump_on_stdin(t, tmp):
    out = os.path.join(tmp, "out.cfs")
    r = fails(run([t.mkcomposefs, "--from-file", "-", out], stdin=BAD.encode()))
    check(r.err.startswith("mkcomposefs: <stdin>:2: "), "stdin named in message", r)
    check(os.listdir(tmp) == [], "left behind: %s" % os.listdir(tmp))


def test_empty_dump(t, tmp):
    d = write(os.path.join(tmp, "empty.dump"), "")
    out = os.path.join(tmp, "out.cfs")
    fails(run([t.mkcomposefs, "--from-file", d, out]), d)
    check(others(tmp, "empty.dump") == [], "left behind: %s" % os.listdir(tmp))


def test_failure_keeps_existing_target(t, tmp):
    d = write(os.path.join(tmp, "bad.dump"), BAD)
    out = write(os.path.join(tmp, "out.cfs"), b"precious", mode=0o640)
    fails(run([t.mkcomposefs, "--from-file", d, out]))
    equal(read(out), b"precious", "existing target")
    check(stat.S_IMODE(os.stat(out).st_mode) == 0o640, "target mode changed")
    check(others(tmp, "bad.dump", "out.cfs") == [], "left behind: %s" % os.listdir(tmp))


def test_write_time_failure_keeps_target(t, tmp):
    # Accepted by the parser, rejected by the writer (EFBIG).
    d = write(os.path.join(tmp, "big.dump"),
              "/ 4096 40755 2 0 0 0 0.0 - - -\n"
              "/big 9500000000000000 100644 1 0 0 0 0.0 - - -\n")
    out = write(os.path.join(tmp, "out.cfs"), b"precious")
    fails(run([t.mkcomposefs, "--from-file", d, out]),
          "mkcomposefs: cannot write file: File too large")
    equal(read(out), b"precious", "existing target")
    check(others(tmp, "big.dump", "out.cfs") == [], "left behind: %s" % os.listdir(tmp))
    os.unlink(out)
    fails(run([t.mkcomposefs, "--from-file", d, out]), "File too large")
    check(others(tmp, "big.dump") == [], "left behind: %s" % os.listdir(tmp))


def test_success_replaces_target(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    out = write(os.path.join(tmp, "out.cfs"), b"old contents " * 5000, mode=0o600)
    ok(run([t.mkcomposefs, "--from-file", d, out], umask=0o022))
    equal(sha256(read(out)), GOOD_SHA256, "image SHA-256")
    # A new file, created like open(O_CREAT, 0666) under the umask.
    check(stat.S_IMODE(os.stat(out).st_mode) == 0o644, "mode under umask 022")
    os.unlink(out)
    ok(run([t.mkcomposefs, "--from-file", d, out], umask=0o077))
    check(stat.S_IMODE(os.stat(out).st_mode) == 0o600, "mode under umask 077")
    check(others(tmp, "in.dump", "out.cfs") == [], "left behind: %s" % os.listdir(tmp))


def test_relative_target(t, tmp):
    write(os.path.join(tmp, "in.dump"), GOOD)
    ok(run([t.mkcomposefs, "--from-file", "in.dump", "out.cfs"], cwd=tmp))
    equal(sha256(read(os.path.join(tmp, "out.cfs"))), GOOD_SHA256, "image SHA-256")


def test_stdout_output(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    r = ok(run([t.mkcomposefs, "--from-file", d, "-"]))
    equal(sha256(r.out), GOOD_SHA256, "image on stdout")
    # stdin to stdout.
    r = ok(run([t.mkcomposefs, "--from-file", "-", "-"], stdin=GOOD.encode()))
    equal(sha256(r.out), GOOD_SHA256, "image on stdout from stdin")
    check(os.listdir(tmp) == ["in.dump"], "files created: %s" % os.listdir(tmp))


def test_stdout_write_error(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    with open("/dev/full", "wb") as full:
        r = run([t.mkcomposefs, "--from-file", d, "-"], stdout=full)
    fails(r, "mkcomposefs: cannot write file: No space left on device")
    with open("/dev/full", "wb") as full:
        r = run([t.mkcomposefs, "--from-file", "--print-digest-only", d], stdout=full)
    fails(r, "No space left on device")


def test_print_digest(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    out = os.path.join(tmp, "out.cfs")
    r1 = ok(run([t.mkcomposefs, "--from-file", "--print-digest", d, out]))
    r2 = ok(run([t.mkcomposefs, "--from-file", "--print-digest-only", d]))
    check(len(r1.out) == 65 and r1.out.endswith(b"\n"), "digest line", r1)
    equal(r2.out, r1.out, "--print-digest-only output")
    check(sorted(os.listdir(tmp)) == ["in.dump", "out.cfs"], "--print-digest-only wrote")
    # The digest of the root-only image (docs/image-format.md, "Root only").
    r3 = ok(run([t.mkcomposefs, "--from-file", "--print-digest-only", "-"],
                stdin=b"/ 4096 40755 2 0 0 0 0.0 - - -\n"))
    equal(r3.out, b"8f589e8f57ecb88823736b0d857ddca1e1068a23e264fad164b28f7038eb3682\n",
          "digest of the root-only image")
    # With "-" the digest line follows the image bytes.
    r4 = ok(run([t.mkcomposefs, "--from-file", "--print-digest", d, "-"]))
    equal(r4.out, read(out) + r1.out, "image then digest on stdout")


def test_print_digest_matches_fsverity(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    out = os.path.join(tmp, "out.cfs")
    r = ok(run([t.mkcomposefs, "--from-file", "--print-digest", d, out]))
    equal(r.out.decode().strip(), fsverity_digest(out), "digest vs fsverity digest")


def test_versions(t, tmp):
    wh = write(os.path.join(tmp, "wh.dump"), WHITEOUT)
    plain = write(os.path.join(tmp, "plain.dump"), GOOD)
    out = os.path.join(tmp, "out.cfs")
    cases = (
        (plain, [], 0),
        (wh, [], 1),                        # default range 0..1, whiteout bumps
        (wh, ["--max-version=0"], 0),
        (wh, ["--min-version=0"], 0),       # max defaults to 0 then
        (plain, ["--min-version=1"], 1),    # max raised to min
        (plain, ["--version=1"], 1),        # documented synonym
        (plain, ["--min-version=0", "--max-version=1"], 0),
        (wh, ["--min-version=0", "--max-version=1"], 1),
    )
    for src, args, version in cases:
        ok(run([t.mkcomposefs, "--from-file"] + args + [src, out]))
        check(image_version(out) == version,
              "version %d expected for %s %s, got %d" % (
                  version, os.path.basename(src), args, image_version(out)))


def test_strict_mode(t, tmp):
    d = write(os.path.join(tmp, "nonl.dump"), GOOD.rstrip("\n"))
    out = os.path.join(tmp, "out.cfs")
    ok(run([t.mkcomposefs, "--from-file", d, out]))
    equal(sha256(read(out)), GOOD_SHA256, "image without final newline")
    os.unlink(out)
    # Presence of the variable is what counts, even empty.
    for value in ("1", ""):
        r = fails(run([t.mkcomposefs, "--from-file", d, out],
                      env={"CFS_PARSE_STRICT": value}), d)
        check("newline" in r.err.lower(), "missing newline reported", r)
        check(not os.path.exists(out), "output left behind")


def test_digest_store_ignored_with_from_file(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    out = os.path.join(tmp, "out.cfs")
    store = os.path.join(tmp, "store")
    ok(run([t.mkcomposefs, "--from-file", "--digest-store=" + store, "--threads=3",
            "--use-epoch", "--quiet", d, out]))
    equal(sha256(read(out)), GOOD_SHA256, "image SHA-256")
    check(not os.path.exists(store), "store created with --from-file")


def test_unwritable_directory(t, tmp):
    d = write(os.path.join(tmp, "in.dump"), GOOD)
    target_dir = os.path.join(tmp, "ro")
    os.mkdir(target_dir)
    mounted = False
    if os.geteuid() == 0:
        # Root ignores permissions: use a read-only filesystem instead.
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", target_dir],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            raise Skip("cannot mount a read-only tmpfs")
        mounted = True
        reason = "Read-only file system"
    else:
        os.chmod(target_dir, 0o555)
        reason = "Permission denied"
    try:
        fails(run([t.mkcomposefs, "--from-file", d, os.path.join(target_dir, "out")]),
              "cannot create", reason)
        check(os.listdir(target_dir) == [], "left behind")
    finally:
        if mounted:
            subprocess.run(["umount", target_dir], check=True)


if __name__ == "__main__":
    main(globals())
