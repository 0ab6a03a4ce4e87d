"""transferkit: transfer learning and domain adaptation that works, reports honestly and runs on a laptop.

The one data convention (``X``, ``y``, ``sample_domain``) lives in :mod:`transferkit.domains`, the
data sets in :mod:`transferkit.datasets`, every method in :mod:`transferkit.registry`. Importing the
package has no side effects and loads neither torch nor any data.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
