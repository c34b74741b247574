"""Atom feeds per language and per country, with RFC 5005 archives and WebSub pings.

`build_all(config, engine)` writes every feed file into `[feed].output_dir`;
`build(config, engine)` does the same and says which files changed.
"""

from newsletter.feeds.build import FeedReport, build, build_all

__all__ = ["FeedReport", "build", "build_all"]
