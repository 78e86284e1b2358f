"""ingest.lore.client: the lore adapter against a scripted fake and against real public-inbox."""

from __future__ import annotations

import gzip
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from ingest.lore.client import (
    LoreBadResponse,
    LoreClient,
    LoreHTTPError,
    LoreRateLimited,
    LoreUnreachable,
    SeriesHead,
    earlier_versions_query,
    is_earlier_version,
    parse_retry_after,
    received_query,
    split_lore_mbox,
)
from tests import lore_server
from tests.fake_lore import FakeLore, Reply, mail, mbox_gz
from tests.lore_server import free_port

# session fixtures: a real public-inbox-httpd and the archive months read independently
lore_august = lore_server.lore_august
lore_two_months = lore_server.lore_two_months
august_mails = lore_server.august_mails
september_mails = lore_server.september_mails

SINCE = datetime(2020, 9, 1, tzinfo=UTC)


def client(url: str, waits: list[float] | None = None, **kw) -> LoreClient:
    return LoreClient(url, sleep=(waits if waits is not None else []).append, **kw)


# --- fake server: what we send, how we retry -------------------------------------------------


def test_search_sends_one_polite_hits_only_request():
    with FakeLore(Reply(200, mbox_gz(mail("a@x"), mail("b@x")))) as lore:
        mails = client(lore.url).received_between(SINCE, SINCE + timedelta(days=1))
    assert [m.msgid for m in mails] == ["a@x", "b@x"]
    (seen,) = lore.requests
    assert seen.method == "POST"
    assert seen.body == b""  # a body "x=m" would make public-inbox expand hits to threads
    assert "q=rt%3A1598918400..1599004800" in seen.path and "x=m" in seen.path
    assert seen.headers["User-Agent"].startswith("kvmarm-bot/")


def test_thread_searches_ask_for_whole_threads_in_one_request():
    ids = [f"{n}@x" for n in range(3)]
    with FakeLore(Reply(200, mbox_gz(*(mail(i) for i in ids)))) as lore:
        lore_client = client(lore.url)
        mails = lore_client.threads(ids)
    assert {m.msgid for m in mails} == set(ids)
    (seen,) = lore.requests
    assert seen.body == b"x=m"  # liblore's full_threads: the server expands to threads
    assert lore_client.requests == 1


def test_no_hits_is_an_empty_answer_not_an_error():
    with FakeLore(Reply(404, b"No results found")) as lore:
        lore_client = client(lore.url)
        assert lore_client.search("s:nothing") == []
    assert lore_client.requests == 1


def test_429_waits_as_long_as_retry_after_says():
    waits: list[float] = []
    replies = [Reply(429, headers={"Retry-After": "7"}), Reply(200, mbox_gz(mail("a@x")))]
    with FakeLore(*replies) as lore:
        mails = client(lore.url, waits).search("rt:1..")
    assert [m.msgid for m in mails] == ["a@x"]
    assert waits == [7.0]


def test_retry_after_longer_than_we_wait_is_a_clear_error_at_once():
    waits: list[float] = []
    with (
        FakeLore(Reply(429, headers={"Retry-After": "3600"})) as lore,
        pytest.raises(LoreRateLimited, match="retry after 3600 s") as caught,
    ):
        client(lore.url, waits).search("rt:1..")
    assert caught.value.retry_after == 3600
    assert waits == [] and len(lore.requests) == 1


def test_5xx_is_retried_with_exponential_backoff_then_reported():
    waits: list[float] = []
    with (
        FakeLore(Reply(500, b"oops")) as lore,
        pytest.raises(LoreHTTPError, match=r"HTTP 500.*gave up after 5 attempts") as caught,
    ):
        client(lore.url, waits, retries=4, backoff=1.0).search("rt:1..")
    assert caught.value.status == 500
    assert waits == [1.0, 2.0, 4.0, 8.0]
    assert len(lore.requests) == 5


def test_a_503_then_an_answer_succeeds():
    waits: list[float] = []
    with FakeLore(Reply(503), Reply(502), Reply(200, mbox_gz(mail("a@x")))) as lore:
        assert len(client(lore.url, waits).search("rt:1..")) == 1
    assert waits == [1.0, 2.0]


def test_client_errors_are_not_retried():
    waits: list[float] = []
    with (
        FakeLore(Reply(403, b"go away")) as lore,
        pytest.raises(LoreHTTPError, match="HTTP 403 Forbidden"),
    ):
        client(lore.url, waits).search("rt:1..")
    assert waits == [] and len(lore.requests) == 1


