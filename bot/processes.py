"""Which process holds a run: ``host:pid`` owners, and whether one is still alive."""

from __future__ import annotations

import os
import socket


def process_owner() -> str:
    """This process as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_alive(holder: str, *, other_host_alive: bool) -> bool:
    """Is ``host:pid`` a live process?  Only this host can be checked: for another host the
    caller decides (``other_host_alive``) what is safe to assume."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname():
        return other_host_alive
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
