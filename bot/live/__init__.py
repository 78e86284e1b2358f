"""Live Slack: facts become events after every ingest, delivered to channel subscriptions
(one card per series, later events in its thread) and shown in lore link unfurls.

No Slack here: bot/slack/ calls these with its WebClient."""
