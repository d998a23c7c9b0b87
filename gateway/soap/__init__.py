"""The WSO2-compatible SOAP user-admin services (RemoteUserStoreManagerService V1 and V2)."""
