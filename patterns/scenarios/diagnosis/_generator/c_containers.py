"""containers family: CrashLoopBackOff with the reason in the previous container's log, OOM, segfault."""
from build import *  # noqa
from scen import *  # noqa
from k8sfmt import describe_pod, iso

F = "containers"


def rs_owner(ctx, rs):
    return ("apps/v1", "ReplicaSet", rs, ctx.rnd.uid())


# ----------------------------------------------------------------------------- missing-env-var

def missing_env_var():
    case = "missing-env-var"
    now = "2026-11-30T14:22:05Z"
    for healthy_twin in (False, True):
        ctx = Ctx(101 + healthy_twin, now, k8s="1.31")
        rs, pname, h = "ledger-api-6c9f7b8d54", "ledger-api-6c9f7b8d54-qk7tw", "6c9f7b8d54"
        labels = {"app.kubernetes.io/name": "ledger-api", "app.kubernetes.io/part-of": "payments", "pod-template-hash": h}
        envs = [env("LEDGER_LISTEN_ADDR", ":8443"), env("LEDGER_LOG_FORMAT", "json"),
                env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.observability:4317")]
        if healthy_twin:
            envs.append(env("LEDGER_DB_DSN", secret=("ledger-db", "dsn")))
        c = ctr("ledger-api", "registry.payments.internal/ledger/ledger-api:3.18.2", ports=[(8443, "https")],
                env=envs, resources=res("250m", "256Mi", None, "512Mi"),
                readiness=http_probe("/readyz", 8443, scheme="HTTPS", period=5))
        node, nip, pip = "ip-10-24-7-193.eu-west-1.compute.internal", "10.24.7.193", "10.24.6.41"
        owner = rs_owner(ctx, rs)
        if not healthy_twin:
            p = crashloop(ctx, ns="payments", pod_name=pname, container=c, node=node, node_ip=nip, pod_ip=pip,
                          created="2026-11-30T14:15:49Z", run_secs=0.4, exit_code=1, owner=owner, labels=labels,
                          sa="ledger-api")
            s, f = p["_attempts"][-1]
            log = (
                f'{{"level":"info","ts":"{ts_log(s)}","caller":"cmd/main.go:58","msg":"starting ledger-api","version":"3.18.2","commit":"a41e9c2"}}\n'
                f'{{"level":"info","ts":"{ts_log(add(s, 0.01))}","caller":"config/load.go:112","msg":"loading configuration from environment","prefix":"LEDGER_"}}\n'
                f'{{"level":"fatal","ts":"{ts_log(add(s, 0.012))}","caller":"cmd/main.go:71","msg":"invalid configuration","error":"config: required key LEDGER_DB_DSN missing value","stacktrace":"main.main\\n\\t/src/cmd/main.go:71\\nruntime.main\\n\\t/usr/local/go/src/runtime/proc.go:272"}}\n')
            write(f"{F}/{case}", "previous.log", log)
        else:
            p = healthy(ctx, ns="payments", pod_name=pname, containers=[c], node=node, node_ip=nip, pod_ip=pip,
                        created="2026-11-28T09:02:11Z", owner=owner, labels=labels, sa="ledger-api")
            s = T(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
            log = (
                f'{{"level":"info","ts":"{ts_log(add(s, 0.2))}","caller":"cmd/main.go:58","msg":"starting ledger-api","version":"3.18.2","commit":"a41e9c2"}}\n'
                f'{{"level":"info","ts":"{ts_log(add(s, 0.21))}","caller":"config/load.go:112","msg":"loading configuration from environment","prefix":"LEDGER_"}}\n'
                f'{{"level":"info","ts":"{ts_log(add(s, 0.48))}","caller":"store/pg.go:44","msg":"connected to database","host":"ledger-pg-rw.payments.svc","db":"ledger","pool_max":20}}\n'
                f'{{"level":"info","ts":"{ts_log(add(s, 0.52))}","caller":"server/server.go:90","msg":"listening","addr":":8443","tls":true}}\n'
                f'{{"level":"info","ts":"{ts_log(add(s, 3620.7))}","caller":"store/pg.go:131","msg":"pool stats","open":6,"idle":5,"wait_count":0}}\n')
            write(f"{F}/{case}-healthy", "current.log", log)
        d = f"{F}/{case}" + ("-healthy" if healthy_twin else "")
        write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname), ctx.now))
        if not healthy_twin:
            write(d, "labels.yaml", labels_yaml(f"{F}/{case}", F, ["describe-new", "log"], True, now, {
                "object": f"Pod/payments/{pname}", "cause": "missing-env-var", "mentions": ["LEDGER_DB_DSN"]}))
            readme(d, "ledger-api crash-loops: LEDGER_DB_DSN is not set", """
Files: `describe-pod.txt` (`kubectl describe pod`, kubectl 1.31) and `previous.log`
(`kubectl logs --previous`).

The Deployment's pod template lost the `LEDGER_DB_DSN` entry (it came from the `ledger-db`
Secret). The Go service validates its environment at start-up and exits 1 with
`config: required key LEDGER_DB_DSN missing value`; the kubelet restarts it with a growing back-off.

Timeline (UTC): 14:15:49 pod scheduled; ~14:15:55 first start, exits after 0.4 s; restarts at 10 s,
20 s, 40 s, 80 s, 160 s back-off; 14:22:05 capture, container waiting in CrashLoopBackOff.
The capture time is not printed; the describe's relative ages and the log timestamps fix it.
""")
        else:
            write(d, "labels.yaml", labels_yaml(f"{F}/{case}-healthy", F, ["describe-new", "log"], False, now))
            readme(d, "ledger-api healthy (twin of missing-env-var)", """
Files: `describe-pod.txt` and `current.log` (`kubectl logs`). Same Deployment with `LEDGER_DB_DSN`
set from the `ledger-db` Secret. The pod has run for two days, 0 restarts, Ready; its events have
expired (`Events: <none>`). No incident.
""")





