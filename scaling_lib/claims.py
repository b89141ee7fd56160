"""Checked claims: every directional sentence of a chapter is evaluated on the data.

A chapter states a claim in written prose with glued numbers ("the Huber fit misses by
{glue:text}`huber_err`%, less than least squares") and hands the condition that sentence states
to a :class:`Claims` book, right where the numbers are computed::

    claims = Claims("overtraining_loss", mode=claims_mode)   # claims_mode: a papermill parameter
    claims.less("huber_beats_lsq", huber_err, lsq_err,
                "the Huber fit misses the targets by less than least squares",
                "Huber {a:.2f}% against least squares {b:.2f}%")

and pastes the claim's box below the sentence with ```` ```{glue:md} claim_huber_beats_lsq ```` ````.

* ``mode="strict"`` (the default, and what the book build uses on the committed tables): a claim
  that does not hold raises :class:`ClaimError`, so the build fails and a change of data or code
  that flips a sentence cannot ship silently.
* ``mode="warn"`` (a rerun on other data, ``scripts/rerun_chapter.sh`` sets it): a claim that
  does not hold renders as a visible warning box saying what the sentence expected and what the
  data show, in the executed notebook's output and, in a book build, below the sentence.

A claim that holds glues an empty box.  Every chapter finally glues its whole list
(:meth:`Claims.publish`), which the book's status page collects into one table.

Examples
--------
>>> book = Claims("demo", mode="warn", display=False)
>>> book.larger("bigger", 3.0, 2.0, "three exceeds two", "{a:g} against {b:g}").holds
True
>>> c = book.covers("inside", 1.0, 2.0, 3.0, "the interval covers the value", "[{lo:g}, {hi:g}] and {value:g}")
>>> c.holds, c.observed
(False, '[1, 2] and 3')
>>> Claims("demo").check("broken", False, "a false claim", "what the data show")
Traceback (most recent call last):
...
scaling_lib.claims.ClaimError: chapter demo, claim 'broken': the text says a false claim, but the data show what the data show
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

MODES = ("strict", "warn")
"""``strict``: a false claim is an error; ``warn``: it renders as a warning box."""

REGISTRY_KEY = "claims_registry"
"""The glue key under which every chapter publishes its claims (read by the status page)."""


class ClaimError(AssertionError):
    """A claim of a chapter does not hold on the data it was built from."""


@dataclass(frozen=True)
class Claim:
    """One checked claim: its name, whether it holds, what the text says, what the data show."""

    chapter: str
    name: str
    holds: bool
    expected: str
    observed: str

    def _ipython_display_(self) -> None:
        """Nothing in a notebook's output: a failing claim has shown its box already (warn mode)."""

    def box(self) -> str:
        """The MyST Markdown pasted below the claim's sentence: empty when it holds."""
        if self.holds:
            return ""
        return (f":::{{warning}} This claim does not hold on these data\n"
                f"The text says {self.expected}; the data show {self.observed}.\n:::\n")


def _finite(*values) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def _say(template: str, **values) -> str:
    """``template`` formatted with the values as floats (``nan`` for what is no number)."""
    nums = {}
    for key, value in values.items():
        try:
            nums[key] = float(value)
        except (TypeError, ValueError):
            nums[key] = float("nan")
    return template.format(**nums)


