"""What to watch: per deployment, which baseline, how often, within which budget.

The gateway reads these from the `fingerprint:` section of its config; `turnout fingerprint watch
--watch FILE` reads a file holding that section alone:

    fingerprint:
      store: null                 # sqlite:///PATH; default: the record's store
      alpha: 0.05                 # per check, for the combined verdict
      consecutive: 2              # rejections in a row that raise an alarm
      deployments:
        edge:
          baseline: edge          # a stored baseline's name (default: the deployment's name)
          suite: null             # default: the baseline's own suite (as stored with it)
          every_s: 3600
          samples: 50             # completions per check
          max_cost_usd: 0.01      # per check
          take_out: false         # on alarm, take the deployment out of rotation
      passive: {every_s: 60}      # CUSUM over the record; omit to turn off

The types and their defaults live with the rest of the config (`turnout.config.schema`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from turnout.config import ConfigError, PassiveSettings, WatchSettings, WatchTarget
from turnout.config.fingerprint import watch_section


def parse_watch(data: Any, source: str = "<watch>") -> WatchSettings:
    """Settings from the mapping under `fingerprint:` (or a whole file that holds it)."""
    if isinstance(data, dict) and set(data) == {"fingerprint"}:
        data = data["fingerprint"]
    return watch_section(data, source)


def load_watch(path: str | Path) -> WatchSettings:
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    return parse_watch(data, source)


__all__ = ["PassiveSettings", "WatchSettings", "WatchTarget", "load_watch", "parse_watch"]
