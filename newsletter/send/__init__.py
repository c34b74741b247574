"""Sending: transports, the delivery ledger, the dispatcher and its workers, retry policy, envelopes."""
