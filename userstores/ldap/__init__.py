"""The LDAP user store (OpenLDAP, Active Directory) on ldap3."""
