"""images family."""
from build import *  # noqa
from scen import *  # noqa
from k8sfmt import kubectl_get_events, kubectl_json_list, iso

F = "images"


def simple_pull_case(*, case, seed, now, k8s, ns, app, h, sfx, image, err, created, attempts, node, nip, pip,
                     formats, rc, readme_inc, readme_ok, title_inc, title_ok, ctr_kw=None, emit_inc=None, emit_ok=None,
                     pull_secrets=None, healthy_pull_secrets=None, healthy_image=None, healthy_events=None, runtime="containerd", post=None, skew=None):
    pname = f"{app}-{h}-{sfx}"
    for tw in (False, True):
        ctx = Ctx(seed + tw, now, k8s=k8s, runtime=runtime)
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        owner = ("apps/v1", "ReplicaSet", f"{app}-{h}", ctx.rnd.uid())
        lab = {"app": app, "pod-template-hash": h}
        c = ctr(app if len(app) < 16 else app.split("-")[0], healthy_image if (tw and healthy_image) else image, **(ctr_kw or {}))
        if skew and not tw:
            ctx.render_now = add(ctx.now, -skew)
        if not tw:
            p = pull_failing(ctx, ns=ns, pod_name=pname, container=c, node=node, node_ip=nip, pod_ip=pip,
                             created=created, err=err, attempts=attempts, owner=owner, labels=lab,
                             pull_secrets=pull_secrets)
            kw = emit_inc or {"describe": True}
        else:
            hps = healthy_pull_secrets or pull_secrets
            extra = {"extra_spec": {"imagePullSecrets": [{"name": s_} for s_ in hps]}} if hps else {}
            if healthy_events:
                p = healthy_events(ctx, c, owner, lab, pname)
            else:
                p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node=node, node_ip=nip, pod_ip=pip,
                            created=add(created, 3600 * 26), owner=owner, labels=lab, pod_kwargs=extra)
            kw = emit_ok or emit_inc or {"describe": True}
        kw = dict(kw)
        if kw.get("describe") is True:
            kw["describe"] = p
        emit(d, ctx, **kw)
        if post:
            post(d, ctx, p, tw)
        if not tw:
            r = dict(rc)
            r["object"] = f"Pod/{ns}/{pname}"
            case_labels(d, F, formats, True, iso(ctx.render_now) if ctx.render_now else now, r)
            readme(d, title_inc, readme_inc)
        else:
            case_labels(d, F, formats, False, now)
            readme(d, title_ok, readme_ok)


def image_auth():
    img = "ghcr.io/northwind-labs/quote-engine:2.3.0"
    err = ('failed to pull and unpack image "ghcr.io/northwind-labs/quote-engine:2.3.0": failed to resolve reference '
           '"ghcr.io/northwind-labs/quote-engine:2.3.0": failed to authorize: failed to fetch anonymous token: unexpected status '
           'from GET request to https://ghcr.io/token?scope=repository%3Anorthwind-labs%2Fquote-engine%3Apull&service=ghcr.io: 401 Unauthorized')
    simple_pull_case(case="image-auth", seed=501, now="2026-11-24T12:31:52Z", k8s="1.31", ns="pricing",
                     app="quote-engine", h="6b8f7d5c9c", sfx="jz8rk", image=img, err=err,
                     created="2026-11-24T12:09:14Z", attempts=9, node="pricing-np-0-xk4f2", nip="10.2.0.41",
                     pip="10.2.65.18", formats=["describe-new"],
                     ctr_kw={"ports": [(8000, "http")], "resources": res("200m", "256Mi", None, "512Mi")},
                     rc={"cause": "image-auth", "mentions": ["ghcr.io/northwind-labs/quote-engine", "401 Unauthorized"]},
                     title_inc="quote-engine ImagePullBackOff: 401 from ghcr.io (no pull credentials)",
                     readme_inc="""
File: `describe-pod.txt` (kubectl 1.31, containerd 1.7).

The repository `ghcr.io/northwind-labs/quote-engine` was switched to private. The pod template has
no `imagePullSecrets` and the `default` ServiceAccount none either, so containerd asks ghcr.io for
an anonymous token and gets `401 Unauthorized`. The kubelet retries with back-off:
`ErrImagePull`, then `ImagePullBackOff`. Capture 12:31:52 (implied).
""",
                     title_ok="quote-engine pulls with its ghcr pull secret (twin)",
                     readme_ok="""
File: `describe-pod.txt`. The template references the `ghcr-pull` secret; the image was pulled,
the pod has run for a day. No incident.
""", pull_secrets=None, healthy_pull_secrets=["ghcr-pull"])


