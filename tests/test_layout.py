"""The tree tells the truth: how the parts import each other is visible and one-way."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_runtime_never_imports_test_helpers_or_benchmarks():
    code = (
        "import sys, anno_mlx, anno_mlx.cli, anno_mlx.serve, anno_mlx.corpus, anno_mlx.train, anno_mlx.ui.app\n"
        "print(sorted(m for m in sys.modules if m.startswith(('anno_mlx.testing', 'anno_mlx.bench'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_convert_and_ui_import_the_package_absolutely():
    """convert/ and ui/ sit beside anno_mlx/ in the tree; a relative `..` import would hide that
    they install inside it."""
    for folder in ("convert", "ui"):
        for path in (ROOT / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    assert node.level == 0, f"{path.relative_to(ROOT)}:{node.lineno} imports relatively"


def test_no_docstring_points_outside_the_repository():
    for path in [*ROOT.glob("anno_mlx/**/*.py"), *ROOT.glob("convert/*.py"), *ROOT.glob("ui/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "shared/" not in text and "modernbert-spec" not in text, path.relative_to(ROOT)


def test_every_package_is_installed():
    """A new package under anno_mlx/ (a model family, a runner) must be in pyproject's list, or a
    wheel ships without it while the tests, run from the tree, still pass."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "anno_mlx").rglob("__init__.py")
        if "default_model" not in path.parts and not path.parent.is_symlink()
    }
    assert found - listed == set()
