"""free_port: two callers on one machine never get the same port while the first has yet to bind it.

A real cluster's kubelet binds its ports seconds after they are picked; a port handed to another
caller meanwhile killed it with "address already in use" (CI of 434b531).
"""

from __future__ import annotations

import multiprocessing
import socket
from pathlib import Path

import pytest

from app import stack


@pytest.fixture
def claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(stack, "_CLAIMS", tmp_path / "claims")
    return tmp_path / "claims"


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _pick(claims: Path, ports: range, out: multiprocessing.Queue) -> None:
    stack._CLAIMS = claims
    stack._PICK_FROM = ports
    out.put(stack.free_port())


def test_a_port_handed_out_and_not_yet_bound_is_not_handed_out_again(claims: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = next(p for p in range(24000, 32000, 3) if not any(_bound(q) for q in (p, p + 1)))
    monkeypatch.setattr(stack, "_PICK_FROM", range(start, start + 2))
    first, second = stack.free_port(), stack.free_port()
    assert {first, second} == {start, start + 1}
    # both claimed, neither bound: the third caller is given a port outside the two
    third = stack.free_port()
    assert third not in (start, start + 1)


def test_another_process_does_not_get_a_port_this_one_was_given(claims: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = next(p for p in range(24001, 32000, 3) if not any(_bound(q) for q in (p, p + 1)))
    ports = range(start, start + 2)
    monkeypatch.setattr(stack, "_PICK_FROM", ports)
    mine = stack.free_port()
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    child = ctx.Process(target=_pick, args=(claims, ports, out))
    child.start()
    theirs = out.get(timeout=30)
    child.join(timeout=30)
    assert theirs != mine and theirs in ports


def test_a_claim_lapses(claims: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = next(p for p in range(24002, 32000, 3) if not _bound(p))
    monkeypatch.setattr(stack, "_PICK_FROM", range(start, start + 1))
    assert stack.free_port() == start
    monkeypatch.setattr(stack, "_CLAIM_FOR_S", 0.0)
    assert stack.free_port() == start