def registry_dns():
    img = "registry.ci.oakhollow.internal/platform/ledger-sync:2026.11.2"
    err = ('failed to pull and unpack image "registry.ci.oakhollow.internal/platform/ledger-sync:2026.11.2": failed to resolve '
           'reference "registry.ci.oakhollow.internal/platform/ledger-sync:2026.11.2": failed to do request: Head '
           '"https://registry.ci.oakhollow.internal/v2/platform/ledger-sync/manifests/2026.11.2": dial tcp: lookup '
           'registry.ci.oakhollow.internal on 10.0.0.2:53: no such host')
    err = "rpc error: code = Unknown desc = " + err
    simple_pull_case(case="registry-dns", seed=511, now="2026-11-13T04:17:26Z", k8s="1.29", ns="finance",
                     app="ledger-sync", h="78cd94b6f5", sfx="w2fq9", image=img, err=err,
                     created="2026-11-13T03:52:08Z", attempts=10, node="ip-10-0-41-87.ec2.internal", nip="10.0.41.87",
                     pip="10.0.44.153", formats=["describe-new"],
                     ctr_kw={"resources": res("100m", "128Mi", None, "256Mi")},
                     rc={"cause": "registry-dns", "mentions": ["registry.ci.oakhollow.internal", "no such host"]},
                     title_inc="ledger-sync ErrImagePull: the registry host does not resolve on the node",
                     readme_inc="""
File: `describe-pod.txt` (kubectl 1.29, EKS-style node, containerd).

The internal registry moved behind a new private DNS zone that is associated with the CI VPC only.
The worker nodes resolve through the VPC resolver (10.0.0.2), which answers NXDOMAIN:
`dial tcp: lookup registry.ci.oakhollow.internal on 10.0.0.2:53: no such host`. The image can never
be pulled. Capture 04:17:26 (implied).
""",
                     title_ok="ledger-sync pulled and running (twin)",
                     readme_ok="""
File: `describe-pod.txt`. The zone is associated with the cluster VPC; the image pulled, the pod runs.
No incident.
""")


def registry_tls():
    img = "harbor.lab.quarrytech.local:8443/edge/camera-gw:4.1.0"
    err = ('failed to pull and unpack image "harbor.lab.quarrytech.local:8443/edge/camera-gw:4.1.0": failed to resolve '
           'reference "harbor.lab.quarrytech.local:8443/edge/camera-gw:4.1.0": failed to do request: Head '
           '"https://harbor.lab.quarrytech.local:8443/v2/edge/camera-gw/manifests/4.1.0": tls: failed to verify certificate: '
           'x509: certificate signed by unknown authority')

    def post(d, ctx, p, tw):
        pass

    simple_pull_case(case="registry-tls", seed=521, now="2026-10-30T15:02:48Z", k8s="1.30", ns="video",
                     app="camera-gw", h="5f96d8b7c4", sfx="mlx2c", image=img, err=err,
                     created="2026-10-30T14:41:33Z", attempts=8, node="edge-nuc-04", nip="192.168.88.54",
                     pip="10.42.4.31", formats=["events-kubectl"],
                     ctr_kw={"ports": [(554, "rtsp"), (8080, "http")], "resources": res("250m", "128Mi", None, "256Mi")},
                     emit_inc={"kubectl_events_tbl": True}, emit_ok={"kubectl_events_tbl": True},
                     rc={"cause": "registry-tls", "mentions": ["harbor.lab.quarrytech.local:8443", "x509"]},
                     title_inc="camera-gw cannot pull: x509 certificate signed by unknown authority",
                     readme_inc="""
File: `events.txt` (`kubectl events -n video`), nothing else.

The lab Harbor registry serves a certificate from the company's internal CA. The new edge node
`edge-nuc-04` was provisioned without that CA in containerd's trust store
(`/etc/containerd/certs.d/harbor.lab.quarrytech.local:8443/ca.crt`), so every pull fails with
`tls: failed to verify certificate: x509: certificate signed by unknown authority`.
Capture 15:02:48 (implied).
""",
                     title_ok="camera-gw pulled on a node that trusts the lab CA (twin)",
                     readme_ok="""
File: `events.txt`. The pod was created 20 minutes before the capture; the pull succeeded and the
container started. No incident.
""", healthy_events=lambda ctx, c, owner, lab, pname: healthy(
                         ctx, ns="video", pod_name=pname, containers=[c], node="edge-nuc-02", node_ip="192.168.88.52",
                         pod_ip="10.42.2.40", created="2026-10-30T14:41:33Z", owner=owner, labels=lab,
                         with_events=True, pull_secs=3.1))


