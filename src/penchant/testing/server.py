"""Start the real HTTP service in a subprocess, for end-to-end tests and benchmarks."""

from penchant.service.process import APP_FACTORY, free_port, start_server

__all__ = ["APP_FACTORY", "free_port", "start_server"]
