"""A pod spec -> the ConfigMaps, Secrets and PersistentVolumeClaims it references. Pure: no I/O.

Fed by: the enrich stage (`agents.enrich`: a Pod's spec, or a workload's pod template, decoded
straight from the payload into `PodSpec`) and the topology relations (`topology.relations`: a Pod
object's `spec`, converted with `msgspec.convert`). Feeds: the enrich stage's `K8sContext.refs`
(from which the match stage learns which ConfigMaps a pod uses: `configmap` scope keys) and the
topology's MOUNTS / USES_SECRET / CLAIMS edges, with their props (via, volume, key).

Every way a pod names one of those objects is read here, once, so the match stage and the graph
cannot disagree on what a pod uses: volumes (configMap, secret, persistentVolumeClaim, projected
sources, generic ephemeral volumes, whose claim is named `<pod>-<volume>`), env `valueFrom`
(configMapKeyRef, secretKeyRef) and `envFrom` of init, regular and ephemeral containers, and
imagePullSecrets. Each `PodRef` says how it was named; each caller keeps what it needs.
"""

from __future__ import annotations

from typing import Any

import msgspec


class KeyToPath(msgspec.Struct, rename="camel", gc=False):
    key: str = ""


class NamedSource(msgspec.Struct, rename="camel", gc=False):
    """A configMap volume, or a projected configMap / secret source: a name and the keys it picks."""

    name: str = ""
    items: list[KeyToPath] | None = None


class SecretVolume(msgspec.Struct, rename="camel", gc=False):
    secret_name: str = ""
    items: list[KeyToPath] | None = None


class ClaimSource(msgspec.Struct, rename="camel", gc=False):
    claim_name: str = ""


class Projection(msgspec.Struct, rename="camel", gc=False):
    config_map: NamedSource | None = None
    secret: NamedSource | None = None


class Projected(msgspec.Struct, rename="camel", gc=False):
    sources: list[Projection] | None = None


class Volume(msgspec.Struct, rename="camel", gc=False):
    name: str = ""
    config_map: NamedSource | None = None
    secret: SecretVolume | None = None
    persistent_volume_claim: ClaimSource | None = None
    projected: Projected | None = None
    ephemeral: Any = msgspec.UNSET  # a generic ephemeral volume: only its presence matters


class NameRef(msgspec.Struct, rename="camel", gc=False):
    name: str = ""


class KeyRef(msgspec.Struct, rename="camel", gc=False):
    name: str = ""
    key: str = ""


class ValueFrom(msgspec.Struct, rename="camel", gc=False):
    config_map_key_ref: KeyRef | None = None
    secret_key_ref: KeyRef | None = None


class EnvVar(msgspec.Struct, rename="camel", gc=False):
    value_from: ValueFrom | None = None


class EnvFrom(msgspec.Struct, rename="camel", gc=False):
    config_map_ref: NameRef | None = None
    secret_ref: NameRef | None = None


class Container(msgspec.Struct, rename="camel", gc=False):
    env: list[EnvVar] | None = None
    env_from: list[EnvFrom] | None = None


class PodSpec(msgspec.Struct, rename="camel", gc=False):
    """The fields of a pod spec that name other objects (everything else is ignored)."""

    node_name: str = ""
    volumes: list[Volume] | None = None
    init_containers: list[Container] | None = None
    containers: list[Container] | None = None
    ephemeral_containers: list[Container] | None = None
    image_pull_secrets: list[NameRef] | None = None


#: how a pod names an object (`PodRef.via`)
VOLUME, PROJECTED, EPHEMERAL = "volume", "projected", "ephemeral"
ENV, ENV_FROM, IMAGE_PULL_SECRET = "env", "envFrom", "imagePullSecret"
#: the container groups of a pod spec (`PodRef.containers`), in the order they are read
INIT_CONTAINERS, CONTAINERS, EPHEMERAL_CONTAINERS = "initContainers", "containers", "ephemeralContainers"


class PodRef(msgspec.Struct, frozen=True, gc=False):
    """One object a pod spec names: ConfigMap, Secret or PersistentVolumeClaim, in the pod's namespace."""

    kind: str
    name: str
    via: str  # VOLUME, PROJECTED, EPHEMERAL (the claim of an ephemeral volume), ENV, ENV_FROM, IMAGE_PULL_SECRET
    volume: str = ""  # the pod volume that names it
    key: str = ""  # the one key it reads ("" for all: a whole volume, envFrom)
    containers: str = ""  # ENV / ENV_FROM: the container group naming it


def _sources(kind: str, name: str, items: list[KeyToPath] | None, via: str, volume: str) -> list[PodRef]:
    """A volume source: one reference per key it lists (or one for all its keys)."""
    if not name:
        return []
    keys = [item.key for item in items or []] or [""]
    return [PodRef(kind, name, via, volume, key) for key in keys]


def pod_refs(spec: PodSpec | None, *, pod_name: str = "") -> list[PodRef]:
    """Every ConfigMap, Secret and PersistentVolumeClaim the spec names, in spec order (volumes,
    then containers, then imagePullSecrets); repeats are kept (two volumes, two edges).

    `pod_name` names the claims of generic ephemeral volumes (`<pod>-<volume>`); a pod template
    has none yet, so without it they are left out.
    """
    if spec is None:
        return []
    refs: list[PodRef] = []
    for vol in spec.volumes or []:
        if vol.config_map:
            refs += _sources("ConfigMap", vol.config_map.name, vol.config_map.items, VOLUME, vol.name)
        if vol.secret:
            refs += _sources("Secret", vol.secret.secret_name, vol.secret.items, VOLUME, vol.name)
        for src in (vol.projected.sources or []) if vol.projected else []:
            if src.config_map:
                refs += _sources("ConfigMap", src.config_map.name, src.config_map.items, PROJECTED, vol.name)
            if src.secret:
                refs += _sources("Secret", src.secret.name, src.secret.items, PROJECTED, vol.name)
        if vol.persistent_volume_claim and vol.persistent_volume_claim.claim_name:
            refs.append(PodRef("PersistentVolumeClaim", vol.persistent_volume_claim.claim_name, VOLUME, vol.name))
        if vol.ephemeral is not msgspec.UNSET and pod_name and vol.name:
            refs.append(PodRef("PersistentVolumeClaim", f"{pod_name}-{vol.name}", EPHEMERAL, vol.name))
    for group, containers in ((INIT_CONTAINERS, spec.init_containers), (CONTAINERS, spec.containers),
                              (EPHEMERAL_CONTAINERS, spec.ephemeral_containers)):
        for container in containers or []:
            for env in container.env or []:
                source = env.value_from
                if source and source.config_map_key_ref and source.config_map_key_ref.name:
                    ref = source.config_map_key_ref
                    refs.append(PodRef("ConfigMap", ref.name, ENV, key=ref.key, containers=group))
                if source and source.secret_key_ref and source.secret_key_ref.name:
                    ref = source.secret_key_ref
                    refs.append(PodRef("Secret", ref.name, ENV, key=ref.key, containers=group))
            for env_from in container.env_from or []:
                if env_from.config_map_ref and env_from.config_map_ref.name:
                    refs.append(PodRef("ConfigMap", env_from.config_map_ref.name, ENV_FROM, containers=group))
                if env_from.secret_ref and env_from.secret_ref.name:
                    refs.append(PodRef("Secret", env_from.secret_ref.name, ENV_FROM, containers=group))
    for pull in spec.image_pull_secrets or []:
        if pull.name:
            refs.append(PodRef("Secret", pull.name, IMAGE_PULL_SECRET))
    return refs
