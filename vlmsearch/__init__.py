"""vlmsearch: a multimodal answer engine built around vision-language models."""

__all__ = ["Engine", "Settings"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import vlmsearch` (and the CLI's --help) stays fast.
    if name == "Engine":
        from vlmsearch.engine import Engine

        return Engine
    if name == "Settings":
        from vlmsearch.config import Settings

        return Settings
    raise AttributeError(name)
