"""API keys: who may call (keys.py), reloading the keys file (store.py), per-key request and
token limits (limits.py, in process or in Redis), and the check every API request passes
(guard.py)."""
