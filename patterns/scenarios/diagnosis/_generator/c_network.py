"""network family."""
from build import *  # noqa
from scen import *  # noqa
from k8sfmt import kubectl_json_list

F = "network"


def netpol_manifest(allow_dns):
    egress = """  egress:
  - to:
    - podSelector:
        matchLabels:
          app: orders-db
    ports:
    - protocol: TCP
      port: 5432
"""
    if allow_dns:
        egress += """  - to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
    ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
"""
    return f"""# checkout namespace: applied with `kubectl apply -f checkout.yaml`
apiVersion: v1
kind: Namespace
metadata:
  name: checkout
  labels:
    team: payments
    pod-security.kubernetes.io/enforce: restricted
---
apiVersion: networkpolicy.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-egress
  namespace: checkout
spec:
  podSelector: {{}}
  policyTypes:
  - Egress
{egress}---
apiVersion: v1
kind: Pod
metadata:
  name: cart-api
  namespace: checkout
  labels:
    app: cart-api
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: api
    image: ghcr.io/ferncastle/cart-api:1.8.3
    ports:
    - containerPort: 8080
      name: http
    env:
    - name: DATABASE_HOST
      value: orders-db.checkout.svc.cluster.local
    - name: PAYMENTS_URL
      value: http://payments-gateway.payments.svc.cluster.local:8443
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
    readinessProbe:
      httpGet:
        path: /livez
        port: http
---
apiVersion: v1
kind: Pod
metadata:
  name: orders-db
  namespace: checkout
  labels:
    app: orders-db
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 999
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: postgres
    image: docker.io/library/postgres:17.2-alpine
    ports:
    - containerPort: 5432
    env:
    - name: POSTGRES_PASSWORD
      valueFrom:
        secretKeyRef:
          name: orders-db
          key: password
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
---
apiVersion: v1
kind: Service
metadata:
  name: orders-db
  namespace: checkout
spec:
  selector:
    app: orders-db
  ports:
  - port: 5432
    targetPort: 5432
"""


def netpol_dns():
    case, now = "networkpolicy-denies-egress", "2026-11-21T10:33:12Z"
    for tw in (False, True):
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        man = netpol_manifest(tw).replace("networkpolicy.k8s.io/v1", "networking.k8s.io/v1")
        write(d, "checkout.yaml", man)
        t0 = T("2026-11-21T10:18:40Z")
        lines = []
        if not tw:
            lines.append(f'{{"ts":"{ts_log(add(t0, 0.1))}","level":"info","msg":"cart-api 1.8.3 listening on :8080"}}')
            for k in range(14):
                t = add(t0, 1 + k * 61)
                lines.append(f'{{"ts":"{ts_log(t)}","level":"error","msg":"db connect failed, retrying","attempt":{k + 1},'
                             f'"error":"failed to connect to `host=orders-db.checkout.svc.cluster.local user=cart database=orders`: hostname resolving error (lookup orders-db.checkout.svc.cluster.local on 10.96.0.10:53: read udp 10.244.3.27:{40110 + k * 113}->10.96.0.10:53: i/o timeout)"}}')
                lines.append(f'{{"ts":"{ts_log(add(t, 30.4))}","level":"warn","msg":"request failed","method":"POST","path":"/v1/cart/items","status":503,"duration_ms":10012,"error":"payments: Post \\"http://payments-gateway.payments.svc.cluster.local:8443/v1/authorize\\": dial tcp: lookup payments-gateway.payments.svc.cluster.local on 10.96.0.10:53: read udp 10.244.3.27:{51201 + k * 7}->10.96.0.10:53: i/o timeout"}}')
        else:
            lines.append(f'{{"ts":"{ts_log(add(t0, 0.1))}","level":"info","msg":"cart-api 1.8.3 listening on :8080"}}')
            lines.append(f'{{"ts":"{ts_log(add(t0, 0.4))}","level":"info","msg":"db connected","host":"orders-db.checkout.svc.cluster.local","pool":10}}')
            for k in range(5):
                lines.append(f'{{"ts":"{ts_log(add(t0, 60 + k * 97))}","level":"info","msg":"request","method":"POST","path":"/v1/cart/items","status":201,"duration_ms":{14 + k}}}')
        write(d, "cart-api.log", "\n".join(lines) + "\n")
        if not tw:
            case_labels(d, F, ["manifest", "log"], True, now, {
                "object": "Pod/checkout/cart-api", "cause": "networkpolicy-denies-egress",
                "mentions": ["default-deny-egress", "DNS"], "caused_by": "NetworkPolicy/checkout/default-deny-egress"})
            readme(d, "cart-api cannot resolve any name: the namespace's egress policy blocks DNS", """
Files: `checkout.yaml`, the multi-document manifest that created the namespace, its NetworkPolicy,
two pods and a Service (no status, no timestamps), and `cart-api.log` (`kubectl logs cart-api`).

`default-deny-egress` selects every pod in `checkout` and allows egress only to `orders-db` on
TCP 5432. DNS to kube-dns (UDP/TCP 53 in kube-system) is not allowed, so every lookup times out:
`lookup orders-db.checkout.svc.cluster.local on 10.96.0.10:53: read udp ...: i/o timeout`. The
database itself is reachable by IP; the policy, not the database, is the cause. The log starts at
10:18:40; capture about 10:33 (not printed anywhere).
""")
        else:
            case_labels(d, F, ["manifest", "log"], False, now)
            readme(d, "cart-api with DNS egress allowed (twin)", """
Files: `checkout.yaml` (the same manifest, the policy also allows UDP/TCP 53 to kube-dns) and
`cart-api.log`: the database connects, requests succeed. No incident.
""")


