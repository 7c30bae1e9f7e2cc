"""The behavior-pattern catalog Tapio ships, and the recorded scenarios it is checked on.

Fed by: pattern authors (one `behavior.tapio.io/v1` BehaviorPattern per YAML file here) and
recordings (`scenarios/`). Feeds: the default `match.patterns_dir` (`core.settings`, so the
worker, `tapio patterns lint` and `tapio analyze` use this catalog unless told otherwise),
the default corpus of `tapio backtest` (`scenarios/<pattern>/{positive,negative}/`, each with
a `labels.yaml`), and the incident `tapio demo` replays (`scenarios/configmap-crashloop/`,
unlabelled, so the backtest does not score it).

Data only: the files travel in the wheel as package data next to this module, so the paths
below hold in a checkout and in an installed package alike.
"""

from pathlib import Path

CATALOG = Path(__file__).resolve().parent
SCENARIOS = CATALOG / "scenarios"
DEMO_SCENARIO = SCENARIOS / "configmap-crashloop"
