"""List + watch of one Kubernetes resource, as RawEvents: the loop under the kubeapi collector.

Fed by: one `Resource` (a list function of the synchronous `kubernetes` client, plus how to
complete and redact its objects) and a thread pool to run its blocking HTTP calls in.
Feeds: an asyncio queue of `RawEvent`s (built by `core.kube.objects.raw_event_from_object`, so
ids and metadata match replayed recordings) and `UnusableInput`s for objects that cannot be used;
`collectors.kubeapi` merges the queues of all resources and publishes them.

One watcher is an informer without a cache of typed objects:
- LIST (paged), every item out as SNAPSHOT; remember each object and the list's resourceVersion;
- WATCH from that resourceVersion with bookmarks. ADDED / MODIFIED / DELETED go out, BOOKMARK
  only moves the resume point, a watch that ends normally resumes from the last resourceVersion;
- 410 Gone (HTTP status or an ERROR event) relists and emits only the difference to what was
  known: DELETED for objects gone in the gap, ADDED / MODIFIED for new or changed ones;
- any other failure reconnects with exponential backoff (tenacity) and logs what to check.
- a `ResumePoint` (collectors.resume: where a previous run stopped) replaces the first LIST: the
  watch goes on from its resourceVersion, and a 410 compares the list with the objects it names;
  so does a server whose resourceVersion is behind the resume point's (`same_history`).
A watch event whose object is already known at that resourceVersion is dropped: real servers
never send one, but a server that replays current objects on each watch (kmock) would otherwise
duplicate them.

Threads: the `kubernetes` client is synchronous, so each list call and each watch connection
runs in the pool. A watch thread reads lines and hands decoded events to the loop through an
asyncio queue (`call_soon_threadsafe`), bounded by a semaphore so a slow consumer holds the
thread, and with it the TCP stream, back. Stopping = cancelling the watcher task: the socket is
shut down, which ends the blocked read at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from collectors.resume import ResumePoint, stub
from collectors.unusable import FRAGMENT_CHARS, UnusableInput
from core.events import RawEvent
from core.kube.objects import SNAPSHOT, UnusableObject, raw_event_from_object
from core.kube.redact import redact_object

log = logging.getLogger(__name__)

WATCH_ACTIONS = frozenset({"ADDED", "MODIFIED", "DELETED"})
HTTP_GONE = 410


class WatchError(Exception):
    """The watch stream reported an error, or ended without making progress."""


class ResourceGone(WatchError):
    """410 Gone: the resourceVersion we resume from is too old; the resource must be relisted."""


#: what makes a watcher reconnect with backoff (anything else is a bug and stops the collector)
RETRIABLE = (ApiException, WatchError, urllib3.exceptions.HTTPError, OSError, ValueError)


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One kind to list and watch. `list_fn` is e.g. `CoreV1Api(api).list_pod_for_all_namespaces`."""

    name: str  # "pods", "events.events.k8s.io": how logs and `kinds` name it
    kind: str
    api_version: str
    list_fn: Callable[..., Any]
    redact: Callable[[dict], dict] | None = None


@dataclass(frozen=True, kw_only=True)
class WatchOptions:
    timeout_seconds: int = 300  # server-side end of a watch; each watch asks for 1x..2x this
    page_size: int = 500  # LIST page (`limit`)
    connect_timeout_s: float = 10.0
    list_timeout_s: float = 120.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    min_session_s: float = 1.0  # a watch shorter than this with no events counts as a failure
    handoff: int = 1000  # watch events a thread may hand over before the loop takes them


