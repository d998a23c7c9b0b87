"""Just-in-time provisioning from federated logins (OIDC ID tokens, SAML 2.0 assertions)."""
