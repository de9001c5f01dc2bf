"""How a stream is relayed, vLLM's socket to the client's.

The replica's answer is read by ``upstream.http1`` and split into chunks
(``upstream_events``); the routing dispatcher passes the batches on (``forward``); each batch
is written as the client's SSE events (``client_events``), which also reads the final usage
chunk (``usage``); ``sse_response`` sends them and always ends with ``[DONE]``, an in-band error
event first when the stream failed; ``disconnect`` notices a client that left and closes the
call to vLLM. After the first event the rest of a stream can be *pushed*: relayed inside the
sockets' callbacks (``push``, ``client_socket``) instead of one await per event."""
