"""volumes family."""
from build import *  # noqa
from scen import *  # noqa
from k8sfmt import kubectl_get_events, kubectl_json_list, kubectl_yaml_list

F = "volumes"


def missing_configmap():
    case, now = "missing-configmap", "2026-11-22T19:08:45Z"
    for tw in (False, True):
        ctx = Ctx(601 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h, sfx = "847b9f6d5c", "t5zrq"
        pname = f"storefront-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"storefront-{h}", ctx.rnd.uid())
        lab = {"app": "storefront", "tier": "web", "pod-template-hash": h}
        c = ctr("nginx", "docker.io/library/nginx:1.27.3-alpine", ports=[(8080, "http")], resources=res("100m", "64Mi", None, "128Mi"),
                mounts=[{"name": "nginx-conf", "mountPath": "/etc/nginx/conf.d", "readOnly": True},
                        {"name": "static", "mountPath": "/usr/share/nginx/html"}],
                readiness=http_probe("/healthz", 8080, period=5))
        vols = [{"name": "nginx-conf", "configMap": {"name": "storefront-nginx", "defaultMode": 420}},
                {"name": "static", "emptyDir": {}}]
        node_, nip = "shop-np-2-t8m3", "10.12.1.23"
        if not tw:
            created = "2026-11-22T18:49:13Z"
            p = container_creating(ctx, ns="shop", pod_name=pname, containers=[c], node=node_, node_ip=nip,
                                   created=created, owner=owner, labels=lab, volumes=vols)
            ctx.ev.add(p, "FailedMount", 'MountVolume.SetUp failed for volume "nginx-conf" : configmap "storefront-nginx" not found',
                       type_="Warning", host=node_, first=add(created, 1), last=add(now, -64), count=17)
        else:
            p = healthy(ctx, ns="shop", pod_name=pname, containers=[c], node=node_, node_ip=nip, pod_ip="10.12.66.31",
                        created="2026-11-21T07:30:02Z", owner=owner, labels=lab, volumes=vols)
        emit(d, ctx, describe=p)
        if not tw:
            case_labels(d, F, ["describe-new"], True, now, {
                "object": f"Pod/shop/{pname}", "cause": "missing-configmap", "mentions": ["storefront-nginx"],
                "caused_by": "ConfigMap/shop/storefront-nginx"})
            readme(d, "storefront stuck in ContainerCreating: ConfigMap storefront-nginx not found", """
File: `describe-pod.txt` (kubectl 1.31).

The Helm chart was refactored and now renders the nginx configuration into a ConfigMap called
`storefront-nginx-conf`, while the Deployment still mounts `storefront-nginx`. The kubelet cannot set
up the volume (`MountVolume.SetUp failed for volume "nginx-conf" : configmap "storefront-nginx" not
found`) and never starts the container. Capture 19:08:45 (implied).
""")
        else:
            case_labels(d, F, ["describe-new"], False, now)
            readme(d, "storefront running with its ConfigMap (twin)", """
File: `describe-pod.txt`. The ConfigMap exists; the pod has run for a day. No incident.
""")


def missing_secret_volume():
    case, now = "missing-secret", "2026-11-15T07:36:20Z"
    for tw in (False, True):
        ctx = Ctx(611 + tw, now, k8s="1.32")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h = "5d6c8f9b47"
        owner = ("apps/v1", "ReplicaSet", f"auth-gateway-{h}", ctx.rnd.uid())
        lab = {"app.kubernetes.io/name": "auth-gateway", "pod-template-hash": h}
        vols = [{"name": "jwt-keys", "secret": {"secretName": "auth-jwt-signing", "defaultMode": 256}}]
        pods = []
        nodes = [("ip-10-60-11-5.eu-central-1.compute.internal", "10.60.11.5"), ("ip-10-60-12-140.eu-central-1.compute.internal", "10.60.12.140")]
        for i, sfx in enumerate(["h7nx4", "c2w9p"]):
            pname = f"auth-gateway-{h}-{sfx}"
            c = ctr("gateway", "public.ecr.aws/lumenfold/auth-gateway:1.22.0", ports=[(8443, "https")],
                    env=[env("JWT_KEY_DIR", "/var/run/jwt")], resources=res("100m", "128Mi", None, "256Mi"),
                    mounts=[{"name": "jwt-keys", "mountPath": "/var/run/jwt", "readOnly": True}])
            if not tw:
                created = add("2026-11-15T07:10:03Z", i * 0.03)
                p = container_creating(ctx, ns="identity", pod_name=pname, containers=[c], node=nodes[i][0],
                                       node_ip=nodes[i][1], created=created, owner=owner, labels=lab, volumes=vols)
                ctx.ev.add(p, "FailedMount", 'MountVolume.SetUp failed for volume "jwt-keys" : secret "auth-jwt-signing" not found',
                           type_="Warning", host=nodes[i][0], first=add(created, 1), last=add(now, -100 - i * 31), count=20)
            else:
                p = healthy(ctx, ns="identity", pod_name=pname, containers=[c], node=nodes[i][0], node_ip=nodes[i][1],
                            pod_ip=f"10.60.{11 + i}.{77 + i * 13}", created="2026-11-12T16:03:55Z", owner=owner, labels=lab, volumes=vols)
            pods.append(p)
        if not tw:
            ctx.ev.add(("ExternalSecret", "identity", "auth-jwt-signing", ctx.rnd.uid(), "external-secrets.io/v1beta1"),
                       "UpdateFailed", 'error retrieving secret at .data[0], key: prod/identity/jwt-signing, err: Secret does not exist',
                       type_="Warning", component="external-secrets", first="2026-11-15T07:09:41Z", last=add(now, -200), count=14)
        emit(d, ctx, json_pods=pods, kubectl_events_tbl=True)
        if tw:
            write(d, "events.txt", "No events found in identity namespace.\n")
        if not tw:
            case_labels(d, F, ["json-list", "events-kubectl"], True, now, {
                "object": f"Pod/identity/{pods[0]['metadata']['name']}", "cause": "missing-secret",
                "mentions": ["auth-jwt-signing"], "caused_by": "Secret/identity/auth-jwt-signing"})
            readme(d, "auth-gateway pods stuck in ContainerCreating: Secret auth-jwt-signing does not exist", """
Files: `pods.json` (`kubectl get pods -n identity -o json`) and `events.txt` (`kubectl events -n identity`).

The namespace was recreated during a migration; the ExternalSecret that should materialise
`auth-jwt-signing` points at a key path that does not exist in the secrets manager, so the Secret was
never created. Both replicas wait in ContainerCreating with `MountVolume.SetUp failed for volume
"jwt-keys" : secret "auth-jwt-signing" not found`. Capture 07:36:20.
""")
        else:
            case_labels(d, F, ["json-list", "events-kubectl"], False, now)
            readme(d, "auth-gateway running with its signing keys (twin)", """
Files: `pods.json` and `events.txt` (`No events found`). The Secret exists; both pods run. No incident.
""")


def missing_secret_env():
    case, now = "missing-secret-env", "2026-11-28T11:45:57Z"
    for tw in (False, True):
        ctx = Ctx(621 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h, sfx = "9f4d7b6c58", "rk2vb"
        pname = f"notifier-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"notifier-{h}", ctx.rnd.uid())
        lab = {"app": "notifier", "pod-template-hash": h}
        c = ctr("notifier", "registry.gitlab.com/fennick/notifier:3.1.4", ports=[(8080, "http")],
                env=[env("SMTP_HOST", "smtp-relay.mail.svc"), env("SMTP_USER", secret=("smtp-relay-credentials", "username")),
                     env("SMTP_PASSWORD", secret=("smtp-relay-credentials", "password"))],
                resources=res("50m", "64Mi", None, "128Mi"))
        node_, nip = "worker-3", "192.168.122.13"
        if not tw:
            created = "2026-11-28T11:28:40Z"
            p = container_creating(ctx, ns="comms", pod_name=pname, containers=[c], node=node_, node_ip=nip,
                                   created=created, owner=owner, labels=lab, waiting_reason="CreateContainerConfigError",
                                   waiting_msg='secret "smtp-relay-credentials" not found', pod_ip="10.244.3.58",
                                   sandbox_ready=True)
            fp = "spec.containers{notifier}"
            ctx.ev.add(p, "Pulled", ctx.m_present(c["image"]), host=node_, first=add(created, 2), last=add(now, -9), count=80, field_path=fp)
            ctx.ev.add(p, "Failed", 'Error: secret "smtp-relay-credentials" not found', type_="Warning", host=node_,
                       first=add(created, 2), last=add(now, -9), count=80, field_path=fp)
        else:
            p = healthy(ctx, ns="comms", pod_name=pname, containers=[c], node=node_, node_ip=nip, pod_ip="10.244.3.58",
                        created="2026-11-27T09:12:30Z", owner=owner, labels=lab)
        emit(d, ctx, describe=p)
        if not tw:
            case_labels(d, F, ["describe-new"], True, now, {
                "object": f"Pod/comms/{pname}", "cause": "missing-secret", "mentions": ["smtp-relay-credentials"],
                "caused_by": "Secret/comms/smtp-relay-credentials"})
            readme(d, "notifier CreateContainerConfigError: Secret smtp-relay-credentials not found", """
File: `describe-pod.txt` (kubectl 1.30).

Two env vars read keys from the Secret `smtp-relay-credentials`, which was deleted during a
credentials rotation (the new one is called `smtp-relay-creds-2026q4`). The kubelet cannot build
the container config: `Error: secret "smtp-relay-credentials" not found`, state
`CreateContainerConfigError`. Capture 11:45:57 (implied).
""")
        else:
            case_labels(d, F, ["describe-new"], False, now)
            readme(d, "notifier running (twin)", """
File: `describe-pod.txt`. The Secret exists; running since yesterday. No incident.
""")


def missing_serviceaccount():
    case, now = "missing-serviceaccount", "2026-11-10T14:28:03Z"
    for tw in (False, True):
        ctx = Ctx(631 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, app, h = "billing", "invoice-runner", "7c9d5b8f46"
        c = ctr("runner", "us-central1-docker.pkg.dev/pinecrest-prod/billing/invoice-runner:2.0.3",
                env=[env("QUEUE", "invoices-pending")], resources=res("200m", "256Mi", None, "512Mi"))
        tmpl_pod = pod(ctx.rnd, ns, "x", [c], created="2026-11-10T13:58:31Z", labels={"app": app, "pod-template-hash": h},
                       sa="invoice-runner", api_access=False)
        if not tw:
            dep = deployment(ctx, ns, app, tmpl_pod, 2, created="2026-11-10T13:58:31Z", revision=1, ready=0, updated=0,
                             available=0, status_replicas=0, unavailable=2,
                             conditions=[dep_cond("Available", "False", "2026-11-10T13:58:31Z", "2026-11-10T13:58:31Z",
                                                  "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                                         dep_cond("ReplicaFailure", "True", "2026-11-10T13:58:31Z", "2026-11-10T13:58:31Z",
                                                  "FailedCreate", f'pods "{app}-{h}-" is forbidden: error looking up service account {ns}/{app}: serviceaccount "{app}" not found'),
                                         dep_cond("Progressing", "False", "2026-11-10T14:08:32Z", "2026-11-10T14:08:32Z",
                                                  "ProgressDeadlineExceeded", f'ReplicaSet "{app}-{h}" has timed out progressing.')])
            rs = replicaset(ctx, ns, f"{app}-{h}", dep, tmpl_pod, 2, created="2026-11-10T13:58:31Z", revision=1, ready=0,
                            available=0, fully_labeled=0)
            rs["status"] = {"replicas": 0, "observedGeneration": 1, "conditions": [{
                "type": "ReplicaFailure", "status": "True", "lastTransitionTime": "2026-11-10T13:58:31Z", "reason": "FailedCreate",
                "message": f'pods "{app}-{h}-" is forbidden: error looking up service account {ns}/{app}: serviceaccount "{app}" not found'}]}
            rso = ("ReplicaSet", ns, f"{app}-{h}", rs["metadata"]["uid"], "apps/v1")
            ctx.ev.add(("Deployment", ns, app, dep["metadata"]["uid"], "apps/v1"), "ScalingReplicaSet",
                       f"Scaled up replica set {app}-{h} from 0 to 2", component="deployment-controller", first="2026-11-10T13:58:31Z")
            ctx.ev.add(rso, "FailedCreate",
                       f'Error creating: pods "{app}-{h}-" is forbidden: error looking up service account {ns}/{app}: serviceaccount "{app}" not found',
                       type_="Warning", component="replicaset-controller", first="2026-11-10T13:58:31Z", last="2026-11-10T14:12:43Z", count=16)
            items = [dep, rs]
        else:
            dep = deployment(ctx, ns, app, tmpl_pod, 2, created="2026-11-10T13:58:31Z", revision=1, ready=2, updated=2, available=2,
                             conditions=[dep_cond("Available", "True", "2026-11-10T13:59:02Z", "2026-11-10T13:59:02Z",
                                                  "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                         dep_cond("Progressing", "True", "2026-11-10T13:59:02Z", "2026-11-10T13:58:31Z",
                                                  "NewReplicaSetAvailable", f'ReplicaSet "{app}-{h}" has successfully progressed.')])
            rs = replicaset(ctx, ns, f"{app}-{h}", dep, tmpl_pod, 2, created="2026-11-10T13:58:31Z", revision=1, ready=2, available=2)
            sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                "name": app, "namespace": ns, "uid": ctx.rnd.uid(), "resourceVersion": ctx.rnd.rv(),
                "creationTimestamp": "2026-11-10T13:58:29Z",
                "annotations": {"iam.gke.io/gcp-service-account": "invoice-runner@pinecrest-prod.iam.gserviceaccount.com"}}}
            items = [dep, rs, sa]
            rso = ("ReplicaSet", ns, f"{app}-{h}", rs["metadata"]["uid"], "apps/v1")
            ctx.ev.add(("Deployment", ns, app, dep["metadata"]["uid"], "apps/v1"), "ScalingReplicaSet",
                       f"Scaled up replica set {app}-{h} from 0 to 2", component="deployment-controller", first="2026-11-10T13:58:31Z")
            for sfx in ("5lq2w", "9dkxr"):
                ctx.ev.add(rso, "SuccessfulCreate", f"Created pod: {app}-{h}-{sfx}", component="replicaset-controller",
                           first="2026-11-10T13:58:31Z")
        write(d, "deploy-rs.json", kubectl_json_list(items))
        write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now))
        if not tw:
            case_labels(d, F, ["json-list", "events-get"], True, now, {
                "object": f"ReplicaSet/{ns}/{app}-{h}", "cause": "missing-serviceaccount", "mentions": ["invoice-runner"],
                "caused_by": f"ServiceAccount/{ns}/{app}"})
            readme(d, "invoice-runner has no pods: ServiceAccount invoice-runner does not exist", """
Files: `deploy-rs.json` (`kubectl get deploy,rs -n billing -o json`) and `events.txt`
(`kubectl get events -n billing`).

The Deployment names `serviceAccountName: invoice-runner`, but the ServiceAccount (and its
Workload Identity annotation) lives in the Terraform module that was not applied. The ReplicaSet
controller cannot create any pod: `Error creating: pods "invoice-runner-7c9d5b8f46-" is forbidden:
error looking up service account billing/invoice-runner: serviceaccount "invoice-runner" not found`.
There are no pods to describe. Capture 14:28:03.
""")
        else:
            case_labels(d, F, ["json-list", "events-get"], False, now)
            readme(d, "invoice-runner with its ServiceAccount (twin)", """
Files: `deploy-rs.json` (Deployment, ReplicaSet and the ServiceAccount) and `events.txt`. Pods
were created and are available. No incident.
""")


