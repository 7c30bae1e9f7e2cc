"""Container images without a registry: an OCI-layout tar around Debian's static busybox.

Fed by Debian `busybox-static` (`/bin/busybox`, one static binary and its applet names); feeds
the cluster's containerd (`ctr images import`), so pods run `BUSYBOX_IMAGE` with
`imagePullPolicy: Never` and the pod sandboxes run `PAUSE_IMAGE` (containerd's default pause
image comes from a registry that is not reachable here).

Both images share one uncompressed layer: /bin/busybox and a symlink per applet in /bin. The
tar is deterministic (mtime 0, sorted), so the digests are the same on every run.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from realcluster.errors import MissingBinary, StartError

BUSYBOX = Path("/bin/busybox")
BUSYBOX_IMAGE = "tapio.local/busybox:1"
PAUSE_IMAGE = "tapio.local/pause:1"
CONTAINERD_NAMESPACE = "k8s.io"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
# The sandbox process: sleeps until SIGTERM (a plain `sleep` as PID 1 would ignore it).
PAUSE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]


def _applets() -> list[str]:
    if not BUSYBOX.is_file():
        raise MissingBinary(f"{BUSYBOX} is missing: apt-get install busybox-static")
    listed = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({name for name in listed.split() if name and "/" not in name and name != "busybox"})


def _layer() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for name in ("bin", "dev", "etc", "proc", "root", "sys", "usr", "usr/bin", "var"):
            add_dir(name)
        add_dir("tmp", 0o1777)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in _applets():
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            body = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def write_image_tar(path: Path) -> Path:
    """Write an OCI-layout tar holding BUSYBOX_IMAGE and PAUSE_IMAGE to `path`."""
    layer = _layer()
    blobs: dict[str, bytes] = {_digest(layer): layer}
    manifests = []
    for name, command in ((BUSYBOX_IMAGE, {"Cmd": ["/bin/sh"]}), (PAUSE_IMAGE, {"Entrypoint": PAUSE_COMMAND})):
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], **command},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
        config_blob = json.dumps(config, sort_keys=True).encode()
        blobs[_digest(config_blob)] = config_blob
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": _digest(config_blob), "size": len(config_blob)},
            "layers": [{"mediaType": LAYER, "digest": _digest(layer), "size": len(layer)}],
        }
        manifest_blob = json.dumps(manifest, sort_keys=True).encode()
        blobs[_digest(manifest_blob)] = manifest_blob
        manifests.append(
            {
                "mediaType": MANIFEST,
                "digest": _digest(manifest_blob),
                "size": len(manifest_blob),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
            }
        )
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps({"schemaVersion": 2, "manifests": manifests}, sort_keys=True).encode(),
        **{f"blobs/sha256/{digest.split(':', 1)[1]}": blob for digest, blob in blobs.items()},
    }
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(files[name]), 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return path


def import_images(containerd_socket: Path, tar: Path, *, timeout: float = 120.0) -> None:
    """`ctr images import` into the CRI namespace with the native snapshotter (unpacked at once)."""
    argv = [
        "ctr", "-a", str(containerd_socket), "-n", CONTAINERD_NAMESPACE,
        "images", "import", "--snapshotter", "native", str(tar),
    ]  # fmt: skip
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    except FileNotFoundError as e:
        raise MissingBinary("ctr is missing: apt-get install containerd") from e
    if result.returncode != 0:
        raise StartError(f"`{' '.join(argv)}` failed: {result.stderr.strip() or result.stdout.strip()}")
