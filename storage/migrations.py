"""Numbered schema migrations, applied in order when the database is opened.

Never edit a migration that has shipped: add the next number at the end.  Migrations are
applied in the order they are defined here and recorded by name (``_sqlite_migrations``), so
a name must never change.  There is no m002 (never shipped); m003_digest used to be defined
after m004_search — they touch unrelated tables, so databases made in either order have the
same schema, and tests/test_layout.py checks the numbers now rise.  Tables:
- messages / message_content: one row per Message-ID (facts / bulky text and raw bytes);
- quarantine: mails that could not be stored as messages, with the reason;
- threads, series, versions, patches, trailers, memberships: facts derived from messages,
  rebuilt as a whole by ``storage.derived.save_derived``;
- state: small key/value facts (last sync, derivation version);
- derive_queue: Message-IDs stored since the derived tables were last written (m006);
- derive_set_aside: mails whose derivation raised, left out with the reason (m007);
- messages_fts: full-text index over subject, body and sender (external content;
  maintained by storage.messages.save_messages).
"""

from __future__ import annotations

import sqlite_utils

MIGRATIONS = sqlite_utils.Migrations("kvmarm")


@MIGRATIONS(name="m001_initial")
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE messages (
            msgid TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            title TEXT NOT NULL,
            subject_key TEXT NOT NULL,
            from_name TEXT NOT NULL,
            from_email TEXT NOT NULL,
            date TEXT,                 -- Date: header in UTC, ISO 8601 with Z; NULL if unusable
            received TEXT,             -- topmost Received: header in UTC
            list_id TEXT,
            in_reply_to TEXT,
            refs TEXT NOT NULL,        -- JSON array of Message-IDs
            is_reply INTEGER NOT NULL,
            is_bot INTEGER NOT NULL,
            has_diff INTEGER NOT NULL,
            has_diffstat INTEGER NOT NULL,
            subject_info TEXT NOT NULL, -- JSON: version, counter, total, prefixes, tags, flags
            trailers TEXT NOT NULL,    -- JSON array of [kind, name, email, mismatch]
            change_id TEXT,
            version_links TEXT NOT NULL,
            applied TEXT,              -- JSON AppliedNotice
            respin TEXT,
            pull TEXT,                 -- JSON PullRequest
            patch_id TEXT,
            send_id TEXT,
            problems TEXT NOT NULL,    -- JSON array of strings
            body TEXT NOT NULL,        -- the sender's own words, no quotes/signature/diff
            origin TEXT,
            ingested_at TEXT NOT NULL
        );
        CREATE INDEX messages_date ON messages(date);
        CREATE INDEX messages_received ON messages(received);
        CREATE INDEX messages_from ON messages(from_email);
        CREATE INDEX messages_patch_id ON messages(patch_id);
        CREATE INDEX messages_change_id ON messages(change_id);

        CREATE TABLE message_content (
            msgid TEXT PRIMARY KEY REFERENCES messages(msgid) ON DELETE CASCADE,
            diff BLOB NOT NULL,        -- zlib-compressed UTF-8 of the patch, if any
            raw BLOB NOT NULL          -- zlib-compressed bytes as received
        );

        CREATE TABLE quarantine (
            sha256 TEXT PRIMARY KEY,
            origin TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw BLOB NOT NULL,         -- zlib-compressed
            at TEXT NOT NULL
        );

        CREATE TABLE state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL        -- JSON
        );

        CREATE TABLE threads (
            root TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            first_date TEXT,
            last_date TEXT,
            n_messages INTEGER NOT NULL,
            missing TEXT NOT NULL      -- JSON array of referenced Message-IDs we do not have
        );

        CREATE TABLE series (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            title_key TEXT NOT NULL,
            author_name TEXT NOT NULL,
            author_email TEXT NOT NULL,
            change_id TEXT,
            links TEXT NOT NULL,       -- JSON: how versions were chained
            first_date TEXT,
            last_date TEXT,            -- last message of any version or reply
            n_versions INTEGER NOT NULL,
            latest_version INTEGER NOT NULL,
            status TEXT NOT NULL       -- status of the latest version
        );
        CREATE INDEX series_author ON series(author_email);

        CREATE TABLE versions (
            key TEXT PRIMARY KEY,      -- msgid of the cover, else of the first patch
            series_id TEXT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
            position INTEGER NOT NULL, -- order within the series
            version INTEGER NOT NULL,
            date TEXT,
            sender_name TEXT NOT NULL,
            sender_email TEXT NOT NULL,
            title TEXT NOT NULL,
            cover TEXT,
            total INTEGER NOT NULL,
            prefixes TEXT NOT NULL,
            tags TEXT NOT NULL,
            category TEXT NOT NULL,
            change_id TEXT,
            resend INTEGER NOT NULL,
            partial_reroll_of INTEGER,
            status TEXT NOT NULL,
            evidence TEXT NOT NULL,    -- JSON array of evidence objects
            thread_root TEXT
        );
        CREATE INDEX versions_series ON versions(series_id, position);
        CREATE INDEX versions_date ON versions(date);

        CREATE TABLE patches (
            version_key TEXT NOT NULL REFERENCES versions(key) ON DELETE CASCADE,
            n INTEGER NOT NULL,
            msgid TEXT NOT NULL,
            subject TEXT NOT NULL,
            patch_id TEXT,
            from_version INTEGER,
            applied TEXT,              -- JSON evidence
            pulled TEXT,               -- JSON evidence
            PRIMARY KEY (version_key, n)
        );
        CREATE INDEX patches_msgid ON patches(msgid);

        CREATE TABLE trailers (
            version_key TEXT NOT NULL REFERENCES versions(key) ON DELETE CASCADE,
            n INTEGER NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            msgid TEXT NOT NULL,       -- the message that gave it
            source TEXT NOT NULL,      -- inline | reply | cover | carried
            from_version INTEGER,
            mismatch INTEGER NOT NULL,
            position INTEGER NOT NULL
        );
        CREATE INDEX trailers_slot ON trailers(version_key, n);
        CREATE INDEX trailers_email ON trailers(email, kind);

        CREATE TABLE memberships (
            msgid TEXT PRIMARY KEY,
            thread_root TEXT NOT NULL,
            series_id TEXT,
            version_key TEXT
        );
        CREATE INDEX memberships_thread ON memberships(thread_root);
        CREATE INDEX memberships_series ON memberships(series_id);
        """
    )
    # No triggers: storage.messages.save_messages keeps the index in step with one
    # INSERT … SELECT per batch, four times cheaper than a trigger per row.
    db.table("messages").enable_fts(
        ["subject", "body", "from_name", "from_email"],
        fts_version="FTS5",
        create_triggers=False,
        tokenize="unicode61 remove_diacritics 2",
    )


@MIGRATIONS(name="m003_digest")
def m003_digest(db: sqlite_utils.Database) -> None:
    """The weekly digest: summary cache, LLM token usage, what was posted to which channel."""
    db.executescript(
        """
        CREATE TABLE digest_summaries (
            cache_key TEXT PRIMARY KEY,  -- sha256 of entry, last message, lang, model, prompt
            entry_key TEXT NOT NULL,     -- series:<id> | thread:<root>
            last_msgid TEXT NOT NULL,
            lang TEXT NOT NULL,
            model TEXT NOT NULL,         -- the summariser asked (part of the key)
            prompt_version TEXT NOT NULL,
            period_key TEXT NOT NULL,
            period_until TEXT NOT NULL,
            background TEXT,             -- NULL when there was nothing earlier to go on
            this_week TEXT NOT NULL,
            source TEXT NOT NULL,        -- llm | extractive
            summary_model TEXT NOT NULL, -- what produced the text (extractive on fallback)
            cited TEXT NOT NULL,         -- JSON array of Message-IDs
            note TEXT,                   -- why a fallback was used
            created_at TEXT NOT NULL
        );
        CREATE INDEX digest_summaries_entry ON digest_summaries(entry_key, lang, period_until);
        CREATE INDEX digest_summaries_period ON digest_summaries(period_key);

        CREATE TABLE llm_usage (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            entry_key TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            prompt_chars INTEGER NOT NULL,
            outcome TEXT NOT NULL        -- ok | rejected | error
        );
        CREATE INDEX llm_usage_at ON llm_usage(at);

        CREATE TABLE digest_posts (
            period_key TEXT NOT NULL,    -- ISO week, or since/until
            channel TEXT NOT NULL,
            run INTEGER NOT NULL,        -- 1, then +1 for each --force
            state TEXT NOT NULL,         -- posting | done
            started_at TEXT NOT NULL,
            finished_at TEXT,
            PRIMARY KEY (period_key, channel, run)
        );

        CREATE TABLE digest_post_parts (
            period_key TEXT NOT NULL,
            channel TEXT NOT NULL,
            run INTEGER NOT NULL,
            part INTEGER NOT NULL,       -- 0 parent, 1.. replies, last the chart
            kind TEXT NOT NULL,          -- parent | reply | chart
            state TEXT NOT NULL,         -- pending (asked, answer not recorded) | posted | failed
            ts TEXT,
            at TEXT NOT NULL,
            PRIMARY KEY (period_key, channel, run, part)
        );
        """
    )


# Rowid ranges of search_fts: one row per version, per patch and per thread.  The derived
# tables are rewritten as a whole by save_derived; these triggers keep the index in step.
_PATCH_ROWS = 1 << 40
_THREAD_ROWS = 2 << 40


@MIGRATIONS(name="m004_search")
def m004_search(db: sqlite_utils.Database) -> None:
    """Full-text index over what people search for: version titles and senders, patch
    titles (FEAT_ names live there), thread subjects and their first sender."""
    db.executescript(
        f"""
        CREATE VIRTUAL TABLE search_fts USING fts5(
            kind UNINDEXED,            -- series | patch | thread
            ref UNINDEXED,             -- series id (series, patch) or thread root (thread)
            title,
            people,
            tokenize = 'unicode61 remove_diacritics 2'
        );
        CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, 'col');

        CREATE TRIGGER search_versions_ai AFTER INSERT ON versions BEGIN
            INSERT INTO search_fts(rowid, kind, ref, title, people) VALUES (
                new.rowid, 'series', new.series_id, new.title,
                new.sender_name || ' ' || new.sender_email);
        END;
        CREATE TRIGGER search_versions_ad AFTER DELETE ON versions BEGIN
            DELETE FROM search_fts WHERE rowid = old.rowid;
        END;
        CREATE TRIGGER search_versions_au AFTER UPDATE ON versions BEGIN
            DELETE FROM search_fts WHERE rowid = old.rowid;
            INSERT INTO search_fts(rowid, kind, ref, title, people) VALUES (
                new.rowid, 'series', new.series_id, new.title,
                new.sender_name || ' ' || new.sender_email);
        END;

        CREATE TRIGGER search_patches_ai AFTER INSERT ON patches BEGIN
            INSERT INTO search_fts(rowid, kind, ref, title, people) VALUES (
                new.rowid + {_PATCH_ROWS}, 'patch',
                (SELECT series_id FROM versions WHERE key = new.version_key),
                coalesce((SELECT title FROM messages WHERE msgid = new.msgid), new.subject),
                '');
        END;
        CREATE TRIGGER search_patches_ad AFTER DELETE ON patches BEGIN
            DELETE FROM search_fts WHERE rowid = old.rowid + {_PATCH_ROWS};
        END;
        CREATE TRIGGER search_patches_au AFTER UPDATE ON patches BEGIN
            DELETE FROM search_fts WHERE rowid = old.rowid + {_PATCH_ROWS};
            INSERT INTO search_fts(rowid, kind, ref, title, people) VALUES (
                new.rowid + {_PATCH_ROWS}, 'patch',
                (SELECT series_id FROM versions WHERE key = new.version_key),
                coalesce((SELECT title FROM messages WHERE msgid = new.msgid), new.subject),
                '');
        END;

        CREATE TRIGGER search_threads_ai AFTER INSERT ON threads BEGIN
            INSERT INTO search_fts(rowid, kind, ref, title, people) VALUES (
                new.rowid + {_THREAD_ROWS}, 'thread', new.root,
                coalesce((SELECT title FROM messages WHERE msgid = new.root), new.subject),
                coalesce((SELECT from_name || ' ' || from_email FROM messages
                          WHERE msgid = new.root), ''));
        END;
        CREATE TRIGGER search_threads_ad AFTER DELETE ON threads BEGIN
            DELETE FROM search_fts WHERE rowid = old.rowid + {_THREAD_ROWS};
        END;
        CREATE TRIGGER search_threads_au AFTER UPDATE ON threads BEGIN
            DELETE FROM search_fts WHERE rowid = old.rowid + {_THREAD_ROWS};
            INSERT INTO search_fts(rowid, kind, ref, title, people) VALUES (
                new.rowid + {_THREAD_ROWS}, 'thread', new.root,
                coalesce((SELECT title FROM messages WHERE msgid = new.root), new.subject),
                coalesce((SELECT from_name || ' ' || from_email FROM messages
                          WHERE msgid = new.root), ''));
        END;

        -- Existing derived rows (databases created before this migration).
        INSERT INTO search_fts(rowid, kind, ref, title, people)
            SELECT rowid, 'series', series_id, title, sender_name || ' ' || sender_email
            FROM versions;
        INSERT INTO search_fts(rowid, kind, ref, title, people)
            SELECT p.rowid + {_PATCH_ROWS}, 'patch', v.series_id, coalesce(m.title, p.subject), ''
            FROM patches p JOIN versions v ON v.key = p.version_key
            LEFT JOIN messages m ON m.msgid = p.msgid;
        INSERT INTO search_fts(rowid, kind, ref, title, people)
            SELECT t.rowid + {_THREAD_ROWS}, 'thread', t.root, coalesce(m.title, t.subject),
                   coalesce(m.from_name || ' ' || m.from_email, '')
            FROM threads t LEFT JOIN messages m ON m.msgid = t.root;

        CREATE INDEX IF NOT EXISTS versions_thread ON versions(thread_root);
        CREATE INDEX IF NOT EXISTS memberships_version ON memberships(version_key);
        """
    )


@MIGRATIONS(name="m005_search_bulk")
def m005_search_bulk(db: sqlite_utils.Database) -> None:
    """search_fts is refilled in bulk by save_derived (storage/search_index.py): drop the
    per-row triggers of m004, which made rewriting the derived tables several times slower."""
    from storage.search_index import refresh_search_index

    for table in ("versions", "patches", "threads"):
        for event in ("ai", "ad", "au"):
            db.execute(f"DROP TRIGGER IF EXISTS search_{table}_{event}")
    refresh_search_index(db)


@MIGRATIONS(name="m006_derive_queue")
def m006_derive_queue(db: sqlite_utils.Database) -> None:
    """Mail stored but not yet reflected in the derived tables, written in the same
    transaction as the mail and emptied in the same transaction as the facts: a crash
    between the two leaves the queue, and the next writing command derives from it."""
    db.executescript(
        """
        CREATE TABLE derive_queue (
            msgid TEXT PRIMARY KEY
        );
        """
    )


@MIGRATIONS(name="m007_set_aside")
def m007_set_aside(db: sqlite_utils.Database) -> None:
    """Mails left out of derivation because deriving them raised (with the reason)."""
    db.executescript(
        """
        CREATE TABLE derive_set_aside (
            msgid TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        );
        """
    )


@MIGRATIONS(name="m008_components")
def m008_components(db: sqlite_utils.Database) -> None:
    """Which component (ingest/components.py) each stored mail belongs to, and which keys
    each component holds: new mail re-derives only the components its keys touch.  Filled
    by a full derivation; until then (``state.components_version``) derivation is full."""
    db.executescript(
        """
        CREATE TABLE derive_components (
            msgid TEXT PRIMARY KEY,
            comp TEXT NOT NULL
        );
        CREATE INDEX derive_components_comp ON derive_components(comp);
        CREATE TABLE derive_keys (
            key TEXT NOT NULL,
            comp TEXT NOT NULL,
            strong INTEGER NOT NULL,   -- 1: relates to every holder; 0: only to strong ones
            PRIMARY KEY (key, comp)
        ) WITHOUT ROWID;
        CREATE INDEX derive_keys_comp ON derive_keys(comp);
        """
    )


@MIGRATIONS(name="m010_trailer_scope")
def m010_trailer_scope(db: sqlite_utils.Database) -> None:
    """A follow-up trailer's scope words (shown) and whether they could not be mapped to
    patches (then it is shown but never counted)."""
    db.execute("ALTER TABLE trailers ADD COLUMN scope TEXT")
    db.execute("ALTER TABLE trailers ADD COLUMN unresolved INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS(name="m011_message_author")
def m011_message_author(db: sqlite_utils.Database) -> None:
    """A patch's in-body From: (JSON [name, address]) when it names someone other than the
    sender: the author, whose own trailers never count on it."""
    db.execute("ALTER TABLE messages ADD COLUMN author TEXT")


@MIGRATIONS(name="m012_message_paths")
def m012_message_paths(db: sqlite_utils.Database) -> None:
    """The files a patch's diff touches (JSON list; "[]" for every other mail), so a
    subject-area trailer scope ("for the selftest changes") can match a patch by its files."""
    db.execute("ALTER TABLE messages ADD COLUMN paths TEXT NOT NULL DEFAULT '[]'")


@MIGRATIONS(name="m020_post_ledger")
def m020_post_ledger(db: sqlite_utils.Database) -> None:
    """The posting ledger remembers the chart's file id before it is shared (so an interrupted
    upload is looked up in the thread, not shared twice) and why a part is still open."""
    db.executescript(
        """
        ALTER TABLE digest_post_parts ADD COLUMN file_id TEXT;
        ALTER TABLE digest_post_parts ADD COLUMN note TEXT;
        """
    )


@MIGRATIONS(name="m025_summary_retry")
def m025_summary_retry(db: sqlite_utils.Database) -> None:
    """A cached summary that stands in for a failed LLM call (error, timeout, time budget)
    is marked ``retry = 1``: the next run asks the LLM again and replaces it."""
    db.execute("ALTER TABLE digest_summaries ADD COLUMN retry INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS(name="m026_slack_events")
def m026_slack_events(db: sqlite_utils.Database) -> None:
    """Events API deliveries already handled (by event_id), so a Slack retry — also after a
    restart — is acknowledged without being answered twice."""
    db.executescript(
        """
        CREATE TABLE slack_events (
            event_id TEXT PRIMARY KEY,
            received_at TEXT NOT NULL
        );
        CREATE INDEX slack_events_received ON slack_events(received_at);
        """
    )


@MIGRATIONS(name="m035_live_events")
def m035_live_events(db: sqlite_utils.Database) -> None:
    """Live Slack: facts turned into events (once, by natural key), where each event was
    delivered, channel subscriptions with the series card each channel got, and the files
    each patch touches (for `path:` filters)."""
    db.executescript(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,    -- natural key: the same fact never makes two events
            kind TEXT NOT NULL,          -- new_series | new_version | review | applied | pulled
                                         -- | dropped | changes_requested | report
            version_key TEXT NOT NULL,   -- the version it is about (when it was recorded)
            anchor TEXT NOT NULL,        -- msgid of that version's first patch (stays stable)
            version INTEGER NOT NULL,
            msgid TEXT NOT NULL,         -- the mail that makes the fact
            actor_name TEXT NOT NULL,
            actor_email TEXT NOT NULL,
            at TEXT,                     -- date of that mail (UTC)
            detail TEXT NOT NULL,        -- JSON: patches, trailer kind, where, commit, …
            baseline INTEGER NOT NULL,   -- recorded when events began: never delivered
            created_at TEXT NOT NULL
        );
        CREATE INDEX events_anchor ON events(anchor);

        CREATE TABLE event_deliveries (
            event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
            target TEXT NOT NULL,        -- channel C…/G… or user U…
            state TEXT NOT NULL,         -- pending (asked, answer not recorded) | sent
                                         -- | failed | unknown | skipped
            ts TEXT,
            channel TEXT,                -- where it landed (a DM's channel id for users)
            attempts INTEGER NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (event_id, target)
        );

        CREATE TABLE subscriptions (
            channel TEXT NOT NULL,
            filter TEXT NOT NULL,        -- normalised filter text
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            after_event INTEGER NOT NULL, -- only events with a larger id are delivered
            PRIMARY KEY (channel, filter)
        );

        CREATE TABLE series_cards (
            channel TEXT NOT NULL,
            series_key TEXT NOT NULL,    -- a version key of the series (its first when posted)
            state TEXT NOT NULL,         -- pending | sent
            ts TEXT,
            shown TEXT,                  -- what the card shows now (version and status)
            at TEXT NOT NULL,
            PRIMARY KEY (channel, series_key)
        );

        CREATE TABLE message_paths (
            msgid TEXT PRIMARY KEY,
            paths TEXT NOT NULL          -- JSON array of files the patch touches
        );
        """
    )


