#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Command-line parsing of mkcomposefs, composefs-info and composefs-dump:
# --help, unknown and malformed options, operand checks (docs/design.md,
# "mkcomposefs", "composefs-info", "composefs-dump"), with the differences
# of docs/compatibility.md: --help is accepted, --version is a synonym of
# --min-version, missing-objects needs --basedir. None of these runs
# reaches the image writer.
# Usage: test-args.py MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP

import os

from cfstools import check, fails, main, ok, run, write

ROOT_DUMP = "/ 4096 40755 2 0 0 0 0.0 - - -\n"


def dump_file(tmp):
    return write(os.path.join(tmp, "in.dump"), ROOT_DUMP)


# ---- --help ---------------------------------------------------------------


def test_help(t, tmp):
    for tool, first in ((t.mkcomposefs, "Usage: mkcomposefs [OPTIONS] SOURCE IMAGE"),
                        (t.info, "Usage: composefs-info "),
                        (t.dump, "Usage: composefs-dump SRC DEST")):
        r = ok(run([tool, "--help"]))
        text = r.out.decode()
        check(text.startswith(first), "usage text of %s" % tool, r)
        # --help wins over operands and other options, wherever it is.
        ok(run([tool, "a", "--help", "b"]))


def test_mkcomposefs_help_lists_every_option(t, tmp):
    text = ok(run([t.mkcomposefs, "--help"])).out.decode()
    for opt in ("--digest-store=", "--use-epoch", "--skip-devices", "--skip-xattrs",
                "--user-xattrs", "--hardlinks", "--print-digest ", "--print-digest-only",
                "--from-file", "--min-version=", "--version=", "--max-version=",
                "--threads=", "--quiet", "--help"):
        check(opt in text, "%s missing from --help" % opt)
    check("default 0" in text and "default 1" in text, "version defaults in --help")


def test_info_help_lists_commands(t, tmp):
    text = ok(run([t.info, "--help"])).out.decode()
    for word in ("ls", "objects", "missing-objects", "dump", "measure-file",
                 "--basedir=", "--filter="):
        check(word in text, "%s missing from composefs-info --help" % word)


def test_help_to_closed_stdout_fails(t, tmp):
    # A full device makes the final flush fail: that must be an error.
    with open("/dev/full", "wb") as full:
        for tool in (t.mkcomposefs, t.info, t.dump):
            r = run([tool, "--help"], stdout=full)
            fails(r, "standard output", "No space left on device")


# ---- mkcomposefs options ---------------------------------------------------


def test_mkcomposefs_unknown_options(t, tmp):
    d = dump_file(tmp)
    out = os.path.join(tmp, "out")
    for bad, frag in (("--bogus", "--bogus"),
                      ("--use", "--use"),            # use-epoch or user-xattrs
                      ("--print", "--print"),        # print-digest[-only]
                      ("--use-epoch=1", "--use-epoch"),
                      ("-C", "-- 'C'"),
                      ("-R", "-- 'R'"),
                      ("-h", "-- 'h'")):
        r = fails(run([t.mkcomposefs, "--from-file", bad, d, out]), frag)
        check("--help" in r.err, "hint to --help", r)
        check(not os.path.exists(out), "output written after %s" % bad)


def test_mkcomposefs_missing_value(t, tmp):
    for opt in ("--min-version", "--max-version", "--threads",
                "--digest-store"):
        fails(run([t.mkcomposefs, opt]), opt, "requires an argument")
    # --version alone prints the version; with other arguments it is still
    # --min-version and needs its value.
    fails(run([t.mkcomposefs, "--from-file", "--version"]), "--version",
          "requires an argument")


def test_mkcomposefs_bad_values(t, tmp):
    d = dump_file(tmp)
    out = os.path.join(tmp, "out")
    for args, frag in ((["--min-version=x"], "invalid min version 'x'"),
                       (["--min-version="], "invalid min version ''"),
                       (["--min-version=1x"], "invalid min version '1x'"),
                       (["--version=2"], "invalid min version '2'"),
                       (["--max-version=-1"], "invalid max version '-1'"),
                       (["--max-version=7"], "invalid max version '7'"),
                       (["--threads=abc"], "invalid threads count 'abc'"),
                       (["--threads=0"], "invalid threads count '0'"),
                       (["--threads=-3"], "invalid threads count '-3'")):
        fails(run([t.mkcomposefs, "--from-file"] + args + [d, out]), frag)
        check(not os.path.exists(out), "output written with %s" % args)


