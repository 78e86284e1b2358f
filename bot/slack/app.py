"""The Bolt app, built by a factory with its clients passed in (nothing connects at import).

    app = create_app(config, client=make_web_client(config), db_factory=per_thread(open))

Listeners are registered per kind (bot/slack/listeners/): the ``/kvmarm`` command, the
``app_mention`` event, the share and post-digest buttons.  Every listener acks at once (the
ack function only parses) and answers from a lazy listener through ``respond()`` or the Web
API, so Slack gets its ack well within 3 s whatever the answer costs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_bolt import App
from slack_sdk import WebClient

from bot.commands.answers import Sources
from bot.commands.results import Summarise
from bot.config import Config
from bot.slack.dedupe import EventDeduper
from bot.slack.dedupe import install as install_dedupe
from bot.slack.digest import DigestGlue
from storage.db import Database

DbFactory = Callable[[], Database]


@dataclass(frozen=True)
class Deps:
    """What listeners need besides what Bolt injects (ack, respond, client, logger)."""

    config: Config
    db_factory: DbFactory
    sources: Sources
    digest: DigestGlue | None = None  # the digest preview, Post button and weekly job
    summarise: Summarise | None = None  # slow summaries of `thread` answers (an LLM's)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def create_app(
    config: Config,
    *,
    client: WebClient,
    db_factory: DbFactory,
    digest: DigestGlue | None = None,
    summarise: Summarise | None = None,
    now: Callable[[], datetime] | None = None,
    token_verification_enabled: bool = True,
    listener_executor: Executor | None = None,
    logger: logging.Logger | None = None,
    dedupe: EventDeduper | None = None,
) -> App:
    """A Bolt App answering ``/kvmarm``, @-mentions and its buttons.

    ``token_verification_enabled`` calls ``auth.test`` now (through ``client``), as Bolt does
    by default; tests pointing ``client`` at a fake Web API may keep it.  ``dedupe`` records
    the Events API deliveries already handled (default: in memory only).
    """
    from bot.slack.listeners import actions, commands, events, home, links

    app = App(
        client=client,
        signing_secret=config.slack_signing_secret or "",
        token_verification_enabled=token_verification_enabled,
        process_before_response=True,  # ack functions only parse; answers are lazy listeners
        listener_executor=listener_executor
        or ThreadPoolExecutor(max_workers=16, thread_name_prefix="kvmarm-listener"),
        name="kvmarm",
        logger=logger,
    )
    deps = Deps(
        config=config,
        db_factory=db_factory,
        sources=Sources(lore_url=config.lore_url, db_path=config.db),
        digest=digest,
        summarise=summarise,
        now=now or (lambda: datetime.now(UTC)),
    )
    install_dedupe(app, dedupe or EventDeduper())
    commands.register(app, deps)
    events.register(app, deps)
    actions.register(app, deps)
    links.register(app, deps)
    home.register(app, deps)
    return app


def per_thread(open_db: DbFactory) -> DbFactory:
    """One database connection per thread (sqlite3 connections are not shared safely)."""
    local = threading.local()

    def get() -> Database:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = open_db()
        return db

    return get
