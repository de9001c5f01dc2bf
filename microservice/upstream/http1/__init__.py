"""Our HTTP/1.1 client to the model servers, one module per job: a connection (an asyncio
protocol with httptools' parser, ``connection``), the keep-alive pool (``pool``), an answer's
body read or pushed with its read timeout (``body``), and the client the app holds
(``client``)."""
