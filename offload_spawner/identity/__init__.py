"""Tokens and identity: the token policy, the per-server Secret and its delivery,
token refresh, the IAM authenticator and the fresh-login check before a spawn."""
