"""Sending: transports, the delivery ledger and the dispatcher."""
