"""winnow: turn a messy folder of labeled images into a trustworthy image classifier.

Library first: each stage is a function (`winnow.data.scan.scan`, ...); the `winnow` command is
a thin layer over them. Heavy modules are imported by the stage that needs them.
"""

__version__ = "0.1.0"