def test_a_slow_server_times_out_and_is_retried():
    waits: list[float] = []
    with (
        FakeLore(Reply(200, mbox_gz(mail("a@x")), delay=1.0)) as lore,
        pytest.raises(LoreUnreachable, match="timeout"),
    ):
        client(lore.url, waits, timeout=0.2, retries=2).search("rt:1..")
    assert waits == [1.0, 2.0]


def test_slow_once_then_fast_succeeds():
    slow = Reply(200, mbox_gz(mail("a@x")), delay=1.0)
    with FakeLore(slow, Reply(200, mbox_gz(mail("a@x")))) as lore:
        assert len(client(lore.url, timeout=0.2).search("rt:1..")) == 1


def test_nothing_listening_is_unreachable():
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/kvmarm"
    with pytest.raises(LoreUnreachable, match=r"connection refused.*after 3 attempts"):
        client(url, waits, retries=2).search("rt:1..")
    assert waits == [1.0, 2.0]


def test_a_connection_dropped_mid_answer_is_retried():
    whole = mbox_gz(mail("a@x"))
    waits: list[float] = []
    with FakeLore(Reply(200, whole, cut=20), Reply(200, whole)) as lore:
        assert [m.msgid for m in client(lore.url, waits).search("rt:1..")] == ["a@x"]
    assert waits == [1.0]


def test_a_truncated_answer_is_a_bad_response():
    broken = mbox_gz(mail("a@x"))[:-10]
    with (
        FakeLore(Reply(200, broken)) as lore,
        pytest.raises(LoreBadResponse, match="unreadable answer"),
    ):
        client(lore.url, retries=1).search("rt:1..")


# --- pure helpers ------------------------------------------------------------------------------


def test_mboxrd_escaping_is_undone_and_headers_are_read():
    body = "From the start\n>From quoted\nchange-id: 20200901-feature-abc123\n"
    raw = mail(
        "b@x",
        "=?UTF-8?q?Re=3A_=5BPATCH_v2_1/2=5D_KVM=3A_arm64=3A_caf=C3=A9?=",
        sender="Zoë <Zoe@Example.org>",
        date="Tue, 01 Sep 2020 12:00:00 +0200",
        received="Tue, 01 Sep 2020 10:30:00 -0000",
        refs=("root@x", "a@x"),
        body=body,
    )
    (got,) = split_lore_mbox(gzip.decompress(mbox_gz(raw)), "http://lore/kvmarm")
    assert got.raw.data.endswith(b"\n\n" + body.encode())
    assert got.msgid == "b@x" and got.refs == ("root@x", "a@x")
    assert got.subject == "Re: [PATCH v2 1/2] KVM: arm64: café"
    assert got.sender == "zoe@example.org"
    assert got.date == datetime(2020, 9, 1, 10, 0, tzinfo=UTC)
    assert got.received == datetime(2020, 9, 1, 10, 30, tzinfo=UTC)
    assert got.change_id == "20200901-feature-abc123"
    assert got.raw.origin == "http://lore/kvmarm/b@x/"


def test_received_time_falls_back_to_date_like_public_inbox():
    raw = mail("a@x", received=None, date="Wed, 02 Sep 2020 08:00:00 +0000")
    (got,) = split_lore_mbox(gzip.decompress(mbox_gz(raw)), "u")
    assert got.received == datetime(2020, 9, 2, 8, tzinfo=UTC)


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2020, 9, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Tue, 01 Sep 2020 00:00:30 GMT", now) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_queries_have_b4s_shapes():
    assert received_query(SINCE) == "rt:1598918400.."
    date = datetime(2020, 9, 7, 15, tzinfo=UTC)
    head = SeriesHead('[PATCH v4 00/21] KVM: arm64: Say "hi"', "will@kernel.org", date)
    assert earlier_versions_query(head) == (
        '(s:"KVM: arm64: Say hi" AND f:"will@kernel.org") AND d:20190908..20200907'
    )
    by_change = SeriesHead("[PATCH v3 0/2] x", "a@b", date, change_id="20200101-x-1")
    assert earlier_versions_query(by_change).startswith('(nq:"change-id: 20200101-x-1") AND d:')


