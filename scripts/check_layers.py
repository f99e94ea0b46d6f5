#!/usr/bin/env python3
"""scripts/check_layers.py — fail on an include that runs upward or an include cycle between units.

The layers, lowest first; a file may include its own layer and the layers below it. A unit is a
header and its source (fl/config/strategy.hpp + .cpp); no chain of includes may lead from a unit
back to itself. Run from anywhere: `scripts/check_layers.py` (exit 1 and a list on a violation).
"""
import os
import re
import sys

LAYERS = [
    "support",          # helpers that are not federated learning: files, text, sizes, joins
    "model",            # LibTorch modules, LoRA, loaders, tokenizers
    "fl/runtime",       # device, memory, interrupts, random streams
    "fl/data",          # datasets and partitions
    "fl/config",        # the experiment's typed configuration, its tables and its TOML edge
    "fl/privacy",       # clipping, noise, accounting
    "fl/aggregation",   # the aggregation rules
    "fl/tasks",         # what a client trains and evaluates
    "fl/results",       # records, results files, checkpoints
    "fl/federation",    # what a round decides; a run's starting state
    "monitoring",       # Prometheus, plots, tables, progress
    "actors",           # CAF actors and messages
    "cli",              # the fedvlm-sim command
    "bench",
    "tests",
]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    best = None
    for i, layer in enumerate(LAYERS):
        if path == layer or path.startswith(layer + "/"):
            if best is None or len(layer) > len(LAYERS[best]):
                best = i
    return best


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return check(root)


def check(root):
    os.chdir(root)
    files = []
    for top in sorted({layer.split("/")[0] for layer in LAYERS}):
        if not os.path.isdir(top):
            continue
        for d, _, names in os.walk(top):
            files += [os.path.join(d, n) for n in names if n.endswith((".hpp", ".cpp", ".inc"))]
    problems = []
    graph = {}
    for f in sorted(files):
        src_layer = layer_of(f)
        unit = os.path.splitext(f)[0]
        text = open(f, encoding="utf-8", errors="replace").read()
        for inc in INCLUDE.findall(text):
            if not os.path.exists(inc):
                continue  # a system header or one relative to the file (tests' fixtures)
            dst_layer = layer_of(inc)
            if dst_layer is None:
                problems.append(f"{f}: includes {inc}, which is in no layer (scripts/check_layers.py LAYERS)")
                continue
            if dst_layer > src_layer:
                problems.append(f"{f}: includes {inc}: {LAYERS[src_layer]} may not include {LAYERS[dst_layer]} (a higher layer)")
            dst_unit = os.path.splitext(inc)[0]
            if dst_unit != unit:
                graph.setdefault(unit, set()).add(dst_unit)
    problems += [f"include cycle: {' -> '.join(c + [c[0]])}" for c in cycles(graph)]
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers: {len(problems)} problem(s)")
        return 1
    print(f"check_layers: {len(files)} files, no upward include, no include cycle")
    return 0


def cycles(graph):
    """Strongly connected components with more than one unit (Tarjan), each as a list."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
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

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def self_test():
    """The check can fail: a tree with an upward include and a cycle is refused, a clean one passes."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        def write(path, *includes):
            full = os.path.join(tmp, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write("".join(f'#include "{i}"\n' for i in includes))
        write("support/a.hpp")
        write("model/m.hpp", "support/a.hpp")
        write("fl/config/c.hpp", "model/m.hpp")
        here = os.getcwd()
        clean = check(tmp)
        write("model/up.hpp", "fl/config/c.hpp")            # model may not include fl
        write("actors/x.hpp", "actors/y.hpp")
        write("actors/y.hpp")
        write("actors/y.cpp", "actors/x.hpp")               # x -> y -> x through y's source
        import io, contextlib
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            dirty = check(tmp)
        os.chdir(here)
        text = out.getvalue()
        ok = clean == 0 and dirty == 1 and "model/up.hpp: includes fl/config/c.hpp" in text and \
            "include cycle: actors/x -> actors/y -> actors/x" in text
        print("check_layers self-test:", "passed" if ok else "FAILED\n" + text)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
