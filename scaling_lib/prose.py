"""Numbers and lists as the chapters write them in prose and printed reports.

The chapters glue computed values into their text; these helpers give every
chapter the same way of writing a count, a list, a compute budget or a
wrapped report.

Examples
--------
>>> short(1.05e6), short(63192), short(12)
('1.1M', '63k', '12')
>>> in_words(["a", "b", "c"])
'a, b and c'
>>> sci(1.35e13), sci(5e11)
('1.35e13', '5e11')
"""

from __future__ import annotations

import textwrap

_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def short(x) -> str:
    """A count in words: two significant digits below 10 of a unit, none above.

    Examples
    --------
    >>> short(1.44e9), short(1.06e7), short(0.5)
    ('1.4B', '11M', '0.5')
    """
    for scale, suffix in _SCALES:
        if abs(x) >= scale:
            value = x / scale
            digits = ".2g" if value < 10 else ".0f"
            return f"{value:{digits}}{suffix}"
    return f"{x:g}"


def in_words(items) -> str:
    """'a', 'a and b', 'a, b and c'; 'none' for an empty list.

    Examples
    --------
    >>> in_words([]), in_words(["x"]), in_words(["x", "y"])
    ('none', 'x', 'x and y')
    """
    items = list(items)
    if not items:
        return "none"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def sci(x) -> str:
    """A compute budget in short scientific notation: 1.35e13 -> '1.35e13'.

    Examples
    --------
    >>> sci(4.5e12), sci(250.0)
    ('4.5e12', '250')
    """
    mantissa, _, exponent = f"{x:.3g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def wrap(text: str, width: int = 72, indent: int = 11) -> str:
    """Wrap each line of a report, continuing under its value column.

    Examples
    --------
    >>> print(wrap("name       " + "word " * 16, width=40))
    name       word word word word word word
               word word word word word word
               word word word word
    """
    pad = " " * indent
    return "\n".join(textwrap.fill(line, width, subsequent_indent=pad)
                     for line in text.splitlines())