class Claims:
    """The checked claims of one chapter.

    Parameters
    ----------
    chapter : str
        The chapter's name, for messages and the status page.
    mode : {"strict", "warn"}
        See the module docstring.
    display : bool
        Glue each claim's box (and, in ``warn`` mode, show a failing claim in the cell output);
        ``False`` only records (for tests and scripts).
    """

    def __init__(self, chapter: str, mode: str = "strict", display: bool = True):
        if mode not in MODES:
            raise ValueError(f"claims mode must be one of {MODES}, got {mode!r}")
        self.chapter, self.mode, self.display = chapter, mode, display
        self.claims: list[Claim] = []

    def check(self, name: str, holds: bool, expected: str, observed: str) -> Claim:
        """Record the claim ``name``; ``holds`` is the condition its sentence states.

        A condition on non-finite numbers (a fit that failed) does not hold.
        """
        if any(c.name == name for c in self.claims):
            raise ValueError(f"chapter {self.chapter}: claim {name!r} checked twice")
        claim = Claim(self.chapter, name, bool(holds), expected, observed)
        self.claims.append(claim)
        if not claim.holds and self.mode == "strict":
            raise ClaimError(f"chapter {self.chapter}, claim {name!r}: the text says {expected}, "
                             f"but the data show {observed}")
        if self.display:
            from IPython.display import Markdown, display
            from myst_nb import glue

            glue(f"claim_{name}", Markdown(claim.box()), display=False)
            if not claim.holds:
                display(Markdown(claim.box()))
        return claim

    # --- the directions a sentence states ------------------------------------------------------

    def larger(self, name, a, b, expected, observed="{a:.3g} against {b:.3g}") -> Claim:
        """``a > b`` (both finite); ``observed`` may use ``{a}`` and ``{b}``."""
        return self.check(name, _finite(a, b) and float(a) > float(b), expected, _say(observed, a=a, b=b))

    def less(self, name, a, b, expected, observed="{a:.3g} against {b:.3g}") -> Claim:
        """``a < b`` (both finite)."""
        return self.check(name, _finite(a, b) and float(a) < float(b), expected, _say(observed, a=a, b=b))

    def within(self, name, a, b, rel, expected, observed="{a:.3g} against {b:.3g}") -> Claim:
        """``|a - b| <= rel * |b|``: two numbers agree to a relative tolerance."""
        ok = _finite(a, b) and abs(float(a) - float(b)) <= rel * abs(float(b))
        return self.check(name, ok, expected, _say(observed, a=a, b=b))

    def covers(self, name, lo, hi, value, expected, observed="[{lo:.3g}, {hi:.3g}] and {value:.3g}") -> Claim:
        """``lo <= value <= hi``: an interval covers a value."""
        ok = _finite(lo, hi, value) and float(lo) <= float(value) <= float(hi)
        return self.check(name, ok, expected, _say(observed, lo=lo, hi=hi, value=value))

    def excludes(self, name, lo, hi, value, expected, observed="[{lo:.3g}, {hi:.3g}] and {value:.3g}") -> Claim:
        """``value`` lies outside ``[lo, hi]``: an interval excludes a value."""
        ok = _finite(lo, hi, value) and not float(lo) <= float(value) <= float(hi)
        return self.check(name, ok, expected, _say(observed, lo=lo, hi=hi, value=value))

    # --- the list --------------------------------------------------------------------------------

    def group(self, name: str, names) -> str:
        """Glue one box for several claims checked already, as ``claim_<name>``.

        A sentence that states several directions pastes one box for all of them: the boxes of
        those that do not hold, one after the other (empty when all hold).  Returns the text.

        Examples
        --------
        >>> book = Claims("demo", mode="warn", display=False)
        >>> _ = book.less("a", 1, 2, "one is less than two")
        >>> _ = book.less("b", 3, 2, "three is less than two")
        >>> print(book.group("ab", ["a", "b"]).splitlines()[1])
        The text says three is less than two; the data show 3 against 2.
        """
        by_name = {c.name: c for c in self.claims}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"chapter {self.chapter}: group {name!r} names unchecked claims {unknown}")
        text = "".join(by_name[n].box() for n in names)
        if self.display:
            from IPython.display import Markdown
            from myst_nb import glue

            glue(f"claim_{name}", Markdown(text), display=False)
        return text

    def to_records(self) -> list[dict]:
        """Every claim checked so far, as JSON-able dicts."""
        return [asdict(c) for c in self.claims]

    def publish(self) -> list[Claim]:
        """Glue the chapter's list of claims for the status page (call once, at the end)."""
        if self.display:
            from myst_nb import glue

            glue(REGISTRY_KEY, json.dumps(self.to_records()), display=False)
        return list(self.claims)
