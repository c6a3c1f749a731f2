"""The mode a new file gets under the process umask, for files written through a library that
creates them private (safetensors' ``save_file`` writes 0600 whatever the umask)."""

from __future__ import annotations

import os
import threading

_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from /proc where it can be, else set and restored under a lock)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike) -> None:
    """``chmod path 0o666 & ~umask``: the mode ``open(path, "w")`` would have given it."""
    os.chmod(path, 0o666 & ~current_umask())
