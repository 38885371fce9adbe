"""A temporary installed distribution that declares ``stepwell.blocks`` entry points.

The module's source and a ``.dist-info`` folder are written into a folder that is put on
``sys.path``, so ``importlib.metadata`` finds the distribution as if pip had installed it;
everything is undone on exit (and the cached entry-point scan is forgotten both ways).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.plugins import ENTRY_POINT_GROUP, installed_plugins


@contextmanager
def installed_distribution(folder: Path, module: str, source: str,
                           entry_points: dict[str, str]) -> Iterator[Path]:
    """Install ``module`` (``source``) in ``folder`` as distribution ``module``-1.0 whose
    ``stepwell.blocks`` entry points are ``entry_points`` (name -> ``module:ATTR``)."""
    (folder / f"{module}.py").write_text(source)
    dist = folder / f"{module}-1.0.dist-info"
    dist.mkdir()
    name = module.replace("_", "-")
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    sys.path.insert(0, str(folder))
    installed_plugins.cache_clear()
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(module, None)
        installed_plugins.cache_clear()
