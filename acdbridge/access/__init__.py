"""Sign-in, roles, sessions and the audit trail (docs/security.md)."""
