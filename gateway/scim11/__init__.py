"""SCIM 1.1 (``urn:scim:schemas:core:1.0``) at ``/wso2/scim``, as WSO2 Identity Server serves it."""
