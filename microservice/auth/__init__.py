"""How a key is checked: the check every API request passes (``guard``: 401, 403, 429, and the
settling of what it reserved, held by its ``admission``), the lookup of a presented key
(``keys``), the keys file reloaded when it changes (``store``), and per-key request and token
limits and budgets (the rules in ``limits``, the periods in ``budgets``, counted in process by
``local_limits`` or in Redis by ``redis_limits`` with ``redis_scripts``, chosen by
``limiter_choice``)."""
