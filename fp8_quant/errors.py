"""The one exception the job turns into a single line and a non-zero exit."""

from __future__ import annotations


class JobError(Exception):
    """Input the job cannot use (dataset, model, a busy lock); the message is one line."""
