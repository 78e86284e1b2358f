"""What changed between versions of a series: patches added, dropped, changed, retitled.

Patches are matched by ``git patch-id --stable`` first (same change, maybe a new title), then
by title (same title, new content).  Parts of one split send (v7 posted as three series the
same hour) are compared together.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.messages import from_iso


@dataclass(frozen=True, slots=True)
class VersionChange:
    added: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # same title, different patch-id
    retitled: tuple[tuple[str, str], ...] = ()  # same patch-id, (old title, new title)
    unchanged: int = 0  # same patch-id and title

    @property
    def empty(self) -> bool:
        return not (self.added or self.dropped or self.changed or self.retitled)


def group_steps(versions: list[dict]) -> list[list[dict]]:
    """Consecutive postings of one version sent within the same hour by the same sender."""
    steps: list[list[dict]] = []
    for v in versions:
        last = steps[-1][-1] if steps else None
        if (
            last is not None
            and last["version"] == v["version"]
            and last["sender"]["email"] == v["sender"]["email"]
            and _within_hour(last["date"], v["date"])
        ):
            steps[-1].append(v)
        else:
            steps.append([v])
    return steps


def diff_steps(
    versions: list[dict], titles: dict[str, str]
) -> list[tuple[list[dict], VersionChange | None]]:
    """Each step of a series with what changed since the step before (None for the first).

    ``titles`` maps a patch's Message-ID to its title without [PATCH …] prefixes.
    """
    out: list[tuple[list[dict], VersionChange | None]] = []
    previous: list[dict] | None = None
    for step in group_steps(versions):
        change = None
        if previous is not None:
            change = diff_patches(_patches(previous, titles), _patches(step, titles))
        out.append((step, change))
        previous = step
    return out


Patch = tuple[str, str | None]  # (title, patch-id)


def diff_patches(old: list[Patch], new: list[Patch]) -> VersionChange:
    """Compare (title, patch-id) lists of two versions."""
    old_ids = {pid: title for title, pid in old if pid}
    new_ids = {pid for _, pid in new if pid}
    old_titles = {_key(title) for title, _ in old}
    new_titles = {_key(title) for title, _ in new}
    added, changed, retitled, unchanged = [], [], [], 0
    for title, pid in new:
        if pid and pid in old_ids:
            if _key(old_ids[pid]) == _key(title):
                unchanged += 1
            else:
                retitled.append((old_ids[pid], title))
        elif _key(title) in old_titles:
            changed.append(title)
        else:
            added.append(title)
    retitled_old = {_key(o) for o, _ in retitled}
    dropped = [
        title
        for title, pid in old
        if not (pid and pid in new_ids)
        and _key(title) not in new_titles
        and _key(title) not in retitled_old
    ]
    # "arm64: kvm: Foo" → "KVM: arm64: Foo": the same patch under a new subsystem prefix.
    for title in list(added):
        was = next((d for d in dropped if _summary_key(d) == _summary_key(title)), None)
        if was is not None:
            added.remove(title)
            dropped.remove(was)
            changed.append(f"{title} (was: {was})")
    return VersionChange(tuple(added), tuple(dropped), tuple(changed), tuple(retitled), unchanged)


def _patches(step: list[dict], titles: dict[str, str]) -> list[Patch]:
    return [
        (titles.get(p["msgid"], p["subject"]), p["patch_id"]) for v in step for p in v["patches"]
    ]


def _key(title: str) -> str:
    return " ".join(title.split()).casefold()


def _summary_key(title: str) -> str:
    """The title without its "subsystem: area:" prefixes."""
    return _key(title.rsplit(": ", 1)[-1])


def _within_hour(a: str | None, b: str | None) -> bool:
    da, db_ = from_iso(a), from_iso(b)
    return da is not None and db_ is not None and abs((db_ - da).total_seconds()) <= 3600
