"""A faithful local Symbl API (docs/symbl-api.md) for dialq's tests, demo and benchmarks.

``start_sandbox`` serves one in a background thread; ``SandboxControl`` scripts its faults
and inspects its calls and request log over HTTP. See docs/sandbox.md.
"""

from dialq.sandbox.app import SandboxApp
from dialq.sandbox.config import ConfigError, SandboxConfig
from dialq.sandbox.control import SandboxControl, SandboxControlError
from dialq.sandbox.server import RunningSandbox, serve, start_sandbox

__all__ = [
    "ConfigError",
    "RunningSandbox",
    "SandboxApp",
    "SandboxConfig",
    "SandboxControl",
    "SandboxControlError",
    "serve",
    "start_sandbox",
]
