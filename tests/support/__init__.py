"""Real parts for tests: an HTTP server for fixture sites, config files, the CLI in a subprocess."""
