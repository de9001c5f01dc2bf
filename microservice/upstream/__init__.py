"""Talking to vLLM (the model server): the call and its answer (``model_call``), what a client
must offer (``client``, its protocol), our HTTP/1.1 client (``http1``: connection, pool, body),
and the connectors that send a call to one replica (``connectors``)."""
