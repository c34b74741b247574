"""Privacy-first engagement: tracked links and an optional open pixel, counted per mailing,
brief, link kind and day, never per reader."""
