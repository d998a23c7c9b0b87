"""What the SCIM 2.0 (``gateway.scim``) and SCIM 1.1 (``gateway.scim11``) APIs share.

Neither API imports the other: the body reading, ETags, the error middleware and the
caller's request key (``http``), the ``/Bulk`` request reading and ordering (``bulk``)
and the rendering of canonical entities as SCIM 2.0-shaped JSON (``render``, which
SCIM 1.1 then writes in its dialect, and JIT replies use as they are) live here.
"""
