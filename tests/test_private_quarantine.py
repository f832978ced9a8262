"""Private framework entry points are imported in one small module per framework only."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "autominimize"
FRAMEWORKS = ("jax", "jaxlib", "torch", "tensorflow", "keras")
QUARANTINE = {"backends/private_jax.py", "backends/private_torch.py"}


def _private_imports(path: pathlib.Path) -> list[str]:
    """The framework imports in ``path`` that name a private module or a private name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imports = [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imports = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in imports:
            parts = module.split(".")
            if parts[0] in FRAMEWORKS and any(part.startswith("_") for part in parts[1:] + [name]):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {module} {name}".rstrip())
    return found


def test_private_framework_imports_sit_in_the_private_modules_only():
    outside = [
        line for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).as_posix() not in QUARANTINE for line in _private_imports(path)
    ]
    assert outside == []
    inside = [line for name in sorted(QUARANTINE) for line in _private_imports(PACKAGE / name)]
    assert any("torch._C._functorch" in line for line in inside)  # the scan sees private imports
