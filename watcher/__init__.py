"""watcher: a self-hosted regulatory-watch alerting daemon."""

__version__ = "0.1.0"
