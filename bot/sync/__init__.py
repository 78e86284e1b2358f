"""Mail into the database: the ingest pipeline (pipeline.py) and the two ways to pull from
lore, its HTTP API (lore.py) and a public-inbox git mirror (git.py)."""