def crash_case(*, case, seed, now, ns, app, rs_hash, pod_sfx, make_ctr, node, nip, pip, created, log_fn,
               healthy_log_fn, formats, rc, readme_inc, readme_ok, k8s="1.31", run_secs=1.0, exit_code=1,
               reason="Error", healthy_created=None, emit_kw=None, log_name="previous.log",
               healthy_log_name="current.log", labels=None, sa="default", runtime="containerd",
               healthy_kw=None, volumes=None, extra=None, family=F, title_inc=None, title_ok=None,
               signal=None, owner_kind="ReplicaSet", force_waiting=True, healthy_events=False, post=None,
               image_size=None):
    pname = f"{app}-{rs_hash}-{pod_sfx}" if owner_kind == "ReplicaSet" else pod_sfx
    for tw in (False, True):
        ctx = Ctx(seed + tw, now, k8s=k8s, runtime=runtime)
        lab = dict(labels or {"app": app})
        if owner_kind == "ReplicaSet":
            lab["pod-template-hash"] = rs_hash
            owner = ("apps/v1", "ReplicaSet", f"{app}-{rs_hash}", ctx.rnd.uid())
        else:
            owner = owner_kind(ctx) if callable(owner_kind) else None
        c = make_ctr(tw)
        d = f"{family}/{case}" + ("-healthy" if tw else "")
        if not tw:
            p = crashloop(ctx, ns=ns, pod_name=pname, container=c, node=node, node_ip=nip, pod_ip=pip,
                          created=created, run_secs=run_secs, exit_code=exit_code, reason=reason, owner=owner,
                          labels=lab, sa=sa, volumes=volumes, signal=signal, force_waiting=force_waiting,
                          image_size=image_size)
            s, f = p["_attempts"][-1] if p["_in_backoff"] else p["_attempts"][-2]
            text = log_fn(p, s, f)
            if text is not None:
                write(d, log_name, text)
        else:
            hk = dict(healthy_kw or {})
            p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node=node, node_ip=nip, pod_ip=pip,
                        created=healthy_created or "2026-11-20T08:00:00Z", owner=owner, labels=lab, sa=sa,
                        volumes=volumes, with_events=healthy_events, **hk)
            s = T(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
            text = healthy_log_fn(p, s)
            if text is not None:
                write(d, healthy_log_name, text)
        kw = dict(emit_kw or {})
        if "describe_version" not in kw and "describe" not in kw:
            kw["describe"] = p
        elif kw.get("describe") is True:
            kw["describe"] = p
        if kw.get("json_pods") is True:
            kw["json_pods"] = [p] + (extra(ctx, tw) if extra else [])
        if kw.get("yaml_pods") is True:
            kw["yaml_pods"] = [p] + (extra(ctx, tw) if extra else [])
        if "describe_version" in kw and "describe" not in kw:
            kw["describe"] = p
        emit(d, ctx, **kw)
        if post:
            post(d, ctx, p, tw)
        if not tw:
            rc2 = dict(rc)
            rc2["object"] = rc2["object"].replace("{pod}", pname)
            case_labels(d, family, formats, True, now, rc2)
            readme(d, title_inc or case, readme_inc)
        else:
            case_labels(d, family, formats, False, now)
            readme(d, title_ok or f"{case}: healthy twin", readme_ok)
    return pname


def tls_certificate():
    now = "2026-11-27T03:41:18Z"

    def mk(tw):
        return ctr("bridge", "ghcr.io/hollowpeak/mqtt-bridge:2.7.0", ports=[(9102, "metrics")],
                   env=[env("BROKER_URL", "ssl://mqtt.iot.hollowpeak.net:8883"), env("CLIENT_CERT", "/etc/bridge/tls/tls.crt"),
                        env("CLIENT_KEY", "/etc/bridge/tls/tls.key"), env("CA_FILE", "/etc/bridge/tls/ca.crt")],
                   resources=res("50m", "64Mi", None, "128Mi"),
                   mounts=[{"name": "client-tls", "readOnly": True, "mountPath": "/etc/bridge/tls"}])

    vols = [{"name": "client-tls", "secret": {"secretName": "mqtt-bridge-client-tls", "defaultMode": 420}}]

    def log(p, s, f):
        return (f"{ts_log(s, 'go')} mqtt-bridge 2.7.0 (go1.23.4) starting\n"
                f"{ts_log(add(s, 0.01), 'go')} loaded client certificate CN=mqtt-bridge.edge-ingest, notAfter=2026-11-26T23:59:59Z\n"
                f"{ts_log(add(s, 0.02), 'go')} connecting to ssl://mqtt.iot.hollowpeak.net:8883\n"
                f"{ts_log(add(s, 0.31), 'go')} connect: network Error : remote error: tls: expired certificate\n"
                f"{ts_log(add(s, 0.31), 'go')} fatal: broker handshake failed: client certificate /etc/bridge/tls/tls.crt expired at 2026-11-26T23:59:59Z (x509: certificate has expired or is not yet valid: current time {iso(add(s, 0.31))} is after 2026-11-26T23:59:59Z)\n")

    def hlog(p, s):
        return (f"{ts_log(s, 'go')} mqtt-bridge 2.7.0 (go1.23.4) starting\n"
                f"{ts_log(add(s, 0.01), 'go')} loaded client certificate CN=mqtt-bridge.edge-ingest, notAfter=2027-11-26T23:59:59Z\n"
                f"{ts_log(add(s, 0.02), 'go')} connecting to ssl://mqtt.iot.hollowpeak.net:8883\n"
                f"{ts_log(add(s, 0.29), 'go')} connected, session present=false\n"
                f"{ts_log(add(s, 0.3), 'go')} subscribed to sensors/+/telemetry (qos 1)\n"
                f"{ts_log(add(s, 0.3), 'go')} forwarding to kafka-edge-0.kafka-edge.edge-ingest:9092 topic=telemetry.raw\n")

    crash_case(case="tls-certificate", seed=111, now=now, ns="edge-ingest", app="mqtt-bridge", rs_hash="7f94d6c5bb",
               pod_sfx="2rzxn", make_ctr=mk, node="edge-w3", nip="192.168.40.23", pip="10.42.3.118",
               created="2026-11-27T00:03:12Z", run_secs=0.4, volumes=vols, log_fn=log, healthy_log_fn=hlog,
               log_name="mqtt-bridge-7f94d6c5bb-2rzxn_bridge_previous.log",
               healthy_log_name="mqtt-bridge-7f94d6c5bb-2rzxn_bridge.log", k8s="1.30",
               formats=["describe-new", "log"],
               rc={"object": "Pod/edge-ingest/{pod}", "cause": "tls-certificate",
                   "mentions": ["certificate has expired", "mqtt-bridge-client-tls"],
                   "caused_by": "Secret/edge-ingest/mqtt-bridge-client-tls"},
               title_inc="mqtt-bridge crash-loops: its client certificate expired",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.30) and `mqtt-bridge-7f94d6c5bb-2rzxn_bridge_previous.log`.

The client certificate in Secret `mqtt-bridge-client-tls` (mounted at `/etc/bridge/tls`) expired at
2026-11-26T23:59:59Z. The pod was recreated at 00:03 by a node drain; every start fails the TLS
handshake with the broker `mqtt.iot.hollowpeak.net:8883` (`x509: certificate has expired or is not
yet valid`) and exits 1. By 03:41 the container has restarted dozens of times and sits in
CrashLoopBackOff with a 5m back-off. Capture time is not printed; ages and the log give it.
""",
               readme_ok="""
Files: `describe-pod.txt` and `mqtt-bridge-7f94d6c5bb-2rzxn_bridge.log` (current log). The renewed
certificate (valid to 2027-11-26) is in the Secret; the bridge connects and forwards. No incident.
""")


def shell_syntax_error():
    now = "2026-12-02T10:05:40Z"
    bad = ("set -e\nif [ -z \"$SYNC_TARGET\" ]; then\n  echo \"SYNC_TARGET not set\"; exit 1\nfi fi\n"
           "exec /usr/local/bin/report-sync --target \"$SYNC_TARGET\" --interval 300")
    good = ("set -e\nif [ -z \"$SYNC_TARGET\" ]; then\n  echo \"SYNC_TARGET not set\"; exit 1\nfi\n"
            "exec /usr/local/bin/report-sync --target \"$SYNC_TARGET\" --interval 300")

    def mk(tw):
        return ctr("report-sync", "quay.io/larchmont/report-sync:1.4.9", command=["/bin/sh", "-c"],
                   args=[good if tw else bad], env=[env("SYNC_TARGET", "s3://larchmont-reports/daily")],
                   resources=res("100m", "128Mi", "500m", "256Mi"))

    def log(p, s, f):
        return "/bin/sh: 4: Syntax error: \"fi\" unexpected\n"

    def hlog(p, s):
        return (f"time=\"{iso(add(s, 0.1))}\" level=info msg=\"report-sync 1.4.9 starting\" target=\"s3://larchmont-reports/daily\" interval=300s\n"
                f"time=\"{iso(add(s, 2.4))}\" level=info msg=\"synced\" objects=412 bytes=18227345 took=2.3s\n"
                f"time=\"{iso(add(s, 302.5))}\" level=info msg=\"synced\" objects=3 bytes=90112 took=0.4s\n")

    crash_case(case="shell-syntax-error", seed=121, now=now, ns="reporting", app="report-sync", rs_hash="5d8b7c9f6",
               pod_sfx="m4wgl", make_ctr=mk, node="worker-07", nip="10.11.0.27", pip="10.244.7.62",
               created="2026-12-02T09:58:02Z", run_secs=0.05, exit_code=2, log_fn=log, healthy_log_fn=hlog,
               emit_kw={"yaml_pods": True}, log_name="report-sync_previous.log", healthy_log_name="report-sync.log",
               formats=["yaml-list", "log"], k8s="1.29",
               rc={"object": "Pod/reporting/{pod}", "cause": "shell-syntax-error", "mentions": ["Syntax error"]},
               title_inc="report-sync crash-loops: the sh -c script has a stray `fi`",
               readme_inc="""
Files: `pods.yaml` (`kubectl get pod -n reporting -l app=report-sync -o yaml`) and
`report-sync_previous.log` (`kubectl logs --previous`).

A hand edit of the Deployment's `sh -c` script left `fi fi` on one line. dash rejects the script
before running anything (`/bin/sh: 4: Syntax error: "fi" unexpected`) and exits 2; the pod is in
CrashLoopBackOff. Capture 10:05:40; the YAML's timestamps are absolute.
""",
               readme_ok="""
Files: `pods.yaml` and `report-sync.log`. The script is fixed; the sync loop runs every 300 s. No incident.
""")


def dependency_unreachable():
    now = "2026-11-18T16:48:33Z"

    def mk(tw):
        return ctr("order-worker", "harbor.tidewater.io/commerce/order-worker:5.2.1", ports=[(8080, "http")],
                   env=[env("SPRING_PROFILES_ACTIVE", "prod"),
                        env("SPRING_DATASOURCE_URL", "jdbc:postgresql://orders-pg.orders.svc.cluster.local:5432/orders"),
                        env("SPRING_DATASOURCE_USERNAME", "order_worker"),
                        env("SPRING_DATASOURCE_PASSWORD", secret=("orders-pg-app", "password")),
                        env("JAVA_TOOL_OPTIONS", "-XX:MaxRAMPercentage=75")],
                   resources=res("500m", "768Mi", None, "1Gi"),
                   liveness=http_probe("/actuator/health/liveness", 8080, delay=60, period=10),
                   readiness=http_probe("/actuator/health/readiness", 8080, delay=20, period=5))

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x), "spring")
        return (
            f"  .   ____          _            __ _ _\n /\\\\ / ___'_ __ _ _(_)_ __  __ _ \\ \\ \\ \\\n( ( )\\___ | '_ | '_| | '_ \\/ _` | \\ \\ \\ \\\n \\\\/  ___)| |_)| | | | | || (_| |  ) ) ) )\n  '  |____| .__|_| |_|_| |_\\__, | / / / /\n =========|_|==============|___/=/_/_/_/\n\n :: Spring Boot ::                (v3.3.5)\n\n"
            f"{t(1.9)}  INFO 1 --- [order-worker] [           main] c.t.orders.OrderWorkerApplication        : Starting OrderWorkerApplication v5.2.1 using Java 21.0.5 with PID 1 (/app/app.jar started by app in /app)\n"
            f"{t(1.9)}  INFO 1 --- [order-worker] [           main] c.t.orders.OrderWorkerApplication        : The following 1 profile is active: \"prod\"\n"
            f"{t(6.2)}  INFO 1 --- [order-worker] [           main] com.zaxxer.hikari.HikariDataSource       : HikariPool-1 - Starting...\n"
            f"{t(7.3)}  WARN 1 --- [order-worker] [           main] o.h.e.j.e.i.JdbcEnvironmentInitiator     : HHH000342: Could not obtain connection to query metadata\n\n"
            "org.postgresql.util.PSQLException: Connection to orders-pg.orders.svc.cluster.local:5432 refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.\n"
            "\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:352) ~[postgresql-42.7.4.jar!/:42.7.4]\n"
            "\tat org.postgresql.core.ConnectionFactory.openConnection(ConnectionFactory.java:54) ~[postgresql-42.7.4.jar!/:42.7.4]\n"
            "\tat org.postgresql.jdbc.PgConnection.<init>(PgConnection.java:273) ~[postgresql-42.7.4.jar!/:42.7.4]\n"
            "\tat com.zaxxer.hikari.pool.HikariPool.checkFailFast(HikariPool.java:576) ~[HikariCP-5.1.0.jar!/:na]\n"
            "Caused by: java.net.ConnectException: Connection refused\n"
            "\tat java.base/sun.nio.ch.Net.pollConnect(Native Method) ~[na:na]\n"
            "\tat java.base/sun.nio.ch.NioSocketImpl.timedFinishConnect(Unknown Source) ~[na:na]\n"
            "\tat java.base/java.net.Socket.connect(Unknown Source) ~[na:na]\n"
            "\tat org.postgresql.core.PGStream.createSocket(PGStream.java:243) ~[postgresql-42.7.4.jar!/:42.7.4]\n"
            "\t... 52 common frames omitted\n\n"
            f"{t(7.9)} ERROR 1 --- [order-worker] [           main] o.s.boot.SpringApplication               : Application run failed\n\n"
            "org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'entityManagerFactory' defined in class path resource [org/springframework/boot/autoconfigure/orm/jpa/HibernateJpaConfiguration.class]: Unable to create requested service [org.hibernate.engine.jdbc.env.spi.JdbcEnvironment] due to: Unable to determine Dialect without JDBC metadata (please set 'jakarta.persistence.jdbc.url' for common cases or 'hibernate.dialect' when a custom Dialect implementation must be provided)\n"
            "\tat org.springframework.beans.factory.support.AbstractAutowireCapableBeanFactory.initializeBean(AbstractAutowireCapableBeanFactory.java:1806) ~[spring-beans-6.1.14.jar!/:6.1.14]\n"
            "\tat org.springframework.boot.SpringApplication.run(SpringApplication.java:335) ~[spring-boot-3.3.5.jar!/:3.3.5]\n"
            "\tat com.tidewater.orders.OrderWorkerApplication.main(OrderWorkerApplication.java:12) ~[!/:5.2.1]\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x), "spring")
        return (f"{t(1.8)}  INFO 1 --- [order-worker] [           main] c.t.orders.OrderWorkerApplication        : Starting OrderWorkerApplication v5.2.1 using Java 21.0.5 with PID 1 (/app/app.jar started by app in /app)\n"
                f"{t(6.1)}  INFO 1 --- [order-worker] [           main] com.zaxxer.hikari.HikariDataSource       : HikariPool-1 - Starting...\n"
                f"{t(6.4)}  INFO 1 --- [order-worker] [           main] com.zaxxer.hikari.pool.HikariPool        : HikariPool-1 - Added connection org.postgresql.jdbc.PgConnection@5b1f29fa\n"
                f"{t(6.4)}  INFO 1 --- [order-worker] [           main] com.zaxxer.hikari.HikariDataSource       : HikariPool-1 - Start completed.\n"
                f"{t(11.0)}  INFO 1 --- [order-worker] [           main] o.s.b.w.embedded.tomcat.TomcatWebServer  : Tomcat started on port 8080 (http) with context path '/'\n"
                f"{t(11.1)}  INFO 1 --- [order-worker] [           main] c.t.orders.OrderWorkerApplication        : Started OrderWorkerApplication in 10.62 seconds (process running for 11.3)\n")

    crash_case(case="dependency-unreachable", seed=131, now=now, ns="orders", app="order-worker", rs_hash="84c7d5f9b",
               pod_sfx="x8vjd", make_ctr=mk, node="aks-user-31207455-vmss00000c", nip="10.224.0.17", pip="10.244.3.91",
               created="2026-11-18T16:21:07Z", run_secs=9.0, log_fn=log, healthy_log_fn=hlog,
               formats=["describe-new", "log"], k8s="1.31",
               rc={"object": "Pod/orders/{pod}", "cause": "dependency-unreachable",
                   "mentions": ["orders-pg.orders.svc.cluster.local:5432"]},
               title_inc="order-worker crash-loops: PostgreSQL at orders-pg:5432 refuses connections",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.31) and `previous.log` (`kubectl logs --previous`).

The `orders-pg` PostgreSQL service has no ready backend (its primary was being restored), so every
connection to `orders-pg.orders.svc.cluster.local:5432` is refused. Spring Boot fails to build the
JPA `entityManagerFactory` and the JVM exits 1 about 9 s after each start. Pod created 16:21:07;
CrashLoopBackOff at capture 16:48:33 (not printed, implied by the ages).
""",
               readme_ok="""
Files: `describe-pod.txt` and `current.log`. The database answers; Hikari adds its connection and
Tomcat starts. Running for days, 0 restarts. No incident.
""")