def test_earlier_version_hits_are_checked_like_b4():
    date = datetime(2020, 9, 7, tzinfo=UTC)
    head = SeriesHead("[PATCH v3 0/2] KVM: arm64: Fix it", "a@b.org", date)

    def hit(subject: str, sender: str = "A <a@b.org>", body: str = "x\n"):
        raw = gzip.decompress(mbox_gz(mail("h@x", subject, sender=sender, body=body)))
        return split_lore_mbox(raw, "u")[0]

    assert is_earlier_version(hit("[PATCH v2 0/2] KVM: arm64: Fix it"), head)
    assert is_earlier_version(hit("[PATCH 1/2] KVM: arm64: Fix it"), head)
    assert not is_earlier_version(hit("Re: [PATCH v2 0/2] KVM: arm64: Fix it"), head)
    assert not is_earlier_version(hit("[PATCH v3 0/2] KVM: arm64: Fix it"), head)
    assert not is_earlier_version(hit("[PATCH v2 0/2] KVM: arm64: Fix it again"), head)
    assert not is_earlier_version(hit("[PATCH v2 0/2] KVM: arm64: Fix it", "c@d.org"), head)
    cid = SeriesHead("[PATCH v3 0/2] new title", "a@b.org", date, change_id="c-1")
    assert is_earlier_version(hit("[PATCH v2 0/2] old title", body="change-id: c-1\n"), cid)
    assert not is_earlier_version(
        hit("[PATCH v2 0/2] old", body="prerequisite-change-id: c-1\n"), cid
    )


# --- the real public-inbox server ---------------------------------------------------------------


@pytest.mark.lore
def test_window_search_returns_exactly_the_mail_received_in_it(lore_two_months, september_mails):
    until = datetime(2020, 9, 15, tzinfo=UTC)
    expected = {m.msgid for m in september_mails if SINCE <= m.received <= until}
    got = client(lore_two_months.url).received_between(SINCE, until)
    assert len(got) == len(expected) > 100
    assert {m.msgid for m in got} == expected
    by_id = {m.msgid: m for m in september_mails}
    assert all(m.received == by_id[m.msgid].received for m in got)


@pytest.mark.lore
def test_thread_fetches_agree_with_the_archive(lore_august, august_mails):
    thread_of = _threads(august_mails)
    biggest = max(thread_of.values(), key=len)
    member = sorted(biggest)[len(biggest) // 2]
    lore_client = client(lore_august.url)
    assert {m.msgid for m in lore_client.thread(member)} == biggest
    other = next(t for t in thread_of.values() if t is not biggest and len(t) > 2)
    batch = lore_client.threads([member, sorted(other)[0], "not-on-this-list@example.org"])
    assert {m.msgid for m in batch} == biggest | other
    assert lore_client.thread("not-on-this-list@example.org") == []


@pytest.mark.lore
def test_earlier_versions_are_found_then_fetched_with_their_threads(
    lore_two_months, august_mails, september_mails
):
    import b4

    older = [m for m in august_mails if not b4.LoreSubject(m.subject).reply]
    for head_mail in september_mails:
        ours = b4.LoreSubject(head_mail.subject)
        if ours.reply or ours.revision < 2 or ours.counter > 1:
            continue
        wanted = {
            m.msgid
            for m in older
            if m.sender == head_mail.sender
            and b4.LoreSubject(m.subject).subject == ours.subject
            and b4.LoreSubject(m.subject).revision < ours.revision
        }
        if wanted:
            break
    else:
        pytest.fail("no series in 2020-09 with an earlier version in 2020-08")
    head = SeriesHead(head_mail.subject, head_mail.sender, head_mail.received)
    lore_client = client(lore_two_months.url)
    found = lore_client.find_earlier_versions([head])
    msgids = [m.msgid for m in found if m.msgid is not None]
    assert len(msgids) == len(found) and set(msgids) == wanted
    got = {m.msgid for m in lore_client.threads(msgids)}
    thread_of = _threads(august_mails + september_mails)
    assert got == set().union(*(thread_of[w] for w in wanted))
    assert lore_client.requests == 2


def _threads(mails) -> dict[str, frozenset[str]]:
    """Message-ID → its thread (References/In-Reply-To, through missing parents)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for m in mails:
        for ref in m.refs:
            parent[find(ref)] = find(m.msgid)
    groups: dict[str, set[str]] = defaultdict(set)
    ids = {m.msgid for m in mails}
    for msgid in ids:
        groups[find(msgid)].add(msgid)
    return {msgid: frozenset(groups[find(msgid)]) for msgid in ids}
