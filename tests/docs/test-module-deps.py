#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Keeps the library's modules free of dependency cycles.

Derives, from the sources alone, which file of libcomposefs/ calls a
function defined in which other file: a file depends on another when it
(or a static inline function of a private header it includes) calls a
function that the other file defines without `static`. The test fails,
naming the files and the functions that tie them, when two or more files
depend on each other in a circle (docs/design.md, "Who may call what").

Usage: test-module-deps.py [--print] [SOURCE_DIR]   (default:
COMPOSEFS_SRCDIR, or the checkout this script is in). --print lists every
dependency, FILE -> FILE: FUNCTIONS.
"""

import glob
import os
import re
import sys

# Definitions at the start of a line that are not static, for example
#   LCFS_PUBLIC struct lcfs_node_s *lcfs_node_new(void)
#   int lcfs_error_set(struct lcfs_error *e, int err, const char *fmt, ...)
DEF_RE = re.compile(r'^(?!static\b|typedef\b|extern\b)(?:[A-Za-z_][\w \t]*[\s\*]+)(\w+)\s*\(([^;{}]*)\)\s*(?:__attribute__\s*\(\(.*?\)\)\s*)?\{',
                    re.M | re.S)
CALL_RE = re.compile(r'\b([A-Za-z_]\w*)\s*\(')
INCLUDE_RE = re.compile(r'^#\s*include\s+"([^"]+)"', re.M)
# What calls look like but are not.
KEYWORDS = {'if', 'for', 'while', 'switch', 'return', 'sizeof', 'defined',
            '__attribute__', '__typeof__', 'alignof', '_Alignof', '_Static_assert',
            'offsetof'}


def strip(text):
    """Comments, strings and character constants out."""
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(\\.|[^'\\\n])+'", "''", text)
    return text


def header_calls(path, libdir, seen):
    """Calls made by the inline functions of a private header and of the
    private headers it includes."""
    if path in seen or not os.path.exists(path):
        return set()
    seen.add(path)
    text = strip(open(path, encoding='utf-8').read())
    calls = set()
    # Only function bodies: a declaration is no call.
    for m in re.finditer(r'\)\s*\{', text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == '{':
                depth += 1
            elif text[i] == '}':
                depth -= 1
                if depth == 0:
                    break
            i += 1
        calls |= set(CALL_RE.findall(text[m.end():i]))
    for inc in INCLUDE_RE.findall(text):
        calls |= header_calls(os.path.join(libdir, inc), libdir, seen)
    return calls


def graph(srcdir):
    libdir = os.path.join(srcdir, 'libcomposefs')
    files = sorted(glob.glob(os.path.join(libdir, '*.c')))
    defined = {}  # function -> file
    texts = {}
    for f in files:
        name = os.path.basename(f)
        texts[name] = strip(open(f, encoding='utf-8').read())
        for m in DEF_RE.finditer(texts[name]):
            if m.group(1) not in KEYWORDS:
                defined.setdefault(m.group(1), name)
    edges = {}  # file -> {file: set(functions)}
    for name, text in texts.items():
        calls = set(CALL_RE.findall(text))
        for inc in INCLUDE_RE.findall(text):
            calls |= header_calls(os.path.join(libdir, inc), libdir, set())
        for fn in calls - KEYWORDS:
            target = defined.get(fn)
            if target is not None and target != name:
                edges.setdefault(name, {}).setdefault(target, set()).add(fn)
    return sorted(texts), edges


def cycles(nodes, edges):
    """Strongly connected components with more than one file (Tarjan,
    iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, {})))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main(argv):
    show = '--print' in argv
    args = [a for a in argv[1:] if a != '--print']
    srcdir = args[0] if args else os.environ.get(
        'COMPOSEFS_SRCDIR',
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    nodes, edges = graph(srcdir)
    if len(nodes) < 10 or not edges:
        print(f'check-module-deps: no library sources found in {srcdir}')
        return 1
    if show:
        for a in nodes:
            for b, fns in sorted(edges.get(a, {}).items()):
                print(f'{a} -> {b}: {", ".join(sorted(fns))}')
    bad = cycles(nodes, edges)
    for comp in bad:
        print('check-module-deps: these files depend on each other in a circle:')
        for a in comp:
            for b in comp:
                if b in edges.get(a, {}):
                    print(f'  {a} -> {b}: {", ".join(sorted(edges[a][b]))}')
    if bad:
        return 1
    print(f'check-module-deps: {len(nodes)} files, '
          f'{sum(len(v) for v in edges.values())} dependencies, no cycle')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
