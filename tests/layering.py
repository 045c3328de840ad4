#!/usr/bin/env python3
"""
layering.py BUILD_DIR SOURCE_ROOT [--print]

Reads the symbol tables of the built objects of daemon/, lib/ and cli/ with
nm (defined global text symbols, T, and undefined ones, U), turns them into
a file-level call graph and fails when files call each other in a cycle, or
when a file calls a file of a layer above it (see LAYERS).  Prints "ok" or
"FAIL" lines per folder, as the unit runners do; --print also prints the graph.
"""
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict

# The layers of each program, top to bottom.  A file may call a file of its
# own layer or of one below it; never one above, and never a file outside
# its program's list (so lib/ calls nothing of daemon/ or cli/, and cli/
# nothing of daemon/).  Cycles are refused everywhere, within a layer too.
# A file takes the layer that names it exactly, else the first whose
# pattern matches it.
LAYERS = {
    "daemon": [                # as drawn at the top of daemon/daemon.h
        ["daemon/main.c"],                             # options, wiring, signals
        ["daemon/control.c", "daemon/lifecycle.c"],    # control socket; reload, watchdog
        ["daemon/metrics.c", "daemon/query.c", "daemon/subscribe.c", "daemon/ingest.c"],  # /metrics; reading back; TCP ingest
        ["daemon/kafka_source.c", "daemon/kafka_sink.c", "daemon/kafka_off.c"],  # Kafka: source, sink (or neither)
        ["daemon/sender.c"],                           # the send thread (subscribe.c's writes)
        ["daemon/intake.c"],                           # one tick from outside into the store
        ["daemon/load.c"],                             # the loading phase at start
        ["daemon/archiver.c"],                         # the day archive: seals, reader
        ["daemon/checkpoint.c"],                       # checkpoints: fork, cut, delete
        ["daemon/durability.c"],                       # the journal, replay
        ["daemon/admit.c"],                            # a decoded tick into the store
        ["daemon/limits.c"],                           # max_memory, when_full, retention
        ["daemon/server.c", "daemon/notify.c"],        # shared state; sd_notify
        ["lib/*.c"],
    ],
    "cli": [
        ["cli/tickslab.c"],                          # main, dispatch, ping/request
        ["cli/gen.c", "cli/send.c", "cli/query.c", "cli/tail.c", "cli/export.c",
         "cli/stats.c", "cli/top.c", "cli/fleet.c", "cli/fleet_off.c"],  # the commands
        ["cli/resolve.c"],                           # where the daemon is
        ["cli/net.c", "cli/csv.c"],                  # sockets, CSV
        ["cli/cli.c"],                               # cli_err, option parsing
        ["lib/*.c"],
    ],
    "lib": [
        ["lib/*.c"],
    ],
}
FOLDERS = list(LAYERS)


def layer_of(program, path):
    """Index of path's layer in program's list, or None if it has none."""
    layers = LAYERS[program]
    for i, pats in enumerate(layers):
        if path in pats:
            return i
    for i, pats in enumerate(layers):
        if any(fnmatch.fnmatchcase(path, p) for p in pats):
            return i
    return None


def find_objects(build, src):
    """{source path relative to src: object path} for the three folders."""
    objs = {}
    cc = os.path.join(build, "compile_commands.json")
    if os.path.exists(cc):
        # The objects of the current build only: a stale .o of a removed
        # source stays in its *.p/ dir, and would add false edges.
        for e in json.load(open(cc)):
            out = os.path.join(e["directory"], e["output"])
            rel = os.path.relpath(out, build)
            if rel.split(os.sep)[0] not in FOLDERS or ".p" + os.sep not in rel:
                continue
            source = os.path.relpath(os.path.join(e["directory"], e["file"]), src)
            objs[source] = out
    else:
        for folder in FOLDERS:
            d = os.path.join(build, folder)
            for pdir in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if not pdir.endswith(".p"):
                    continue
                for o in sorted(os.listdir(os.path.join(d, pdir))):
                    if o.endswith(".c.o"):
                        objs[folder + "/" + o[:-2]] = os.path.join(d, pdir, o)
    return objs


def symbols(nm, obj):
    """(defined global text symbols, undefined symbols) of obj."""
    out = subprocess.run([nm, "-P", obj], check=True, capture_output=True, text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        if f[1] == "T":
            defined.add(f[0])
        elif f[1] == "U":
            undefined.add(f[0])
    return defined, undefined


def build_graph(objs, nm):
    """{caller: {callee: set of symbols}}, over source paths."""
    defs = defaultdict(list)  # symbol -> files defining it
    undef = {}
    for source, obj in sorted(objs.items()):
        d, u = symbols(nm, obj)
        undef[source] = u
        for s in d:
            defs[s].append(source)
    graph = {s: defaultdict(set) for s in objs}
    for source, u in undef.items():
        program = source.split("/")[0]
        for s in u:
            where = defs.get(s)
            if not where:
                continue  # libc, libuv, ...
            # As the linker would: a definition of the caller's program
            # (e.g. `main` is in daemon/ and in cli/), else any.
            mine = [w for w in where if layer_of(program, w) is not None]
            callee = (mine or where)[0]
            if callee != source:
                graph[source][callee].add(s)
    return graph


def tarjan(graph):
    """Strongly connected components with more than one file."""
    index, low, on, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


def shortest_loop(graph, comp):
    """A shortest path comp[0] -> ... -> comp[0] inside comp (breadth first)."""
    start, members = comp[0], set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp + [start]  # not reached: comp is strongly connected


def edge(graph, a, b):
    return f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})"


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    show = "--print" in argv[1:]
    if len(args) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    build, src = (os.path.abspath(a) for a in args)
    nm = shutil.which("nm")
    if not nm:
        print("skip layering: nm not found")
        return 77
    objs = find_objects(build, src)
    if not objs:
        print(f"FAIL layering: no objects of {', '.join(FOLDERS)} under {build}")
        return 1
    graph = build_graph(objs, nm)

    if show:
        for a in sorted(graph):
            print(a)
            for b in sorted(graph[a]):
                print(f"    -> {b} ({', '.join(sorted(graph[a][b]))})")
        print()

    problems = defaultdict(list)  # folder -> lines
    for comp in tarjan(graph):
        loop = shortest_loop(graph, comp)
        lines = [f"cycle among {', '.join(comp)} (e.g. {' -> '.join(loop)}):"]
        for a in comp:
            lines += [f"  {edge(graph, a, b)}" for b in sorted(graph[a]) if b in comp]
        problems[comp[0].split("/")[0]].append(lines)
    for a in sorted(graph):
        program = a.split("/")[0]
        la = layer_of(program, a)
        for b in sorted(graph[a]):
            lb = layer_of(program, b)
            if lb is None:
                problems[program].append([f"not in {program}/'s layers: {edge(graph, a, b)}"])
            elif la is not None and lb < la:
                problems[program].append([f"upward: {edge(graph, a, b)}"])

    failed = False
    for folder in FOLDERS:
        files = [f for f in graph if f.split("/")[0] == folder]
        edges = sum(len(graph[f]) for f in files)
        counts = f"{len(files)} files, {edges} edges"
        if problems[folder]:
            failed = True
            n = len(problems[folder])
            print(f"FAIL layering_{folder}: {n} violation{'s' if n > 1 else ''} ({counts})")
            for p in problems[folder]:
                for line in p:
                    print(f"  {line}")
        else:
            print(f"ok layering_{folder}: {counts}, no cycle, no call upward")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
