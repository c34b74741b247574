"""Bounces and complaints for SMTP senders: VERP envelope senders (`verp`), a bounce mailbox
(`mailbox`), DSN/ARF/auto-reply parsing (`parse`), applying reports to the store once (`apply`),
and `fetch.fetch(config, engine)`, which does one pass over the mailbox. Kept empty so a send
worker importing `verp` loads nothing else."""
