"""probes family."""
from build import *  # noqa
from scen import *  # noqa
from k8sfmt import describe_pod, kubectl_get_events

F = "probes"


def readiness_503():
    case, now = "readiness-probe-failure", "2026-11-26T08:19:40Z"
    for tw in (False, True):
        ctx = Ctx(401 + tw, now, k8s="1.32")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h, sfx = "59d7c6b8f4", "n6wzr"
        pname = f"inventory-api-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"inventory-api-{h}", ctx.rnd.uid())
        lab = {"app.kubernetes.io/name": "inventory-api", "app.kubernetes.io/version": "6.4.0", "pod-template-hash": h}
        c = ctr("api", "ghcr.io/saltmarsh-retail/inventory-api:6.4.0", ports=[(8080, "http")],
                env=[env("SEARCH_URL", "http://inventory-search.retail.svc:9200"), env("READINESS_REQUIRE_SEARCH", "true")],
                resources=res("250m", "384Mi", None, "768Mi"),
                liveness=http_probe("/livez", 8080, delay=10, period=10),
                readiness=http_probe("/readyz", 8080, delay=5, period=10, failure=3))
        node_, nip, pip = "worker-pool-b-4", "10.70.2.14", "10.70.130.33"
        if not tw:
            created = "2026-11-26T07:44:12Z"
            start = add(created, 3.7)
            st = cstatus(ctx.rnd, "api", c["image"], state=running(start), ready=False, restarts=0, started=True)
            conds = running_conditions(created, created, not_ready_since=created, containers=["api"], k8s=ctx.k8s)
            p = pod(ctx.rnd, "retail", pname, [c], created=created, labels=lab, owner=owner, node=node_, node_ip=nip,
                    pod_ip=pip, conditions=conds, statuses=[st])
            ctx.scheduled(p, node_, created)
            fp = "spec.containers{api}"
            ctx.ev.add(p, "Pulling", f'Pulling image "{c["image"]}"', host=node_, first=add(created, 1), field_path=fp)
            ctx.ev.add(p, "Pulled", ctx.m_pulled_fresh(c["image"], 1.9, 97_215_480), host=node_, first=add(created, 3), field_path=fp)
            ctx.ev.add(p, "Created", ctx.m_created("api"), host=node_, first=add(created, 3.4), field_path=fp)
            ctx.ev.add(p, "Started", ctx.m_started("api"), host=node_, first=start, field_path=fp)
            n = int((ctx.now - add(start, 5)).total_seconds() // 10)
            ctx.ev.add(p, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", type_="Warning",
                       host=node_, first=add(start, 15), last=add(ctx.now, -6), count=n, field_path=fp)
            log = []
            t0 = start
            log.append(f'{{"time":"{ts_log(add(t0, 0.6))}","level":"INFO","msg":"inventory-api 6.4.0 listening","addr":":8080"}}')
            log.append(f'{{"time":"{ts_log(add(t0, 0.7))}","level":"WARN","msg":"search backend check failed","url":"http://inventory-search.retail.svc:9200/_cluster/health","error":"cluster health is red (2 of 6 primary shards unassigned)"}}')
            k = 1
            t = add(t0, 15)
            while t < add(ctx.now, -60):
                log.append(f'{{"time":"{ts_log(add(t, 0.002))}","level":"INFO","msg":"request","method":"GET","path":"/readyz","status":503,"duration_ms":4,"remote":"{nip}:{41000 + k * 37 % 9000}","reason":"search backend not ready: cluster health is red"}}')
                t = add(t, 10)
                k += 1
            log = log[:2] + log[-25:]
            write(d, "inventory-api.log", "\n".join(log) + "\n")
        else:
            created = "2026-11-26T08:05:19Z"
            start = add(created, 3.2)
            st = cstatus(ctx.rnd, "api", c["image"], state=running(start), ready=True, restarts=0, started=True)
            conds = running_conditions(created, created, ready_at=add(start, 26), k8s=ctx.k8s)
            p = pod(ctx.rnd, "retail", pname, [c], created=created, labels=lab, owner=owner, node=node_, node_ip=nip,
                    pod_ip=pip, conditions=conds, statuses=[st])
            ctx.scheduled(p, node_, created)
            fp = "spec.containers{api}"
            ctx.ev.add(p, "Pulled", ctx.m_present(c["image"]), host=node_, first=add(created, 2.9), field_path=fp)
            ctx.ev.add(p, "Created", ctx.m_created("api"), host=node_, first=add(created, 3.0), field_path=fp)
            ctx.ev.add(p, "Started", ctx.m_started("api"), host=node_, first=start, field_path=fp)
            ctx.ev.add(p, "Unhealthy", f'Readiness probe failed: Get "http://{pip}:8080/readyz": dial tcp {pip}:8080: connect: connection refused',
                       type_="Warning", host=node_, first=add(start, 5.4), field_path=fp)
            log = [f'{{"time":"{ts_log(add(start, 6.1))}","level":"INFO","msg":"inventory-api 6.4.0 listening","addr":":8080"}}',
                   f'{{"time":"{ts_log(add(start, 6.3))}","level":"INFO","msg":"search backend healthy","status":"green"}}',
                   f'{{"time":"{ts_log(add(start, 15.4))}","level":"INFO","msg":"request","method":"GET","path":"/readyz","status":200,"duration_ms":3,"remote":"{nip}:52210"}}']
            write(d, "inventory-api.log", "\n".join(log) + "\n")
        emit(d, ctx, describe=p)
        if not tw:
            case_labels(d, F, ["describe-new", "log"], True, now, {
                "object": f"Pod/retail/{pname}", "cause": "readiness-probe-failure", "mentions": ["503", "/readyz"]})
            readme(d, "inventory-api Running but never Ready: /readyz answers 503", """
Files: `describe-pod.txt` (kubectl 1.32) and `inventory-api.log` (`kubectl logs`, tail).

The readiness endpoint requires the search backend (`READINESS_REQUIRE_SEARCH=true`), whose
cluster health is red; `/readyz` returns 503 on every probe. The container runs (0 restarts) but
the pod stays `Ready=False` and out of the Service endpoints. The readiness probe failure is the
incident the user sees; the log names the backend state behind it. Capture 08:19:40 (implied).
""")
        else:
            case_labels(d, F, ["describe-new", "log"], False, now)
            readme(d, "inventory-api: one readiness failure during start-up, then Ready (twin)", """
Files: `describe-pod.txt` and `inventory-api.log`. The first probe (5 s after start) hit the port
before the server listened (`connection refused`, one event); the next passed and the pod has been
Ready since. A start-up transient, not an incident.
""")


def liveness_kill():
    case, now = "liveness-probe-failure", "2026-11-14T22:40:03Z"
    for tw in (False, True):
        ctx = Ctx(411 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h, sfx = "c8b6d4f57", "pt4hz"
        pname = f"geo-search-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"geo-search-{h}", ctx.rnd.uid())
        c = ctr("search", "docker.io/cairnlabs/geo-search:3.2.7", ports=[(9090, "http")],
                resources=res("1", "2Gi", None, "2Gi"), liveness=http_probe("/healthz", 9090, delay=20, timeout=2, period=10, failure=3))
        node_, pip = "nodepool-std-7", "10.42.3.17"
        p = pod(ctx.rnd, "discovery", pname, [c], created="2026-11-14T21:52:18Z", labels={"app": "geo-search", "pod-template-hash": h},
                owner=owner, node=node_, node_ip="10.1.4.7", pod_ip=pip, conditions=[], statuses=[])
        fp = "spec.containers{search}"
        ev = ctx.ev
        if not tw:
            ctx.scheduled(p, node_, "2026-11-14T21:52:18Z")
            ev.add(p, "Pulling", f'Pulling image "{c["image"]}"', host=node_, first="2026-11-14T21:52:19Z", field_path=fp)
            ev.add(p, "Pulled", ctx.m_pulled_fresh(c["image"], 6.2, 412_884_190), host=node_, first="2026-11-14T21:52:26Z", field_path=fp)
            ev.add(p, "Unhealthy", f'Liveness probe failed: Get "http://{pip}:9090/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
                   type_="Warning", host=node_, first="2026-11-14T21:58:51Z", last="2026-11-14T22:38:41Z", count=18, field_path=fp)
            ev.add(p, "Killing", "Container search failed liveness probe, will be restarted", host=node_,
                   first="2026-11-14T21:59:11Z", last="2026-11-14T22:39:01Z", count=6, field_path=fp)
            ev.add(p, "Pulled", ctx.m_present(c["image"]), host=node_, first="2026-11-14T21:59:42Z", last="2026-11-14T22:39:32Z", count=6, field_path=fp)
            ev.add(p, "Created", ctx.m_created("search"), host=node_, first="2026-11-14T21:52:26Z", last="2026-11-14T22:39:32Z", count=7, field_path=fp)
            ev.add(p, "Started", ctx.m_started("search"), host=node_, first="2026-11-14T21:52:27Z", last="2026-11-14T22:39:33Z", count=7, field_path=fp)
            ev.add(p, "BackOff", ctx.m_backoff("search", p), type_="Warning", host=node_, first="2026-11-14T22:21:40Z",
                   last="2026-11-14T22:30:02Z", count=9, field_path=fp)
            write(d, "events.txt", kubectl_get_events(ev.items, ctx.now))
            case_labels(d, F, ["events-get"], True, now, {
                "object": f"Pod/discovery/{pname}", "cause": "liveness-probe-failure", "mentions": ["/healthz", "liveness"]})
            readme(d, "geo-search restarted by its liveness probe (only the event table was saved)", """
File: `events.txt` (`kubectl get events -n discovery`), nothing else.

After warming its index the service's `/healthz` handler blocks behind a rebuild lock; the probe's
2 s timeout expires (`context deadline exceeded (Client.Timeout exceeded while awaiting headers)`),
three failures in a row make the kubelet kill the container (`Container search failed liveness
probe, will be restarted`), six times in 40 minutes, with back-off in between. Capture 22:40:03.
""")
        else:
            ctx.scheduled(p, node_, "2026-11-14T22:05:48Z")
            ev.add(p, "Pulled", ctx.m_present(c["image"]), host=node_, first="2026-11-14T22:05:49Z", field_path=fp)
            ev.add(p, "Created", ctx.m_created("search"), host=node_, first="2026-11-14T22:05:49Z", field_path=fp)
            ev.add(p, "Started", ctx.m_started("search"), host=node_, first="2026-11-14T22:05:50Z", field_path=fp)
            ev.add(p, "Unhealthy", f'Liveness probe failed: Get "http://{pip}:9090/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
                   type_="Warning", host=node_, first="2026-11-14T22:21:11Z", field_path=fp)
            write(d, "events.txt", kubectl_get_events(ev.items, ctx.now))
            case_labels(d, F, ["events-get"], False, now)
            readme(d, "geo-search: a single slow liveness probe, no restart (twin)", """
File: `events.txt`. One liveness probe timed out during a compaction at 22:21; the next probes passed
(the threshold is 3), no `Killing` event, no restart. Not an incident.
""")


def startup_probe():
    case, now = "startup-probe-failure", "2026-12-03T06:58:27Z"
    for tw in (False, True):
        ctx = Ctx(421 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        pname = "keycloak-0"
        ss_uid = ctx.rnd.uid()
        owner = ("apps/v1", "StatefulSet", "keycloak", ss_uid)
        fail = 6 if not tw else 30
        c = ctr("keycloak", "quay.io/keycloak/keycloak:26.0.7", args=["start", "--optimized"],
                ports=[(8080, "http"), (9000, "management")],
                env=[env("KC_DB", "postgres"), env("KC_DB_URL", "jdbc:postgresql://keycloak-db:5432/keycloak"),
                     env("KC_HOSTNAME", "sso.brackenfield.org"), env("KC_HEALTH_ENABLED", "true"),
                     env("JAVA_OPTS_KC_HEAP", "-XX:MaxRAMPercentage=70")],
                resources=res("500m", "1Gi", "1", "2Gi"),
                startup=http_probe("/health/started", 9000, delay=0, timeout=1, period=5, failure=fail),
                liveness=http_probe("/health/live", 9000, period=10),
                readiness=http_probe("/health/ready", 9000, period=10))
        lab = {"app": "keycloak", "apps.kubernetes.io/pod-index": "0", "controller-revision-hash": "keycloak-6b9d8c7f44",
               "statefulset.kubernetes.io/pod-name": "keycloak-0"}
        node_, nip, pip = "k8s-iam-w2", "10.30.1.22", "10.244.4.19"
        fp = "spec.containers{keycloak}"
        if not tw:
            created = "2026-12-03T06:31:05Z"
            p = crashloop(ctx, ns="iam", pod_name=pname, container=c, node=node_, node_ip=nip, pod_ip=pip,
                          created=created, run_secs=31.0, exit_code=143, reason="Error", owner=owner, labels=lab,
                          force_waiting=False)
            # kubelet kills it: replace BackOff-only story with Unhealthy + Killing events
            att = p["_attempts"]
            n_kills = len(att) - 1 if not p["_in_backoff"] else len(att)
            ctx.ev.add(p, "Unhealthy", f'Startup probe failed: Get "http://{pip}:9000/health/started": dial tcp {pip}:9000: connect: connection refused',
                       type_="Warning", host=node_, first=add(att[0][0], 5), last=add(att[-1][0], 20), count=6 * len(att) - 1, field_path=fp)
            ctx.ev.add(p, "Killing", "Container keycloak failed startup probe, will be restarted", host=node_,
                       first=add(att[0][0], 30.2), last=add(att[max(0, n_kills - 1)][0], 30.2), count=n_kills, field_path=fp)
            s = att[-1][0]
            log = (f"Appending additional Java properties to JAVA_OPTS\n"
                   f"Changes detected in configuration. Updating the server image.\n"
                   f"{ts_log(add(s, 14.2), 'iso').replace('T', ' ').replace('Z', '')},0 INFO  [io.quarkus.deployment.QuarkusAugmentor] (main) Quarkus augmentation completed in 12894ms\n"
                   f"Server configuration updated and persisted. Run the following command to review the configuration:\n\n"
                   f"\tkc.sh show-config\n\n"
                   f"Next time you run the server, just run:\n\n"
                   f"\tkc.sh start --optimized\n\n")
            write(d, "keycloak-0.log", log)
            write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname, "Pod"), ctx.now))
            case_labels(d, F, ["describe-new", "log"], True, now, {
                "object": "Pod/iam/keycloak-0", "cause": "startup-probe-failure",
                "mentions": ["startup probe", "/health/started"]})
            readme(d, "keycloak-0 killed by its startup probe before it finishes booting", """
Files: `describe-pod.txt` (kubectl 1.31) and `keycloak-0.log` (`kubectl logs keycloak-0`; the
container is in back-off at capture, so this is the output of the last attempt).

The StatefulSet runs `start --optimized`, but a changed build option makes Keycloak re-augment
its image at every start (about 40 s before it listens on 9000). The startup probe allows only
6 x 5 s = 30 s, so the kubelet kills the container (`failed startup probe, will be restarted`,
exit 143) every time before it is up. Capture 06:58:27 (implied).
""")
        else:
            created = "2026-12-03T06:44:51Z"
            start = add(created, 1.8)
            st = cstatus(ctx.rnd, "keycloak", c["image"], state=running(start), ready=True, restarts=0, started=True)
            conds = running_conditions(created, created, ready_at=add(start, 47), k8s=ctx.k8s)
            p = pod(ctx.rnd, "iam", pname, [c], created=created, labels=lab, owner=owner, node=node_, node_ip=nip,
                    pod_ip=pip, conditions=conds, statuses=[st])
            ctx.scheduled(p, node_, created)
            ctx.ev.add(p, "Pulled", ctx.m_present(c["image"]), host=node_, first=add(created, 1.1), field_path=fp)
            ctx.ev.add(p, "Created", ctx.m_created("keycloak"), host=node_, first=add(created, 1.3), field_path=fp)
            ctx.ev.add(p, "Started", ctx.m_started("keycloak"), host=node_, first=start, field_path=fp)
            ctx.ev.add(p, "Unhealthy", f'Startup probe failed: Get "http://{pip}:9000/health/started": dial tcp {pip}:9000: connect: connection refused',
                       type_="Warning", host=node_, first=add(start, 5), last=add(start, 40), count=8, field_path=fp)
            write(d, "keycloak-0.log", (
                f"{ts_log(add(start, 40.2)).replace('T', ' ').replace('Z', '')},0 INFO  [org.keycloak.quarkus.runtime.storage.infinispan.CacheManagerFactory] (main) Starting Infinispan embedded cache manager\n"
                f"{ts_log(add(start, 44.9)).replace('T', ' ').replace('Z', '')},0 INFO  [io.quarkus] (main) Keycloak 26.0.7 on JVM (powered by Quarkus 3.15.1) started in 43.002s. Listening on: http://0.0.0.0:8080. Management interface listening on http://0.0.0.0:9000.\n"
                f"{ts_log(add(start, 44.9)).replace('T', ' ').replace('Z', '')},0 INFO  [io.quarkus] (main) Profile prod activated.\n"))
            write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname, "Pod"), ctx.now))
            case_labels(d, F, ["describe-new", "log"], False, now)
            readme(d, "keycloak-0 slow start absorbed by a longer startup probe (twin)", """
Files: `describe-pod.txt` and `keycloak-0.log`. With `failureThreshold: 30` the startup probe
fails 8 times while Keycloak boots (43 s), then passes; the pod is Ready, 0 restarts. Expected
start-up behaviour, not an incident.
""")


