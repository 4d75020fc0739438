"""OpenAI-compatible serving of any alignlab backend (``alignlab serve``)."""