class ResourceWatcher:
    """List + watch of one resource until cancelled; see the module docstring."""

    def __init__(self, resource: Resource, *, out: asyncio.Queue, executor: Executor, options: WatchOptions,
                 server: str = "", resume: ResumePoint | None = None) -> None:
        self.resource = resource
        self.out = out
        self.executor = executor
        self.options = options
        self.server = server
        self.known: dict[str, dict] = {}  # uid (or namespace/name) -> last object seen, redacted
        self.resource_version = ""
        self.listed = False
        self.need_list = True
        self.emitted = 0
        self._session_events = 0
        self._said = ""  # the cause of the failure logged as a warning: its repeats are debug lines
        self._check_resume = False
        if resume is not None and resume.resource_version:  # where a previous run stopped: watch from there
            self.known, self.resource_version = dict(resume.known), resume.resource_version
            self.listed, self.need_list, self._check_resume = True, False, True

    def resume_point(self) -> ResumePoint | None:
        """Where the next run can go on from: what was emitted so far (None before the first list)."""
        if not self.listed or not self.resource_version:
            return None
        return ResumePoint(resource_version=self.resource_version,
                           known={key: stub(obj) for key, obj in self.known.items()})

    async def run(self) -> None:
        """Forever (until cancelled): sessions of list-if-needed + one watch connection."""
        while True:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RETRIABLE), reraise=True, before_sleep=self._log_retry,
                wait=wait_exponential_jitter(multiplier=self.options.backoff_initial_s, max=self.options.backoff_max_s,
                                             jitter=self.options.backoff_initial_s),
            ):
                with attempt:
                    await self._session()
            self._said = ""
            # a session that made progress returns normally: the next one starts with no backoff

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        if self._check_resume:
            current = await loop.run_in_executor(self.executor, self._current_version)
            self._check_resume = False
            if not same_history(self.resource_version, current):
                log.warning("kubeapi %s: the resume point's resourceVersion %r is not behind the server's %r "
                            "(another cluster at the same address, or versions not in order): listing and "
                            "comparing with the resume point instead", self.resource.name, self.resource_version,
                            current)
                self.need_list = True
        if self.need_list:
            await self._relist()
        started = loop.time()
        self._session_events = 0
        try:
            await self._watch()
        except ApiException as exc:
            if exc.status != HTTP_GONE:
                raise
            self.need_list = True
            raise ResourceGone(f"410 Gone opening the watch at resourceVersion {self.resource_version!r}") from exc
        except ResourceGone as exc:
            self.need_list = True
            if self._session_events or loop.time() - started >= self.options.min_session_s:
                log.info("kubeapi %s: %s; relisting", self.resource.name, exc)
                return
            raise
        if not self._session_events and loop.time() - started < self.options.min_session_s:
            raise WatchError(f"watch ended after {loop.time() - started:.2f}s without any event")

    # -- LIST -----------------------------------------------------------------------------

    async def _relist(self) -> None:
        loop = asyncio.get_running_loop()
        items, resource_version = await loop.run_in_executor(self.executor, self._list_all)
        first = not self.listed
        current: dict[str, dict] = {}
        changed: list[tuple[str, dict]] = []
        for raw in items:
            obj = self._complete(raw)
            key = _key(obj)
            current[key] = obj
            old = self.known.get(key)
            if first:
                changed.append((SNAPSHOT, obj))
            elif old is None:
                changed.append(("ADDED", obj))
            elif _changed(old, obj):
                changed.append(("MODIFIED", obj))
        gone = [obj for key, obj in self.known.items() if key not in current]
        log.info("kubeapi %s: listed %d object(s) at resourceVersion %r (%s)", self.resource.name, len(items),
                 resource_version, "snapshot" if first else f"{len(changed)} changed, {len(gone)} gone in the gap")
        for obj in gone:
            await self._emit("DELETED", obj)
        for action, obj in changed:
            await self._emit(action, obj)
        # only once all is out: a resume point never names what was not emitted
        self.known, self.resource_version = current, resource_version
        self.listed, self.need_list = True, False

    def _list_all(self) -> tuple[list[dict], str]:
        """Blocking: every page of the list; the resourceVersion is the first page's (one snapshot)."""
        items: list[dict] = []
        resource_version = ""
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.options.page_size}
            if token:
                kwargs["_continue"] = token
            resp = self.resource.list_fn(_preload_content=False,
                                         _request_timeout=(self.options.connect_timeout_s, self.options.list_timeout_s),
                                         **kwargs)
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            if not isinstance(body, dict):
                raise ValueError(f"list of {self.resource.name} is not a JSON object")
            meta = body.get("metadata") or {}
            resource_version = resource_version or str(meta.get("resourceVersion") or "")
            items.extend(item for item in body.get("items") or [] if isinstance(item, dict))
            token = meta.get("continue")
            if not token:
                return items, resource_version

    def _current_version(self) -> str:
        """Blocking: the server's resourceVersion now (a list of one item, read from etcd)."""
        resp = self.resource.list_fn(_preload_content=False, limit=1,
                                     _request_timeout=(self.options.connect_timeout_s, self.options.list_timeout_s))
        try:
            body = json.loads(resp.data)
        finally:
            resp.release_conn()
        meta = body.get("metadata") if isinstance(body, dict) else None
        return str((meta or {}).get("resourceVersion") or "")

    # -- WATCH ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        stream = _Stream(loop, self.options.handoff)
        timeout = int(self.options.timeout_seconds * random.uniform(1.0, 2.0))  # spread reconnects (client-go)
        kwargs: dict[str, Any] = {"watch": True, "allow_watch_bookmarks": True, "timeout_seconds": timeout,
                                  "_preload_content": False,
                                  "_request_timeout": (self.options.connect_timeout_s, timeout + 30)}
        if self.resource_version:
            kwargs["resource_version"] = self.resource_version
        loop.run_in_executor(self.executor, stream.pump, lambda: self.resource.list_fn(**kwargs))
        try:
            while True:
                item = await stream.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                self._session_events += 1
                await self._on_event(item)
        finally:
            stream.close()

    async def _on_event(self, event: Any) -> None:
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            log.warning("kubeapi %s: skipped a watch line that is not an event: %.200s", self.resource.name, event)
            return
        kind, obj = event.get("type"), event["object"]
        if kind == "BOOKMARK":
            self.resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or self.resource_version)
            return
        if kind == "ERROR":
            code = obj.get("code")
            text = f"{code} {obj.get('reason', '')}: {obj.get('message', '')}"
            if code == HTTP_GONE:
                raise ResourceGone(f"watch expired ({text}) at resourceVersion {self.resource_version!r}")
            raise WatchError(f"watch error event {text}")
        if kind not in WATCH_ACTIONS:
            log.warning("kubeapi %s: ignored watch event of type %r", self.resource.name, kind)
            return
        obj = self._complete(obj)
        key = _key(obj)
        version = _version(obj)
        old = self.known.get(key)
        if kind != "DELETED" and old is not None and version and _version(old) == version:
            return  # already emitted at this resourceVersion (a server replaying current state)
        await self._emit(kind, obj)
        if kind == "DELETED":  # the state moves once the event is out: a resume point never skips one
            self.known.pop(key, None)
        else:
            self.known[key] = obj
        if version:
            self.resource_version = version

    # -- output ---------------------------------------------------------------------------

    def _complete(self, obj: dict) -> dict:
        """List items come without kind/apiVersion: fill them in; redact (Secrets) before anything else."""
        if not obj.get("kind") or not obj.get("apiVersion"):
            obj = {**obj, "kind": obj.get("kind") or self.resource.kind,
                   "apiVersion": obj.get("apiVersion") or self.resource.api_version}
        return self.resource.redact(obj) if self.resource.redact is not None else obj

    async def _emit(self, action: str, obj: dict) -> None:
        source = f"kubeapi:{self.server}/{self.resource.name}" if self.server else f"kubeapi:{self.resource.name}"
        try:
            # a change the watch delivers happened by now: an object that carries no time of its own
            # (a ConfigMap edit) is placed at its receipt, not at its creation; a list's state keeps its own
            seen = datetime.now(UTC) if action != SNAPSHOT else None
            event: RawEvent | UnusableInput = raw_event_from_object(obj, action=action, source=source,
                                                                    observed_at=seen)
        except UnusableObject as exc:
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            where = f"{action} {meta.get('namespace') or ''}/{meta.get('name') or '?'}".replace(" /", " ")
            log.error("kubeapi %s: %s: unusable object: %s (sent to the dead letters)", self.resource.name, where, exc)
            event = UnusableInput(file=source, position=where, reason=str(exc),
                                  fragment=json.dumps(redact_object(obj), sort_keys=True, default=str)[:FRAGMENT_CHARS])
        else:
            self.emitted += 1
        await self.out.put(event)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        hint = _hint(exc, self.resource.name, server=self.server)
        what = _describe(exc)
        cause = f"{type(exc).__name__} {getattr(exc, 'status', '')}"
        level = logging.DEBUG if cause == self._said else logging.WARNING  # a cause is said once, until it goes
        self._said = cause
        log.log(level, "kubeapi %s: %s: %s; retrying in %.1fs (%s)%s", self.resource.name,
                "relist" if self.need_list else f"watch from resourceVersion {self.resource_version!r}",
                what, delay, hint, "" if level == logging.DEBUG else "; the same failure again is logged at debug")


