"""Report test runs to an stpt server (System Test Progress Tracking).

* :class:`~stpt_runner.client.Reporter`: a spooling client of ``/api/v1``;
* :mod:`stpt_runner.actions`: a drop-in for the seed's runner library;
* :mod:`stpt_runner.pytest_plugin`: reports a pytest session (``--stpt-url``);
* ``python -m stpt_runner run MASTER.py`` / ``junit REPORT.xml --machine NAME``.
"""

__version__ = "0.1.0"

from .client import Reporter, Settings  # noqa: E402,F401
from .spool import Spool, SpoolError, SpoolFull  # noqa: E402,F401
