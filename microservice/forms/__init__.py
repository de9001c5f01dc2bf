"""The request and answer shapes clients send and get: the OPEA form (``messages`` as
``{system, user}``, answered as the OPEA component answers) and the OpenAI forms (chat,
completions, embeddings, answered with vLLM's own bytes). Each parsed request turns itself into
the call to vLLM (``to_model_server``) and names the shape of its answer (``answer_shape``);
``parse`` reads a body into the right form, with errors that name the field."""
