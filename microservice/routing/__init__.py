"""Many vLLM replicas behind one microservice: which replicas exist (discovery), how each is
doing (probes), which one a request goes to (policies), how many may wait (admission), and
trying another one when a replica fails before the client saw a byte (dispatch)."""
