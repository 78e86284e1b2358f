"""The one adapter around b4 and liblore (GPL-2.0-or-later libraries from kernel.org).

Nothing outside this package imports b4 or liblore (ruff TID251 enforces it).  b4 keeps
global configuration and caches in module globals; the functions here use only its pure
parsing helpers and never touch those globals (``b4.setup_config``, ``b4.LORENODE``).

- parsing.py: b4's trailer rules, per mail (no config, no network);
- client.py: ``LoreClient``, the only code that talks to a public-inbox server (liblore's
  ``LoreNode`` plus retries, Retry-After and a kvmarm-bot User-Agent; errors are
  ``LoreError`` subclasses); used by bot/sync.py.
"""
