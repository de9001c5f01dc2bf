"""asyncio building blocks the request path shares: a first-come-first-served queue of waiters
for a freed slot (a replica's or a pooled connection's), and cancelling the current task on
purpose (a client gone, a model server gone silent) told apart from anyone else's cancel."""
