"""Imports a module that does not exist: the registry must refuse it with the reason (exit 2)."""

import this_module_does_not_exist  # noqa: F401
