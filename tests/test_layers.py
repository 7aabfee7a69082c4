"""The layering of the package, as data, checked on every import statement (function-local ones too).

Imports only go down: the engine at the bottom, utilities beside it, data_tools above, the generic
trainer and the viewers above those, one folder per task on top, and the command line over all.
A new module lands in a layer through ``LAYERS`` below; a file in no layer fails the test.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("sparse3d", "data_tools")

# layer -> module prefixes that belong to it: a module belongs to the longest prefix it equals or extends;
# a prefix ending in "$" matches only itself ("sparse3d$": the package __init__, the public face of the engine)
LAYERS: Dict[str, Tuple[str, ...]] = {
    "extension": ("sparse3d._C",),
    "engine": ("sparse3d$", "sparse3d.tensor", "sparse3d.coords", "sparse3d.kernel", "sparse3d.kernel_map",
               "sparse3d._ext", "sparse3d.testing", "sparse3d.backends", "sparse3d.ops", "sparse3d.nn",
               "sparse3d.octree"),
    "utils": ("sparse3d.utils",),
    "data_tools": ("data_tools",),
    "train": ("sparse3d.train",),
    "vis": ("sparse3d.vis",),
    "gen2d": ("sparse3d.gen2d",),
    "tasks": ("sparse3d.tasks",),  # the package itself; each sparse3d.tasks.<name> is the layer "task:<name>"
    "cli": ("sparse3d.cli",),
}
TASKS = "sparse3d.tasks"

# layer -> the other layers it may import ("task" = the importing task's own folder, never another task)
ALLOWED: Dict[str, Tuple[str, ...]] = {
    "extension": (),
    "engine": ("extension", "utils"),
    "utils": ("extension",),
    "data_tools": ("engine", "extension", "utils"),
    "train": ("engine", "extension", "utils"),
    "vis": ("engine", "extension", "utils"),
    "gen2d": ("train", "utils"),
    "tasks": (),
    "task": ("engine", "extension", "utils", "data_tools", "train", "vis"),
    "cli": ("engine", "extension", "utils", "data_tools", "train", "vis", "gen2d", "tasks", "task"),
}

# task -> the other tasks it builds on (declared here, one way only): 3DMV is segmentation plus lifted image
# features and reuses its U-Net, dataset, loss, benchmark protocol and predict code
TASK_DEPENDS: Dict[str, Tuple[str, ...]] = {"threedmv": ("segmentation",)}


def layer_of(module: str) -> Optional[str]:
    """The layer of a dotted module name of this repository ("task:<name>" for a task), or None."""
    if module == TASKS or module.startswith(TASKS + "."):
        rest = module[len(TASKS) + 1:]
        return f"task:{rest.split('.')[0]}" if rest else "tasks"
    best, best_len = None, -1
    for layer, prefixes in LAYERS.items():
        for p in prefixes:
            exact = p.endswith("$")
            p = p.rstrip("$")
            if (module == p or (not exact and module.startswith(p + "."))) and len(p) > best_len:
                best, best_len = layer, len(p)
    return best


def may_import(src: str, dst: str) -> bool:
    """Whether layer ``src`` may import layer ``dst`` (layer names as :func:`layer_of` gives them)."""
    if src == dst:
        return True
    src_kind = "task" if src.startswith("task:") else src
    dst_kind = "task" if dst.startswith("task:") else dst
    if src_kind == "task" and dst_kind == "task":  # another task: only one it is declared to build on
        return dst[len("task:"):] in TASK_DEPENDS.get(src[len("task:"):], ())
    return dst_kind in ALLOWED[src_kind]


def _module_name(path: Path, repo: Path = REPO) -> str:
    parts = list(path.relative_to(repo).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _exists(module: str, repo: Path = REPO) -> bool:
    p = repo.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file() or module == "sparse3d._C"


def imports_of(path: Path, repo: Path = REPO) -> List[Tuple[int, str]]:
    """(line, dotted module) for every import in ``path`` (a file under ``repo``) of this repository's
    packages, in line order, relative imports resolved; ``from a import b`` gives ``a.b`` when that is a
    module, else ``a``."""
    return sorted(set(_imports(path, repo)))


def _imports(path: Path, repo: Path) -> Iterator[Tuple[int, str]]:
    module = _module_name(path, repo)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in ROOTS:
                    yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] not in ROOTS:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                yield node.lineno, sub if a.name != "*" and _exists(sub, repo) else target


def _python_files() -> List[Path]:
    return sorted(p for root in ROOTS for p in (REPO / root).rglob("*.py"))


def violations() -> List[str]:
    out = []
    for path in _python_files():
        rel = path.relative_to(REPO)
        src = layer_of(_module_name(path))
        if src is None:
            out.append(f"{rel}:1: module {_module_name(path)} is in no layer "
                       "(add it to LAYERS in tests/test_layers.py)")
            continue
        for line, mod in imports_of(path):
            dst = layer_of(mod)
            if dst is None:
                out.append(f"{rel}:{line}: [{src}] imports {mod}, which is in no layer")
            elif not may_import(src, dst):
                out.append(f"{rel}:{line}: [{src}] imports {mod} [{dst}]; {src} may import only "
                           f"{', '.join(ALLOWED['task' if src.startswith('task:') else src]) or 'itself'}")
    return out


def test_rule_is_consistent():
    kinds = set(LAYERS) | {"task"}
    assert set(ALLOWED) == kinds, set(ALLOWED) ^ kinds
    for layer, allowed in ALLOWED.items():
        assert set(allowed) <= kinds, (layer, set(allowed) - kinds)
    # a sample of the rule as the issue states it
    assert layer_of("sparse3d.nn.conv") == "engine" and layer_of("sparse3d") == "engine"
    assert layer_of("sparse3d.tasks.completion.model") == "task:completion"
    assert layer_of("sparse3d._C") == "extension" and layer_of("sparse3d.models") is None
    assert not may_import("engine", "data_tools") and not may_import("engine", "task:completion")
    assert not may_import("task:segmentation", "task:completion") and may_import("task:completion", "train")
    assert may_import("engine", "utils") and not may_import("utils", "engine")
    assert not may_import("data_tools", "train") and not may_import("vis", "task:completion")
    assert not may_import("gen2d", "engine") and may_import("gen2d", "train")
    # declared task dependencies go one way only and name existing task folders
    assert may_import("task:threedmv", "task:segmentation") and not may_import("task:segmentation", "task:threedmv")
    assert not may_import("task:threedmv", "task:completion")
    tasks_dir = REPO / "sparse3d" / "tasks"
    for task, deps in TASK_DEPENDS.items():
        for d in deps:
            assert (tasks_dir / task).is_dir() and (tasks_dir / d).is_dir(), (task, d)
            assert task not in TASK_DEPENDS.get(d, ()), f"cycle {task} <-> {d}"


def test_imports_resolve(tmp_path):
    """The parser sees plain, dotted, relative and function-local imports, with their lines."""
    pkg = tmp_path / "sparse3d" / "nn"
    pkg.mkdir(parents=True)
    (tmp_path / "sparse3d" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "conv.py").write_text("")
    f = pkg / "x.py"
    f.write_text("import os\nfrom . import conv\nfrom ..tasks import seg\n\n"
                 "def g():\n    import data_tools.cli\n    from sparse3d.nn.conv import Conv3d\n")
    got = imports_of(f, tmp_path)
    assert got == [(2, "sparse3d.nn.conv"), (3, "sparse3d.tasks"), (6, "data_tools.cli"),
                   (7, "sparse3d.nn.conv")], got


def test_layering():
    found = violations()
    assert not found, f"{len(found)} import(s) break the layering:\n" + "\n".join(found)
