"""Regenerate `collectors/containerd_api/` (containerd's gRPC API as Python modules) from Debian's sources.

Fed by Debian `golang-github-containerd-containerd-dev` (containerd's `.proto` files under
`/usr/share/gocode/src/github.com/containerd/containerd/api`) and `golang-github-gogo-protobuf-dev`
(`gogoproto/gogo.proto`, which they import), compiled with `grpcio-tools` (its protoc and its bundled
`google/protobuf/*.proto`). Feeds the vendored package the CRI collector (`collectors/cri.py`) imports, so
nothing is compiled at run time.

The protos import each other as `github.com/containerd/containerd/...`, which protoc's Python generator
would turn into a `github.com` package no one can import; so each file is copied into a staging tree as
`collectors/containerd_api/<path under api/>` (gogo.proto and fieldpath.proto beside them) with its import
lines rewritten the same way, and protoc is given the staged files relative to its `-I`. The proto packages
(`containerd.events`, `containerd.services.events.v1`...) are unchanged, so the gRPC method paths and the
events' `Any` type names are containerd's own.

Run from the repository root: `python tests/support/containerd_protos.py [--out DIR]` (default: the vendored
folder). `tests/collectors/test_cri.py` regenerates into a temp folder and checks the vendored files match.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GOCODE = Path("/usr/share/gocode/src")
CONTAINERD = GOCODE / "github.com/containerd/containerd"
GOGO = GOCODE / "github.com/gogo/protobuf/gogoproto/gogo.proto"
LICENCE = Path("/usr/share/common-licenses/Apache-2.0")
PACKAGE = "collectors/containerd_api"
PACKAGES = ("golang-github-containerd-containerd-dev", "golang-github-gogo-protobuf-dev")
#: the API files the collector uses (events it decodes, the Events and Containers services) and what they import
PROTOS = (
    "api/events/container.proto",
    "api/events/content.proto",
    "api/events/image.proto",
    "api/events/namespace.proto",
    "api/events/snapshot.proto",
    "api/events/task.proto",
    "api/services/events/v1/events.proto",
    "api/services/containers/v1/containers.proto",
    "api/types/mount.proto",
)
FIELDPATH = "protobuf/plugin/fieldpath.proto"
SERVICES = ("api/services/events/v1/events.proto", "api/services/containers/v1/containers.proto")
IMPORT = re.compile(r'^(import (?:weak |public )?")([^"]+)(";)', re.MULTILINE)


class MissingSource(RuntimeError):
    """A Debian package or grpcio-tools is not installed."""


def staged_name(upstream: str) -> str:
    """Where an imported file lives in the staging tree (and so which Python module it becomes)."""
    if upstream == "gogoproto/gogo.proto":
        return f"{PACKAGE}/gogoproto/gogo.proto"
    prefix = "github.com/containerd/containerd/"
    if upstream == prefix + FIELDPATH:
        return f"{PACKAGE}/plugin/fieldpath.proto"
    if upstream.startswith(prefix + "api/"):
        return f"{PACKAGE}/{upstream.removeprefix(prefix + 'api/')}"
    return upstream  # google/protobuf/*.proto: grpcio-tools brings them


def generate(out: Path) -> list[Path]:
    """Compile the protos into `out` (the package folder); return the files written."""
    missing = [str(p) for p in (CONTAINERD / "api", GOGO) if not p.exists()]
    if missing:
        raise MissingSource(f"{', '.join(missing)} missing: apt-get install {' '.join(PACKAGES)}")
    try:
        import grpc_tools
    except ImportError as e:
        raise MissingSource("grpcio-tools is missing: pip install -e '.[test]'") from e
    bundled = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory(prefix="containerd-protos-") as tmp:
        stage, gen = Path(tmp) / "stage", Path(tmp) / "gen"
        sources = {staged_name("gogoproto/gogo.proto"): GOGO,
                   staged_name(f"github.com/containerd/containerd/{FIELDPATH}"): CONTAINERD / FIELDPATH,
                   **{staged_name(f"github.com/containerd/containerd/{p}"): CONTAINERD / p for p in PROTOS}}
        for name, source in sources.items():
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = IMPORT.sub(lambda m: m.group(1) + staged_name(m.group(2)) + m.group(3), source.read_text())
            target.write_text(text)
        gen.mkdir()
        services = {staged_name(f"github.com/containerd/containerd/{p}") for p in SERVICES}
        for names, grpc in ((sorted(set(sources) - services), False), (sorted(services), True)):
            plugins = [f"--python_out={gen}", f"--pyi_out={gen}", *([f"--grpc_python_out={gen}"] if grpc else [])]
            argv = [sys.executable, "-m", "grpc_tools.protoc", f"-I{stage}", f"-I{bundled}", *plugins, *names]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"protoc failed ({' '.join(argv)}): {done.stderr}")
        built = gen / PACKAGE
        written = []
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(built.rglob("*.py*")):
            target = out / path.relative_to(built)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            written.append(target)
        folders = {parent for p in written for parent in p.parents if parent == out or out in parent.parents}
        for folder in sorted(folders):
            init = folder / "__init__.py"
            if not init.exists():
                init.write_text("")
                written.append(init)
    shutil.copyfile(LICENCE, out / "LICENSE")
    notice = [line.removeprefix("//").removeprefix(" ") for line in GOGO.read_text().splitlines()]
    (out / "gogoproto" / "LICENSE").write_text("\n".join(notice[:notice.index("syntax = \"proto2\";")]).strip() + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="containerd_protos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(PACKAGE), help="package folder to write (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        written = generate(args.out)
    except MissingSource as e:
        print(f"containerd_protos: {e}", file=sys.stderr)
        return 1
    print(f"containerd_protos: {len(written)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
