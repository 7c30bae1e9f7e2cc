"""What an object's status says: a pod's containers (state, last termination, exit code and what it
means, restarts, limits), conditions, phase, controlling owner, labels, node.

Fed by: objects as the API serves them (dicts), whether they came from a watch, a `-o json` list,
a support bundle or a `kubectl describe` rebuilt by `collectors.kubedescribe`. Feeds: the diagnosis
families (`agents.diagnosis`), which reason with these typed views.

Pure. Missing fields read as empty: a describe shows less than the API, never something else.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.kube.owners import controller_of

#: exit codes and what they mean (128+n: killed by signal n)
EXIT_MEANINGS = {
    0: "exited successfully (exit code 0)",
    1: "exited with an application error (exit code 1)",
    2: "exited with exit code 2 (a shell builtin misused, or a command-line usage error)",
    125: "could not be run by the container runtime (exit code 125)",
    126: "could not execute its command: not executable or permission denied (exit code 126)",
    127: "could not find its command (exit code 127)",
    128: "exited with an invalid exit argument (exit code 128)",
    130: "was interrupted (SIGINT, exit code 130)",
    134: "aborted (SIGABRT, exit code 134)",
    137: "was killed (SIGKILL, exit code 137)",
    139: "crashed with a segmentation fault (SIGSEGV, exit code 139)",
    143: "was terminated (SIGTERM, exit code 143)",
    255: "exited with exit code 255 (an error outside the usual range)",
}


class Terminated(msgspec.Struct, kw_only=True, frozen=True):
    reason: str = ""
    exit_code: int | None = None
    message: str = ""
    finished_at: str = ""
    started_at: str = ""


class ContainerView(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    init: bool = False
    image: str = ""
    ready: bool = False
    started: bool | None = None
    restarts: int = 0
    waiting_reason: str = ""
    waiting_message: str = ""
    running: bool = False
    terminated: Terminated | None = None  # its current state, when terminated
    last: Terminated | None = None  # the run before this one
    memory_limit: str = ""
    command: tuple[str, ...] = ()


def _terminated(state: Any) -> Terminated | None:
    if not isinstance(state, dict):
        return None
    term = state.get("terminated")
    if not isinstance(term, dict):
        return None
    code = term.get("exitCode")
    return Terminated(reason=str(term.get("reason") or ""), exit_code=code if isinstance(code, int) else None,
                      message=str(term.get("message") or ""), finished_at=str(term.get("finishedAt") or ""),
                      started_at=str(term.get("startedAt") or ""))


def _specs(pod: dict[str, Any], init: bool) -> dict[str, dict[str, Any]]:
    spec = pod.get("spec") or {}
    listed = spec.get("initContainers" if init else "containers") or []
    return {c.get("name", ""): c for c in listed if isinstance(c, dict)}


def containers(pod: dict[str, Any]) -> list[ContainerView]:
    """Every container of a pod (init containers first), with its state and last termination."""
    status = pod.get("status") or {}
    out: list[ContainerView] = []
    for init, field in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        specs = _specs(pod, init)
        seen: set[str] = set()
        for cs in status.get(field) or []:
            if not isinstance(cs, dict):
                continue
            name = str(cs.get("name") or "")
            seen.add(name)
            state = cs.get("state") or {}
            waiting = state.get("waiting") if isinstance(state, dict) else None
            spec = specs.get(name, {})
            limits = ((spec.get("resources") or {}).get("limits") or {}) if isinstance(spec, dict) else {}
            out.append(ContainerView(
                name=name, init=init, image=str(cs.get("image") or spec.get("image") or ""),
                ready=bool(cs.get("ready")), started=cs.get("started") if isinstance(cs.get("started"), bool) else None,
                restarts=int(cs.get("restartCount") or 0),
                waiting_reason=str((waiting or {}).get("reason") or "") if isinstance(waiting, dict) else "",
                waiting_message=str((waiting or {}).get("message") or "") if isinstance(waiting, dict) else "",
                running=isinstance(state, dict) and isinstance(state.get("running"), dict),
                terminated=_terminated(state), last=_terminated(cs.get("lastState")),
                memory_limit=str(limits.get("memory") or ""),
                command=tuple(str(x) for x in (spec.get("command") or []) + (spec.get("args") or []))))
        for name, spec in specs.items():  # a describe or a manifest may list specs without statuses
            if name not in seen and not status.get(field):
                limits = (spec.get("resources") or {}).get("limits") or {}
                out.append(ContainerView(name=name, init=init, image=str(spec.get("image") or ""),
                                         memory_limit=str(limits.get("memory") or "")))
    return out


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def phase(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


class _Ref(msgspec.Struct, frozen=True):
    kind: str = ""
    name: str = ""
    controller: bool = False


def owner(obj: dict[str, Any]) -> tuple[str, str] | None:
    """The controlling owner's (kind, name) (`core.kube.owners.controller_of`)."""
    refs = [_Ref(kind=str(r.get("kind") or ""), name=str(r.get("name") or ""), controller=bool(r.get("controller")))
            for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if isinstance(r, dict)]
    chosen = controller_of(refs)
    return (chosen.kind, chosen.name) if chosen else None


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items()}


def node_name(obj: dict[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("nodeName") or "")


def env_names(pod: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        for c in (pod.get("spec") or {}).get(field) or []:
            for env in (c.get("env") or []) if isinstance(c, dict) else []:
                if isinstance(env, dict) and env.get("name"):
                    names.add(str(env["name"]))
    return names
