"""Diagnosis of NBD connections, a step at a time (``nbdtui doctor`` and ``nbdtui check``).

:func:`diagnose` walks one endpoint (:mod:`~nbdtui.client.diagnosis.walk`) and returns a
:class:`Diagnosis`: one :class:`Step` for each of :data:`STEP_NAMES`.
"""

from __future__ import annotations

from nbdtui.client.diagnosis.results import STEP_NAMES, Diagnosis, Step
from nbdtui.client.diagnosis.walk import diagnose

__all__ = ["STEP_NAMES", "Diagnosis", "Step", "diagnose"]
