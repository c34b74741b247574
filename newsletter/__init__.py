"""newsletter: collect news briefs, publish Atom feeds and send email digests."""

__version__ = "0.1.0"
