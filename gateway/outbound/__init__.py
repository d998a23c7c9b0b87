"""Outbound provisioning: the outbox, the dispatcher, connector selection, the admin API."""
