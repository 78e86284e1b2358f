"""The lore adapter: liblore's ``LoreNode`` with retries, a kvmarm-bot User-Agent, raw mail out.

Everything that talks to a public-inbox server (lore.kernel.org or a mirror) goes through
``LoreClient``.  It asks one request at a time, names itself in the User-Agent, retries
timeouts, 5xx and 429 with exponential backoff (honouring ``Retry-After``) and turns every
failure into one of these::

    LoreError                  anything that went wrong talking to lore
     ├── LoreUnreachable       no answer: connection refused, DNS, timeout (after retries)
     ├── LoreHTTPError         an HTTP error status (after retries for 5xx); .status
     │    └── LoreRateLimited  429/503 whose Retry-After is longer than we will wait
     └── LoreBadResponse       an answer we cannot read (e.g. a truncated gzip mbox)

A search without hits (public-inbox answers 404) is an empty list, not an error.

Mail comes back as ``LoreMail``: the raw bytes (``ingest.sources.RawMail``, mboxrd escaping
undone) plus the few headers a sync needs to plan its next requests (Message-ID, references,
subject, sender, dates, b4 change-id), read without parsing bodies.

What liblore cannot do, and is done here with liblore's own session instead:

* **Searches that return only the hits.**  ``LoreNode.get_mbox_by_query`` always POSTs the
  body ``x=m``, which makes public-inbox expand every hit to its whole thread (see
  ../shared/tools/lore-server.md).  A received-time window must not download every old thread
  it touches, so ``search(…, threads=False)`` POSTs an empty body through ``LoreNode.request``
  (liblore's session, User-Agent, timeouts and fallback origins).
* **Retries and Retry-After.**  liblore fails over between origins but never retries one, and
  its ``RemoteError`` carries no headers; the response headers are read from our transport.

b4 is used for what it decides: subject parsing (``b4.LoreSubject``) and the query shape of
its earlier-revision lookup (``b4.mbox.get_extra_series``).  b4's global configuration and
its memoised ``b4.LORENODE`` are not touched.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import http
import importlib.metadata
import itertools
import logging
import re
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import b4
import liblore
import requests
import requests.adapters

from ingest.parse import read_headers
from ingest.sources import RawMail, split_mbox, unescape_mbox

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read (s): a month of x=m takes seconds on lore
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 1.0  # first wait (s); doubled per attempt
MAX_BACKOFF = 60.0
MAX_RETRY_AFTER = 120.0  # longer Retry-After: give up with LoreRateLimited
THREADS_PER_REQUEST = 40  # m:"…" terms per thread search (keeps the URL well under 8 KiB)
HEADS_PER_REQUEST = 20  # series per earlier-version search (URL stays under ~4 KiB)
EARLIER_VERSIONS_SPAN = timedelta(days=365)  # b4 caps its backward search at 12 months
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MBOXRD_ESCAPE = re.compile(rb"^>(>*From )", re.MULTILINE)
_CHANGE_ID_RE = re.compile(rb"(?mi)^change-id:[ \t]*(\S+)[ \t]*\r?$")


# --- errors ------------------------------------------------------------------------------


class LoreError(Exception):
    """Talking to the public-inbox server failed; the message says where and why."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class LoreUnreachable(LoreError):
    """No answer at all: connection refused, host not found, or a timeout."""


