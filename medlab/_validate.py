"""Input validation shared by every subpackage (documented internal API).

One place for the checks that public functions run on their arguments, so that a wrong input
gets the same clear message everywhere: what was received and how to get the right thing.
"""

from __future__ import annotations

from .image import Image

__all__ = ["require_image"]

_HOW = "wrap a numpy array with ml.Image(array, affine) or load one with ml.load(path)"


def require_image(obj: object, what: str = "image", *, hint: str = _HOW) -> Image:
    """Return ``obj`` if it is a :class:`medlab.Image`, else raise a clear TypeError.

    Parameters
    ----------
    obj : object
        The argument to check.
    what : str, optional
        Its name in the caller's signature ("labels", "fixed"), used in the message.
    hint : str, optional
        How to get an Image; the default names ``ml.Image`` and ``ml.load``.

    Returns
    -------
    medlab.Image
        ``obj`` itself.

    Raises
    ------
    TypeError
        ``obj`` is not an Image; the message names its type.
    """
    if not isinstance(obj, Image):
        raise TypeError(
            f"{what} must be a medlab.Image (array + affine in LPS mm), got "
            f"{type(obj).__name__}; {hint}"
        )
    return obj