def dns_resolution():
    now = "2026-11-23T21:14:50Z"

    def mk(tw):
        return ctr("indexer", "registry.gitlab.com/copperline/catalog/search-indexer:0.31.4",
                   env=[env("OPENSEARCH_URL", "https://opensearch-master.search.svc.cluster.local:9200" if not tw else "https://opensearch-cluster-master.search.svc.cluster.local:9200"),
                        env("NODE_ENV", "production"), env("BATCH_SIZE", "500")],
                   resources=res("200m", "256Mi", "1", "512Mi"))

    host_bad = "opensearch-master.search.svc.cluster.local"

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x))
        return (f'{{"level":30,"time":"{t(0.4)}","pid":1,"hostname":"{p["metadata"]["name"]}","msg":"search-indexer 0.31.4 starting","opensearch":"https://{host_bad}:9200"}}\n'
                f'{{"level":50,"time":"{t(0.52)}","pid":1,"hostname":"{p["metadata"]["name"]}","err":{{"type":"ConnectionError","message":"getaddrinfo ENOTFOUND {host_bad}","stack":"ConnectionError: getaddrinfo ENOTFOUND {host_bad}\\n    at SniffingTransport._request (/app/node_modules/@opensearch-project/opensearch/lib/Transport.js:253:23)\\n    at process.processTicksAndRejections (node:internal/process/task_queues:105:5)","name":"ConnectionError"}},"msg":"cannot reach OpenSearch"}}\n'
                f"node:internal/process/promises:394\n    triggerUncaughtException(err, true /* fromPromise */);\n    ^\n\n"
                f"ConnectionError: getaddrinfo ENOTFOUND {host_bad}\n"
                "    at SniffingTransport._request (/app/node_modules/@opensearch-project/opensearch/lib/Transport.js:253:23)\n"
                "    at process.processTicksAndRejections (node:internal/process/task_queues:105:5) {\n"
                "  meta: {\n    body: null,\n    statusCode: null,\n    headers: null,\n    meta: {\n      context: null,\n"
                "      request: [Object],\n      name: 'opensearch-js',\n      connection: [Object],\n      attempts: 3,\n      aborted: false\n    }\n  }\n}\n\n"
                "Node.js v22.11.0\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x))
        h = "opensearch-cluster-master.search.svc.cluster.local"
        return (f'{{"level":30,"time":"{t(0.4)}","pid":1,"hostname":"{p["metadata"]["name"]}","msg":"search-indexer 0.31.4 starting","opensearch":"https://{h}:9200"}}\n'
                f'{{"level":30,"time":"{t(0.9)}","pid":1,"hostname":"{p["metadata"]["name"]}","msg":"connected","cluster":"catalog-search","version":"2.17.1"}}\n'
                f'{{"level":30,"time":"{t(31.2)}","pid":1,"hostname":"{p["metadata"]["name"]}","msg":"indexed batch","docs":500,"took_ms":812}}\n')

    def extra(ctx, tw):
        # an unrelated healthy pod in the same namespace, listed by `kubectl get pods -o json`
        c = ctr("api", "registry.gitlab.com/copperline/catalog/catalog-api:2.9.0", ports=[(3000, "http")],
                resources=res("100m", "128Mi"))
        return [healthy(ctx, ns="catalog", pod_name="catalog-api-5f6d8c7b9d-tq2hc", containers=[c],
                        node="gke-prod-pool-2-1c7e0d3a-k9zt", node_ip="10.128.0.44", pod_ip="10.60.2.17",
                        created="2026-11-21T13:40:09Z", labels={"app": "catalog-api", "pod-template-hash": "5f6d8c7b9d"},
                        owner=("apps/v1", "ReplicaSet", "catalog-api-5f6d8c7b9d", ctx.rnd.uid()))]

    crash_case(case="dns-resolution", seed=141, now=now, ns="catalog", app="search-indexer", rs_hash="9b6c4f7d8",
               pod_sfx="fp2sl", make_ctr=mk, node="gke-prod-pool-2-1c7e0d3a-w4dn", nip="10.128.0.51", pip="10.60.4.23",
               created="2026-11-23T20:49:27Z", run_secs=0.7, log_fn=log, healthy_log_fn=hlog,
               emit_kw={"json_pods": True}, extra=extra, formats=["json-list", "log"], k8s="1.30",
               log_name="search-indexer-9b6c4f7d8-fp2sl_previous.log", healthy_log_name="search-indexer-9b6c4f7d8-fp2sl.log",
               rc={"object": "Pod/catalog/{pod}", "cause": "dns-resolution",
                   "mentions": ["opensearch-master.search.svc.cluster.local"]},
               title_inc="search-indexer crash-loops: getaddrinfo ENOTFOUND for its OpenSearch host",
               readme_inc="""
Files: `pods.json` (`kubectl get pods -n catalog -o json`, two pods) and
`search-indexer-9b6c4f7d8-fp2sl_previous.log`.

The OpenSearch Helm release was reinstalled under a new name; its Service is now
`opensearch-cluster-master`. The indexer still points at `opensearch-master.search.svc.cluster.local`,
which no longer resolves (`getaddrinfo ENOTFOUND`); Node exits 1 on the unhandled rejection. The other
pod (`catalog-api`) is healthy and unrelated. Capture 21:14:50; JSON timestamps are absolute.
""",
               readme_ok="""
Files: `pods.json` and `search-indexer-9b6c4f7d8-fp2sl.log`. `OPENSEARCH_URL` names the new Service; the
indexer connects and indexes. No incident.
""")


CASES = [missing_env_var, tls_certificate, shell_syntax_error, dependency_unreachable, dns_resolution]


def permission_denied():
    now = "2026-10-14T08:31:02Z"

    def mk(tw):
        return ctr("thumbnailer", "docker.io/brightfold/thumbnailer:3.0.2", ports=[(8000, "http")],
                   env=[env("MEDIA_ROOT", "/srv/media"), env("CACHE_DIR", "/srv/media/cache"), env("WORKERS", "4")],
                   resources=res("200m", "512Mi", "2", "1Gi"),
                   mounts=[{"name": "media", "mountPath": "/srv/media"}])

    vols = [{"name": "media", "persistentVolumeClaim": {"claimName": "media-store"}}]

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x), "py")
        return (f"[{t(0.9)}] [1] [INFO] Starting gunicorn 23.0.0\n"
                f"[{t(0.9)}] [1] [INFO] Listening at: http://0.0.0.0:8000 (1)\n"
                f"[{t(0.91)}] [1] [INFO] Using worker: sync\n"
                f"[{t(0.93)}] [7] [INFO] Booting worker with pid: 7\n"
                f"[{t(1.6)}] [7] [ERROR] Exception in worker process\n"
                "Traceback (most recent call last):\n"
                '  File "/usr/local/lib/python3.12/site-packages/gunicorn/arbiter.py", line 608, in spawn_worker\n'
                "    worker.init_process()\n"
                '  File "/usr/local/lib/python3.12/site-packages/gunicorn/workers/base.py", line 135, in init_process\n'
                "    self.load_wsgi()\n"
                '  File "/usr/local/lib/python3.12/site-packages/gunicorn/workers/base.py", line 147, in load_wsgi\n'
                "    self.wsgi = self.app.wsgi()\n"
                '  File "/app/thumbnailer/app.py", line 31, in create_app\n'
                "    cache = DiskCache(os.environ[\"CACHE_DIR\"])\n"
                '  File "/app/thumbnailer/cache.py", line 22, in __init__\n'
                "    self._lock = open(os.path.join(root, \"index.lock\"), \"a+\")\n"
                "PermissionError: [Errno 13] Permission denied: '/srv/media/cache/index.lock'\n"
                f"[{t(1.61)}] [7] [INFO] Worker exiting (pid: 7)\n"
                f"[{t(1.7)}] [1] [ERROR] Worker (pid:7) exited with code 3\n"
                f"[{t(1.7)}] [1] [ERROR] Shutting down: Master\n"
                f"[{t(1.7)}] [1] [ERROR] Reason: Worker failed to boot.\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x), "py")
        return (f"[{t(0.9)}] [1] [INFO] Starting gunicorn 23.0.0\n"
                f"[{t(0.9)}] [1] [INFO] Listening at: http://0.0.0.0:8000 (1)\n"
                f"[{t(0.93)}] [7] [INFO] Booting worker with pid: 7\n"
                f"[{t(0.95)}] [8] [INFO] Booting worker with pid: 8\n"
                f"[{t(0.97)}] [9] [INFO] Booting worker with pid: 9\n"
                f"[{t(0.99)}] [10] [INFO] Booting worker with pid: 10\n")

    def post(d, ctx, p, tw):
        pass

    crash_case(case="permission-denied", seed=151, now=now, ns="media", app="thumbnailer", rs_hash="66f8d9c754",
               pod_sfx="vb7kq", make_ctr=mk, node="node-b2", nip="172.20.4.12", pip="10.233.68.140",
               created="2026-10-14T08:12:44Z", run_secs=1.8, exit_code=3, volumes=vols, log_fn=log,
               healthy_log_fn=hlog, emit_kw={"describe_version": "1.19"}, formats=["describe-old", "log"],
               k8s="1.19", runtime="docker",
               healthy_kw={"pod_kwargs": {"extra_spec": {"securityContext": {"fsGroup": 10001}}}},
               rc={"object": "Pod/media/{pod}", "cause": "permission-denied", "mentions": ["/srv/media/cache"],
                   "caused_by": "PersistentVolumeClaim/media/media-store"},
               title_inc="thumbnailer crash-loops: Permission denied on /srv/media/cache",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.19 layout: events `From` is `kubelet, <node>`, the scheduler's
event age is `<unknown>`; Docker runtime) and `previous.log`.

The image was rebuilt to run as a non-root user (uid 10001), but the `media-store` volume's
`cache/` directory is owned by root, so opening `/srv/media/cache/index.lock` fails with
`PermissionError: [Errno 13]`. gunicorn's worker cannot boot and the master exits 3.
Capture 08:31:02 (implied by the ages and the log).
""",
               readme_ok="""
Files: `describe-pod.txt` (kubectl 1.19) and `current.log`. Same pod spec with `fsGroup` set, the
workers boot. No incident.
""")


def app_panic_go():
    now = "2026-11-09T12:02:57Z"

    def mk(tw):
        return ctr("router", "ghcr.io/anvilworks/telemetry-router:1.12.0", ports=[(4317, "otlp-grpc"), (8888, "metrics")],
                   env=[env("ROUTER_CONFIG", "/etc/router/routes.yaml")], resources=res("300m", "256Mi", None, "768Mi"),
                   mounts=[{"name": "routes", "mountPath": "/etc/router", "readOnly": True}],
                   liveness=http_probe("/healthz", 8888, period=15))

    vols = [{"name": "routes", "configMap": {"name": "telemetry-router-routes", "defaultMode": 420}}]

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x))
        return (f'time={t(0.01)} level=INFO msg="telemetry-router starting" version=1.12.0 go=go1.23.3\n'
                f'time={t(0.02)} level=INFO msg="loaded routes" file=/etc/router/routes.yaml routes=14\n'
                f'time={t(0.05)} level=INFO msg="otlp grpc listening" addr=:4317\n'
                f'time={t(3.8)} level=WARN msg="route has no exporter" route=tenant-b.logs\n'
                "panic: runtime error: invalid memory address or nil pointer dereference\n"
                "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x1a4f2c6]\n\n"
                "goroutine 214 [running]:\n"
                "github.com/anvilworks/telemetry-router/internal/route.(*Table).Dispatch(0xc0003a2f00, {0x2a3c1e8, 0xc000ff4a80}, 0xc0012e6b40)\n"
                "\t/src/internal/route/table.go:142 +0x126\n"
                "github.com/anvilworks/telemetry-router/internal/receiver.(*logsServer).Export(0xc00028c0f0, {0x2a3c1e8, 0xc000ff4a80}, 0xc0012e6b40)\n"
                "\t/src/internal/receiver/logs.go:58 +0x1b4\n"
                "go.opentelemetry.io/proto/otlp/collector/logs/v1._LogsService_Export_Handler({0x22f4a40, 0xc00028c0f0}, {0x2a3c1e8, 0xc000ff4a80}, 0xc000b1e180, 0x0)\n"
                "\t/go/pkg/mod/go.opentelemetry.io/proto/otlp@v1.3.1/collector/logs/v1/logs_service_grpc.pb.go:127 +0x1a7\n"
                "google.golang.org/grpc.(*Server).processUnaryRPC(0xc0001d8800, {0x2a3c1e8, 0xc000ff49f0}, 0xc000c3e300, 0xc0002b84e0, 0x3c2a7a0, 0x0)\n"
                "\t/go/pkg/mod/google.golang.org/grpc@v1.67.1/server.go:1394 +0xe2b\n"
                "created by google.golang.org/grpc.(*Server).serveStreams.func2 in goroutine 198\n"
                "\t/go/pkg/mod/google.golang.org/grpc@v1.67.1/server.go:1029 +0x139\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x))
        return (f'time={t(0.01)} level=INFO msg="telemetry-router starting" version=1.12.1 go=go1.23.3\n'
                f'time={t(0.02)} level=INFO msg="loaded routes" file=/etc/router/routes.yaml routes=14\n'
                f'time={t(0.05)} level=INFO msg="otlp grpc listening" addr=:4317\n'
                f'time={t(3.8)} level=WARN msg="route has no exporter, dropping" route=tenant-b.logs\n'
                f'time={t(60.0)} level=INFO msg="export stats" logs_in=18234 logs_out=17702 dropped=532\n')

    def mk2(tw):
        c = mk(tw)
        if tw:
            c["image"] = "ghcr.io/anvilworks/telemetry-router:1.12.1"
        return c

    crash_case(case="app-panic", seed=161, now=now, ns="observability", app="telemetry-router", rs_hash="5c7bb9d46f",
               pod_sfx="hx9pc", make_ctr=mk2, node="k3s-agent-2", nip="10.0.20.12", pip="10.42.2.77",
               created="2026-11-09T11:27:40Z", run_secs=lambda i: 3.9 + (i % 3) * 1.7, exit_code=2, volumes=vols,
               log_fn=log, healthy_log_fn=hlog, formats=["describe-new", "log"], k8s="1.31",
               rc={"object": "Pod/observability/{pod}", "cause": "app-panic",
                   "mentions": ["nil pointer dereference"]},
               title_inc="telemetry-router crash-loops on a Go nil-pointer panic",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.31) and `previous.log`.

Version 1.12.0 dereferences a nil exporter for a route that has none (`tenant-b.logs`); the first
log export on that route panics (`invalid memory address or nil pointer dereference`) and the Go
runtime exits 2 a few seconds after each start. Capture 12:02:57 (implied).
""",
               readme_ok="""
Files: `describe-pod.txt` and `current.log`. 1.12.1 drops records for routes without an exporter
and keeps running. No incident.
""")


