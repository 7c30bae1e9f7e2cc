"""The real sources the node collectors' tests run against (issue 16), installed from Debian's packages.

One module per collector (`kernel.py`, `dns.py`, `cri.py`, `etcd.py`, `journald.py`, `kubelet.py`,
`cni.py`), each with `PACKAGES` (Debian packages its tests need) and optionally `prepare()` (what
to build or unpack once, into `~/.cache/tapio`). `python -m nodesources.install` (run by `make test`)
installs and prepares them all. Tests skip, naming what is missing, only where a source cannot exist
here (no root, no apt). `browser.py` is no node source: the headless Chromium the incident pages are
tested in (issue 18), installed by the same step.
"""
