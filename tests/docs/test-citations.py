#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Keeps the citations of the documentation honest.

Code comments cite the rules they implement by a file and heading of the
project's own docs/, as (docs/image-format.md, "Shared xattrs"), and the
documents cite each other as [design.md](design.md), "Mount steps". This
test fails when:

  - a citation names a docs/ file that does not exist, or a heading that
    file does not have (a heading was renamed, or a citation mistyped);
  - a tracked file cites the documents that are not in the repository
    (IMAGE-FORMAT.md, TOOLS-AND-MOUNT.md) or a bare "section N";
  - a tracked file outside tests/ refers to ../shared, which is not part
    of the project.

Usage: test-citations.py [SOURCE_DIR]   (default: COMPOSEFS_SRCDIR, or the
checkout this script is in). Prints one line per problem, FILE:LINE: what.
"""

import os
import re
import subprocess
import sys

import cfstest

# This checker spells the old names and sample citations: not checked.
SELF = 'tests/docs/test-citations.py'

# Data, not prose: test inputs and fuzz corpora (any bytes), and licence
# texts, whose own "Section N" are not citations.
SKIP_PREFIXES = ('tests/assets/', 'tests/fuzz/corpus/',
                 'tests/fuzz/regressions/', 'LICENSES/')
SKIP_NAME_RE = re.compile(r'^(COPYING|LICENSE|LICENCE)', re.I)

# Where to look when the source is not a git checkout (a release tarball).
WALK_DIRS = ['libcomposefs', 'tools', 'include', 'tests', 'bench', 'man',
             'docs', '.ci', 'pkgconfig']
WALK_SKIP = {'.git', '__pycache__'}

# A citation of a docs/ file: the file, then (possibly across a comment line
# break) a comma and a quoted heading.
CITE_RE = re.compile(r'docs/([A-Za-z0-9_.-]+\.md)')
# Between a file name and its heading: a comma, spaces, newlines and the
# comment leaders a wrapped comment line starts with.
GAP_RE = re.compile(r'\A\)?,(?:[\s*#/]|--)*"')
# Inside docs/: [name.md](name.md), "Heading" or (name.md, "Heading").
DOC_CITE_RE = re.compile(r'(?:\]\(|\(|\s)([A-Za-z0-9_-]+\.md)\)?,(?:\s|>)*"')

OLD_SPEC_RE = re.compile(r'IMAGE-FORMAT\.md|TOOLS-AND-MOUNT\.md|IMAGE-FORMAT\b'
                         r'|TOOLS-AND-MOUNT\b')
BARE_SECTION_RE = re.compile(r'\b[Ss]ections? \d+(\.\d+)*\b|§\s*\d')
# "section" at the end of a comment line and its number on the next one.
WRAPPED_SECTION_RE = re.compile(r'\b[Ss]ections?\s*\n[ \t]*(?:\*|#|//)?[ \t]*'
                                r'\d+(\.\d+)*\b')
SHARED_RE = re.compile(r'\.\./shared|shared/spec|shared/STYLE')


def source_files(root):
    """Paths (relative to root) of the project's files."""
    try:
        out = subprocess.run(['git', '-C', root, 'ls-files', '-z'],
                             capture_output=True, check=True).stdout
        # A file with merge conflicts is listed once per stage.
        files = sorted(set(f for f in out.decode().split('\0') if f))
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = [f for f in os.listdir(root)
             if os.path.isfile(os.path.join(root, f))]
    for top in WALK_DIRS:
        for d, dirs, names in os.walk(os.path.join(root, top)):
            dirs[:] = [x for x in dirs if x not in WALK_SKIP]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return files


def read_text(path):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError:
        return None
    if b'\0' in data[:8192]:
        return None  # binary
    return data.decode('utf-8', errors='replace')


def normalize(text):
    """A heading or a quoted citation, as compared: comment leaders of
    wrapped lines removed, runs of blanks made one space."""
    text = re.sub(r'\n[ \t]*(?:\*|#|//|--)?', ' ', text)
    return ' '.join(text.split())


