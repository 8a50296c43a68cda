#!/usr/bin/env python3
"""Bytes per stored certificate, table by table, of a DIVOC data dir's
database (SQLite's dbstat virtual table, read-only).

    python3 scripts/db-footprint.py <data-dir>/divoc.sqlite

Pages of each table and index are divided by the number of certificates;
free pages (space left by pruned rows, reused by later inserts) are listed
apart. Run it on a stopped server's database or on a copy: the WAL's
pages are counted once they are checkpointed.
"""
import sqlite3
import sys

path = sys.argv[1]
c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
n = c.execute("SELECT COUNT(*) FROM certificates").fetchone()[0] or 1
page = c.execute("PRAGMA page_size").fetchone()[0]
free = c.execute("PRAGMA freelist_count").fetchone()[0]
rows = c.execute(
    "SELECT name, SUM(pgsize), SUM(payload) FROM dbstat GROUP BY name ORDER BY 2 DESC"
).fetchall()
total = sum(r[1] for r in rows)
print(f"{n} certificates, page size {page}")
print(f"{'table or index':40s} {'bytes/cert':>10s} {'payload/cert':>12s}")
for name, size, payload in rows:
    if size / n >= 1:
        print(f"{name:40s} {size / n:10.0f} {payload / n:12.0f}")
print(f"{'all tables and indexes':40s} {total / n:10.0f}")
print(f"{'free pages (reused by later inserts)':40s} {free * page / n:10.0f}")
print(f"{'file':40s} {(total + free * page) / n:10.0f}")
