#!/usr/bin/env python3
"""
grafana_names.py DASHBOARD.json SCRAPE.txt

Every metric name the dashboard's queries use (panel targets' expr and the
templating queries) must be a family the scrape (GET /metrics of a real
daemon) serves.  The names are what is left of each PromQL expression once
strings, label matchers, ranges, grouping clauses, functions and keywords
are taken out.  Prints "ok N names" or one "FAIL" line a missing name, and
exits 1 then.
"""
import json
import re
import sys

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan"}


def exprs(node):
    """Every PromQL expression in the dashboard JSON."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "definition") and isinstance(v, str):
                yield v
            elif k == "query" and isinstance(v, str) and node.get("type") == "query":
                yield v
            else:
                yield from exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)


def names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                         # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                        # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)                       # Grafana variables
    e = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*\b", " ", e)  # numbers, durations
    e = re.sub(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*\w+\s*\)", r"\1", e)
    out = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):        # a function
            continue
        if word.lower() in KEYWORDS or re.fullmatch(r"\d+\w*", word):
            continue
        out.add(word)
    return out


def main():
    dash = json.load(open(sys.argv[1]))
    served = set()
    for line in open(sys.argv[2]):
        if line.startswith("# TYPE "):
            served.add(line.split()[2])
        elif line.strip() and not line.startswith("#"):
            served.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    used = set()
    empty = 0
    for e in exprs(dash):
        n = names(e)
        if not n:
            print("FAIL a query without a metric name: %s" % e)
            empty += 1
        used |= n
    missing = sorted(used - served)
    for n in missing:
        print("FAIL %s: the dashboard queries it, /metrics does not serve it" % n)
    if missing or empty or not used:
        return 1
    print("ok %d names, each served by /metrics" % len(used))
    return 0


if __name__ == "__main__":
    sys.exit(main())
