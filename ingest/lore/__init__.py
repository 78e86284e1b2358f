"""The network adapter around b4 and liblore (GPL-2.0-or-later libraries from kernel.org).

Nothing outside this package and ingest/b4rules.py (b4's pure trailer and diff rules, used
by the parser, no config, no network) imports b4 or liblore (ruff TID251 enforces it).  b4
keeps global configuration and caches in module globals; we never touch those globals
(``b4.setup_config``, ``b4.LORENODE``).

- client.py: ``LoreClient``, the only code that talks to a public-inbox server (liblore's
  ``LoreNode`` plus retries, Retry-After and a kvmarm-bot User-Agent; errors are
  ``LoreError`` subclasses); used by bot/sync/lore.py.
"""
