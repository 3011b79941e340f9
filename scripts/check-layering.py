#!/usr/bin/env python3
"""Layering checks that a grep can state (run by .ci/run):
1. the dashboard (src/tui/) never imports the run's recorder, command inbox or signals: the run
   host (src/host.rs) owns them, and the dashboard only consumes events and sends commands;
2. src/record.rs does not import the console report;
3. no import cycle between the modules of src/nn/ (an edge A -> B when a file of A names B
   through `super::B`, `crate::nn::B` or a `use super::{.., B, ..}` list; test modules ignored).
Prints what it checked; exits 1 naming the first violation of each kind."""
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
failed = False
imports_found = False

for dirpath, _, files in os.walk("src/tui"):
    for f in sorted(files):
        path = os.path.join(dirpath, f)
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            if re.match(r"\s*use .*\b(record|inbox|signals)\b", line):
                print(f"{path}:{n}: the dashboard imports the run host's part: {line.strip()}")
                imports_found = failed = True
for n, line in enumerate(open("src/record.rs", encoding="utf-8"), 1):
    if re.match(r"\s*use .*\breport\b", line):
        print(f"src/record.rs:{n}: imports the console report: {line.strip()}")
        imports_found = failed = True

root = "src/nn"
files = {}
for dirpath, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs"):
            rel = os.path.relpath(os.path.join(dirpath, f), root)[: -len(".rs")]
            files.setdefault(rel.split("/")[0], []).append(os.path.join(dirpath, f))
modules = sorted(set(files) - {"mod"})
graph = {m: set() for m in modules}
for m in modules:
    for path in files[m]:
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
        for other in modules:
            if other == m:
                continue
            named = re.search(r"(crate::nn::|super::)" + other + r"\b", text)
            listed = re.search(r"use (crate::nn|super)::\{[^}]*\b" + other + r"\b", text, re.S)
            if named or listed:
                graph[m].add(other)
state, cycles = {}, []


def visit(node, stack):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph[node]):
        if state.get(nxt) == "open":
            cycles.append(stack[stack.index(nxt):] + [nxt])
        elif nxt not in state:
            visit(nxt, stack)
    stack.pop()
    state[node] = "done"


for m in modules:
    if m not in state:
        visit(m, [])
for cycle in cycles:
    print("import cycle under src/nn/: " + " -> ".join(cycle))
    failed = True
edges = sum(len(v) for v in graph.values())
print(f"src/nn: {len(modules)} modules, {edges} imports between them, "
      f"{'cycles: ' + str(len(cycles)) if cycles else 'no cycle'}")
print("src/tui imports of record/inbox/signals and src/record.rs imports of report: "
      + ("found" if imports_found else "none"))
sys.exit(1 if failed else 0)
