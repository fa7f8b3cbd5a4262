#!/usr/bin/env python3
"""The longest shipped functions under a folder, in lines from signature to closing brace
(issue 22: none over 80 in reconciler/src/aws but declarative tables). Skips tests.rs files
and everything after a top-level `#[cfg(test)]`. Usage: .ci/fn_lengths.py DIR [TOP]."""
import re, sys, pathlib
root = pathlib.Path(sys.argv[1]); top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
fn_re = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')
out = []
for f in sorted(root.rglob('*.rs')):
    if f.name == 'tests.rs': continue
    lines = f.read_text().splitlines()
    for i, l in enumerate(lines):
        if l.startswith('#[cfg(test)]'): lines = lines[:i]; break
    i = 0
    while i < len(lines):
        m = fn_re.match(lines[i])
        if not m: i += 1; continue
        depth = 0; started = False; j = i
        while j < len(lines):
            s = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j]); s = re.sub(r"'(\\.|[^'\\])'", "''", s); s = s.split('//')[0]
            for c in s:
                if c == '{': depth += 1; started = True
                elif c == '}': depth -= 1
            if started and depth == 0: break
            if not started and s.rstrip().endswith(';'): break
            j += 1
        if started: out.append((j - i + 1, f"{f.relative_to(root)}:{i+1}", m.group(6)))
        i += 1
out.sort(reverse=True)
for n, loc, name in out[:top]: print(f"{n:5} {name:32} {loc}")
print(f"functions: {len(out)}, over 80: {sum(1 for o in out if o[0] > 80)}")
