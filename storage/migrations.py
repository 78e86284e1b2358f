"""Numbered schema migrations, applied in order when the database is opened.

Never edit a migration that has shipped: add the next number.  Tables:
- messages / message_content: one row per Message-ID (facts / bulky text and raw bytes);
- quarantine: mails that could not be stored as messages, with the reason;
- threads, series, versions, patches, trailers, memberships: facts derived from messages,
  rebuilt as a whole by ``storage.derived.save_derived``;
- state: small key/value facts (last sync, derivation version);
- messages_fts: full-text index over subject, body and sender.
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
    db["messages"].enable_fts(
        ["subject", "body", "from_name", "from_email"],
        fts_version="FTS5",
        create_triggers=True,
        tokenize="unicode61 remove_diacritics 2",
    )
