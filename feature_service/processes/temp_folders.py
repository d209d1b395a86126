"""The supervisor's temp folders (drift windows, metrics files, the verified config its children
boot on), named after the process that owns them, so that a later supervisor removes what one
killed outright (kill -9) could not."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "feature_service-"
_OWNED = re.compile(rf"^{re.escape(PREFIX)}(?P<kind>[a-z]+)-(?P<pid>\d+)-")


def owned_folder(kind: str) -> Path:
    """A new temp folder of this process's, e.g. feature_service-drift-<pid>-<random>."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-"))


def sweep_abandoned(root: Path | None = None) -> list[Path]:
    """Removes the folders of owners that are gone; returns them."""
    removed = []
    for entry in Path(root or tempfile.gettempdir()).iterdir():
        owned = _OWNED.match(entry.name)
        if owned and entry.is_dir() and not _alive(int(owned["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