def doc_headings(root, problems):
    """{file name: set of headings} for docs/*.md. A heading used twice in
    one file would make citations ambiguous: a problem."""
    headings = {}
    docs = os.path.join(root, 'docs')
    if not os.path.isdir(docs):
        return headings
    for name in sorted(os.listdir(docs)):
        if not name.endswith('.md'):
            continue
        text = read_text(os.path.join(docs, name)) or ''
        hs = set()
        in_code = False
        for line in text.splitlines():
            if line.startswith('```'):
                in_code = not in_code
            m = None if in_code else re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
            if m:
                h = normalize(m.group(1))
                if h in hs:
                    problems.append(f'docs/{name}: heading "{h}" appears '
                                    f'twice')
                hs.add(h)
        headings[name] = hs
    return headings


def line_of(text, pos):
    return text.count('\n', 0, pos) + 1


def quoted_after(text, pos):
    """The quoted headings starting at text[pos] (just after the opening
    quote): the first, and any that follow it after a comma, as in
    (docs/design.md, "Mount steps", "Errors"). Stops at a quote that is not
    closed within a few lines."""
    headings = []
    while True:
        end = text.find('"', pos)
        if end < 0 or end - pos > 300:
            return headings
        headings.append(normalize(text[pos:end]))
        g = GAP_RE.match(text[end + 1:end + 200])
        if not g:
            return headings
        pos = end + 1 + g.end()


def check_file(rel, text, headings, problems):
    """Appends the problems of one file; returns its number of headings
    cited."""
    under_tests = rel.startswith('tests/')
    is_doc = rel.startswith('docs/')

    if rel == SELF:
        return 0
    for n, line in enumerate(text.splitlines(), 1):
        if OLD_SPEC_RE.search(line):
            problems.append(f'{rel}:{n}: cites a document that is not in '
                            f'the repository: {line.strip()}')
        elif BARE_SECTION_RE.search(line) and not is_doc:
            problems.append(f'{rel}:{n}: cites a bare section number; cite '
                            f'docs/FILE.md and a heading: {line.strip()}')
        if not under_tests and SHARED_RE.search(line):
            problems.append(f'{rel}:{n}: refers to ../shared, which is not '
                            f'part of the project: {line.strip()}')

    if not is_doc:
        for m in WRAPPED_SECTION_RE.finditer(text):
            problems.append(f'{rel}:{line_of(text, m.start())}: cites a bare '
                            f'section number; cite docs/FILE.md and a heading')

    cites = []
    for m in CITE_RE.finditer(text):
        rest = text[m.end():m.end() + 200]
        g = GAP_RE.match(rest)
        heads = quoted_after(text, m.end() + g.end()) if g else []
        cites.append((m.start(), m.group(1), heads))
    if is_doc:
        for m in DOC_CITE_RE.finditer(text):
            cites.append((m.start(), m.group(1), quoted_after(text, m.end())))

    n_cited = 0
    for pos, name, heads in cites:
        where = f'{rel}:{line_of(text, pos)}'
        if name not in headings:
            problems.append(f'{where}: cites docs/{name}, which does not exist')
            continue
        for heading in heads:
            n_cited += 1
            if heading not in headings[name]:
                problems.append(f'{where}: docs/{name} has no heading '
                                f'"{heading}"')
    return n_cited


def main():
    root = (sys.argv[1] if len(sys.argv) > 1 else
            os.environ.get('COMPOSEFS_SRCDIR') or
            os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
    problems = []
    headings = doc_headings(root, problems)
    if not headings:
        print(f'no docs/*.md under {root}')
        return 1
    for name, hs in headings.items():
        if not hs:
            print(f'docs/{name}: no headings')
            return 1

    n_files = n_cited = 0
    for rel in source_files(root):
        if (rel.startswith(SKIP_PREFIXES) or
                SKIP_NAME_RE.match(os.path.basename(rel))):
            continue
        text = read_text(os.path.join(root, rel))
        if text is None:
            continue
        n_files += 1
        n_cited += check_file(rel, text, headings, problems)

    for p in problems:
        print(p)
    # The code cites the docs in hundreds of places: finding none means the
    # citation pattern no longer matches them, which must not pass quietly.
    if n_cited == 0:
        problems.append('no citation of docs/ found at all')
        print(problems[-1])
    n_headings = sum(len(h) for h in headings.values())
    print(f'{n_files} files, {len(headings)} documents, {n_headings} headings, '
          f'{n_cited} headings cited: {len(problems)} problem(s)')
    return 1 if problems else 0


if __name__ == '__main__':
    cfstest.main(main)