@MIGRATIONS(name="m036_unfurls")
def m036_unfurls(db: sqlite_utils.Database) -> None:
    """Lore links unfurled per channel, so the same link is not unfurled twice in 30 min."""
    db.executescript(
        """
        CREATE TABLE unfurls (
            channel TEXT NOT NULL,
            msgid TEXT NOT NULL,       -- the Message-ID the link names
            at TEXT NOT NULL,          -- when it was last unfurled there
            PRIMARY KEY (channel, msgid)
        );
        """
    )


@MIGRATIONS(name="m037_people")
def m037_people(db: sqlite_utils.Database) -> None:
    """Slack users linked to list addresses (`/kvmarm iam`), and their personal alerts."""
    db.executescript(
        """
        CREATE TABLE slack_people (
            user TEXT NOT NULL,          -- Slack user id U…
            email TEXT NOT NULL,         -- lower-cased list address
            how TEXT NOT NULL,           -- typed (iam) | profile (users:read.email)
            at TEXT NOT NULL,
            PRIMARY KEY (user, email)
        );
        CREATE INDEX slack_people_email ON slack_people(email);

        CREATE TABLE slack_alerts (
            user TEXT PRIMARY KEY,
            enabled INTEGER NOT NULL,
            after_event INTEGER NOT NULL, -- only events with a larger id are sent
            at TEXT NOT NULL
        );
        """
    )


