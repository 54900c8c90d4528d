"""Package discovery for the three source roots (see pyproject.toml for everything else).

The project keeps its sources in three folders that install under one name:
``alls/`` as ``alls``, ``grammar/`` as ``alls.grammar`` and ``runtime/`` as
``alls.runtime``. Every package below each root is found here, so a new
subpackage ships without anyone editing a list.
"""

from setuptools import find_packages, setup

ROOTS = {"alls": "alls", "alls.grammar": "grammar", "alls.runtime": "runtime"}


def _packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        found.extend(f"{name}.{sub}" for sub in find_packages(folder))
    return found


setup(packages=_packages(), package_dir=ROOTS)
