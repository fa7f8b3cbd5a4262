"""Does a Python file define a function at its top level? Parsed, never imported, so the
submitting machine needs none of the user's modules. Prints one JSON object.
Usage: check.py PATH DISPLAY_NAME FUNCTION
"""

import ast
import json
import sys
import tokenize

path, display, name = sys.argv[1:4]


def top_level(body):
    """(name, line, kind) of every name bound at module level, also inside if/try/with."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, "function"
        elif isinstance(node, ast.ClassDef):
            yield node.name, node.lineno, "class"
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    yield t.id, node.lineno, "assignment"
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            yield node.target.id, node.lineno, "assignment"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                yield (a.asname or a.name).split(".")[0], node.lineno, "import"
        elif isinstance(node, ast.If):
            yield from top_level(node.body)
            yield from top_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from top_level(node.body)
            for h in node.handlers:
                yield from top_level(h.body)
            yield from top_level(node.orelse)
            yield from top_level(node.finalbody)
        elif isinstance(node, ast.With):
            yield from top_level(node.body)


def main():
    try:
        with tokenize.open(path) as f:  # honours a `# -*- coding: ... -*-` line
            source = f.read()
        tree = ast.parse(source, filename=display)
    except SyntaxError as e:
        print(json.dumps({"syntax_error": {"line": e.lineno, "column": e.offset, "message": e.msg}}))
        return
    except (OSError, UnicodeDecodeError) as e:
        print(json.dumps({"unreadable": str(e)}))
        return
    names = list(top_level(tree.body))
    found = [n for n in names if n[0] == name]
    functions = sorted({n for n, _, kind in names if kind == "function"})
    print(json.dumps({"found": found[-1] if found else None, "functions": functions}))


main()
