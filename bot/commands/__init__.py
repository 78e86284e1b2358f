"""The `/kvmarm` grammar and its answers, shared by Slack and `kvmarm ask` (no Slack here)."""
