"""Regenerates every case folder: python3 run.py [module ...] (default: all)."""
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ALL = ["c_containers", "c_scheduling", "c_probes", "c_images", "c_volumes", "c_jobs", "c_nodes", "c_workloads",
       "c_network", "c_alerts"]
for m in sys.argv[1:] or ALL:
    mod = importlib.import_module(m)
    for fn in mod.CASES:
        fn()
        print("ok", m, fn.__name__)