def test_mkcomposefs_operands(t, tmp):
    d = dump_file(tmp)
    out = os.path.join(tmp, "out")
    r = fails(run([t.mkcomposefs]), "mkcomposefs: no source path specified")
    check("--help" in r.err, "hint to --help", r)
    fails(run([t.mkcomposefs, "--from-file"]), "no source path specified")
    fails(run([t.mkcomposefs, "", out]), "mkcomposefs: empty source path specified")
    fails(run([t.mkcomposefs, "--from-file", d, out, "extra"]), "too many arguments")
    fails(run([t.mkcomposefs, "--from-file", d]), "no destination path specified")
    fails(run([t.mkcomposefs, "--from-file", "--print-digest-only", d, out]),
          "cannot specify destination path with --print-digest-only")
    # The empty-source check comes before the operand count checks.
    fails(run([t.mkcomposefs, "", "a", "b"]), "empty source path specified")
    check(listdir_clean(tmp), "nothing but the dump may exist: %s" % os.listdir(tmp))


def listdir_clean(tmp):
    return sorted(os.listdir(tmp)) == ["in.dump"]


def test_mkcomposefs_xattr_options_conflict(t, tmp):
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    out = os.path.join(tmp, "out")
    fails(run([t.mkcomposefs, "--skip-xattrs", "--user-xattrs", src, out]),
          "--skip-xattrs", "--user-xattrs")
    check(not os.path.exists(out), "output written")


def test_mkcomposefs_stdout_tty_refused(t, tmp):
    import pty
    d = dump_file(tmp)
    master, slave = pty.openpty()
    try:
        r = run([t.mkcomposefs, "--from-file", d, "-"], stdout=slave)
    finally:
        os.close(slave)
        os.close(master)
    fails(r, "mkcomposefs: stdout is a tty.  Refusing to use it")


def test_mkcomposefs_missing_source(t, tmp):
    out = os.path.join(tmp, "out")
    fails(run([t.mkcomposefs, "--from-file", os.path.join(tmp, "nope.dump"), out]),
          "cannot open", "nope.dump", "No such file or directory")
    fails(run([t.mkcomposefs, os.path.join(tmp, "nodir"), out]), "nodir")
    check(os.listdir(tmp) == [], "files left behind: %s" % os.listdir(tmp))


def test_mkcomposefs_missing_target_dir(t, tmp):
    d = dump_file(tmp)
    fails(run([t.mkcomposefs, "--from-file", d, os.path.join(tmp, "no", "out")]),
          "no/out", "No such file or directory")
    fails(run([t.mkcomposefs, "--from-file", d, tmp + "/"]), "Is a directory")
    check(listdir_clean(tmp), "files left behind: %s" % os.listdir(tmp))


# ---- composefs-info options ------------------------------------------------


def test_info_errors(t, tmp):
    img = os.path.join(tmp, "img")
    fails(run([t.info]), "composefs-info: no command specified")
    fails(run([t.info, "frobnicate", img]), "unknown command 'frobnicate'")
    fails(run([t.info, "ls"]), "no image path specified")
    fails(run([t.info, "--bogus", "ls", img]), "--bogus")
    fails(run([t.info, "ls", img, "--basedir"]), "--basedir", "requires an argument")
    fails(run([t.info, "--filter=a/b", "ls", img]),
          "filter must be a single name: 'a/b'")
    fails(run([t.info, "missing-objects", img]), "missing-objects requires --basedir")
    fails(run([t.info, "--basedir=" + os.path.join(tmp, "nostore"), "objects", img]),
          "cannot open basedir", "nostore", "No such file or directory")
    fails(run([t.info, "ls", img]), "cannot open", "img", "No such file or directory")
    fails(run([t.info, "measure-file"]), "no files specified")
    fails(run([t.info, "measure-file", img]), "cannot open", "img")
    for r in (run([t.info]), run([t.info, "--bogus"])):
        # No debugging leftovers on stdout.
        check(r.out == b"", "stdout must stay empty", r)


# ---- composefs-dump --------------------------------------------------------


def test_dump_operands(t, tmp):
    fails(run([t.dump]), "composefs-dump: no source path specified")
    fails(run([t.dump, "src"]), "composefs-dump: no destination path specified")
    fails(run([t.dump, "--bogus", "a", "b"]), "--bogus")
    fails(run([t.dump, os.path.join(tmp, "nope"), os.path.join(tmp, "out")]),
          "cannot open", "nope", "No such file or directory")
    check(os.listdir(tmp) == [], "files left behind")


if __name__ == "__main__":
    main(globals())
