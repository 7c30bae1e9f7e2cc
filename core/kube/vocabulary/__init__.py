"""Kubernetes' own vocabulary, as data files in this folder, shipped inside the package.

- `semantics.yaml`: what each reason, message hint, container state and object change means
  (read by `core.kube.semantics`);
- `log_signals.yaml`: which container-log lines are signals and what they mean (read by
  `core.kube.log_signals`).
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def vocabulary_file(name: str) -> Traversable:
    """One file of this folder, wherever the package is installed."""
    return resources.files(__name__).joinpath(name)