@MIGRATIONS(name="m038_two_level_derivation")
def m038_two_level_derivation(db: sqlite_utils.Database) -> None:
    """What the second level of derivation (ingest/derive.py) keeps between runs, so new mail
    re-derives only the postings and series it touches (bot/sync/derivation.py):
    - derive_drafts: each posting's summary (ingest/summaries.py), the unit (first-level
      component) it was derived in, its chain (second-level component) and series, and
      hashes that tell what changed (unchanged series are not finished again, unchanged
      rows not rewritten);
    - derive_chain_keys: the second-level keys each posting holds (ingest/components.py);
    - derive_pull_candidates / derive_pull_entries / derive_pull_marks: patches a pull
      request's shortlog may name, the shortlog lines, and which patch each line marked;
    - derive_appliers: the mails that show their sender applies patches
      (ingest.applies.shows_applier), so the set of appliers is known without reading mail.
    Filled by a full derivation (``reindex``, or the first after this migration)."""
    db.executescript(
        """
        CREATE TABLE derive_drafts (
            key TEXT PRIMARY KEY,
            unit TEXT NOT NULL,
            chain TEXT NOT NULL,
            series_id TEXT NOT NULL,
            hash TEXT NOT NULL,        -- of its version's rows (storage.derived.series_rows)
            shape TEXT NOT NULL,       -- of its series' chaining (ingest.derive.Chains.shape)
            digest TEXT NOT NULL,      -- of its summary
            head TEXT NOT NULL,        -- JSON: what chaining reads (ingest/summaries.py)
            body TEXT NOT NULL         -- JSON: the rest
        );
        CREATE INDEX derive_drafts_unit ON derive_drafts(unit);
        CREATE INDEX derive_drafts_chain ON derive_drafts(chain);
        CREATE INDEX derive_drafts_series ON derive_drafts(series_id);
        CREATE TABLE derive_chain_keys (
            key TEXT NOT NULL,
            draft TEXT NOT NULL,
            strong INTEGER NOT NULL,   -- 1: relates to every holder; 0: only to strong ones
            PRIMARY KEY (key, draft)
        ) WITHOUT ROWID;
        CREATE INDEX derive_chain_keys_draft ON derive_chain_keys(draft);
        CREATE TABLE derive_pull_candidates (
            title TEXT NOT NULL,
            key TEXT NOT NULL,
            n INTEGER NOT NULL,
            date TEXT,
            sender_name TEXT NOT NULL,
            series_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            order_date TEXT NOT NULL,
            order_id TEXT NOT NULL
        );
        CREATE INDEX derive_pull_candidates_title ON derive_pull_candidates(title);
        CREATE INDEX derive_pull_candidates_key ON derive_pull_candidates(key);
        CREATE TABLE derive_pull_entries (
            title TEXT NOT NULL,
            author TEXT NOT NULL,
            key TEXT NOT NULL,
            idx INTEGER NOT NULL,
            date TEXT,
            order_date TEXT NOT NULL,
            order_id TEXT NOT NULL,
            evidence TEXT NOT NULL
        );
        CREATE INDEX derive_pull_entries_title ON derive_pull_entries(title);
        CREATE INDEX derive_pull_entries_key ON derive_pull_entries(key);
        CREATE TABLE derive_pull_marks (
            key TEXT NOT NULL,
            n INTEGER NOT NULL,
            title TEXT NOT NULL,
            evidence TEXT NOT NULL,
            PRIMARY KEY (key, n)
        );
        CREATE INDEX derive_pull_marks_title ON derive_pull_marks(title);
        CREATE TABLE derive_appliers (
            msgid TEXT PRIMARY KEY,
            sender TEXT NOT NULL
        );
        """
    )


@MIGRATIONS(name="m039_recent_fact_indexes")
def m039_recent_fact_indexes(db: sqlite_utils.Database) -> None:
    """Live events look for facts newer than a horizon after every ingest: the newest date
    among a version's evidence (indexed), and trailers by the mail that gave them, so
    that costs what is recent, not what the archive holds.  Filled by a full derivation."""
    db.executescript(
        """
        ALTER TABLE versions ADD COLUMN evidence_last TEXT;
        CREATE INDEX versions_evidence_last ON versions(evidence_last);
        CREATE INDEX trailers_msgid ON trailers(msgid);
        """
    )
