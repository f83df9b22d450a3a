"""Run folders: the settings a run was made with (a rerun with other settings is refused) and the
one-line description of the machine that results files record."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from bbam_lite.utils.io import atomic_write_json


class RunSettingsError(ValueError):
    """A run folder made with other settings than the ones asked for."""


def check_run_settings(run: Path, settings: dict) -> None:
    """Write ``RUN/settings.json`` on a fresh run; refuse a run folder made with other settings."""
    path = Path(run) / "settings.json"
    if path.exists():
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunSettingsError(f"{path}: unreadable settings file ({e}); delete the folder") from None
        new = json.loads(json.dumps(settings))
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise RunSettingsError(
                f"{run}: run folder was made with other settings (differs in {', '.join(diff)}); "
                "use another --out or delete it"
            )
    else:
        atomic_write_json(path, settings, indent=2)


def hardware() -> str:
    """A one-line description of this machine, for results files."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} threads{gpu}"
