"""The files the settings name, read and checked at start (a bad one stops the process with one
line): the models file (``catalog``) and the API keys file (``keys_file``)."""
