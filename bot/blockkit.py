"""Slack Block Kit limits, one home for the digest renderer and the answer blocks.

https://api.slack.com/reference/block-kit/blocks — a message carries at most 50 blocks; a
section's text at most 3,000 characters; a header 150; a context element and a button value
2,000; a section at most 10 fields of 2,000.
"""

from __future__ import annotations

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_CONTEXT = 2000
MAX_VALUE = 2000  # a button's value