def exec_probe_fail():
    case, now = "probe-exec-failure", "2026-11-08T17:25:19Z"
    for tw in (False, True):
        ctx = Ctx(431 + tw, now, k8s="1.29")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        pname = "pg-reporting-1"
        owner = ("apps/v1", "StatefulSet", "pg-reporting", ctx.rnd.uid())
        args = ["-c", "unix_socket_directories=/tmp", "-c", "max_connections=200"] if not tw else ["-c", "max_connections=200"]
        c = ctr("postgres", "docker.io/library/postgres:16.6-bookworm", args=args, ports=[(5432, "postgres")],
                env=[env("POSTGRES_USER", "reporting"), env("POSTGRES_PASSWORD", secret=("pg-reporting", "password")),
                     env("PGDATA", "/var/lib/postgresql/data/pgdata")],
                resources=res("500m", "1Gi", None, "2Gi"),
                readiness=exec_probe(["pg_isready", "-U", "reporting"], delay=5, timeout=3, period=10),
                mounts=[{"name": "data", "mountPath": "/var/lib/postgresql/data"}])
        vols = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-reporting-1"}}]
        lab = {"app": "pg-reporting", "apps.kubernetes.io/pod-index": "1", "controller-revision-hash": "pg-reporting-58f4c9d7b6",
               "statefulset.kubernetes.io/pod-name": "pg-reporting-1"}
        node_, nip, pip = "db-node-3", "172.16.8.13", "10.233.90.12"
        created = "2026-11-08T16:47:30Z" if not tw else "2026-11-02T10:12:08Z"
        start = add(created, 2.4)
        fp = "spec.containers{postgres}"
        if not tw:
            st = cstatus(ctx.rnd, "postgres", c["image"], state=running(start), ready=False, restarts=0, started=True)
            conds = running_conditions(created, created, not_ready_since=created, containers=["postgres"], k8s=ctx.k8s)
        else:
            st = cstatus(ctx.rnd, "postgres", c["image"], state=running(start), ready=True, restarts=0, started=True)
            conds = running_conditions(created, created, ready_at=add(start, 7), k8s=ctx.k8s)
        conds = [x for x in conds if x["type"] != "PodReadyToStartContainers"] if ctx.k8s < "1.29" else conds
        p = pod(ctx.rnd, "reporting", pname, [c], created=created, labels=lab, owner=owner, node=node_, node_ip=nip,
                pod_ip=pip, conditions=conds, statuses=[st], volumes=vols, extra_spec={"hostname": "pg-reporting-1", "subdomain": "pg-reporting"})
        if not tw:
            ctx.scheduled(p, node_, created)
            ctx.ev.add(p, "Pulled", ctx.m_present(c["image"]), host=node_, first=add(created, 1.9), field_path=fp)
            ctx.ev.add(p, "Created", ctx.m_created("postgres"), host=node_, first=add(created, 2.1), field_path=fp)
            ctx.ev.add(p, "Started", ctx.m_started("postgres"), host=node_, first=start, field_path=fp)
            n = int((ctx.now - add(start, 5)).total_seconds() // 10)
            ctx.ev.add(p, "Unhealthy", "Readiness probe failed: /var/run/postgresql:5432 - no response", type_="Warning",
                       host=node_, first=add(start, 5.2), last=add(ctx.now, -3), count=n, field_path=fp)
            t = lambda x, start=start: ts_log(add(start, x), "iso").replace("T", " ").replace("Z", " UTC")
            write(d, "pg-reporting-1.log", (
                f"\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n"
                f"{t(0.2)} [1] LOG:  starting PostgreSQL 16.6 (Debian 16.6-1.pgdg120+1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit\n"
                f"{t(0.2)} [1] LOG:  listening on IPv4 address \"0.0.0.0\", port 5432\n"
                f"{t(0.2)} [1] LOG:  listening on IPv6 address \"::\", port 5432\n"
                f"{t(0.21)} [1] LOG:  listening on Unix socket \"/tmp/.s.PGSQL.5432\"\n"
                f"{t(0.25)} [29] LOG:  database system was shut down at {t(-300.5)}\n"
                f"{t(0.3)} [1] LOG:  database system is ready to accept connections\n"))
        else:
            t = lambda x, start=start: ts_log(add(start, x), "iso").replace("T", " ").replace("Z", " UTC")
            write(d, "pg-reporting-1.log", (
                f"{t(0.21)} [1] LOG:  listening on Unix socket \"/var/run/postgresql/.s.PGSQL.5432\"\n"
                f"{t(0.3)} [1] LOG:  database system is ready to accept connections\n"
                f"{t(300.3)} [27] LOG:  checkpoint starting: time\n"
                f"{t(301.9)} [27] LOG:  checkpoint complete: wrote 17 buffers (0.1%); 0 WAL file(s) added, 0 removed, 0 recycled; write=1.604 s, sync=0.004 s, total=1.612 s; sync files=12, longest=0.002 s, average=0.001 s; distance=81 kB, estimate=81 kB; lsn=0/3A1F2D8, redo lsn=0/3A1F280\n"))
        emit(d, ctx, describe=p)
        if not tw:
            case_labels(d, F, ["describe-new", "log"], True, now, {
                "object": "Pod/reporting/pg-reporting-1", "cause": "probe-exec-failure",
                "mentions": ["pg_isready", "/var/run/postgresql"]})
            readme(d, "pg-reporting-1 never Ready: exec probe pg_isready looks for the socket in the wrong place", """
Files: `describe-pod.txt` (kubectl 1.29) and `pg-reporting-1.log`.

A tuning change added `-c unix_socket_directories=/tmp`; PostgreSQL now listens on
`/tmp/.s.PGSQL.5432`, but the readiness probe `pg_isready -U reporting` uses the default socket
directory and fails with exit code 2: `/var/run/postgresql:5432 - no response`. The database itself
is up; the pod stays unready and out of the Service. Capture 17:25:19.
""")
        else:
            case_labels(d, F, ["describe-new", "log"], False, now)
            readme(d, "pg-reporting-1 Ready (twin)", """
Files: `describe-pod.txt` and `pg-reporting-1.log`. Default socket directory; `pg_isready`
succeeds; Ready for six days (events expired). No incident.
""")


CASES = [readiness_503, liveness_kill, startup_probe, exec_probe_fail]
