"""Compatibility re-export: the verdict types live in `engine.execution.verdicts` (the Broker seam).

Kept so that imports written against the old path keep working; new code imports from
`engine.execution.verdicts`.
"""

from engine.execution.verdicts import (  # noqa: F401  (re-exported names)
    ALLOW,
    FAIL_CLOSED_REASONS,
    Allow,
    Deny,
    RiskVerdict,
    check_failed,
)
