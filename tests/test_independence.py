"""The product and the simulator are independent: the oracle never borrows the code it checks.

Read from the source with `ast`, not by importing: the product never imports the simulator, the
simulator never imports the product, the pipeline script imports the simulator only inside the
function that serves `--demo`, and the simulator is a straight stack of layers without a
function-level or type-checking-only import (no import circle hidden behind one)."""

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR_LAYERS = [
    "loopback",
    "wire",
    "catalog",
    "generate",
    "workspace",
    "canaries",
    "routes",
    "faults",
    "server",
    "config_api",
    "tracking",
    "__init__",
    "__main__",
]
"""Bottom to top: a module imports only from the modules before it."""


def modules(package: str) -> List[Path]:
    found = sorted((ROOT / package).rglob("*.py"))
    assert found, f"no modules in {package}/"
    return found


def imports(path: Path) -> Iterator[Tuple[str, List[ast.AST]]]:
    """(module imported, the nodes enclosing the import statement) for every import in a file;
    `from package import name` counts as importing `package.name` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))

    def visit(node: ast.AST, enclosing: List[ast.AST]) -> Iterator[Tuple[str, List[ast.AST]]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, enclosing
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            assert node.module is not None
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = (ROOT / submodule.replace(".", "/")).with_suffix(".py").exists()
                yield submodule if is_module else node.module, enclosing
        for child in ast.iter_child_nodes(node):
            yield from visit(child, enclosing + [node])

    yield from visit(tree, [])


def imported(package: str, prefix: str) -> List[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name, _ in imports(path)
        if name == prefix or name.startswith(prefix + ".")
    ]


def is_function(node: ast.AST) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))


COMMAND_LINE = ROOT / "segment_source" / "cli.py"
"""The `segment-pipeline` command: the pipeline script, inside the package so that it installs."""


def test_the_product_never_imports_the_simulator():
    found = imported("segment_source", "segment_simulator")
    assert [line for line in found if not line.startswith(str(COMMAND_LINE.relative_to(ROOT)))] == []


def test_the_simulator_never_imports_the_product():
    assert imported("segment_simulator", "segment_source") == []


def test_the_pipeline_scripts_import_the_simulator_only_in_the_function_serving_the_demo():
    for path in [*modules("pipelines"), COMMAND_LINE]:
        for name, enclosing in imports(path):
            if name.split(".")[0] == "segment_simulator":
                functions = [node for node in enclosing if is_function(node)]
                assert functions, f"{path.name} imports {name} at module level"
                function = functions[-1]
                assert isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                arguments = [arg.arg for arg in function.args.args + function.args.kwonlyargs]
                assert "demo" in function.name or "demo" in arguments, f"{function.name} does not serve --demo"


def test_the_simulator_has_no_function_level_or_type_checking_imports():
    late = []
    for path in modules("segment_simulator"):
        for name, enclosing in imports(path):
            conditional = [node for node in enclosing if isinstance(node, ast.If)]
            if any(is_function(node) for node in enclosing) or conditional:
                late.append(f"{path.name} imports {name} in a function or under an `if`")
    assert late == []


def test_the_simulator_is_a_straight_stack_of_layers():
    found = sorted(path.stem for path in modules("segment_simulator"))
    assert found == sorted(SIMULATOR_LAYERS), "a new module: give it its place in SIMULATOR_LAYERS"
    upward = []
    for path in modules("segment_simulator"):
        layer = SIMULATOR_LAYERS.index(path.stem)
        for name, _ in imports(path):
            if name.split(".")[0] == "segment_simulator":
                used = "__init__" if name == "segment_simulator" else name.split(".")[1]
                if SIMULATOR_LAYERS.index(used) >= layer:
                    upward.append(f"{path.stem} imports {used}")
    assert upward == []
