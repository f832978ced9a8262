"""Arguments checked where they enter, one function per kind of argument.

Each error names the argument, says what was wrong with it and what would be accepted, so
that a mistake is not reported from deep inside scipy or a framework. ``checks`` holds the
kinds every entry point shares (switches, counts, tolerances, options, callables, random
sources...); ``least_squares`` those of scipy's least_squares; ``frameworks`` those the
framework integrations share (training data, model values, torch optimizers' params); ``calls``
the calls made to user functions, finite-difference steps, recorded rows and paths.
"""

from .checks import *  # noqa: F403
from .checks import __all__ as _checks
from .least_squares import *  # noqa: F403
from .least_squares import __all__ as _least_squares
from .frameworks import *  # noqa: F403
from .frameworks import __all__ as _frameworks
from .calls import *  # noqa: F403
from .calls import __all__ as _calls

__all__ = list(_checks) + list(_least_squares) + list(_frameworks) + list(_calls)
