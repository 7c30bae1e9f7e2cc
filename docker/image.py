"""Tapio's container images, the worker's and the node agent's, built with buildah: no Docker, no registry.

Fed by the checkout (the files `git ls-files` lists under the project's packages, untracked ones that are
not ignored included, plus pyproject.toml, README.md and docker/Containerfile), Debian's archive
(debootstrap builds the base rootfs: bookworm with its own python3, python3-venv and ca-certificates) and
the host's pip configuration (its merged settings, and read-only mounts of the indexes, find-links,
constraint file and CA bundle it names, so pip inside the build reaches the same package sources as pip
here). Feeds a docker-archive tar, `<cache>/tapio-<version>-<sourcehash>.tar` tagged
`localhost/tapio:<version>`, that the cluster tests import into containerd (`ctr -n k8s.io images import`);
with `--agent` also the node agent's, `<cache>/tapio-agent-<version>-<hash>.tar` tagged
`localhost/tapio-agent:<version>` (docker/Containerfile.agent: the worker image plus Debian's BCC and
journalctl).

Everything buildah keeps lives under the cache folder (`~/.cache/tapio/images/`, or TAPIO_IMAGE_CACHE, or
--cache), with the vfs driver: never /var/lib/containers. The base image is kept there, keyed by suite and
package list, so a later run skips debootstrap; a tar whose source hash is already there is not rebuilt.

    python docker/image.py            # the tar's path is the last line of stdout; logging goes to stderr
    python docker/image.py --agent    # the worker's tar, then the agent's (make image)

Needs root (debootstrap, buildah's chroot isolation); installs buildah and debootstrap with apt-get if
missing.
"""

from __future__ import annotations

import argparse
import collections
import configparser
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTAINERFILE = REPO / "docker" / "Containerfile"
AGENT_CONTAINERFILE = REPO / "docker" / "Containerfile.agent"
IMAGE_NAME = "localhost/tapio"
AGENT_IMAGE_NAME = "localhost/tapio-agent"
BASE_NAME = "localhost/tapio-base"

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv")
BASE_RECIPE = 2  # bump when ensure_base changes what the rootfs keeps: a new key, so a new base
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# what goes into the image: the hash of these (git's files under the folders, the files by name) names the tar
SOURCE_DIRS = ("core", "app", "agents", "collectors", "topology", "bpf", "patterns")
SOURCE_FILES = ("pyproject.toml", "README.md", "docker/Containerfile")

# pip settings whose values name local files or file:// indexes that the build must see at the same path
PIP_PATH_KEYS = ("index-url", "extra-index-url", "find-links", "constraint", "requirement", "cert", "client-cert")

log = logging.getLogger("tapio.image")


class ImageBuildError(RuntimeError):
    """A step failed: the command, its exit status and the tail of its output."""

    def __init__(self, step: str, cmd: Sequence[str] | None = None, returncode: int | None = None,
                 tail: str = "") -> None:
        self.step, self.cmd, self.returncode, self.tail = step, list(cmd or []), returncode, tail
        text = step
        if cmd:
            text += f"\n  command: {' '.join(map(str, cmd))}"
        if returncode is not None:
            text += f"\n  exit status: {returncode}"
        if tail:
            text += "\n  last output:\n    " + "\n    ".join(tail.rstrip().splitlines())
        super().__init__(text)


def run(cmd: Sequence[str | os.PathLike[str]], step: str, *, capture: bool = False, check: bool = True,
        env: dict[str, str] | None = None, tail_lines: int = 40) -> str:
    """Run cmd; its output goes to stderr (or is returned, with capture). Raises ImageBuildError on failure."""
    args = [str(a) for a in cmd]
    log.debug("$ %s", " ".join(args))
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE if capture else subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", env=env)
    except OSError as e:
        raise ImageBuildError(f"{step}: cannot start {args[0]}: {e}", args) from e
    if capture:
        out, err = proc.communicate()
        tail.extend(err.splitlines())
    else:
        out = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(line)
            tail.append(line.rstrip("\n"))
        proc.wait()
    if check and proc.returncode != 0:
        raise ImageBuildError(f"{step} failed", args, proc.returncode, "\n".join(tail))
    return out


# -- tools ----------------------------------------------------------------------------------------------------