def rate_limit():
    img = "docker.io/library/redis:7.4.1-alpine"
    digest = "sha256:c1e88455c85225310bbea54816e9c3f4b5295815e6dbf80c34d40afc6df28275"
    err = ('rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/redis:7.4.1-alpine": failed to '
           f'copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/library/redis/manifests/{digest}: '
           '429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit. You may increase the '
           'limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit')

    def hev(ctx, c, owner, lab, pname):
        # near miss: one 429 on the first attempt, the retry 10 s later succeeded
        p = healthy(ctx, ns="sessions", pod_name=pname, containers=[c], node="pool-general-9b2xk", node_ip="10.100.0.9",
                    pod_ip="10.244.3.77", created="2026-11-17T09:40:05Z", owner=owner, labels=lab, with_events=True,
                    pull_secs=2.2, started_at="2026-11-17T09:40:21Z")
        fp = "spec.containers{redis}"
        for e in ctx.ev.items:
            if e["reason"] == "Pulling":
                e["count"] = 2
                e["lastTimestamp"] = "2026-11-17T09:40:17Z"
            if e["reason"] == "Pulled":
                e["firstTimestamp"] = e["lastTimestamp"] = "2026-11-17T09:40:20Z"
        ctx.ev.add(p, "Failed", f'Failed to pull image "{img}": {err}', type_="Warning", host="pool-general-9b2xk",
                   first="2026-11-17T09:40:07Z", field_path=fp)
        ctx.ev.add(p, "Failed", "Error: ErrImagePull", type_="Warning", host="pool-general-9b2xk", first="2026-11-17T09:40:07Z", field_path=fp)
        ctx.ev.add(p, "BackOff", f'Back-off pulling image "{img}"', host="pool-general-9b2xk", first="2026-11-17T09:40:08Z", field_path=fp)
        ctx.ev.add(p, "Failed", "Error: ImagePullBackOff", type_="Warning", host="pool-general-9b2xk", first="2026-11-17T09:40:08Z", field_path=fp)
        return p

    simple_pull_case(case="registry-rate-limit", seed=531, now="2026-11-17T10:02:14Z", k8s="1.28", ns="sessions",
                     app="redis", h="64c9b8d7f5", sfx="qtn5v", image=img, err=err,
                     created="2026-11-17T09:31:55Z", attempts=9, node="pool-general-9b2xk", nip="10.100.0.9",
                     pip="10.244.3.77", formats=["describe-new", "events-get"],
                     ctr_kw={"ports": [(6379, "redis")], "resources": res("100m", "128Mi", None, "256Mi"),
                             "args": ["--save", "", "--appendonly", "no"]},
                     emit_inc={"describe": True, "get_events": True}, emit_ok={"describe": True, "get_events": True},
                     rc={"cause": "registry-rate-limit", "mentions": ["toomanyrequests", "docker.io"]},
                     title_inc="redis ImagePullBackOff: Docker Hub pull rate limit (429 toomanyrequests)",
                     readme_inc="""
Files: `describe-pod.txt` (kubectl 1.28) and `events.txt` (`kubectl get events -n sessions`).

The cluster's nodes leave through one NAT address and pull anonymously from Docker Hub; a CI
burst used up the anonymous quota. Every pull of `redis:7.4.1-alpine` gets
`429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit`.
The capture was made from a laptop whose clock ran 95 s behind the API server: events newer
than that show `<invalid>` ages in both files. `capture_time` is the laptop's clock (10:00:39),
which is what the ages are relative to; the cluster's time was 10:02:14.
""", skew=95,
                     title_ok="redis: one 429 on the first pull, the retry succeeded (twin)",
                     readme_ok="""
Files: `describe-pod.txt` and `events.txt`. The first pull at 09:40:07 hit the rate limit once;
the kubelet retried ten seconds later and the pull succeeded; the pod runs. A transient, not an incident.
""", healthy_events=hev)


