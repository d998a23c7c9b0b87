"""Outbound provisioning: the outbox, the dispatcher, connector selection (the admin API
over it is an adapter: gateway/admin/)."""
