"""Everything that talks to Slack (slack_bolt / slack_sdk are imported only in this package)."""
