"""Keys, certificates, tokens and kubeconfigs for one real test cluster (with the `openssl` CLI).

Fed by `node` (a private folder, the node name, the apiserver's URL); feeds the flags of
kube-apiserver (serving cert, service-account keys, token file), kube-controller-manager
(SA private key, root CA), and the kubeconfigs of every client: admin (system:masters),
the kubelet (system:node:<name> in system:nodes), controller-manager and scheduler (the users
the RBAC bootstrap roles are bound to).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from realcluster.errors import MissingBinary, StartError

SERVICE_IP = "10.96.0.1"  # first address of --service-cluster-ip-range=10.96.0.0/24


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]
    token: str


@dataclass(frozen=True)
class Pki:
    ca_crt: Path
    ca_key: Path
    apiserver_crt: Path
    apiserver_key: Path
    sa_key: Path
    sa_pub: Path
    tokens_csv: Path
    admin: Identity
    kubelet: Identity
    controller_manager: Identity
    scheduler: Identity


def _openssl(*args: str, cwd: Path) -> None:
    try:
        result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise MissingBinary("openssl is missing: apt-get install openssl") from e
    if result.returncode != 0:
        raise StartError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def make_pki(folder: Path, *, node_name: str) -> Pki:
    """A CA, the apiserver's serving cert (127.0.0.1 and the in-cluster names), SA keys, tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "3650", "-subj", "/CN=tapio-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
        "-subj", "/CN=kube-apiserver", cwd=folder,
    )  # fmt: skip
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
    alt = ",".join([f"IP:127.0.0.1,IP:{SERVICE_IP},DNS:localhost", *(f"DNS:{n}" for n in names)])
    (folder / "apiserver.ext").write_text(
        f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "365", "-out", "apiserver.crt", "-extfile", "apiserver.ext", cwd=folder,
    )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)
    for name in ("ca.key", "apiserver.key", "sa.key"):
        (folder / name).chmod(0o600)

    def identity(user: str, *groups: str) -> Identity:
        return Identity(user=user, groups=groups, token=secrets.token_hex(24))

    admin = identity("tapio-admin", "system:masters")
    kubelet = identity(f"system:node:{node_name}", "system:nodes")
    controller_manager = identity("system:kube-controller-manager")
    scheduler = identity("system:kube-scheduler")
    lines = []
    for n, who in enumerate((admin, kubelet, controller_manager, scheduler)):
        groups = f',"{",".join(who.groups)}"' if who.groups else ""
        lines.append(f"{who.token},{who.user},uid-{n}{groups}")
    tokens_csv = folder / "tokens.csv"
    tokens_csv.write_text("\n".join(lines) + "\n")
    tokens_csv.chmod(0o600)
    return Pki(
        ca_crt=folder / "ca.crt",
        ca_key=folder / "ca.key",
        apiserver_crt=folder / "apiserver.crt",
        apiserver_key=folder / "apiserver.key",
        sa_key=folder / "sa.key",
        sa_pub=folder / "sa.pub",
        tokens_csv=tokens_csv,
        admin=admin,
        kubelet=kubelet,
        controller_manager=controller_manager,
        scheduler=scheduler,
    )


def write_kubeconfig(path: Path, *, server: str, ca_crt: Path, who: Identity) -> Path:
    """A kubeconfig for one token user (JSON, which every YAML reader accepts)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tapio", "cluster": {"server": server, "certificate-authority": str(ca_crt)}}],
        "users": [{"name": who.user, "user": {"token": who.token}}],
        "contexts": [{"name": "tapio", "context": {"cluster": "tapio", "user": who.user}}],
        "current-context": "tapio",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path
