"""The command grammar: ``thread …``, ``series …``, ``who reviewed …``, ``reviews …``,
``digest [this|last|YYYY-Www]``, ``status``, ``help``.

``parse_command(text)`` returns a frozen ``Command`` or raises ``UsageError`` whose message
says what was wrong; ``USAGE`` is the text every error shows.  Pure: no database, no Slack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_QUERY_CHARS = 1000  # longer input is cut here (Slack allows 4,000 characters)

USAGE = """\
Usage: /kvmarm <command>   (the same words work with @kvmarm and `kvmarm ask "…"`)
  thread <words>          the best-matching thread or series: versions, status, reviews, link
  series <words>          version history v1..vN and what changed between versions
  who reviewed <words>    Reviewed-by / Acked-by / Tested-by per patch of the latest version
  reviews <person>        what a person reviewed, acked or tested recently
  digest [this|last|YYYY-Www]   the weekly digest (last week by default)
  status                  how fresh the data is, counts
  subscribe <filter>      post new series, versions, applies, … matching <filter> in this channel
  unsubscribe <filter>    stop one subscription of this channel
  subscriptions           what this channel is subscribed to
  iam [<address>|--forget]   link your Slack user to your list address (show, or forget it)
  mine                    your series: versions, reviews per version, status, what waits on you
  waiting [person|all]    the review queue: latest versions with unreviewed patches, oldest first
  notify on|off           a DM when your series is reviewed, applied, dropped or asked to change
  help                    this text
<words>: subject words, FEAT_ names, author name or address, a Message-ID or a lore URL.
<filter>: title words, author:<name|address>, path:<glob>, series:<lore link|Message-ID>,
  events:<kinds> (new_series,new_version,review,applied,pulled,dropped,changes_requested,
  report; default all but review), -author:<who> and -<word> to exclude, or all.
Examples:
  /kvmarm thread FEAT_ECV
  /kvmarm series stolen time
  /kvmarm who reviewed MTE support for KVM guest
  /kvmarm reviews Andrew Jones
  /kvmarm thread https://lore.kernel.org/kvmarm/20210916181510.963449-1-oupton@google.com/
  /kvmarm digest 2022-W07
  /kvmarm subscribe path:arch/arm64/kvm/vgic/* -author:syzbot"""

COMMANDS = (
    "thread",
    "series",
    "who reviewed",
    "reviews",
    "digest",
    "status",
    "subscribe",
    "unsubscribe",
    "subscriptions",
    "iam",
    "mine",
    "waiting",
    "notify",
    "help",
)
# Commands that act in Slack (a channel, a person) rather than answer from the facts.
SLACK_ONLY = ("subscribe", "unsubscribe", "subscriptions", "iam", "mine", "notify")
PERSONAL = ("iam", "mine", "notify", "waiting")  # answered for the asking Slack user
_ADDRESS_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_WEEK_RE = re.compile(r"^(\d{4})-?W(\d{2})$", re.IGNORECASE)


class UsageError(ValueError):
    """What the user typed is not a command; ``str(err)`` says why, ``usage`` shows how."""

    usage = USAGE


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # one of COMMANDS
    query: str = ""  # words / person / week ("this", "last" or "YYYY-Www")

    @property
    def text(self) -> str:
        """The command as it would be typed (used to re-run it, e.g. for sharing)."""
        return f"{self.name} {self.query}".strip()


def parse_command(text: str) -> Command:
    """``"who reviewed FEAT_LS64"`` → ``Command("who reviewed", "FEAT_LS64")``."""
    words = " ".join(text[:MAX_QUERY_CHARS].split()).split(" ")
    head = words[0].casefold() if words[0] else ""
    if head in ("", "help", "-h", "--help", "usage"):
        return Command("help")
    if head == "who":
        if len(words) < 2 or words[1].casefold() not in ("reviewed", "acked", "tested"):
            raise UsageError("Did you mean `who reviewed <words>`?")
        return _with_words("who reviewed", words[2:], "the series")
    if head in ("who-reviewed", "whoreviewed", "reviewed"):
        return _with_words("who reviewed", words[1:], "the series")
    if head in ("thread", "series"):
        return _with_words(head, words[1:], f"the {head}")
    if head in ("reviews", "reviewer"):
        return _with_words("reviews", words[1:], "a person (name or address)")
    if head == "digest":
        return Command("digest", _week(words[1:]))
    if head == "status":
        return Command("status")
    if head in ("subscribe", "unsubscribe"):
        return Command(head, _filter(head, " ".join(words[1:])))
    if head in ("subscriptions", "subs"):
        return Command("subscriptions")
    if head in ("iam", "i-am"):
        return Command("iam", _address(words[1:]))
    if head == "mine":
        return Command("mine")
    if head in ("waiting", "queue"):
        return Command("waiting", " ".join(words[1:]).strip())
    if head in ("notify", "alerts"):
        state = " ".join(words[1:]).casefold()
        if state not in ("", "on", "off"):
            raise UsageError("`notify` takes on or off (or nothing, to show the setting).")
        return Command("notify", state)
    raise UsageError(f"Unknown command `{_shorten(words[0])}`.")


def _with_words(name: str, words: list[str], what: str) -> Command:
    query = " ".join(words).strip()
    if not query:
        raise UsageError(f"`{name}` needs words that name {what}.")
    return Command(name, query)


def _address(words: list[str]) -> str:
    if not words:
        return ""
    if len(words) == 1 and words[0].casefold() in ("--forget", "forget", "-f"):
        return "--forget"
    address = words[0].strip("<>").removeprefix("mailto:").casefold()
    if len(words) > 1 or not _ADDRESS_RE.match(address):
        raise UsageError("`iam` takes one list address, e.g. `iam maz@kernel.org`, or --forget.")
    return address


def _filter(name: str, text: str) -> str:
    from bot.live.filters import FilterError, parse_filter

    if not text.strip():
        raise UsageError(f"`{name}` needs a filter, e.g. `{name} path:arch/arm64/kvm/vgic/*`.")
    try:
        return parse_filter(text).text
    except FilterError as err:
        raise UsageError(f"`{name}`: {err}.") from err


def _week(words: list[str]) -> str:
    if not words:
        return "last"
    if len(words) > 1:
        raise UsageError("`digest` takes one of: this, last, YYYY-Www (e.g. 2022-W07).")
    word = words[0].casefold()
    if word in ("this", "last"):
        return word
    m = _WEEK_RE.match(word)
    if not m or not 1 <= int(m.group(2)) <= 53:
        raise UsageError(
            f"`{_shorten(words[0])}` is not a week: use this, last or YYYY-Www (e.g. 2022-W07)."
        )
    return f"{m.group(1)}-W{m.group(2)}"


def _shorten(word: str, limit: int = 40) -> str:
    return word if len(word) <= limit else word[: limit - 1] + "…"