def app_panic_python():
    now = "2026-12-01T07:19:26Z"

    def mk(tw):
        return ctr("renderer", "europe-west4-docker.pkg.dev/quillmark-prod/billing/invoice-renderer:2024.11.3",
                   ports=[(8080, "http")], env=[env("TENANT_HEADER", "X-Tenant"), env("TEMPLATES_BUCKET", "gs://quillmark-invoice-templates")],
                   resources=res("250m", "384Mi", None, "768Mi"))

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x), "py")
        return (f"{t(0.7)} INFO  renderer.app: invoice-renderer 2024.11.3 starting, 2 worker threads\n"
                f"{t(1.3)} INFO  renderer.templates: warming template cache from gs://quillmark-invoice-templates\n"
                "Traceback (most recent call last):\n"
                '  File "/app/renderer/__main__.py", line 4, in <module>\n'
                "    main()\n"
                '  File "/app/renderer/app.py", line 88, in main\n'
                "    cache.warm(settings.templates_bucket)\n"
                '  File "/app/renderer/templates.py", line 57, in warm\n'
                "    self._by_tenant[meta[\"tenant_id\"]].append(blob.name)\n"
                "                    ~~~~^^^^^^^^^^^^^\n"
                "KeyError: 'tenant_id'\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x), "py")
        return (f"{t(0.7)} INFO  renderer.app: invoice-renderer 2024.11.3 starting, 2 worker threads\n"
                f"{t(1.3)} INFO  renderer.templates: warming template cache from gs://quillmark-invoice-templates\n"
                f"{t(2.9)} INFO  renderer.templates: 61 templates cached for 17 tenants\n"
                f"{t(3.0)} INFO  uvicorn.error: Uvicorn running on http://0.0.0.0:8080 (Press CTRL+C to quit)\n")

    crash_case(case="app-panic-python", seed=171, now=now, ns="billing", app="invoice-renderer", rs_hash="7b9f5d6c48",
               pod_sfx="sn5jt", make_ctr=mk, node="gke-quill-prod-default-8e2b61c0-xq1m", nip="10.164.0.23",
               pip="10.8.1.54", created="2026-12-01T06:58:10Z", run_secs=3.1, exit_code=1, log_fn=log,
               healthy_log_fn=hlog, emit_kw={"get_events": True, "events_name": "events.txt"},
               formats=["events-get", "log"], k8s="1.30",
               log_name="invoice-renderer-7b9f5d6c48-sn5jt.previous.log",
               rc={"object": "Pod/billing/{pod}", "cause": "app-panic", "mentions": ["KeyError: 'tenant_id'"]},
               title_inc="invoice-renderer crash-loops on a Python KeyError at start-up",
               readme_inc="""
Files: `events.txt` (`kubectl get events -n billing`) and
`invoice-renderer-7b9f5d6c48-sn5jt.previous.log` (`kubectl logs --previous`).

A template uploaded without `tenant_id` metadata makes the cache warm-up raise
`KeyError: 'tenant_id'`; Python exits 1 three seconds after each start. Only the event table and
the log were saved; the events show the restarts and the back-off, the log shows why. Capture
07:19:26 (not printed; ages relative to it).
""",
               readme_ok="""
Files: `events.txt` and `current.log`. The pod was (re)created 20 minutes before the capture after a
node upgrade; the events show one clean pull/create/start, the log shows the cache warmed. No incident.
""", healthy_created="2026-12-01T06:59:30Z", healthy_events=True)


def unknown_flag():
    now = "2026-11-16T19:52:11Z"

    def mk(tw):
        if tw:
            return ctr("statsrelay", "docker.io/kestrelops/statsrelay:1.9.4",
                       args=["-listen=:8125", "-metrics-port=9102", "-upstream=statsd-aggregator.metrics:8125"],
                       ports=[(8125, "statsd"), (9102, "metrics")], resources=res("50m", "32Mi", None, "64Mi"))
        return ctr("statsrelay", "docker.io/kestrelops/statsrelay:2.0.0",
                   args=["-listen=:8125", "-metrics-port=9102", "-upstream=statsd-aggregator.metrics:8125"],
                   ports=[(8125, "statsd"), (9102, "metrics")], resources=res("50m", "32Mi", None, "64Mi"))

    def log(p, s, f):
        return ("flag provided but not defined: -metrics-port\n"
                "Usage of /usr/local/bin/statsrelay:\n"
                "  -listen string\n"
                "    \taddress to accept statsd packets on (default \":8125\")\n"
                "  -log-level string\n"
                "    \tlog level: debug, info, warn, error (default \"info\")\n"
                "  -telemetry-addr string\n"
                "    \taddress for the Prometheus /metrics endpoint (default \":9102\")\n"
                "  -upstream value\n"
                "    \tupstream statsd host:port (repeatable)\n")

    def hlog(p, s):
        return (f"{ts_log(s, 'go')} statsrelay 1.9.4 listening on :8125 (udp), metrics on :9102\n"
                f"{ts_log(add(s, 0.01), 'go')} upstream statsd-aggregator.metrics:8125 resolved to 10.96.201.14:8125\n")

    crash_case(case="unknown-command-or-flag", seed=181, now=now, ns="metrics", app="statsrelay", rs_hash="865fcdb94",
               pod_sfx="z7c2r", make_ctr=mk, node="worker-a-03", nip="10.20.1.33", pip="10.244.5.209",
               created="2026-11-16T19:40:37Z", run_secs=0.02, exit_code=2, log_fn=log, healthy_log_fn=hlog,
               emit_kw={"describe": True, "get_events": True}, formats=["describe-new", "events-get", "log"], k8s="1.32",
               rc={"object": "Pod/metrics/{pod}", "cause": "unknown-command-or-flag", "mentions": ["-metrics-port"]},
               title_inc="statsrelay crash-loops after the 2.0.0 upgrade: flag -metrics-port no longer exists",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.32), `events.txt` (`kubectl get events -n metrics`) and `previous.log`.

Renovate bumped the image from 1.9.4 to 2.0.0, which renamed `-metrics-port` to `-telemetry-addr`.
The Go flag package rejects the old flag (`flag provided but not defined: -metrics-port`), prints the
usage and exits 2 immediately. Capture 19:52:11 (implied by ages).
""",
               readme_ok="""
Files: `describe-pod.txt`, `events.txt` (no events left in the namespace within the last hour: the
file holds only the `No resources found` line kubectl prints) and `current.log`. The pod runs 1.9.4. No incident.
""", post=lambda d, ctx, p, tw: write(d, "events.txt", "No resources found in metrics namespace.\n") if tw else None)


def command_exits():
    now = "2026-11-05T11:37:48Z"

    def mk(tw):
        if tw:
            return ctr("migrate", "registry.digitalocean.com/harborlight/warehouse-api:4.8.0",
                       command=["/app/bin/warehouse-api"], args=["serve", "--port=8080"], ports=[(8080, "http")],
                       resources=res("200m", "256Mi", None, "512Mi"))
        return ctr("migrate", "registry.digitalocean.com/harborlight/warehouse-api:4.8.0",
                   command=["/app/bin/warehouse-api"], args=["migrate", "up"], ports=[(8080, "http")],
                   resources=res("200m", "256Mi", None, "512Mi"))

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x), "iso")
        return (f"{t(0.1)} INF warehouse-api 4.8.0: running migrations against postgres://warehouse@warehouse-db:5432/warehouse\n"
                f"{t(0.3)} INF migration 0041_add_bin_capacity.sql: already applied\n"
                f"{t(0.3)} INF migration 0042_backfill_sku_weights.sql: already applied\n"
                f"{t(0.31)} INF database is up to date (version 42), nothing to do\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x), "iso")
        return (f"{t(0.1)} INF warehouse-api 4.8.0 listening on :8080\n"
                f"{t(5.2)} INF GET /healthz 200 0.4ms\n")

    crash_case(case="command-exits", seed=191, now=now, ns="warehouse", app="warehouse-api", rs_hash="74d9c8b5f6",
               pod_sfx="wq4bn", make_ctr=mk, node="pool-harbor-7xk2q", nip="10.114.0.5", pip="10.244.1.143",
               created="2026-11-05T11:05:29Z", run_secs=0.4, exit_code=0, reason="Completed", log_fn=log,
               healthy_log_fn=hlog, formats=["describe-new", "log"], k8s="1.31",
               rc={"object": "Pod/warehouse/{pod}", "cause": "command-exits", "mentions": ["Completed", "migrate"]},
               title_inc="warehouse-api pod restarts forever: its command is a one-shot migration that exits 0",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.31) and `previous.log`.

Someone changed the Deployment's args from `serve --port=8080` to `migrate up` to run a migration.
The migration finishes (`nothing to do`) and the process exits 0 (`Reason: Completed`, `Exit Code: 0`);
with `restartPolicy: Always` the kubelet restarts it and backs off: CrashLoopBackOff without any error.
Capture 11:37:48 (implied).
""",
               readme_ok="""
Files: `describe-pod.txt` and `current.log`. The args are back to `serve`; the server keeps running. No incident.
""")


