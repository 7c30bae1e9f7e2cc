"""The live pattern catalog: a folder of BehaviorPattern files, reloaded when a file changes.

Fed by: `match.patterns_dir` (default: the shipped catalog, `patterns.CATALOG`). Feeds: the match stage
(`selector`, `compiled`), the windows (`compiled`) and the predict stage (`patterns`).

Hot reload: `poll()` compares every file's (mtime, size) with the last look; the worker calls it
every `match.reload_interval_s`. A file added, edited or deleted takes effect at the next poll;
window state is untouched (it is keyed by pattern and condition fingerprint, so a threshold edit
keeps the counts already made). A file that fails validation keeps its last good version running,
and the error is logged and listed in `errors` (shown by the worker's `/tapio/patterns/` page).
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from agents.hits import CompiledPattern, Selector, compile_pattern
from agents.pattern_files import load_pattern
from agents.patterns import BehaviorPattern, PatternError, known_intents

log = logging.getLogger(__name__)


class CatalogStatus(msgspec.Struct, kw_only=True):
    directory: str
    generation: int
    patterns: dict[str, str]  # name -> version
    files: dict[str, str]  # file -> pattern name
    errors: list[str]


class Catalog:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.generation = 0
        self._seen: dict[Path, tuple[int, int]] = {}
        self._good: dict[Path, BehaviorPattern] = {}  # last good version of each file
        self._errors: dict[Path, PatternError] = {}
        self._intents = known_intents()
        self.patterns: dict[str, BehaviorPattern] = {}
        self.compiled: dict[str, CompiledPattern] = {}
        self.selector = Selector([])
        if not self.directory.is_dir():
            raise FileNotFoundError(f"pattern directory {self.directory} does not exist: set match.patterns_dir")
        self.poll()

    def _files(self) -> dict[Path, tuple[int, int]]:
        found: dict[Path, tuple[int, int]] = {}
        for path in self.directory.iterdir():
            if path.suffix in (".yaml", ".yml") and path.is_file():
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                found[path] = (st.st_mtime_ns, st.st_size)
        return found

    def poll(self) -> bool:
        """Reload what changed on disk; True when the running catalog changed."""
        files = self._files()
        if files == self._seen:
            return False
        changed = False
        for path in set(self._seen) - set(files):
            log.info("patterns: %s deleted; its pattern is unloaded", path)
            changed |= self._good.pop(path, None) is not None
            self._errors.pop(path, None)
        for path, stamp in files.items():
            if self._seen.get(path) == stamp:
                continue
            try:
                pattern = load_pattern(path, intents=self._intents)
            except PatternError as e:
                self._errors[path] = e
                kept = f"; keeping version {self._good[path].metadata.version}" if path in self._good else ""
                log.error("patterns: %s%s (fix the file; it is reloaded when saved)", e, kept)
                continue
            self._errors.pop(path, None)
            if self._good.get(path) != pattern:
                self._good[path] = pattern
                changed = True
                log.info("patterns: loaded %s %s from %s", pattern.metadata.name, pattern.metadata.version, path)
        self._seen = files
        if changed:
            self._rebuild()
        return changed

    def _rebuild(self) -> None:
        patterns: dict[str, BehaviorPattern] = {}
        for path in sorted(self._good):
            pattern = self._good[path]
            name = pattern.metadata.name
            if name in patterns:
                self._errors[path] = PatternError(path, 0, field="metadata.name",
                                                  message=f"duplicate name {name!r}; this file is ignored")
                log.error("patterns: %s", self._errors[path])
                continue
            patterns[name] = pattern
        self.patterns = patterns
        self.compiled = {name: compile_pattern(p) for name, p in patterns.items()}
        self.selector = Selector(self.compiled.values())
        self.generation += 1

    @property
    def errors(self) -> list[str]:
        return [str(e) for _, e in sorted(self._errors.items())]

    def status(self) -> CatalogStatus:
        return CatalogStatus(directory=str(self.directory), generation=self.generation,
                             patterns={n: p.metadata.version for n, p in sorted(self.patterns.items())},
                             files={str(f): p.metadata.name for f, p in sorted(self._good.items())},
                             errors=self.errors)
