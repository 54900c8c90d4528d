"""mypy over the installed package layout, from the source folders.

``runtime/`` installs as ``alls.runtime`` and ``grammar/`` as ``alls.grammar`` (setup.py's
``package_dir``), and an editable install maps them through an import hook that mypy does not
follow. So mypy is run on a tree of symbolic links laid out as the package installs: ``alls/``'s
entries, with ``runtime`` and ``grammar`` beside them. The settings are pyproject.toml's
``[tool.mypy]``; errors name the files by their installed paths (``alls/runtime/numerics.py`` is
``runtime/numerics.py``).

Run ``python tests/typecheck.py`` to see the errors; ``tests/test_typing.py`` asserts there are none.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The installed package's folders and their source folders (setup.py's ROOTS, less the top).
SUBPACKAGES = {"runtime": ROOT / "runtime", "grammar": ROOT / "grammar"}


def link_tree(where: pathlib.Path) -> pathlib.Path:
    """Lay out ``where/alls`` as the package installs, each entry a link into the source tree."""
    package = where / "alls"
    package.mkdir()
    for entry in (ROOT / "alls").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in SUBPACKAGES.items():
        (package / name).symlink_to(folder, target_is_directory=True)
    return where


def run_mypy() -> subprocess.CompletedProcess[str]:
    """mypy on the package ``alls`` (with ``alls.runtime``), under pyproject.toml's settings."""
    with tempfile.TemporaryDirectory(prefix="alls-mypy-") as tmp:
        tree = link_tree(pathlib.Path(tmp))
        command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                   "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "alls"]
        env = {**os.environ, "MYPYPATH": str(tree)}
        return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)


def main() -> int:
    result = run_mypy()
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
