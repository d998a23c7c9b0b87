"""The admin API: an HTTP adapter at ``/admin`` (outbound deliveries and connectors, the
audit trail) and ``/metrics``, for callers with the ``admin`` permission."""