class _End:
    """The watch stream ended normally (server timeout, or a client read timeout on a quiet watch)."""


_END = _End()


class _Stream:
    """One watch connection read in a pool thread, handed to the loop line by line (decoded)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handoff: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.slots = threading.BoundedSemaphore(handoff)
        self.lock = threading.Lock()
        self.closed = False
        self.resp: Any = None

    async def get(self) -> Any:
        item = await self.queue.get()
        self.slots.release()
        return item

    def pump(self, open_watch: Callable[[], Any]) -> None:
        """Thread: open the watch, decode every line, hand it over; then _END or the exception."""
        resp = None
        try:
            resp = open_watch()
            with self.lock:
                if self.closed:
                    return
                self.resp = resp
            for line in iter_resp_lines(resp):
                if not line.strip():
                    continue
                try:
                    event: Any = json.loads(line)
                except ValueError:
                    event = line[:200]
                if not self._hand(event):
                    return
            self._hand(_END)
        except urllib3.exceptions.ReadTimeoutError:
            self._hand(_END)
        except Exception as exc:  # handed to the loop, which decides: backoff, relist, or stop
            if not self.closed:
                self._hand(exc)
        finally:
            if resp is not None:
                resp.close()
                resp.release_conn()

    def _hand(self, item: Any) -> bool:
        while not self.slots.acquire(timeout=1.0):  # the loop is behind: wait, unless closed
            if self.closed:
                return False
        if self.closed:
            return False
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is gone
            return False
        return True

    def close(self) -> None:
        """Loop side: end the stream; a thread blocked reading the socket returns at once."""
        with self.lock:
            self.closed = True
            resp = self.resp
        sock = getattr(getattr(resp, "connection", None), "sock", None) if resp is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


def _key(obj: dict) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str(meta.get("uid") or f"{meta.get('namespace') or ''}/{meta.get('name') or ''}")


def _version(obj: dict) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str(meta.get("resourceVersion") or "")


def same_history(resume_version: str, current_version: str) -> bool:
    """Whether a watch from `resume_version` goes on in the history the server now has. Only when both
    are numbers (etcd revisions, as every kube-apiserver gives) and the server is not behind: a
    recreated cluster at the same address counts from 1 again, and a watch from a version the server
    has not reached is no 410 (what it does instead was not tried here)."""
    if not (resume_version.isdigit() and current_version.isdigit()):
        return False
    return int(resume_version) <= int(current_version)


def _changed(old: dict, new: dict) -> bool:
    old_version, new_version = _version(old), _version(new)
    if old_version and new_version:
        return old_version != new_version
    return old != new


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, ApiException):
        text = f"HTTP {exc.status} {exc.reason or ''}".strip()
        message = _status_message(exc.body)
        return f"{text}: {message}" if message else text
    return repr(exc)


def _status_message(body: object) -> str:
    """The message of a Kubernetes Status body: for a 403 it names the user, verb, resource and group."""
    try:
        status = json.loads(body) if isinstance(body, (str, bytes)) and body else None
    except ValueError:
        return ""
    return str(status.get("message") or "")[:500] if isinstance(status, dict) else ""


def _hint(exc: BaseException | None, resource: str, *, server: str) -> str:
    at = f" at {server}" if server else ""
    if isinstance(exc, ResourceGone):
        return "the resume point expired: relisting, and emitting only what changed"
    if isinstance(exc, ApiException) and exc.status in (401, 403):
        return (f"check RBAC and credentials: the identity needs get/list/watch on {resource} "
                f"(docker/rbac.yaml); `kubectl auth can-i watch {resource} -A`")
    if isinstance(exc, ApiException) and exc.status == 404:
        return f"the API server{at} does not serve {resource}: check its version, or leave this kind out"
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return f"check the network path to the API server{at} and the kubeconfig / in-cluster address"
    return f"check the API server{at} health and RBAC for {resource}"
