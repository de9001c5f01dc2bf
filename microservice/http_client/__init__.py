"""Our HTTP/1.1 client to the model servers: asyncio protocols and httptools' parser, no
library's stream machinery between vLLM's socket and the relay (docs/benchmarks.md)."""