def missing_storageclass():
    case, now = "missing-storageclass", "2026-11-04T09:55:16Z"
    for tw in (False, True):
        ctx = Ctx(641 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns = "analytics-etl"
        sc = "gp3-encrypted" if not tw else "gp3"
        pvc_uid = ctx.rnd.uid()
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
            "name": "scratch-spark-history", "namespace": ns, "uid": pvc_uid, "resourceVersion": ctx.rnd.rv(),
            "creationTimestamp": "2026-11-04T09:31:07Z", "finalizers": ["kubernetes.io/pvc-protection"],
            "labels": {"app.kubernetes.io/name": "spark-history"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}},
                     "storageClassName": sc, "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}}
        h, sfx = "68b7c4d9f5", "vv7pn"
        pname = f"spark-history-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"spark-history-{h}", ctx.rnd.uid())
        lab = {"app.kubernetes.io/name": "spark-history", "pod-template-hash": h}
        c = ctr("history", "docker.io/apache/spark:3.5.3", command=["/opt/spark/bin/spark-class"],
                args=["org.apache.spark.deploy.history.HistoryServer"], ports=[(18080, "http")],
                env=[env("SPARK_HISTORY_OPTS", "-Dspark.history.fs.logDirectory=file:/data/events")],
                resources=res("500m", "2Gi", None, "2Gi"), mounts=[{"name": "data", "mountPath": "/data"}])
        vols = [{"name": "data", "persistentVolumeClaim": {"claimName": "scratch-spark-history"}}]
        if not tw:
            msg = "0/4 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
            p = pending(ctx, ns=ns, pod_name=pname, containers=[c], created="2026-11-04T09:31:07Z", message=msg,
                        owner=owner, labels=lab, volumes=vols, attempts=6, last="2026-11-04T09:51:30Z")
            ctx.ev.add(("PersistentVolumeClaim", ns, "scratch-spark-history", pvc_uid, "v1"), "ProvisioningFailed",
                       'storageclass.storage.k8s.io "gp3-encrypted" not found', type_="Warning",
                       component="persistentvolume-controller", first="2026-11-04T09:31:07Z", last=add(now, -11), count=98)
        else:
            pvc["spec"]["volumeName"] = "pvc-" + pvc_uid
            pvc["metadata"]["annotations"] = {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                                              "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                                              "volume.kubernetes.io/selected-node": "ip-10-8-3-44.ec2.internal",
                                              "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"}
            pvc["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "50Gi"}}
            p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node="ip-10-8-3-44.ec2.internal", node_ip="10.8.3.44",
                        pod_ip="10.8.5.201", created="2026-11-03T18:20:40Z", owner=owner, labels=lab, volumes=vols)
        write(d, "pvc-and-pod.yaml", kubectl_yaml_list([pvc, p]))
        if not tw:
            write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now))
            case_labels(d, F, ["yaml-list", "events-get"], True, now, {
                "object": f"Pod/{ns}/{pname}", "cause": "missing-storageclass", "mentions": ["gp3-encrypted"],
                "caused_by": f"PersistentVolumeClaim/{ns}/scratch-spark-history"})
            readme(d, "spark-history Pending: its PVC names StorageClass gp3-encrypted, which does not exist", """
Files: `pvc-and-pod.yaml` (`kubectl get pvc,pod -n analytics-etl -o yaml`) and `events.txt`.

The claim asks for `storageClassName: gp3-encrypted`; the cluster only has `gp3` (encryption is
on by default there). The PV controller reports `storageclass.storage.k8s.io "gp3-encrypted" not
found`, the claim stays Pending, and the scheduler reports `pod has unbound immediate
PersistentVolumeClaims`. Capture 09:55:16.
""")
        else:
            write(d, "events.txt", "No resources found in analytics-etl namespace.\n")
            case_labels(d, F, ["yaml-list", "events-get"], False, now)
            readme(d, "spark-history with a bound gp3 claim (twin)", """
Files: `pvc-and-pod.yaml` and `events.txt` (none). The claim uses `gp3` and is Bound; the pod runs.
No incident.
""")