def app_error_exit():
    now = "2026-11-12T23:08:15Z"

    def mk(tw):
        return ctr("sync", "123456789012.dkr.ecr.us-east-2.amazonaws.com/ml/feature-store-sync:0.9.17",
                   args=["--source=s3://ridgeway-features/online/", "--dest=redis://feature-cache.ml:6379/0"],
                   resources=res("500m", "1Gi", None, "2Gi"), env=[env("AWS_REGION", "us-east-2")])

    crash_case(case="app-error-exit", seed=201, now=now, ns="ml", app="feature-store-sync", rs_hash="b7c5f8d69",
               pod_sfx="2vkx8", make_ctr=mk, node="ip-172-31-44-120.us-east-2.compute.internal", nip="172.31.44.120",
               pip="172.31.39.211", created="2026-11-12T22:41:03Z", run_secs=0.2, exit_code=1,
               log_fn=lambda p, s, f: "", healthy_log_fn=lambda p, s: (
                   f"{ts_log(add(s, 0.3))} sync: 41872 keys loaded from s3://ridgeway-features/online/\n"),
               formats=["describe-new", "log"], k8s="1.30", sa="feature-store-sync",
               rc={"object": "Pod/ml/{pod}", "cause": "app-error-exit", "mentions": ["exit code 1"]},
               title_inc="feature-store-sync exits 1 with no output",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.30) and `previous.log`, which is empty: `kubectl logs --previous`
