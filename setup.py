"""Package discovery. Everything else is in pyproject.toml.

The language lives in ``lang/`` at the top of the repository (grammar, prelude,
reference) and installs as the data package ``catgrad.lang``.
"""

import os

from setuptools import find_packages, setup

lang_packages = ["catgrad.lang"] + [
    "catgrad.lang." + os.path.relpath(root, "lang").replace(os.sep, ".")
    for root, _, _ in os.walk("lang")
    if root != "lang" and "__pycache__" not in root
]

setup(
    packages=find_packages(include=["catgrad", "catgrad.*"]) + lang_packages,
    package_dir={"catgrad.lang": "lang"},
)
