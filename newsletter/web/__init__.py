"""The web side: subscribe and preference pages, feeds, archive, webhooks and the operator API."""
