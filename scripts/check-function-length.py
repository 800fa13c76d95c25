#!/usr/bin/env python3
"""Lists functions in server/ and client/ longer than a limit (150 lines).

A function starts at a line at namespace or class level that opens a brace
after a closing parenthesis (a definition), and ends at its matching brace.
Lambdas and nested blocks count toward the function that holds them.
Usage: scripts/check-function-length.py [--max N] [paths...]
"""
import os
import re
import sys

def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    depth_stack = []  # what each open brace is: 'scope' or 'function'
    current = None
    for number, line in enumerate(lines, 1):
        code = re.sub(r'"(\\.|[^"\\])*"', '""', line.split("//")[0])
        code = re.sub(r"'(\\.|[^'\\])*'", "''", code)
        for ch in code:
            if ch == "{":
                in_function = any(kind == "function" for kind in depth_stack)
                if in_function:
                    depth_stack.append("block")
                    continue
                # A definition: a ')' (possibly then const/override/noexcept/
                # an initializer list) before this brace on this or recent lines.
                head = " ".join(l.split("//")[0] for l in lines[max(0, number - 12):number])
                head = head[: head.rfind("{")] if "{" in head else head
                is_function = bool(re.search(r"\)\s*(const|override|noexcept|final|\s|->\s*[\w:<>*&, ]+)*$", head)) or \
                    bool(re.search(r"\)\s*:\s*[\w:]+\(.*\)\s*$", head))
                is_scope = bool(re.search(r"\b(namespace|class|struct|enum|union)\b[^;()]*$", head))
                if is_function and not is_scope:
                    depth_stack.append("function")
                    current = number
                else:
                    depth_stack.append("scope")
            elif ch == "}" and depth_stack:
                kind = depth_stack.pop()
                if kind == "function":
                    yield current, number
                    current = None

def main():
    args = sys.argv[1:]
    limit = 150
    if args[:1] == ["--max"]:
        limit = int(args[1])
        args = args[2:]
    roots = args or ["server", "client"]
    long = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in sorted(names):
                if name.endswith((".cc", ".h")):
                    path = os.path.join(dirpath, name)
                    for start, end in functions(path):
                        if end - start + 1 > limit:
                            long.append((end - start + 1, path, start))
    for size, path, start in sorted(long, reverse=True):
        print(f"{path}:{start}: {size} lines (more than {limit})")
    if long:
        sys.exit(1)
    print(f"check-function-length: no function in {' '.join(roots)} is longer than {limit} lines")

main()