class LoreHTTPError(LoreError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, url: str, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class LoreRateLimited(LoreHTTPError):
    """The server asked us to come back later than we are willing to wait."""

    def __init__(self, message: str, *, url: str, status: int, retry_after: float) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class LoreBadResponse(LoreError):
    """The server answered 200 with something that is not what was asked for."""


class _NotFound(Exception):
    """404: no hits / no such message on this inbox (an answer, not a failure)."""


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoreMail:
    """One message as lore served it, with the headers a sync plans with."""

    raw: RawMail
    msgid: str | None
    refs: tuple[str, ...]  # References then In-Reply-To, root first, without the own id
    subject: str  # decoded, whitespace collapsed
    sender: str  # lower-cased From address
    date: datetime | None  # Date header, UTC
    received: datetime | None  # lore's rt: first Received with a date, else Date
    change_id: str | None  # b4's "change-id: …" line, if any


@dataclass(frozen=True, slots=True)
class SeriesHead:
    """The posting (cover letter, else patch 1) whose earlier versions we look for."""

    subject: str  # as sent: "[PATCH v3 0/7] KVM: arm64: …"
    sender: str  # address
    date: datetime
    change_id: str | None = None


# --- the client --------------------------------------------------------------------------


class LoreClient:
    """One public-inbox inbox (e.g. https://lore.kernel.org/kvmarm), asked politely.

    ``sleep`` is called for every wait between attempts (tests pass a recorder); ``requests``
    counts HTTP requests sent.  With ``git_config=True`` liblore reads mirror/fallback
    settings (``[liblore "https://lore.kernel.org"]``) from git config.  Partial-mirror
    upstream following is off: a sync reads the inbox it was pointed at, nothing else.
    """

    def __init__(
        self,
        url: str,
        *,
        user_agent: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_retry_after: float = MAX_RETRY_AFTER,
        sleep: Callable[[float], None] = time.sleep,
        git_config: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.requests = 0
        self._retries = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._timeout = timeout
        self._transport = _Transport(self._count)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent or default_user_agent()
        self._session.mount("http://", self._transport)
        self._session.mount("https://", self._transport)
        make_node = liblore.LoreNode.from_git_config if git_config else liblore.LoreNode
        self._node = make_node(
            self.url, request_timeout=timeout, cache_dir=None, follow_upstream=False
        )
        self._node.set_requests_session(self._session)
        _quiet_liblore_failover()

    def close(self) -> None:
        self._node.close()
        self._session.close()

    def __enter__(self) -> LoreClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _count(self) -> None:
        self.requests += 1

    # --- what a sync asks ----------------------------------------------------------------

    def search(self, query: str, *, threads: bool = False) -> list[LoreMail]:
        """Messages matching a public-inbox query (``rt:…``, ``s:"…"``); [] when none.

        ``threads=True`` expands every hit to its whole thread (liblore's ``full_threads``).
        """
        where = f"{self.url}/?q={_short(query)}"
        try:
            if threads:
                mbox = self._retrying(
                    where,
                    lambda: self._node.get_mbox_by_query(query, full_threads=True, nocache=True),
                )
            else:
                mbox = self._retrying(where, lambda: self._search_hits_only(query))
        except _NotFound:
            return []
        return split_lore_mbox(mbox, self.url)

    def received_between(self, start: datetime, end: datetime | None = None) -> list[LoreMail]:
        """Every message lore received (``rt:``) from ``start`` to ``end`` (inclusive)."""
        return self.search(received_query(start, end))

    def thread(self, msgid: str) -> list[LoreMail]:
        """The thread holding ``msgid`` (``/MSGID/t.mbox.gz``); [] when lore does not have it."""
        where = f"{self.url}/{msgid}/t.mbox.gz"
        try:
            mbox = self._retrying(where, lambda: self._node.get_mbox_by_msgid(msgid, nocache=True))
        except _NotFound:
            return []
        return split_lore_mbox(mbox, self.url)

    def threads(self, msgids: Iterable[str]) -> list[LoreMail]:
        """The whole threads holding any of ``msgids``, in one request per 40 of them.

        One ``m:"…" OR m:"…"`` search with thread expansion: the server answers only for
        the Message-IDs it has, on this inbox, instead of one ``t.mbox.gz`` per thread.
        """
        wanted = [m for m in dict.fromkeys(msgids) if _quotable(m)]
        found: dict[str, LoreMail] = {}
        for chunk in _chunked(wanted, THREADS_PER_REQUEST):
            query = " OR ".join(f'm:"{m}"' for m in chunk)
            for mail in self.search(query, threads=True):
                found.setdefault(mail.msgid or mail.raw.origin, mail)
        return list(found.values())

    def find_earlier_versions(self, heads: Sequence[SeriesHead]) -> list[LoreMail]:
        """Earlier postings of each head's series (hits only; ``threads()`` brings the rest).

        b4's ``get_extra_series(direction=-1)``: search by change-id when the head has one,
        else by subject and sender, over the 12 months before it; keep postings (not
        replies) of a lower revision.  One request per 20 series.
        """
        found: dict[str, LoreMail] = {}
        for chunk in _chunked(list(heads), HEADS_PER_REQUEST):
            query = " OR ".join(f"({earlier_versions_query(h)})" for h in chunk)
            for mail in self.search(query):
                if mail.msgid and any(is_earlier_version(mail, h) for h in chunk):
                    found.setdefault(mail.msgid, mail)
        return list(found.values())

    # --- HTTP -----------------------------------------------------------------------------

    def _search_hits_only(self, query: str) -> bytes:
        url = f"{self.url}/?x=m&q={urllib.parse.quote_plus(query)}"
        response = self._node.request("POST", url)  # empty body: no thread expansion
        try:
            if response.status_code != 200:
                raise liblore.RemoteError(
                    f"Server returned an error: {response.status_code}",
                    status_code=response.status_code,
                )
            return gzip.decompress(response.content)
        finally:
            response.close()

    def _retrying(self, where: str, call: Callable[[], T]) -> T:
        """``call()``, retried on no answer, 5xx, 429 and unreadable answers."""
        for attempt in itertools.count(1):
            try:
                return call()
            except liblore.RemoteError as exc:
                error = self._translate(where, exc)
            except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
                error = LoreBadResponse(f"{where}: unreadable answer: {exc}", url=where)
            if not _retryable(error) or attempt > self._retries:
                if attempt > 1:
                    error.args = (f"{error} (gave up after {attempt} attempts)",)
                raise error
            wait = self._wait(error, attempt)
            total = self._retries + 1
            log.warning(
                "%s; retrying in %.0f s (attempt %d of %d)", error, wait, attempt + 1, total
            )
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, where: str, exc: liblore.RemoteError) -> LoreError:
        status = exc.status_code
        if status == 404:
            raise _NotFound(where) from exc
        if status is None:
            reason = _reason(exc, self._timeout)
            return LoreUnreachable(f"cannot reach {self.url}: {reason}", url=where)
        retry_after = self._transport.retry_after
        if retry_after is not None and retry_after > self._max_retry_after:
            return LoreRateLimited(
                f"{where}: HTTP {status}, and the server asks to retry after {retry_after:.0f} s"
                f" (more than the {self._max_retry_after:.0f} s we wait); try again later",
                url=where,
                status=status,
                retry_after=retry_after,
            )
        message = f"{where}: HTTP {status} {_status_text(status)}".rstrip()
        return LoreHTTPError(message, url=where, status=status)

    def _wait(self, error: LoreError, attempt: int) -> float:
        if isinstance(error, LoreHTTPError) and self._transport.retry_after is not None:
            return self._transport.retry_after
        return min(self._backoff * 2 ** (attempt - 1), MAX_BACKOFF)


def _quiet_liblore_failover() -> None:
    """Drop liblore's per-attempt "…, trying next host" warnings: we log each retry ourselves."""
    node_log = logging.getLogger("liblore.node")
    if not any(isinstance(f, _FailoverNoise) for f in node_log.filters):
        node_log.addFilter(_FailoverNoise())


class _FailoverNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).endswith("trying next host")


