"""The peers' own environments (.bench/*-venv): a baseline's packages never enter ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def venv_python(venv: Path, install: list[str], what: str) -> Path:
    """The python of `venv`, created on first use with `pip install *install`."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating the {what} environment …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(pip + install, check=True)
    return python
