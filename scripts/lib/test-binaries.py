#!/usr/bin/env python3
"""Reads `cargo test --no-run --message-format=json` on stdin and prints
"<package dir> <test executable>" for each test binary of the packages
named on the command line: scripts/test.sh runs those binaries again for
its PostgreSQL pass without asking cargo to resolve (and compile) a
different feature set for a subset of the workspace."""
import json
import os
import sys

wanted = set(sys.argv[1:])
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    if not msg.get("profile", {}).get("test"):
        continue
    pkg = msg["package_id"]
    # "path+file:///…/host/storage#divoc-storage@0.1.0" or the older
    # "divoc-storage 0.1.0 (path+file:///…)".
    if "#" in pkg:
        path, fragment = pkg.rsplit("#", 1)
        # "…/host/divoc#0.1.0": the name is the directory's when they match.
        name = fragment.split("@", 1)[0] if "@" in fragment else path.rsplit("/", 1)[1]
    else:
        name = pkg.split(" ", 1)[0]
    if name in wanted:
        print(os.path.dirname(msg["manifest_path"]), msg["executable"])