printed nothing.

The process exits 1 about 0.2 s after each start without writing a line (the binary's stderr is
swallowed by a wrapper). Nothing in the inputs names a deeper cause: the honest diagnosis is an
application error exit (code 1) with no log, next step being to run the image by hand or raise its
verbosity. Capture 23:08:15 (implied).
""",
               readme_ok="""
Files: `describe-pod.txt` and `current.log`. The sync runs and logs its key count. No incident.
""")


CASES += [permission_denied, app_panic_go, app_panic_python, unknown_flag, command_exits, app_error_exit]


def oom_killed():
    now = "2026-11-21T15:47:30Z"
    import json as _json

    def mk(tw):
        return ctr("aggregator", "docker.io/loamstack/clickstream-aggregator:7.3.0", ports=[(8081, "http")],
                   env=[env("JAVA_OPTS", "-Xms256m -Xmx1536m" if not tw else "-Xms256m -XX:MaxRAMPercentage=70"),
                        env("KAFKA_BOOTSTRAP", "kafka-0.kafka-headless.streaming:9092"), env("WINDOW_MINUTES", "15")],
                   resources=res("500m", "512Mi", "1", "512Mi" if not tw else "2Gi"),
                   liveness=http_probe("/health/live", 8081, delay=30, period=10))

    def post(d, ctx, p, tw):
        if tw:
            write(d, "events.txt", "No events found in analytics namespace.\n")
            return
        # Prometheus range query the user saved next to the describe (not Kubernetes data)
        s0 = int(T("2026-11-21T15:17:30Z").timestamp())
        vals = []
        rnd = ctx.rnd
        att = p["_attempts"]
        for k in range(0, 1801, 30):
            t = s0 + k
            v = 0
            for (a, b) in att:
                if a.timestamp() <= t <= b.timestamp():
                    frac = (t - a.timestamp()) / max(1, (b.timestamp() - a.timestamp()))
                    v = int(210_000_000 + frac * (536_870_912 - 215_000_000) * (0.92 + 0.08 * rnd.random()))
            vals.append([t, str(v)])
        doc = {"status": "success", "data": {"resultType": "matrix", "result": [{
            "metric": {"container": "aggregator", "namespace": "analytics", "pod": p["metadata"]["name"],
                       "__name__": "container_memory_working_set_bytes", "image": "docker.io/loamstack/clickstream-aggregator:7.3.0",
                       "instance": "10.31.8.14:10250", "job": "kubelet", "metrics_path": "/metrics/cadvisor",
                       "node": "pool-highmem-u7x2p", "service": "kube-prometheus-stack-kubelet"},
            "values": vals}]}}
        write(d, "prometheus-query-range.json", _json.dumps(doc) + "\n")

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x), "spring")
        return (f"{t(2.1)} INFO  [main] c.l.c.AggregatorMain - clickstream-aggregator 7.3.0, window=15m, heap max=1536m\n"
                f"{t(4.0)} INFO  [main] o.a.k.c.c.KafkaConsumer - [Consumer clientId=agg-1, groupId=clickstream-agg] Subscribed to topic(s): clicks.v2\n"
                f"{t(60.2)} INFO  [window-1] c.l.c.WindowStore - open windows=15 sessions=412118 heapUsed=301M\n"
                f"{t(120.4)} INFO  [window-1] c.l.c.WindowStore - open windows=15 sessions=803554 heapUsed=377M\n"
                f"{t(180.5)} WARN  [window-1] c.l.c.WindowStore - session map above soft limit (1000000), evicting oldest window early\n"
                f"{t(181.0)} INFO  [window-1] c.l.c.WindowStore - open windows=14 sessions=1107230 heapUsed=419M\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x), "spring")
        return (f"{t(2.1)} INFO  [main] c.l.c.AggregatorMain - clickstream-aggregator 7.3.0, window=15m, heap max=1433m\n"
                f"{t(4.0)} INFO  [main] o.a.k.c.c.KafkaConsumer - [Consumer clientId=agg-1, groupId=clickstream-agg] Subscribed to topic(s): clicks.v2\n"
                f"{t(3600.2)} INFO  [window-1] c.l.c.WindowStore - open windows=15 sessions=1390210 heapUsed=1021M\n")

    def emitkw():
        return {"describe": True, "kubectl_events_tbl": True, "events_name": "events.txt"}

    crash_case(case="oom-killed", seed=211, now=now, ns="analytics", app="clickstream-aggregator", rs_hash="6d5f8bc97c",
               pod_sfx="r9m2x", make_ctr=mk, node="pool-highmem-u7x2p", nip="10.31.8.14", pip="10.244.9.36",
               created="2026-11-21T14:58:02Z", run_secs=lambda i: 188 + (i % 2) * 23, exit_code=137, reason="OOMKilled",
               log_fn=log, healthy_log_fn=hlog, emit_kw=emitkw(), force_waiting=False, post=post,
               formats=["describe-new", "events-kubectl", "log"], k8s="1.31",
               rc={"object": "Pod/analytics/{pod}", "cause": "oom-killed", "mentions": ["OOMKilled", "512Mi"]},
               title_inc="clickstream-aggregator is OOMKilled (exit 137) against its 512Mi limit",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.31), `events.txt` (`kubectl events -n analytics`),
`previous.log`, and `prometheus-query-range.json`, a Prometheus `query_range` answer for
`container_memory_working_set_bytes` that the user saved from Grafana: not Kubernetes data, the
reader should skip it (or at most use it as a hint).

The JVM is started with `-Xmx1536m` while the container's memory limit is 512Mi. The heap grows
with the session windows; after about three minutes the cgroup hits 512Mi and the kernel OOM
killer ends the process: `Last State: Terminated, Reason: OOMKilled, Exit Code: 137`. The
container restarts, back-off grows. Capture 15:47:30; the container is Running again at capture.
""",
               readme_ok="""
Files: `describe-pod.txt`, `events.txt` (`kubectl events` printed `No events found in analytics namespace.`)
and `current.log`. The limit is 2Gi and the heap is sized by `MaxRAMPercentage`; running for days. No incident.
""")