def dependency_down():
    case, now = "dependency-down", "2026-11-13T14:05:27Z"
    for tw in (False, True):
        ctx = Ctx(1011 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, app, h = "treasury", "fx-rates", "7b5d9c6f84"
        host = "api.fxbridge-partners.com"
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "fx-rates-config", "namespace": ns, "uid": ctx.rnd.uid(), "resourceVersion": ctx.rnd.rv(),
            "creationTimestamp": "2026-05-02T09:12:44Z", "labels": {"app": app}},
            "data": {"RATES_API_BASE": f"https://{host}/v3" if not tw else f"https://{host}/v3",
                     "RATES_REFRESH_SECONDS": "60", "RATES_MAX_STALENESS_SECONDS": "900", "LOG_FORMAT": "logfmt"}}
        pods = []
        for i, sfx in enumerate(["tg8wq", "2nzcx"]):
            c = ctr("rates", "ghcr.io/copperkettle/fx-rates:2.6.1", ports=[(8080, "http")],
                    env_from=[{"configMapRef": {"name": "fx-rates-config"}}],
                    resources=res("100m", "128Mi", None, "256Mi"),
                    liveness=http_probe("/livez", 8080, period=10), readiness=http_probe("/livez", 8080, period=10))
            pods.append(healthy(ctx, ns=ns, pod_name=f"{app}-{h}-{sfx}", containers=[c], node=f"aks-nodepool1-4419{i}812-vmss00000{i + 3}",
                                node_ip=f"10.224.0.{12 + i}", pod_ip=f"10.244.{1 + i}.{57 + i * 6}", created="2026-11-10T08:30:12Z",
                                owner=("apps/v1", "ReplicaSet", f"{app}-{h}", ctx.rnd.uid()), labels={"app": app, "pod-template-hash": h}))
        write(d, "pods-and-configmaps.json", kubectl_json_list(pods + [cm]))
        t0 = T("2026-11-13T13:41:00Z")
        lines = []
        for k in range(22):
            t = add(t0, k * 60)
            if not tw:
                lines.append(f'time={ts_log(t)} level=error msg="refresh failed" source=fxbridge url={cm["data"]["RATES_API_BASE"]}/rates?base=EUR '
                             f'err="Get \\"https://{host}/v3/rates?base=EUR\\": dial tcp 52.214.77.130:443: connect: connection timed out" attempt=1')
                age = 60 * (k + 4)
                if age > 900:
                    lines.append(f'time={ts_log(add(t, 3.2))} level=warn msg="serving stale rates" age={age}s max_staleness=900s')
                    lines.append(f'time={ts_log(add(t, 7.9))} level=info msg=request method=GET path=/v1/convert status=503 duration=0.6ms err="rates older than max staleness"')
                else:
                    lines.append(f'time={ts_log(add(t, 7.9))} level=info msg=request method=GET path=/v1/convert status=200 duration=0.4ms')
            else:
                lines.append(f'time={ts_log(t)} level=info msg="refreshed rates" source=fxbridge currencies=164 took=212ms')
                lines.append(f'time={ts_log(add(t, 7.9))} level=info msg=request method=GET path=/v1/convert status=200 duration=0.4ms')
        lines = lines[-30:]
        write(d, f"{pods[0]['metadata']['name']}.log", "\n".join(lines) + "\n")
        if not tw:
            case_labels(d, F, ["json-list", "log"], True, now, {
                "object": f"Pod/{ns}/{pods[0]['metadata']['name']}", "cause": "dependency-down",
                "mentions": [host], "caused_by": f"ConfigMap/{ns}/fx-rates-config"})
            readme(d, "fx-rates pods healthy, but conversions fail: the rates provider is down", """
Files: `pods-and-configmaps.json` (`kubectl get pods,configmaps -n treasury -o json`) and the log of
the first pod.

Both pods are Running and Ready (the probes only check the process). The upstream rates provider
`api.fxbridge-partners.com` (configured in ConfigMap `fx-rates-config` as `RATES_API_BASE`)
stopped accepting connections at 13:41 (`connect: connection timed out`); after 15 minutes the
cached rates exceed `RATES_MAX_STALENESS_SECONDS` and `/v1/convert` answers 503. Nothing in
Kubernetes is broken. Capture 14:05:27.
""")
        else:
            case_labels(d, F, ["json-list", "log"], False, now)
            readme(d, "fx-rates refreshing normally (twin)", """
Files: `pods-and-configmaps.json` and the log: refreshes succeed every minute, requests 200. No incident.
""")


CASES = [netpol_dns, dependency_down]
