#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""The installed library, as a client sees it.

    test-installed.py BUILD_DIR SRC_DIR [CFLAG...]

Installs the build into a temporary directory (meson install, DESTDIR),
then, with only the installed files and `pkg-config composefs`:
  - builds abi-client.c (C) and abi-client.cpp (C++) against the installed
    headers and libcomposefs.so.1 and runs them;
  - builds a program that includes every installed header and takes the
    address of every function they declare, as C and as C++ (a header
    without extern "C" fails to link from C++);
  - checks the dynamic symbol table of libcomposefs.so.1: the exported
    functions carry no symbol version and are exactly the functions the
    installed headers declare, which include the 62 of the 1.0.x API;
  - when the static archive is installed (-Ddefault_library=both), links
    abi-client.c statically against it with `pkg-config --static --libs`
    (and checks that plain `--libs` is not enough).
CFLAGs (e.g. the sanitizer flags of the build) are passed to every compile.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import cfstest

# The client programs are in tests/lib.
HERE = cfstest.LIB_DIR

# The functions of composefs 1.0.x's public headers.
API_1_0 = """
lcfs_build lcfs_compute_fsverity_from_content lcfs_compute_fsverity_from_data
lcfs_compute_fsverity_from_fd lcfs_fd_enable_fsverity lcfs_fd_get_fsverity
lcfs_fd_measure_fsverity lcfs_load_node_from_fd lcfs_load_node_from_fd_ext
lcfs_load_node_from_file lcfs_load_node_from_image lcfs_load_node_from_image_ext
lcfs_mount_fd lcfs_mount_image lcfs_node_add_child lcfs_node_clone
lcfs_node_clone_deep lcfs_node_dirp lcfs_node_get_child lcfs_node_get_content
lcfs_node_get_fsverity_digest lcfs_node_get_gid lcfs_node_get_hardlink_target
lcfs_node_get_mode lcfs_node_get_mtime lcfs_node_get_n_children
lcfs_node_get_n_xattr lcfs_node_get_name lcfs_node_get_nlink
lcfs_node_get_parent lcfs_node_get_payload lcfs_node_get_rdev
lcfs_node_get_rdev64 lcfs_node_get_size lcfs_node_get_uid lcfs_node_get_xattr
lcfs_node_get_xattr_name lcfs_node_lookup_child lcfs_node_make_hardlink
lcfs_node_new lcfs_node_ref lcfs_node_set_content lcfs_node_set_from_content
lcfs_node_set_fsverity_digest lcfs_node_set_fsverity_from_content
lcfs_node_set_fsverity_from_fd lcfs_node_set_gid lcfs_node_set_mode
lcfs_node_set_mtime lcfs_node_set_nlink lcfs_node_set_payload
lcfs_node_set_rdev lcfs_node_set_rdev64 lcfs_node_set_size
lcfs_node_set_symlink_payload lcfs_node_set_uid lcfs_node_set_xattr
lcfs_node_try_set_mode lcfs_node_unref lcfs_node_unset_xattr
lcfs_version_from_fd lcfs_write_to
""".split()
assert len(API_1_0) == 62

failures = []


def fail(msg):
    print("FAIL: " + msg)
    failures.append(msg)


def run(argv, env=None, check=True):
    """(exit status, stdout and stderr together) of a command."""
    r = cfstest.run(argv, env=env, ok=True if check else None,
                    stderr=subprocess.STDOUT)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def declared_functions(headers):
    """Names of the functions declared LCFS_EXTERN in the headers."""
    names = set()
    for h in headers:
        with open(h) as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        for decl in re.findall(r"LCFS_EXTERN\b([^;{]*)", text):
            m = re.search(r"(\w+)\s*\(", decl)
            if m:
                names.add(m.group(1))
    return names


def exported(lib):
    """{name: versioned?} of the functions lib defines in .dynsym."""
    _, out = run(["readelf", "--dyn-syms", "--wide", lib])
    syms = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) < 8 or f[3] != "FUNC" or f[6] == "UND":
            continue
        name = f[7]
        syms[name.split("@")[0]] = "@" in name
    return syms


