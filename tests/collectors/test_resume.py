"""collectors.resume: the kubeapi collector's resume file (the real restart: tests/cluster/test_kubeapi_real.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from collectors.resume import ResumeFile, ResumePoint, stub

POD = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": []},
       "metadata": {"name": "p", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                    "creationTimestamp": "2026-12-05T01:00:00Z", "labels": {"a": "b"}}}


def test_a_stub_keeps_what_tells_a_change_or_a_deletion() -> None:
    assert stub(POD) == {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "namespace": "shop", "uid": "u1", "resourceVersion": "7", "creationTimestamp": "2026-12-05T01:00:00Z"}}


def test_points_are_kept_per_server_and_kind(tmp_path: Path) -> None:
    resume = ResumeFile(tmp_path / "state" / "kubeapi-resume.json")
    assert resume.load("https://a") == {}
    pods = ResumePoint(resource_version="9", known={"u1": stub(POD)})
    resume.save("https://a", {"pods": pods})
    resume.save("https://b", {"nodes": ResumePoint(resource_version="3")})
    assert resume.load("https://a") == {"pods": pods}
    assert resume.load("https://b") == {"nodes": ResumePoint(resource_version="3")}
    assert [p.name for p in resume.path.parent.iterdir()] == ["kubeapi-resume.json"]  # no temporary file left


def test_a_file_that_cannot_be_read_means_listing_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    resume = ResumeFile(tmp_path / "kubeapi-resume.json")
    resume.path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="collectors.resume"):
        assert resume.load("https://a") == {}
    assert "cannot be used" in caplog.text and "listing every kind again" in caplog.text
    resume.save("https://a", {"pods": ResumePoint(resource_version="1")})  # and it is written anew
    assert resume.load("https://a") == {"pods": ResumePoint(resource_version="1")}
