"""Which node collectors `tapio agent` knows, which of them a run switches on, and how one is built.

Fed by: the agent settings (`agent.only`, `agent.disable`, `agent.extra`, `agent.options`) and the CLI's
`--only` / `--disable`. Feeds: `app.agent`, which builds the selected collectors and runs them.

A collector is named by `module:Class` (`REGISTRY`, plus a site's own in `agent.extra`) and imported
only when it is selected, so a build without one collector's module, or a module whose own imports are
missing (no BCC, no grpc), makes that collector unavailable with the reason, not the agent unusable.
A collector is built as `Class(node=<node name>, **agent.options[<name>])` (`collectors.node`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from collectors.node import NodeCollector

#: name -> "module:Class" of every collector the agent ships, in the order they start and are listed
REGISTRY: dict[str, str] = {
    "procfs": "collectors.procfs:ProcfsCollector",
    "kernel": "collectors.kernel:KernelCollector",
    "dns": "collectors.dns:DnsCollector",
    "cri": "collectors.cri:CriCollector",
    "etcd": "collectors.etcd:EtcdCollector",
    "apiserver": "collectors.apiserver:APIServerCollector",
    "journald": "collectors.journald:JournaldCollector",
    "kubelet": "collectors.kubelet:KubeletCollector",
    "cni": "collectors.cni:CniCollector",
}


class UnknownCollector(ValueError):
    """`--only` / `--disable` (or agent.only / agent.disable) named a collector the agent does not know."""


class CollectorUnavailable(Exception):
    """A collector cannot be built here: its module or class is missing, or its options do not fit.
    The message says which and what to do."""


def registry_with(extra: Mapping[str, str]) -> dict[str, str]:
    """The shipped registry plus a site's own collectors (`agent.extra`), which may also replace one."""
    for name, target in extra.items():
        if target.count(":") != 1 or not all(target.split(":")):
            raise UnknownCollector(f"agent.extra.{name}: {target!r} is not 'module:Class'")
    return {**REGISTRY, **extra}


def select(registry: Mapping[str, str], *, only: Iterable[str] = (), disable: Iterable[str] = ()) -> list[str]:
    """The collectors to run, in registry order: `only` when given (else every one), minus `disable`.
    Raises UnknownCollector for a name the registry does not have (a typo must not switch one off)."""
    only, disable = list(only), list(disable)
    unknown = sorted({*only, *disable} - set(registry))
    if unknown:
        raise UnknownCollector(f"unknown collector(s) {', '.join(unknown)}: the agent knows "
                               f"{', '.join(registry)} (add a site's own under agent.extra)")
    return [name for name in registry if (not only or name in only) and name not in disable]


def load_class(name: str, target: str) -> type[Any]:
    """Import `module:Class` for collector `name`. Raises CollectorUnavailable naming what is missing."""
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise CollectorUnavailable(f"module {module_name} is not in this build of tapio "
                                       f"(install a build that has the {name} collector, or disable it)") from e
        raise CollectorUnavailable(f"module {module_name} needs {e.name!r}, which is not installed "
                                   f"(install it, or disable the {name} collector)") from e
    except Exception as e:  # ImportError, or what its own top level raised (a shared library that will not load)
        raise CollectorUnavailable(f"module {module_name} cannot be imported: {type(e).__name__}: {e}") from e
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise CollectorUnavailable(f"module {module_name} has no class {class_name} (registry entry {target!r})")
    return cls


def build(name: str, target: str, *, node: str, options: Mapping[str, Any]) -> NodeCollector:
    """The collector, built as the contract says. Raises CollectorUnavailable."""
    cls = load_class(name, target)
    try:
        collector: NodeCollector = cls(node=node, **options)
    except TypeError as e:
        raise CollectorUnavailable(f"{target} cannot be built with node= and agent.options.{name} "
                                   f"{dict(options)!r}: {e}") from e
    except Exception as e:  # its constructor's own failure: that collector is off, the others run
        raise CollectorUnavailable(f"{target} failed while being built: {type(e).__name__}: {e}") from e
    return collector

