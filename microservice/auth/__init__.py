"""How a key is checked: the check every API request passes (``guard``: 401, 403, 429, and the
tokens it used), the lookup of a presented key (``keys``), the keys file reloaded when it
changes (``store``), and per-key request and token limits (``limits``, counted in process or in
Redis by ``redis_limits``, chosen by ``limiter_choice``)."""