def ensure_tools(tools: dict[str, str] | None = None) -> None:
    """Install the missing commands' Debian packages (apt-get update only if the first install fails)."""
    tools = tools or {"buildah": "buildah", "debootstrap": "debootstrap"}
    missing = sorted({pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise ImageBuildError(f"{', '.join(missing)} missing and not root: install them (apt-get install -y "
                              f"{' '.join(missing)}) or run as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    log.info("installing %s", " ".join(missing))
    try:
        run(install, "apt-get install", env=env)
    except ImageBuildError:
        log.info("install failed: apt-get update, then once more")
        run(["apt-get", "update"], "apt-get update", env=env)
        run(install, "apt-get install (after apt-get update)", env=env)


# -- buildah in a private store -------------------------------------------------------------------------------

class Buildah:
    """buildah with its own storage under the cache (vfs driver), never /var/lib/containers."""

    def __init__(self, cache: Path) -> None:
        self.store = ["--root", str(cache / "storage"), "--runroot", str(cache / "runroot"),
                      "--storage-driver", "vfs"]

    def __call__(self, *args: str | os.PathLike[str], step: str, capture: bool = False, check: bool = True) -> str:
        return run(["buildah", *self.store, *args], step, capture=capture, check=check)

    def has_image(self, name: str) -> bool:
        out = run(["buildah", *self.store, "images", "--noheading", "--format", "{{.Name}}:{{.Tag}}"],
                  "buildah images", capture=True)
        return name in out.split()


# -- the base: debootstrap -> tar -> buildah from scratch ------------------------------------------------------

def base_image_name(suite: str = SUITE, packages: Sequence[str] = BASE_PACKAGES, mirror: str = MIRROR) -> str:
    recipe = f"{BASE_RECIPE}|{suite}|minbase|{','.join(sorted(packages))}|{mirror}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{BASE_NAME}:{suite}-{key}"


def ensure_base(buildah: Buildah, cache: Path, suite: str = SUITE, packages: Sequence[str] = BASE_PACKAGES,
                mirror: str = MIRROR) -> str:
    name = base_image_name(suite, packages, mirror)
    if buildah.has_image(name):
        log.info("base %s is cached: no debootstrap", name)
        return name
    log.info("base %s: debootstrap %s with %s", name, suite, ",".join(packages))
    with tempfile.TemporaryDirectory(prefix="base-", dir=cache) as tmp:
        root = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, root, mirror],
            "debootstrap")
        # what a running container gets from its runtime, and what only debootstrap needed
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log", "tmp", "dev", "proc", "sys"):
            for child in (root / sub).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        for f in ("etc/resolv.conf", "etc/hostname", "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"):
            (root / f).unlink(missing_ok=True)
        # as Debian's slim images: no manuals, info pages nor translations; each package's copyright stays
        for sub in ("usr/share/man", "usr/share/info", "usr/share/locale"):
            shutil.rmtree(root / sub, ignore_errors=True)
            (root / sub).mkdir()
        for doc in (root / "usr/share/doc").glob("*/*"):
            if doc.name != "copyright":
                shutil.rmtree(doc) if doc.is_dir() and not doc.is_symlink() else doc.unlink()
        tar = Path(tmp) / "rootfs.tar"
        run(["tar", "--numeric-owner", "--xattrs", "-C", root, "-cf", tar, "."], "tar of the base rootfs")
        shutil.rmtree(root)
        ctr = buildah("from", "--name", f"tapio-base-{os.getpid()}", "scratch", step="buildah from scratch",
                      capture=True).strip()
        try:
            buildah("add", ctr, tar, "/", step="buildah add (base rootfs)")
            buildah("config", "--env", f"PATH={BASE_PATH}", "--env", "LANG=C.UTF-8", "--cmd", "/bin/bash",
                    "--label", f"io.tapio.base={suite}:{','.join(sorted(packages))}", ctr, step="buildah config")
            buildah("commit", "--rm", ctr, name, step="buildah commit (base)")
        except BaseException:
            buildah("rm", ctr, step="buildah rm", check=False)
            raise
    for old in buildah("images", "--noheading", "--format", "{{.Name}}:{{.Tag}}", step="buildah images",
                       capture=True).split():
        if old.startswith(f"{BASE_NAME}:") and old != name:
            log.info("removing the outdated base %s", old)
            buildah("rmi", old, step="buildah rmi (old base)", check=False)
    return name


# -- sources, version, wheel --------------------------------------------------------------------------------

def project_version(repo: Path = REPO) -> str:
    with open(repo / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def source_files(repo: Path = REPO) -> list[str]:
    """The files the image is made of: under SOURCE_DIRS, the files git tracks or would (untracked ones not
    ignored: a module just written is in the image before it is committed), and SOURCE_FILES."""
    out = run(["git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
               *SOURCE_DIRS], "git ls-files", capture=True)
    files = {p for p in out.split("\0") if p}
    files.update(SOURCE_FILES)
    return sorted(p for p in files if (repo / p).is_file())


def source_hash(repo: Path = REPO, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for rel in source_files(repo):
        h.update(rel.encode() + b"\0" + hashlib.sha256((repo / rel).read_bytes()).digest())
    return h.hexdigest()[:16]


def build_wheel(out: Path, repo: Path = REPO) -> Path:
    """The project's wheel, built from a copy of the source files (the checkout gets no build/ nor egg-info)."""
    with tempfile.TemporaryDirectory(prefix="src-", dir=out.parent) as tmp:
        src = Path(tmp)
        for rel in source_files(repo):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, src / rel)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", out, src]
        try:
            import setuptools  # noqa: F401  (here: build with it, no isolated build environment to fetch)
            run([*cmd[:4], "--no-build-isolation", *cmd[4:]], "pip wheel (project)")
        except (ImportError, ImageBuildError) as e:
            log.info("building the wheel in an isolated environment (%s)", type(e).__name__)
            run(cmd, "pip wheel (project)")
    wheels = sorted(out.glob("tapio-*.whl"))
    if len(wheels) != 1:
        raise ImageBuildError(f"pip wheel: expected one tapio wheel in {out}, found {[w.name for w in wheels]}")
    return wheels[0]


# -- the host's pip configuration, for the build ---------------------------------------------------------------

def host_pip_config() -> dict[str, dict[str, str]]:
    """pip's effective settings here (files, then PIP_* variables, as `pip config list` shows them)."""
    out = run([sys.executable, "-m", "pip", "config", "list"], "pip config list", capture=True)
    sections: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if not sep or "." not in key:
            continue
        section, _, name = key.rpartition(".")
        section = "global" if section == ":env:" else section
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        sections.setdefault(section, {})[name] = value
    return sections


def pip_mounts(config: dict[str, dict[str, str]]) -> list[str]:
    """The host paths the settings name (file:// indexes by their parent: their links go ../../files)."""
    paths: set[Path] = set()
    for settings in config.values():
        for key in PIP_PATH_KEYS:
            for item in settings.get(key, "").split():
                if item.startswith("file:"):
                    p = Path(urllib.request.url2pathname(urllib.parse.urlparse(item).path))
                    if p.name == "simple":
                        p = p.parent
                elif item.startswith("/"):
                    p = Path(item)
                else:
                    continue
                if p.exists():
                    paths.add(p.resolve())
    # nested ones are covered by their parent
    kept = [p for p in sorted(paths) if not any(q != p and q in p.parents for q in paths)]
    return [f"{p}:{p}:ro" for p in kept]


def write_pip_conf(config: dict[str, dict[str, str]], path: Path) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    for section, settings in config.items():
        parser[section] = settings
    with open(path, "w") as f:
        f.write("# the host's pip settings (pip config list), for docker/Containerfile's RUN: mounted, not kept\n")
        parser.write(f)


# -- the image -------------------------------------------------------------------------------------------------

@contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (parallel test workers wait for the first)."""
    with open(cache / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_cache() -> Path:
    return Path(os.environ.get("TAPIO_IMAGE_CACHE") or Path.home() / ".cache" / "tapio" / "images")


def _built(cache: Path, tag: str, tar: Path, outdated: str, make: Callable[[Buildah], None]) -> Path:
    """`tar` if it is there; else the tools and the store, `make(buildah)` to build image `tag`, then `tag`
    written to `tar` as a docker-archive (whole or not at all), the tars `outdated` (a glob) names
    removed and the images the tag moved off pruned from the store."""
    with locked(cache):
        if tar.is_file():
            log.info("%s is up to date (%s): nothing rebuilt", tag, tar.name)
            return tar
        ensure_tools()
        buildah = Buildah(cache)
        make(buildah)
        partial = tar.with_suffix(".tar.partial")
        partial.unlink(missing_ok=True)
        buildah("push", tag, f"docker-archive:{partial}:{tag}", step=f"buildah push {tag} (docker-archive)")
        partial.rename(tar)
        for old in cache.glob(outdated):
            if old != tar:
                log.info("removing the outdated %s", old.name)
                old.unlink()
        buildah("rmi", "--prune", step="buildah rmi --prune", check=False)
        log.info("%s: %s (%.0f MiB)", tag, tar, tar.stat().st_size / 2**20)
        return tar


def build_image(cache: Path | None = None) -> Path:
    """The worker image as a docker-archive tar (tag IMAGE_NAME:<version>); built only if its sources changed."""
    cache = (cache or default_cache()).expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    version = project_version()
    tag = f"{IMAGE_NAME}:{version}"

    def make(buildah: Buildah) -> None:
        base = ensure_base(buildah, cache)
        with tempfile.TemporaryDirectory(prefix="build-", dir=cache) as tmp:
            context = Path(tmp) / "context"
            (context / "wheels").mkdir(parents=True)
            wheel = build_wheel(context / "wheels")
            log.info("wheel %s", wheel.name)
            config = host_pip_config()
            pip_conf = Path(tmp) / "pip.conf"
            write_pip_conf(config, pip_conf)
            volumes = [f"{pip_conf}:/etc/pip.conf:ro", *pip_mounts(config)]
            log.info("pip in the build: %s", ", ".join(v.split(":")[1] for v in volumes))
            buildah("bud", "--isolation", "chroot", "--pull=never", "--layers=false", "--format", "docker",
                    "--build-arg", f"BASE={base}", *(a for v in volumes for a in ("--volume", v)),
                    "-f", CONTAINERFILE, "-t", tag, context, step="buildah bud (worker image)")

    tar = cache / f"tapio-{version}-{source_hash(extra=base_image_name())}.tar"
    return _built(cache, tag, tar, "tapio-[0-9]*.tar", make)  # the worker's tars: tapio-<version>-<hash>.tar


def build_agent_image(cache: Path | None = None) -> Path:
    """The node agent's image (docker/Containerfile.agent: the worker image plus BCC and journalctl) as a
    docker-archive tar (tag AGENT_IMAGE_NAME:<version>); built only if the worker image or that file changed."""
    cache = (cache or default_cache()).expanduser().resolve()
    worker_tar = build_image(cache)
    version = project_version()
    worker, tag = f"{IMAGE_NAME}:{version}", f"{AGENT_IMAGE_NAME}:{version}"

    def make(buildah: Buildah) -> None:
        if not buildah.has_image(worker):  # its tar was kept, the storage was not
            buildah("pull", f"docker-archive:{worker_tar}", step="buildah pull (the worker image)")
        with tempfile.TemporaryDirectory(prefix="build-agent-", dir=cache) as context:
            buildah("bud", "--isolation", "chroot", "--pull=never", "--layers=false", "--format", "docker",
                    "--build-arg", f"WORKER={worker}", "-f", AGENT_CONTAINERFILE, "-t", tag, context,
                    step="buildah bud (agent image)")

    recipe = hashlib.sha256(worker_tar.name.encode() + AGENT_CONTAINERFILE.read_bytes()).hexdigest()[:16]
    return _built(cache, tag, cache / f"tapio-agent-{version}-{recipe}.tar", "tapio-agent-*.tar", make)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build Tapio's worker image with buildah (no Docker, no registry) and write it as a "
                    "docker-archive tar for `ctr -n k8s.io images import`. The tar's path is the last line "
                    "of stdout.")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder for buildah's storage, the base image and the tars "
                             "(default: $TAPIO_IMAGE_CACHE or ~/.cache/tapio/images)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each command")
    parser.add_argument("--agent", action="store_true",
                        help="also the node agent's image (docker/Containerfile.agent); its tar's path is then "
                             "the last line, the worker's the one before")
    parser.add_argument("--if-possible", action="store_true",
                        help="where this machine cannot build (not root, no apt-get), say so and exit 0: "
                             "`make test` then runs without the image, and its deploy test skips with the "
                             "real cluster's reason")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="image: %(message)s")
    if args.if_possible and (os.geteuid() != 0 or not shutil.which("apt-get")):
        print("image: not built: it needs root and apt-get (debootstrap, buildah)", file=sys.stderr)
        return 0
    try:
        tars = [build_image(args.cache)] + ([build_agent_image(args.cache)] if args.agent else [])
    except ImageBuildError as e:
        print(f"image: {e}", file=sys.stderr)
        return 1
    print("\n".join(map(str, tars)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