def main():
    build, src = sys.argv[1], sys.argv[2]
    cflags = sys.argv[3:]
    cc = os.environ.get("CC") or "cc"
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    with tempfile.TemporaryDirectory(prefix="cfs-abi-") as tmp:
        dest = os.path.join(tmp, "root")
        # DESTDIR rather than --destdir: meson 0.56 (Debian 11) lacks it.
        run(["meson", "install", "-C", build, "--no-rebuild", "--quiet"],
            env=dict(os.environ, DESTDIR=dest))
        pcs = glob.glob(os.path.join(dest, "**", "composefs.pc"), recursive=True)
        if len(pcs) != 1:
            raise cfstest.Failure("composefs.pc not installed (found %r)" % pcs)
        sos = glob.glob(os.path.join(dest, "**", "libcomposefs.so.1"),
                        recursive=True)
        if len(sos) != 1:
            raise cfstest.Failure("libcomposefs.so.1 not installed (found %r)" % sos)
        so = sos[0]
        libdir = os.path.dirname(so)
        headers = sorted(glob.glob(os.path.join(dest, "**", "include",
                                                "libcomposefs", "*.h"),
                                   recursive=True))
        env = dict(os.environ)
        env["PKG_CONFIG_PATH"] = os.path.dirname(pcs[0])
        env["PKG_CONFIG_SYSROOT_DIR"] = dest
        env["LD_LIBRARY_PATH"] = libdir
        _, cf = run(["pkg-config", "--cflags", "composefs"], env=env)
        _, libs = run(["pkg-config", "--libs", "composefs"], env=env)
        cf, libs = cf.split(), libs.split()
        print("pkg-config: %s %s" % (" ".join(cf), " ".join(libs)))

        # -- the clients, C and C++ ------------------------------------------
        # The C client uses the tests' check macros (check.h, check.c).
        progs = [(cc, "abi-client.c", ["check.c"])]
        if cxx:
            progs.append((cxx, "abi-client.cpp", []))
        else:
            fail("no C++ compiler (c++ or g++) found")
        for comp, source, extra in progs:
            exe = os.path.join(tmp, source.replace(".", "-"))
            run([comp] + cflags + ["-Wall", "-Werror", "-o", exe]
                + [os.path.join(HERE, s) for s in [source] + extra] + cf + libs,
                env=env)
            _, ldd = run(["readelf", "-d", exe])
            if "libcomposefs.so.1" not in ldd:
                fail("%s does not need libcomposefs.so.1" % source)
            rc, out = run([exe], env=env, check=False)
            print(out.strip())
            if rc != 0 or "version information" in out:
                fail("%s: exit %d: %s" % (source, rc, out))

        # -- every declared function, from C and C++ --------------------------
        declared = declared_functions(headers)
        body = "".join("#include <libcomposefs/%s>\n" % os.path.basename(h)
                       for h in headers)
        body += "#include <stdio.h>\n"
        body += "typedef void (*fn_t)(void);\nstatic fn_t fns[] = {\n"
        body += "".join("\t(fn_t)%s,\n" % n for n in sorted(declared))
        body += "};\nint main(void)\n{\n\tsize_t i, n = 0;\n"
        body += "\tfor (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)\n"
        body += "\t\tn += fns[i] != 0;\n\tprintf(\"%zu functions\\n\", n);\n"
        body += "\treturn n == %d ? 0 : 1;\n}\n" % len(declared)
        for comp, ext in ((cc, "c"), (cxx, "cpp")):
            if not comp:
                continue
            path = os.path.join(tmp, "all-functions." + ext)
            with open(path, "w") as f:
                f.write(body)
            exe = path + ".exe"
            # Deprecated functions are referenced on purpose here.
            rc, out = run([comp] + cflags + ["-Wno-deprecated-declarations",
                                             "-o", exe, path] + cf + libs,
                          env=env, check=False)
            if rc != 0:
                fail("every declared function from %s: %s" % (ext, out[-3000:]))
                continue
            rc, out = run([exe], env=env, check=False)
            print("all-functions.%s: %s" % (ext, out.strip()))
            if rc != 0:
                fail("all-functions.%s exited %d" % (ext, rc))

        # -- the dynamic symbol table -----------------------------------------
        syms = exported(so)
        versioned = sorted(n for n, v in syms.items() if v)
        if versioned:
            fail("versioned symbols: %s" % " ".join(versioned))
        _, vd = run(["readelf", "--version-info", "--wide", so])
        if "Version definition" in vd:
            fail("libcomposefs.so.1 defines symbol versions")
        missing_api = sorted(set(API_1_0) - declared)
        if missing_api:
            fail("the headers lack 1.0.x functions: %s" % " ".join(missing_api))
        exported_names = set(syms)
        if exported_names != declared:
            fail("exported but not declared: %s; declared but not exported: %s"
                 % (" ".join(sorted(exported_names - declared)) or "-",
                    " ".join(sorted(declared - exported_names)) or "-"))
        print("%d functions exported, unversioned, = the %d the headers "
              "declare (%d of them the 1.0.x API)"
              % (len(exported_names), len(declared), len(API_1_0)))

        # -- static linking through pkg-config --static -----------------------
        archives = glob.glob(os.path.join(libdir, "libcomposefs.a"))
        if not archives:
            print("note: no libcomposefs.a installed (default_library=shared): "
                  "static link not tried")
        else:
            # A library directory with the archive only, so that
            # -lcomposefs means the archive.
            for so_file in glob.glob(os.path.join(libdir, "libcomposefs.so*")):
                os.unlink(so_file)
            _, slibs = run(["pkg-config", "--static", "--libs", "composefs"],
                           env=env)
            print("pkg-config --static: %s" % slibs.strip())
            exe = os.path.join(tmp, "abi-client-static")
            src_c = [os.path.join(HERE, s) for s in ("abi-client.c", "check.c")]
            rc, out = run([cc] + cflags + ["-o", exe] + src_c + cf + libs,
                          env=env, check=False)
            if rc == 0:
                fail("the static archive linked without the private libraries:"
                     " this test cannot tell whether they are right")
            rc, out = run([cc] + cflags + ["-o", exe] + src_c + cf +
                          slibs.split(), env=env, check=False)
            if rc != 0:
                fail("static link with pkg-config --static --libs: " + out[-3000:])
            else:
                _, ldd = run(["readelf", "-d", exe])
                if "libcomposefs" in ldd:
                    fail("the static program still needs libcomposefs.so")
                rc, out = run([exe], check=False)
                print("static: " + out.strip())
                if rc != 0:
                    fail("the statically linked client exited %d" % rc)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    cfstest.main(main)