def multi_attach():
    case, now = "volume-attach", "2026-11-20T03:12:38Z"
    for tw in (False, True):
        ctx = Ctx(651 + tw, now, k8s="1.29")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, pname = "shop-db", "mysql-0"
        owner = ("apps/v1", "StatefulSet", "mysql", ctx.rnd.uid())
        lab = {"app": "mysql", "apps.kubernetes.io/pod-index": "0", "controller-revision-hash": "mysql-7d8f6b9c5d",
               "statefulset.kubernetes.io/pod-name": "mysql-0"}
        c = ctr("mysql", "docker.io/library/mysql:8.4.3", ports=[(3306, "mysql")],
                env=[env("MYSQL_ROOT_PASSWORD", secret=("mysql", "root-password"))], resources=res("1", "4Gi", None, "4Gi"),
                mounts=[{"name": "data", "mountPath": "/var/lib/mysql"}],
                readiness=exec_probe(["mysqladmin", "ping", "-h", "127.0.0.1"], delay=10, timeout=2, period=10))
        vols = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-mysql-0"}}]
        pv = "pvc-3f7a1c2e-9d84-4b61-a0e5-6c2d8b19f470"
        node_, nip = "ip-10-20-33-71.us-west-2.compute.internal", "10.20.33.71"
        if not tw:
            created = "2026-11-20T02:51:09Z"
            p = container_creating(ctx, ns=ns, pod_name=pname, containers=[c], node=node_, node_ip=nip, created=created,
                                   owner=owner, labels=lab, volumes=vols,
                                   pod_kwargs={"extra_spec": {"hostname": "mysql-0", "subdomain": "mysql"}})
            ctx.ev.add(p, "FailedAttachVolume",
                       f'Multi-Attach error for volume "{pv}" Volume is already exclusively attached to one node and can\'t be attached to another',
                       type_="Warning", component="attachdetach-controller", first=add(created, 1))
            ctx.ev.add(p, "FailedMount",
                       "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: timed out waiting for the condition",
                       type_="Warning", host=node_, first=add(created, 123), last=add(now, -40), count=9)
        else:
            created = "2026-11-18T11:02:44Z"
            p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node=node_, node_ip=nip, pod_ip="10.20.35.12",
                        created=created, owner=owner, labels=lab, volumes=vols,
                        pod_kwargs={"extra_spec": {"hostname": "mysql-0", "subdomain": "mysql"}})
        emit(d, ctx, describe=p)
        if not tw:
            case_labels(d, F, ["describe-new"], True, now, {
                "object": f"Pod/{ns}/{pname}", "cause": "volume-attach", "mentions": ["Multi-Attach", pv],
                "caused_by": f"PersistentVolumeClaim/{ns}/data-mysql-0"})
            readme(d, "mysql-0 stuck in ContainerCreating: Multi-Attach error for its EBS volume", """
File: `describe-pod.txt` (kubectl 1.29).

The node that ran `mysql-0` (ip-10-20-31-8) stopped responding; the StatefulSet pod was force-deleted
and recreated on another node. The ReadWriteOnce EBS volume is still attached to the dead node,
so the attach/detach controller refuses the new attachment (`Multi-Attach error for volume
"pvc-3f7a..." Volume is already exclusively attached to one node and can't be attached to another`)
and the kubelet times out mounting `data`. Capture 03:12:38 (implied).
""")
        else:
            case_labels(d, F, ["describe-new"], False, now)
            readme(d, "mysql-0 running with its volume attached (twin)", """
File: `describe-pod.txt`. Volume attached and mounted; running for two days. No incident.
""")


CASES = [missing_configmap, missing_secret_volume, missing_secret_env, missing_serviceaccount, missing_storageclass, multi_attach]
