"""The one exception tree for infrastructure failures; notebook failures are data, not these.

NbguardError                 anything nbguard cannot go on with; the CLI prints it, exit 2
 ├── ConfigError             unreadable or invalid configuration, bad command-line values
 ├── InterpreterNotFound     no Python interpreter of the requested version was found
 └── EnvironmentBuildError   an environment could not be resolved or installed
      └── ResolutionError    the resolver found no set of versions that fits
"""

from __future__ import annotations


class NbguardError(Exception):
    """Base class: the message is one line a user can act on."""


class ConfigError(NbguardError):
    pass


class InterpreterNotFound(NbguardError):
    pass


class EnvironmentBuildError(NbguardError):
    pass


class ResolutionError(EnvironmentBuildError):
    pass
