"""The one adapter around b4 and liblore (GPL-2.0-or-later libraries from kernel.org).

Nothing outside this package imports b4 or liblore (ruff TID251 enforces it).  b4 keeps
global configuration and caches in module globals; the functions here use only its pure
parsing helpers, or configure it explicitly before use (see client.py).
"""
