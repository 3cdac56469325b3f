"""Clinical-documentation discriminator: QLoRA fine-tuning and Ray batch scoring.

A discharge note goes in; `{"reason": "good"}` or a short description of its error comes out.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinical-discriminator")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