def segfault():
    now = "2026-10-29T05:12:44Z"

    def mk(tw):
        return ctr("tiler", "docker.io/meridianmaps/geo-tiler:5.1.0" if not tw else "docker.io/meridianmaps/geo-tiler:5.0.3",
                   command=["/entrypoint.sh"], ports=[(7070, "http")],
                   env=[env("TILER_CONFIG", "/etc/tiler/tiler.toml"), env("GDAL_CACHEMAX", "512")],
                   resources=res("1", "2Gi", "2", "4Gi"),
                   mounts=[{"name": "tiler-config", "mountPath": "/etc/tiler", "readOnly": True}])

    vols = [{"name": "tiler-config", "configMap": {"name": "geo-tiler", "defaultMode": 420}}]

    def log(p, s, f):
        t = lambda x: ts_log(add(s, x), "iso")
        return (f"[{t(0.02)}] [info] geo-tiler 5.1.0 (gdal 3.9.3, proj 9.5.0)\n"
                f"[{t(0.05)}] [info] reading config /etc/tiler/tiler.toml\n"
                f"[{t(0.4)}] [info] opening dataset /data/ortho/2026-q3.vrt (1183 tiles)\n"
                f"[{t(1.9)}] [info] building overview level 4\n"
                "/entrypoint.sh: line 14:     7 Segmentation fault      (core dumped) /opt/tiler/bin/geo-tiler --config \"$TILER_CONFIG\"\n")

    def hlog(p, s):
        t = lambda x: ts_log(add(s, x), "iso")
        return (f"[{t(0.02)}] [info] geo-tiler 5.0.3 (gdal 3.8.5, proj 9.4.1)\n"
                f"[{t(0.05)}] [info] reading config /etc/tiler/tiler.toml\n"
                f"[{t(0.4)}] [info] opening dataset /data/ortho/2026-q3.vrt (1183 tiles)\n"
                f"[{t(41.3)}] [info] overviews ready, serving on :7070\n")

    crash_case(case="segfault", seed=221, now=now, ns="maps", app="geo-tiler", rs_hash="d4f6b7c85",
               pod_sfx="k2jhd", make_ctr=mk, node="k8s-worker-12", nip="10.50.3.112", pip="10.244.12.57",
               created="2026-10-29T04:31:15Z", run_secs=2.2, exit_code=139, volumes=vols, log_fn=log,
               healthy_log_fn=hlog, emit_kw={"describe_version": "1.19"}, formats=["describe-old", "log"], k8s="1.18",
               runtime="docker",
               rc={"object": "Pod/maps/{pod}", "cause": "segfault", "mentions": ["139", "Segmentation fault"]},
               title_inc="geo-tiler 5.1.0 segfaults (exit 139) while building overviews",
               readme_inc="""
Files: `describe-pod.txt` (kubectl 1.18: `kubelet, <node>` sources, Docker runtime) and `previous.log`.

The 5.1.0 image links a GDAL build that crashes on the dataset's VRT; the tiler process dies with
SIGSEGV (`Exit Code: 139` = 128 + 11) about two seconds after each start, the entrypoint's shell
reports `Segmentation fault (core dumped)`. Capture 05:12:44 (implied).
""",
               readme_ok="""
Files: `describe-pod.txt` and `current.log`. Rolled back to 5.0.3, overviews build, serving. No incident.
""")


CASES += [oom_killed, segfault]
