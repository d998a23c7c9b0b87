"""The provisioning pipeline: the one entry point every protocol adapter calls
(:class:`Pipeline`, in ``core``; its user, account and group operations in ``users``,
``accounts`` and ``groups``; what they share in ``common``)."""

from .core import Pipeline

__all__ = ["Pipeline"]