class _Transport(requests.adapters.HTTPAdapter):
    """requests' adapter, counting requests and keeping the last answer's Retry-After."""

    def __init__(self, on_send: Callable[[], None]) -> None:
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)
        self._on_send = on_send
        self.retry_after: float | None = None

    def send(self, request, *args, **kwargs):
        self._on_send()
        self.retry_after = None
        response = super().send(request, *args, **kwargs)
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return response


def _retryable(error: LoreError) -> bool:
    if isinstance(error, LoreRateLimited):
        return False
    if isinstance(error, LoreHTTPError):
        return error.status in _RETRY_STATUSES or error.status >= 500
    return True  # unreachable, timeouts, truncated answers


def _reason(exc: liblore.RemoteError, timeout: float | tuple[float, float]) -> str:
    cause = exc.__cause__
    text = str(cause or exc)
    if isinstance(cause, requests.Timeout):
        read = timeout[1] if isinstance(timeout, tuple) else timeout
        return f"no answer within {read:g} s (timeout)"
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "host name not found"
    if isinstance(cause, requests.ConnectionError):
        return f"connection failed ({type(cause).__name__})"
    return text


def _status_text(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date; None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def default_user_agent() -> str:
    """``kvmarm-bot/<version> liblore/<version>``: lore's operators can see who asks."""
    try:
        version = importlib.metadata.version("kvmarm-bot")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    return f"kvmarm-bot/{version} liblore/{liblore.__version__}"


# --- queries (b4's shapes) ---------------------------------------------------------------


def received_query(start: datetime, end: datetime | None = None) -> str:
    """``rt:`` in epoch seconds, as b4/liblore write it (approxidates fill in the time)."""
    first = int(start.timestamp())
    return f"rt:{first}..{int(end.timestamp())}" if end is not None else f"rt:{first}.."


def earlier_versions_query(head: SeriesHead) -> str:
    """b4 ``get_extra_series(direction=-1)``'s query for one series head."""
    if head.change_id:
        which = f'nq:"change-id: {_unquoted(head.change_id)}"'
    else:
        title = _unquoted(b4.LoreSubject(head.subject).subject)
        which = f's:"{title}" AND f:"{_unquoted(head.sender)}"'
    first = (head.date - EARLIER_VERSIONS_SPAN).strftime("%Y%m%d")
    return f"({which}) AND d:{first}..{head.date.strftime('%Y%m%d')}"


def is_earlier_version(mail: LoreMail, head: SeriesHead) -> bool:
    """b4's acceptance of a search hit as an older revision of ``head``'s series.

    As b4: not a reply, a lower revision, and, when searching by change-id, a standalone
    ``change-id:`` line with that id.  Stricter than b4 for subject searches: the title
    must be the same (``s:"…"`` is a phrase search and also matches longer titles) and
    so must the sender's address.
    """
    theirs, ours = b4.LoreSubject(mail.subject), b4.LoreSubject(head.subject)
    if theirs.reply or theirs.revision >= ours.revision:
        return False
    if head.change_id:
        return mail.change_id == head.change_id
    same_title = _fold(theirs.subject) == _fold(ours.subject)
    return same_title and mail.sender == head.sender.lower()


def _short(query: str, limit: int = 100) -> str:
    return query if len(query) <= limit else query[: limit - 1] + "…"


def _unquoted(text: str) -> str:
    return text.replace('"', "")


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _quotable(msgid: str) -> bool:
    return bool(msgid) and '"' not in msgid and not any(c.isspace() for c in msgid)


def _chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- mail ----------------------------------------------------------------------------------


def split_lore_mbox(mbox: bytes, base_url: str) -> list[LoreMail]:
    """Split public-inbox's mboxrd answer into ``LoreMail`` records (escaping undone).

    Each mail's origin is its lore link, ``<base_url>/<Message-ID>/``.
    """
    mails = []
    for number, data in enumerate(split_mbox([mbox]), start=1):
        data = unescape_mbox(data, _MBOXRD_ESCAPE)
        mail = summarise(RawMail(data, f"{base_url}/ (answer #{number}, no Message-ID)"))
        if mail.msgid:
            link = f"{base_url}/{urllib.parse.quote(mail.msgid, safe='@+=$')}/"
            mail = dataclasses.replace(mail, raw=RawMail(data, link))
        mails.append(mail)
    return mails


def summarise(raw: RawMail) -> LoreMail:
    """Read the planning facts of one mail: its headers exactly as ingest reads them, and
    b4's change-id line."""
    headers = read_headers(raw.data)
    end = raw.data.find(b"\n\n")
    change = _CHANGE_ID_RE.search(raw.data, max(end, 0))
    return LoreMail(
        raw=raw,
        msgid=headers.msgid,
        refs=headers.references,
        subject=headers.subject,
        sender=headers.sender.email,
        date=headers.date,
        received=headers.received,
        change_id=change.group(1).decode("ascii", "replace") if change else None,
    )
