"""The exactly-once write both the digest poster and live delivery use (bot/slack/ledger.py):
what it records, when it looks up, when it gives up.  The Slack sides are in
tests/test_post_faults.py and tests/test_live_slack.py."""

from __future__ import annotations

import pytest

from bot.slack.calls import CallFailed, NotSent, Refused, Unknown
from bot.slack.ledger import Retry, write_once


class Ledger:
    """A record kept in a list: what write_once said, in order."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def pending(self) -> None:
        self.said.append("pending")

    def sent(self, ts: str, *, found: bool) -> None:
        self.said.append(f"{'found' if found else 'sent'} {ts}")

    def failed(self, exc: CallFailed, *, uncertain: bool) -> None:
        self.said.append(f"{'unsure' if uncertain else 'failed'} {exc.reason}")


def sender(*outcomes: str | CallFailed):
    calls: list[int] = []

    def send() -> str:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, CallFailed):
            raise outcome
        return outcome

    return send, calls


RETRY = Retry((0.0, 0.0), lambda _s: None)
LOST = Unknown("chat.postMessage", "Slack did not answer in time")
BUSY = NotSent("chat.postMessage", "rate limited (HTTP 429)", 429)
GONE = Refused("chat.postMessage", "channel_not_found", 404)


def test_a_write_is_recorded_before_and_after_its_call():
    ledger = Ledger()
    send, calls = sender("1.1")
    assert write_once(ledger, send=send) == "1.1"
    assert ledger.said == ["pending", "sent 1.1"] and len(calls) == 1


def test_an_unknown_outcome_is_looked_up_before_the_next_try():
    ledger = Ledger()
    send, calls = sender(LOST, "1.2")
    assert write_once(ledger, send=send, find=lambda: "1.1", retry=RETRY) == "1.1"
    assert len(calls) == 1  # it was there: not sent again
    assert ledger.said == ["pending", "unsure Slack did not answer in time", "found 1.1"]
    ledger = Ledger()
    send, calls = sender(LOST, "1.2")
    assert write_once(ledger, send=send, find=lambda: None, retry=RETRY) == "1.2"
    assert len(calls) == 2 and ledger.said[-2:] == ["pending", "sent 1.2"]


def test_a_surely_refused_try_is_not_looked_up_and_a_refusal_stops():
    looked: list[int] = []
    ledger = Ledger()
    send, calls = sender(BUSY, GONE)

    def find() -> str | None:
        looked.append(1)
        return None

    with pytest.raises(Refused):
        write_once(ledger, send=send, find=find, retry=RETRY)
    assert len(calls) == 2 and looked == []
    assert ledger.said[-1] == "failed channel_not_found (HTTP 404)"


def test_once_unsure_it_stays_pending_even_if_a_later_try_is_refused():
    ledger = Ledger()
    send, _calls = sender(LOST, BUSY, BUSY)
    with pytest.raises(NotSent):
        write_once(ledger, send=send, find=lambda: None, retry=RETRY)
    assert ledger.said[-1] == "unsure rate limited (HTTP 429)"


def test_a_write_an_earlier_run_left_pending_is_recovered_not_resent():
    ledger = Ledger()
    send, calls = sender("1.9")
    assert write_once(ledger, send=send, recover=lambda: "1.3") == "1.3"
    assert calls == [] and ledger.said == ["found 1.3"]
    send, calls = sender("1.9")
    assert write_once(Ledger(), send=send, recover=lambda: None) == "1.9" and len(calls) == 1
