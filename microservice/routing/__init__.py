"""How a replica is picked, with many vLLM replicas behind one microservice: which replicas
exist (``discovery``), how each is doing (``probe``, into ``replica``; what vLLM says of its
model in ``model_info``), which one a request goes to (``policies``, the ``LLM_ROUTING``
picker), how many may wait for one (``waiting_room``), the pool that holds them all (``pool``),
and trying another one when a replica fails before the client saw a byte (``dispatch``)."""
