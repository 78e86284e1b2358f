"""Subject lines: reply markers, [PATCH vN n/N] prefixes, project tags.

Follows b4's LoreSubject (nested brackets, ``[PATCHv3]``, several leading groups) and also
patchwork's looser forms seen in the wild: ``[PATCH,RFC]``, ``[net,v2,1/2]``, ``PATCH1/8``,
``v2PATCH1/4``, Mercurial's ``[PATCH 1 of 2]`` and a trailing ``(v2)``.
"""

from __future__ import annotations

import re

from ingest.records import Subject

# "Re:", "RE:", "Fwd:", "AW:", "Re[2]:", "SV:" … and patchwork's "Re meep".
_REPLY_RE = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|sv|antw|odp|r)(?:\[\d+\])?\s*:|(?:re|fwd?)\s)\s*", re.I
)
_MISSING_BRACKET_RE = re.compile(r"^(?:RFC[ ,])?PATCH\b[^\[\]]{0,40}\]", re.I)
_LEADING_GROUP_RE = re.compile(r"^\s*\[([^\]]*)\]")
_NESTED_RE = (re.compile(r"\[([^\]]*)\[([^\[\]]*)\]"), re.compile(r"\[([^\]]*)\]([^\[\]]*)\]"))
_COUNTER_RE = re.compile(r"^(\d{1,4})/(\d{1,4})$")
_VERSION_RE = re.compile(r"^v(\d{1,3})$", re.I)
_TITLE_VERSION_RE = re.compile(r"\s*\(v(\d{1,3})\)\s*$", re.I)
_STABLE_RE = re.compile(
    r"^(?:stable(?:-\d+\.\d+.*)?|for-stable|\d+\.\d+(?:\.\d+)?(?:\.y|-stable)?)$", re.I
)
_TAG_ALIASES = {
    "kvmtool": "kvmtool",
    "kvm-tool": "kvmtool",
    "kvm-unit-tests": "kvm-unit-tests",
    "kvm-unit-test": "kvm-unit-tests",
    "kut": "kvm-unit-tests",
}


def parse_subject(raw: str) -> Subject:
    """Split a decoded subject into reply flag, prefixes, version, counters and title."""
    full = " ".join(raw.split())
    rest, is_reply = _strip_reply(full)
    if _MISSING_BRACKET_RE.match(rest):
        rest = "[" + rest  # "PATCH v4 00/11] KVM: …": the sender's tool lost the "["
    rest = _flatten_nested_brackets(rest)
    tokens, rest = _take_leading_groups(rest)
    # "Re:" after the prefixes ("[PATCH] Re: foo") is still a reply.
    rest, late_reply = _strip_reply(rest)
    info = _classify(tokens)
    title = rest.strip().lstrip(":").strip()
    if not info["version_explicit"] and (m := _TITLE_VERSION_RE.search(title)):
        info["version"], info["version_explicit"] = int(m.group(1)), True
    return Subject(
        full=full,
        title=title,
        key=normalise_title(title),
        is_reply=is_reply or late_reply,
        **info,
    )


def normalise_title(title: str) -> str:
    """The part of a title that stays the same across versions of a series."""
    title = _TITLE_VERSION_RE.sub("", title)
    title = re.sub(r"\s+", " ", title).strip().rstrip(".").strip()
    return title.casefold()


def _strip_reply(subject: str) -> tuple[str, bool]:
    is_reply = False
    while m := _REPLY_RE.match(subject):
        subject = subject[m.end() :]
        is_reply = True
    return subject, is_reply


def _flatten_nested_brackets(subject: str) -> str:
    """``[PATCH [v2] 1/3]`` → ``[PATCH v2 1/3]`` (b4 does the same)."""
    while True:
        before = subject
        for pattern in _NESTED_RE:
            subject = pattern.sub(r"[\1\2]", subject)
        if subject == before:
            return subject


def _take_leading_groups(subject: str) -> tuple[list[str], str]:
    tokens: list[str] = []
    while m := _LEADING_GROUP_RE.match(subject):
        tokens.extend(_split_group(m.group(1)))
        subject = subject[m.end() :]
    return tokens, subject


def _split_group(group: str) -> list[str]:
    group = re.sub(r"(?i)(v\d+(?:\.\d+)?)(?=patch)", r"\1 ", group)  # v2PATCH1/4
    group = re.sub(r"(?i)(patch)(?=v\d|\d)", r"\1 ", group)  # PATCHv3, PATCH1/8
    group = re.sub(r"\b(\d{1,4})\s+of\s+(\d{1,4})\b", r"\1/\2", group, flags=re.I)  # hg
    return [tok.strip(",;:") for tok in re.split(r"[\s,;]+", group) if tok.strip(",;:")]


def _classify(tokens: list[str]) -> dict:
    info: dict = {
        "prefixes": [],
        "version": 1,
        "version_explicit": False,
        "counter": None,
        "total": None,
        "rfc": False,
        "resend": False,
        "patch": False,
        "pull": False,
        "tags": [],
    }
    upper = [t.upper() for t in tokens]
    for tok, up in zip(tokens, upper, strict=True):
        if m := _COUNTER_RE.match(tok):
            info["counter"], info["total"] = int(m.group(1)), int(m.group(2))
            continue
        if m := _VERSION_RE.match(tok):
            info["version"], info["version_explicit"] = int(m.group(1)), True
            continue
        info["prefixes"].append(tok)
        if up.startswith("RFC"):
            info["rfc"] = True
        elif up.startswith("RESEND"):
            info["resend"] = True
        elif up.startswith("PATCH"):
            info["patch"] = True
        elif up in ("PULL", "GIT-PULL") or (up == "GIT" and "PULL" in upper):
            info["pull"] = True
        if tag := _project_tag(tok):
            info["tags"].append(tag)
    info["prefixes"] = tuple(info["prefixes"])
    info["tags"] = tuple(dict.fromkeys(info["tags"]))
    return info


def _project_tag(token: str) -> str | None:
    low = token.lower()
    if low in _TAG_ALIASES:
        return _TAG_ALIASES[low]
    if _STABLE_RE.match(low):
        return "stable"
    return None