def image_not_found():
    """CRI-O cluster, rollout stuck on a tag that was never pushed; Deployment + ReplicaSets + pods JSON."""
    case, now = "image-not-found", "2026-11-06T20:44:31Z"
    new_tag, old_tag = "v2.14.0", "v2.13.2"
    for tw in (False, True):
        ctx = Ctx(541 + tw, now, k8s="1.30", runtime="cri-o")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, app = "logistics", "route-planner"
        old_h, new_h = "f6d79c85b", "5c4b8f69d7"
        mk = lambda tag, h: ctr("planner", f"quay.io/tidewater/route-planner:{tag}", ports=[(8080, "http")],
                                env=[env("GRAPH_CACHE", "/cache")], resources=res("500m", "1Gi", None, "1536Mi"),
                                readiness=http_probe("/ready", 8080, period=5))
        pods = []
        dep_uid = ctx.rnd.uid()
        old_rs_uid, new_rs_uid = ctx.rnd.uid(), ctx.rnd.uid()
        nodes = [("crc-worker-a", "10.5.0.11"), ("crc-worker-b", "10.5.0.12"), ("crc-worker-c", "10.5.0.13")]
        if not tw:
            for i, sfx in enumerate(["7h2xk", "q9wbn", "zc4lt"]):
                c = mk(old_tag, old_h)
                pods.append(healthy(ctx, ns=ns, pod_name=f"{app}-{old_h}-{sfx}", containers=[c], node=nodes[i][0],
                                    node_ip=nodes[i][1], pod_ip=f"10.128.{2 + i}.{40 + i * 9}", created="2026-11-02T08:15:40Z",
                                    owner=("apps/v1", "ReplicaSet", f"{app}-{old_h}", old_rs_uid),
                                    labels={"app": app, "pod-template-hash": old_h}))
            err = ("rpc error: code = Unknown desc = reading manifest v2.14.0 in quay.io/tidewater/route-planner: "
                   "manifest unknown")
            c = mk(new_tag, new_h)
            bad = pull_failing(ctx, ns=ns, pod_name=f"{app}-{new_h}-m8r2d", container=c, node="crc-worker-b",
                               node_ip="10.5.0.12", pod_ip="10.128.3.66", created="2026-11-06T20:02:13Z", err=err,
                               attempts=11, owner=("apps/v1", "ReplicaSet", f"{app}-{new_h}", new_rs_uid),
                               labels={"app": app, "pod-template-hash": new_h})
            pods.append(bad)
            dep = deployment(ctx, ns, app, bad, 3, created="2025-06-11T10:00:00Z", revision=7, ready=3, updated=1, available=3,
                             status_replicas=4, unavailable=1,
                             conditions=[dep_cond("Available", "True", "2026-11-02T08:16:31Z", "2026-11-02T08:16:31Z",
                                                  "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                         dep_cond("Progressing", "False", "2026-11-06T20:12:14Z", "2026-11-06T20:12:14Z",
                                                  "ProgressDeadlineExceeded", f'ReplicaSet "{app}-{new_h}" has timed out progressing.')])
            dep["metadata"]["uid"] = dep_uid
            rs_new = replicaset(ctx, ns, f"{app}-{new_h}", dep, bad, 1, created="2026-11-06T20:02:13Z", revision=7, ready=0, available=0)
            rs_new["metadata"]["uid"] = new_rs_uid
            rs_old = replicaset(ctx, ns, f"{app}-{old_h}", dep, pods[0], 3, created="2026-11-02T08:15:40Z", revision=6, ready=3, available=3)
            rs_old["metadata"]["uid"] = old_rs_uid
            depo = ("Deployment", ns, app, dep_uid, "apps/v1")
            ctx.ev.add(depo, "ScalingReplicaSet", f"Scaled up replica set {app}-{new_h} from 0 to 1",
                       component="deployment-controller", first="2026-11-06T20:02:13Z")
            ctx.ev.add(("ReplicaSet", ns, f"{app}-{new_h}", new_rs_uid, "apps/v1"), "SuccessfulCreate",
                       f"Created pod: {bad['metadata']['name']}", component="replicaset-controller", first="2026-11-06T20:02:13Z")
            items = [dep, rs_old, rs_new] + pods
        else:
            for i, sfx in enumerate(["b7kqz", "x2mvd", "h4nrw"]):
                c = mk("2.14.0", new_h)
                pods.append(healthy(ctx, ns=ns, pod_name=f"{app}-{new_h}-{sfx}", containers=[c], node=nodes[i][0],
                                    node_ip=nodes[i][1], pod_ip=f"10.128.{2 + i}.{71 + i * 5}", created="2026-11-06T20:21:02Z",
                                    owner=("apps/v1", "ReplicaSet", f"{app}-{new_h}", new_rs_uid),
                                    labels={"app": app, "pod-template-hash": new_h}, with_events=True, pull_secs=4.4))
            dep = deployment(ctx, ns, app, pods[0], 3, created="2025-06-11T10:00:00Z", revision=8, ready=3, updated=3, available=3,
                             conditions=[dep_cond("Available", "True", "2026-11-06T20:21:40Z", "2026-11-02T08:16:31Z",
                                                  "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                         dep_cond("Progressing", "True", "2026-11-06T20:21:44Z", "2026-11-06T20:21:02Z",
                                                  "NewReplicaSetAvailable", f'ReplicaSet "{app}-{new_h}" has successfully progressed.')])
            rs_new = replicaset(ctx, ns, f"{app}-{new_h}", dep, pods[0], 3, created="2026-11-06T20:21:02Z", revision=8, ready=3, available=3)
            rs_old = replicaset(ctx, ns, f"{app}-{old_h}", dep, pods[0], 0, created="2026-11-02T08:15:40Z", revision=6, ready=0, available=0)
            rs_old["spec"]["template"]["spec"]["containers"][0]["image"] = f"quay.io/tidewater/route-planner:{old_tag}"
            rs_old["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] = old_h
            rs_old["metadata"]["labels"]["pod-template-hash"] = old_h
            rs_old["spec"]["selector"]["matchLabels"]["pod-template-hash"] = old_h
            depo = ("Deployment", ns, app, dep["metadata"]["uid"], "apps/v1")
            for k, (frm, to) in enumerate([(0, 1), (3, 2), (1, 2), (2, 1), (2, 3), (1, 0)]):
                rsname = f"{app}-{new_h}" if k % 2 == 0 else f"{app}-{old_h}"
                verb = "up" if k % 2 == 0 else "down"
                ctx.ev.add(depo, "ScalingReplicaSet", f"Scaled {verb} replica set {rsname} from {frm} to {to}",
                           component="deployment-controller", first=add("2026-11-06T20:21:02Z", k * 9))
            items = [dep, rs_old, rs_new] + pods
        write(d, "deploy-rs-pods.json", kubectl_json_list(items))
        write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now))
        if not tw:
            case_labels(d, F, ["json-list", "events-get"], True, now, {
                "object": f"Pod/{ns}/{app}-{new_h}-m8r2d", "cause": "image-not-found",
                "mentions": ["v2.14.0", "manifest unknown"], "caused_by": f"ReplicaSet/{ns}/{app}-{new_h}"})
            readme(d, "route-planner rollout stuck: tag v2.14.0 does not exist (manifest unknown)", """
Files: `deploy-rs-pods.json` (`kubectl get deploy,rs,pods -n logistics -o json`) and `events.txt`
(`kubectl get events -n logistics`). CRI-O runtime.

Revision 7 of the Deployment sets the image tag `v2.14.0`; the release pipeline pushes tags without
the `v` (`2.14.0`). The new ReplicaSet's pod cannot pull: `reading manifest v2.14.0 in
quay.io/tidewater/route-planner: manifest unknown`. The rollout stops after one surge pod, the old
ReplicaSet keeps serving with 3 replicas, and after 600 s the Deployment reports
`ProgressDeadlineExceeded`. Capture 20:44:31.
""")
        else:
            case_labels(d, F, ["json-list", "events-get"], False, now)
            readme(d, "route-planner rolled out 2.14.0 (twin)", """
Files: `deploy-rs-pods.json` and `events.txt`. Revision 8 uses the existing tag `2.14.0`; the
rollout completed (`NewReplicaSetAvailable`), the old ReplicaSet is scaled to 0. No incident.
""")


CASES = [image_auth, registry_dns, registry_tls, rate_limit, image_not_found]
