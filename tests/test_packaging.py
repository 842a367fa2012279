"""The package installs under the ``mnemax`` namespace, editable or not."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_code_folder_is_packaged():
    """A folder with an __init__.py that pyproject does not list would vanish from a non-editable install."""
    tool = _pyproject()["tool"]["setuptools"]
    listed = set(tool["packages"])
    top = {name: folder for name, folder in tool["package-dir"].items()}
    found = set()
    for name, folder in top.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    assert found <= listed, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"


def test_non_editable_install_imports(tmp_path):
    """`pip install .` (here into a target folder, dependencies taken from this environment) imports from site-packages."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(target), str(ROOT)],
        check=True,
        capture_output=True,
    )
    code = (
        "import mnemax.backbones, mnemax.envs, mnemax.agents, mnemax.experiment, importlib.resources as r;"
        "print(mnemax.backbones.__file__);"
        "print(any(p.name == 'config.yaml' for p in r.files('mnemax.configs').iterdir()))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    # Run outside the repository so the source folders cannot shadow the installed copy.
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    module_file, has_config = out.stdout.split()
    assert Path(module_file).is_relative_to(target), module_file
    assert has_config == "True"
