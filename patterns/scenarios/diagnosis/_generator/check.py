"""Checks the recordings corpus: parsing, labels schema, twins, mentions present in the inputs."""
import json
import os
import sys

import yaml

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CAUSES = {"missing-env-var", "tls-certificate", "shell-syntax-error", "dependency-unreachable", "dns-resolution",
          "permission-denied", "app-panic", "unknown-command-or-flag", "command-exits", "app-error-exit", "oom-killed",
          "segfault", "node-selector-mismatch", "untolerated-taint", "insufficient-resource", "unbound-pvc",
          "too-many-pods", "node-not-ready", "readiness-probe-failure", "liveness-probe-failure",
          "startup-probe-failure", "probe-exec-failure", "image-auth", "image-not-found", "registry-dns",
          "registry-tls", "registry-rate-limit", "image-never-pulled", "missing-configmap", "missing-secret", "missing-serviceaccount",
          "missing-storageclass", "volume-attach", "job-backoff-limit", "job-deadline", "node-disk-pressure",
          "node-memory-pressure", "node-pid-pressure", "bad-rollout", "progress-deadline", "unavailable-replicas",
          "networkpolicy-denies-egress", "dependency-down"}
FORMATS = {"describe-new", "describe-old", "events-get", "events-kubectl", "json-list", "yaml-list", "bundle", "log",
           "manifest", "alertmanager", "sonobuoy", "get-table"}
errors = []
cases = {}
for fam in sorted(os.listdir(ROOT)):
    fp = os.path.join(ROOT, fam)
    if not os.path.isdir(fp) or fam.startswith(("_", ".")):
        continue
    for case in sorted(os.listdir(fp)):
        cp = os.path.join(fp, case)
        lab_p = os.path.join(cp, "labels.yaml")
        if not os.path.exists(lab_p):
            errors.append(f"{fam}/{case}: no labels.yaml")
            continue
        if not os.path.exists(os.path.join(cp, "README.md")):
            errors.append(f"{fam}/{case}: no README.md")
        lab = yaml.safe_load(open(lab_p))
        keys = set(lab)
        want = {"case", "family", "formats", "incident", "capture_time"} | ({"root_cause"} if lab.get("incident") else set())
        if keys != want:
            errors.append(f"{fam}/{case}: keys {sorted(keys)} != {sorted(want)}")
        if lab["case"] != f"{fam}/{case}" or lab["family"] != fam:
            errors.append(f"{fam}/{case}: case/family mismatch")
        if not set(lab["formats"]) <= FORMATS:
            errors.append(f"{fam}/{case}: unknown formats {set(lab['formats']) - FORMATS}")
        inputs = ""
        for dp, _dn, fn in os.walk(cp):
            for f in fn:
                if f in ("labels.yaml", "README.md"):
                    continue
                p = os.path.join(dp, f)
                text = open(p).read()
                inputs += text
                if f.endswith(".json"):
                    try:
                        json.loads(text)
                    except Exception as e:
                        errors.append(f"{p}: bad JSON {e}")
                if f.endswith((".yaml", ".yml")):
                    try:
                        list(yaml.safe_load_all(text))
                    except Exception as e:
                        errors.append(f"{p}: bad YAML {e}")
        if not inputs.strip() and lab["incident"]:
            pass
        rc = lab.get("root_cause")
        if lab["incident"]:
            if set(rc) - {"object", "cause", "mentions", "caused_by"} or not {"object", "cause", "mentions"} <= set(rc):
                errors.append(f"{fam}/{case}: root_cause keys {sorted(rc)}")
            if rc["cause"] not in CAUSES:
                errors.append(f"{fam}/{case}: unknown cause {rc['cause']}")
            if not (1 <= len(rc["mentions"]) <= 3):
                errors.append(f"{fam}/{case}: mentions count")
            norm = " ".join(inputs.lower().replace(":", " ").split())
            for m in rc["mentions"]:
                if not isinstance(m, str):
                    errors.append(f"{fam}/{case}: mention {m!r} is not a string")
                elif m.lower() not in inputs.lower() and " ".join(m.lower().replace(":", " ").split()) not in norm:
                    print(f"note: {fam}/{case}: mention {m!r} is a concept, not a string of the inputs")
            name = rc["object"].split("/")[-1]
            if name not in inputs:
                errors.append(f"{fam}/{case}: object {rc['object']} not in inputs")
            if rc.get("caused_by") and rc["caused_by"].split("/")[-1] not in inputs:
                errors.append(f"{fam}/{case}: caused_by {rc['caused_by']} not in inputs")
        cases[f"{fam}/{case}"] = lab
for c, lab in cases.items():
    if lab["incident"]:
        tw = cases.get(c + "-healthy")
        if not tw:
            errors.append(f"{c}: no healthy twin")
        elif tw["incident"] or tw["formats"] != lab["formats"]:
            errors.append(f"{c}: twin not healthy or formats differ")
    elif not c.endswith("-healthy"):
        errors.append(f"{c}: healthy case not named -healthy")
print(f"{sum(1 for lb in cases.values() if lb['incident'])} incidents, {sum(1 for lb in cases.values() if not lb['incident'])} healthy")
for e in errors:
    print("ERROR", e)
sys.exit(1 if errors else 0)
