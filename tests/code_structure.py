"""The code's structure, measured from its source: the largest functions and the imports
between layers. `bash infra/dev.sh structure` prints both; tests/test_code_structure.py
holds the code to them (no upward import; no long function without a reason).

The layers, lowest first (docs/architecture.md): each may import the ones below it, never one
above. Imports inside functions count: a lazy import is still a dependency.
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("infra.core", "models", "tasks", "flows", "infra.app")
LONG = 60  # lines; a longer function in tasks/ or flows/ says why in a `# long:` comment above it
LONG_REASON = "# long:"


@dataclass(frozen=True)
class Function:
    path: str
    name: str
    line: int
    lines: int
    reason: str | None  # the `# long:` comment above it, if any


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (the longest matching prefix), or None for
    third-party and standard-library modules."""
    best = None
    for layer in LAYERS:
        if (module == layer or module.startswith(layer + ".")) and (best is None or len(layer) > len(best)):
            best = layer
    return best


def source_files() -> list[Path]:
    return sorted(p for top in ("infra", "models", "tasks", "flows") for p in (ROOT / top).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def functions(path: Path, root: Path = ROOT) -> list[Function]:
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            above = lines[first - 2].strip() if first >= 2 else ""
            reason = above if above.startswith(LONG_REASON) else None
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            found.append(Function(str(path.relative_to(root)), node.name, node.lineno, size, reason))
    return found


def imports(path: Path) -> list[str]:
    """Every module `path` imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def layer_imports() -> tuple[Counter[tuple[str, str]], list[str]]:
    """(importing layer, imported layer) -> count, and each upward import as 'file: module'."""
    counts: Counter[tuple[str, str]] = Counter()
    upward = []
    for path in source_files():
        here = layer_of(module_name(path))
        if here is None:
            continue
        seen = set()
        for module in imports(path):
            there = layer_of(module)
            if there is None or there == here or (module.rsplit(".", 1)[0] in seen):
                continue
            seen.add(module)
            counts[(here, there)] += 1
            if LAYERS.index(there) > LAYERS.index(here):
                upward.append(f"{path.relative_to(ROOT)}: {module}")
    return counts, upward


def long_functions(top: tuple[str, ...] = ("tasks", "flows")) -> list[Function]:
    """Functions over LONG lines under `top` without a `# long:` reason."""
    return [
        f
        for path in source_files()
        if path.relative_to(ROOT).parts[0] in top
        for f in functions(path)
        if f.lines > LONG and f.reason is None
    ]


def report(n: int) -> str:
    every = sorted((f for path in source_files() for f in functions(path)), key=lambda f: -f.lines)
    out = [f"The {n} largest functions (lines, from `def` to its last line):"]
    out += [f"  {f.lines:4d}  {f.path}:{f.line} {f.name}" + (f"  ({f.reason})" if f.reason else "") for f in every[:n]]
    over = [f for f in every if f.lines > LONG]
    out.append(f"{len(over)} functions over {LONG} lines; without a `{LONG_REASON}` reason in tasks/ and flows/: "
               f"{len(long_functions())}")  # fmt: skip
    counts, upward = layer_imports()
    out.append("\nImports between layers (rows import columns; lowest layer first):")
    width = max(map(len, LAYERS))
    out.append(" " * (width + 2) + "".join(f"{layer:>{width + 2}}" for layer in LAYERS))
    for here in LAYERS:
        cells = "".join(f"{counts.get((here, there), 0) or '.':>{width + 2}}" for there in LAYERS)
        out.append(f"{here:<{width + 2}}{cells}")
    out.append(f"upward imports (a layer importing one above it): {len(upward)}")
    out += [f"  {u}" for u in upward]
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=20, help="how many of the largest functions to list")
    print(report(parser.parse_args().top))
