"""mkdocs hook: render the reST roles of the numpydoc docstrings in the API reference.

The docstrings are written for ``help()`` and Sphinx-style readers: ``:class:`IterationState```,
``:func:`multistart```, and ``double backticks`` inside a parameter's type. mkdocstrings
renders the backticked part as code and leaves the role name in front of it; this drops it.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|obj|data|exc):(?=<code>)")
_DOUBLE_BACKTICKS = re.compile(r"(<code>[^<]*?)``([^`<]+)``")


def on_page_content(html: str, page, config, files) -> str:
    html = _ROLE.sub("", html)
    while True:
        new = _DOUBLE_BACKTICKS.sub(r"\1\2", html)
        if new == html:
            return html
        html = new
