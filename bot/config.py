"""Configuration: built once, from the environment and an optional TOML file.

Precedence: environment variable > config file > default.  The file is
``$KVMARM_CONFIG`` or ``$XDG_CONFIG_HOME/kvmarm/config.toml`` and uses the same key names
in lower case (``slack_bot_token = "…"``).  Secrets are masked in ``repr`` and never logged.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_LORE_URL = "https://lore.kernel.org/kvmarm"
DEFAULT_LIST_ID = "kvmarm.lists.linux.dev"
DEFAULT_LLM_BUDGET = 100.0  # the whole `kvmarm digest` stays within 2 minutes
DEFAULT_LLM_TIMEOUT = 20.0
_SECRETS = {"slack_bot_token", "slack_app_token", "slack_signing_secret", "openai_api_key"}


class ConfigError(Exception):
    """The configuration file or a value in it is invalid."""


def default_db_path(env: Mapping[str, str]) -> str:
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "kvmarm" / "kvmarm.db")


@dataclass(frozen=True)
class Config:
    db: str
    lore_url: str = DEFAULT_LORE_URL
    list_id: str = DEFAULT_LIST_ID
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_api_url: str | None = None
    channel: str | None = None
    channels: tuple[str, ...] = ()  # channels allowed to receive digests
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    llm_model: str | None = None
    llm_budget: float = DEFAULT_LLM_BUDGET  # seconds of LLM calls per digest, then extractive
    llm_timeout: float = DEFAULT_LLM_TIMEOUT  # seconds per LLM request
    lang: str = "en"

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRETS and value:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"Config({', '.join(shown)})"

    @property
    def allowed_channels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.channels, *([self.channel] if self.channel else []))))


def load_config(env: Mapping[str, str] | None = None, db: str | None = None) -> Config:
    """Config from ``env`` (default: os.environ) and the config file; ``db`` overrides."""
    env = os.environ if env is None else env
    file_values = _read_file(env)

    def pick(name: str, default: str | None = None) -> str | None:
        value = env.get(name.upper())
        if value not in (None, ""):
            return value
        value = file_values.get(name)
        return str(value) if value not in (None, "") else default

    channels = pick("kvmarm_channels") or ""
    lang = pick("kvmarm_lang", "en") or "en"
    if lang not in ("en", "zh"):
        raise ConfigError(f"KVMARM_LANG must be 'en' or 'zh', not {lang!r}")
    return Config(
        db=db or pick("kvmarm_db") or default_db_path(env),
        lore_url=(pick("kvmarm_lore_url", DEFAULT_LORE_URL) or DEFAULT_LORE_URL).rstrip("/"),
        list_id=pick("kvmarm_list_id", DEFAULT_LIST_ID) or DEFAULT_LIST_ID,
        slack_bot_token=pick("slack_bot_token"),
        slack_app_token=pick("slack_app_token"),
        slack_signing_secret=pick("slack_signing_secret"),
        slack_api_url=pick("slack_api_url"),
        channel=pick("kvmarm_channel"),
        channels=tuple(c.strip() for c in channels.split(",") if c.strip()),
        openai_api_key=pick("openai_api_key"),
        openai_base_url=pick("openai_base_url"),
        llm_model=pick("kvmarm_llm_model"),
        llm_budget=_seconds(pick("kvmarm_llm_budget"), "KVMARM_LLM_BUDGET", DEFAULT_LLM_BUDGET),
        llm_timeout=_seconds(pick("kvmarm_llm_timeout"), "KVMARM_LLM_TIMEOUT", DEFAULT_LLM_TIMEOUT),
        lang=lang,
    )


def _seconds(value: str | None, name: str, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86400:
        raise ConfigError(f"{name} must be a number of seconds (> 0), not {value!r}")
    return seconds


def _read_file(env: Mapping[str, str]) -> dict:
    path = env.get("KVMARM_CONFIG")
    if not path:
        config_home = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        candidate = Path(config_home) / "kvmarm" / "config.toml"
        if not candidate.exists():
            return {}
        path = str(candidate)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return {str(k).lower(): v for k, v in data.items()}
