"""What goes wrong in a command, and its exit code; the message names what is wrong."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # not found, refused, the API said no
EXIT_USAGE = 2  # bad flags or an unusable kubeconfig
EXIT_UNREACHABLE = 3  # the API server or the admin port does not answer


class CommandError(Exception):
    code = EXIT_FAILED


class UsageError(CommandError):
    code = EXIT_USAGE


class Unreachable(CommandError):
    code = EXIT_UNREACHABLE
