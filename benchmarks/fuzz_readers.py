"""Fuzz the readers of `tapio replay` and `tapio analyze` with generated hostile inputs; count crashes,
hangs and the peak RSS.

    .venv/bin/python benchmarks/fuzz_readers.py --examples 100000            # the campaign of issue 14
    .venv/bin/python benchmarks/fuzz_readers.py --examples 2000 --seed 7     # a shorter one
    .venv/bin/python benchmarks/fuzz_readers.py --examples 100000 --workers 2 # split over processes

The inputs are those of the suite's fuzz test (`tests/support/hostile_inputs.py`: mutated real
recordings, generated objects as JSON or YAML, kubectl text and logs, support bundles, some cut
short, and amplifiers: 200,000 levels of nesting, billion-laughs YAML, megabyte strings), drawn by
hypothesis without shrinking. Each example is handed to its reader in a fresh folder:
- a crash is any exception but the readers' own (ReplayFileError, MissingNowError) or an error that
  does not name file, place and reason; it is printed with its inputs, which are kept under
  `--keep` for replaying by hand;
- a hang is an example running longer than `--hang-s` (SIGALRM stops it);
- memory: the address space is limited to `--max-gib` (a runaway allocation is a MemoryError, so a
  crash), and the peak RSS is printed.
It prints a line every 1,000 examples and, at the end: examples, crashes, hangs, the slowest
example, peak RSS and the rate. Exit status 1 when anything crashed or hung.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from hostile_inputs import Broken, cases, run_case  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

CHUNK = 1000  # examples per hypothesis run


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def campaign(examples: int, seed_value: int, hang_s: float, keep: Path, every: int) -> dict:
    stats: dict = {"examples": 0, "crashes": 0, "hangs": 0, "slowest_s": 0.0, "slowest": "", "events": 0,
                   "errors": 0, "by_reader": {}}
    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)

    def failed(what: str, case: tuple, detail: str) -> None:
        reader, inputs, cut = case
        stats["crashes" if what == "crash" else "hangs"] += 1
        where = keep / f"{what}-{seed_value}-{stats['examples']}"
        where.mkdir(parents=True, exist_ok=True)
        for name, data in inputs:  # as the reader saw them (a bundle's member paths flattened with __)
            (where / name.strip("/").replace("/", "__")).write_bytes(data)
        (where / "case.json").write_text(json.dumps({"reader": reader, "names": [n for n, _ in inputs], "cut": cut}))
        print(f"{what.upper()} ({reader}, {[(n, len(d)) for n, d in inputs]}, cut={cut}; kept in {where}):\n{detail}",
              file=sys.stderr, flush=True)

    def one(case: tuple[str, list[tuple[str, bytes]], bool]) -> None:
        reader, inputs, cut = case
        stats["examples"] += 1
        t = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, hang_s)
        try:
            with tempfile.TemporaryDirectory() as folder:
                count, errors = run_case(Path(folder), reader, inputs, cut)
            stats["events"] += count
            stats["errors"] += len(errors)
        except Hang:
            failed("hang", case, f"ran for more than {hang_s} s")
        except (Broken, Exception):  # any exception out of a reader is a crash
            signal.setitimer(signal.ITIMER_REAL, 0)
            failed("crash", case, traceback.format_exc(limit=-6))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        took = time.perf_counter() - t
        per = stats["by_reader"].setdefault(reader, [0, 0.0])
        per[0] += 1
        per[1] += took
        if took > stats["slowest_s"]:
            stats["slowest_s"], stats["slowest"] = took, f"{reader} {[(n, len(d)) for n, d in inputs]}"
        if stats["examples"] % every == 0:  # on stderr: with --workers, stdout carries the result
            print(f"[seed {seed_value}] {stats['examples']} examples, {stats['crashes']} crashes, {stats['hangs']} hangs, "
                  f"peak RSS {peak_mib():.0f} MiB, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    # hypothesis remembers every example of a run (to draw new ones): runs of CHUNK examples, each
    # with its own seed, keep its memory from growing with the campaign, so the RSS is the readers'
    for first in range(0, examples, CHUNK):
        run = seed(seed_value * 1_000_003 + first)(settings(
            max_examples=min(CHUNK, examples - first), database=None, deadline=None, phases=[Phase.generate],
            suppress_health_check=list(HealthCheck))(given(cases())(one)))
        run()
    stats["seconds"] = time.perf_counter() - started
    stats["peak_rss_mib"] = peak_mib()
    return stats


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--hang-s", type=float, default=20.0, help="an example running longer is a hang")
    parser.add_argument("--max-gib", type=float, default=4.0, help="address-space limit of a fuzzing process")
    parser.add_argument("--workers", type=int, default=1, help="processes, each with its share and its own seed")
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "tapio-fuzz",
                        help="where the inputs of a crash or hang are kept")
    parser.add_argument("--every", type=int, default=1000, help="print progress every N examples")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line (for --workers)")
    args = parser.parse_args()
    if args.workers > 1:
        return _split(args)
    limit = int(args.max_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stats = campaign(args.examples, args.seed, args.hang_s, args.keep, args.every)
    if args.json:
        print(json.dumps(stats))
    else:
        _report(stats, args)
    return 1 if stats["crashes"] or stats["hangs"] else 0


def _split(args: argparse.Namespace) -> int:
    share = -(-args.examples // args.workers)
    procs = [subprocess.Popen([sys.executable, __file__, "--examples", str(share), "--seed", str(args.seed + i),
                               "--hang-s", str(args.hang_s), "--max-gib", str(args.max_gib), "--keep", str(args.keep),
                               "--every", str(args.every), "--json"], stdout=subprocess.PIPE, text=True)
             for i in range(args.workers)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        lines = out.strip().splitlines()
        print("\n".join(lines[:-1]))
        results.append(json.loads(lines[-1]))
    total = {"examples": sum(r["examples"] for r in results), "crashes": sum(r["crashes"] for r in results),
             "hangs": sum(r["hangs"] for r in results), "events": sum(r["events"] for r in results),
             "errors": sum(r["errors"] for r in results), "seconds": max(r["seconds"] for r in results),
             "peak_rss_mib": max(r["peak_rss_mib"] for r in results)}
    slowest = max(results, key=lambda r: r["slowest_s"])
    total["slowest_s"], total["slowest"] = slowest["slowest_s"], slowest["slowest"]
    total["by_reader"] = {}
    for r in results:
        for reader, (n, s) in r["by_reader"].items():
            acc = total["by_reader"].setdefault(reader, [0, 0.0])
            acc[0] += n
            acc[1] += s
    _report(total, args)
    return 1 if total["crashes"] or total["hangs"] else 0


def _report(stats: dict, args: argparse.Namespace) -> None:
    print(f"fuzz_readers: {stats['examples']} examples (seed {args.seed}, {args.workers} process(es)) in "
          f"{stats['seconds']:.0f} s ({stats['examples'] / max(stats['seconds'], 1e-9):.0f}/s)")
    print(f"  crashes: {stats['crashes']}   hangs (> {args.hang_s:g} s): {stats['hangs']}")
    print(f"  peak RSS: {stats['peak_rss_mib']:.0f} MiB per process (address space limited to {args.max_gib:g} GiB)")
    print(f"  read: {stats['events']} events, {stats['errors']} errors naming file, place and reason")
    print(f"  slowest example: {stats['slowest_s']:.2f} s ({stats['slowest'][:200]})")
    for reader, (n, s) in sorted(stats["by_reader"].items()):
        print(f"  {reader}: {n} examples, mean {1000 * s / max(n, 1):.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
