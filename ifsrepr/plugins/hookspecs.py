"""The hooks a plugin can implement.

A plugin is a module (or any object) with functions marked ``@ifsrepr.hookimpl``
whose names are the hook names below. It is found through the ``ifsrepr``
entry-point group::

    [project.entry-points.ifsrepr]
    mysurvey = "ifsrepr_mysurvey.plugin"

Each hook receives one argument, ``register``: call it once per item the
plugin provides. The core owns the registries, so it checks names, reports
duplicates (naming both plugins) and records which plugin provided what.
"""

import pluggy

__all__ = ["hookimpl", "hookspec", "PROJECT_NAME"]

PROJECT_NAME = "ifsrepr"

#: Marker for plugin functions implementing a hook (``@ifsrepr.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
#: Marker for the specifications below.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def ifsrepr_register_readers(register):
    """Register file readers.

    Parameters
    ----------
    register : callable
        ``register(reader)`` where ``reader`` has

        ``name`` : str
            Unique name, e.g. ``"manga-maps"``.
        ``identify(path, header) -> bool``
            Whether this reader reads ``path``. ``header`` is the file's
            primary FITS header, already opened by the core (None for files
            that are not FITS); a reader must decide from it and the path, and
            never open the file again here.
        ``read(path, **options) -> IFSCube | LineStack``
            Read the file. Raise `ifsrepr.FileFormatError` naming the file for
            bad input.
        ``fallback`` : bool, optional
            True for a generic reader whose claim gives way when a more
            specific reader also claims the file.
    """


@hookspec
def ifsrepr_register_line_extractors(register):
    """Register methods that turn an `~ifsrepr.IFSCube` into a `~ifsrepr.LineStack`.

    Parameters
    ----------
    register : callable
        ``register(extractor)`` where ``extractor`` has ``name`` (str) and
        ``extract(cube, lines, redshift, **options) -> LineStack``.
    """


@hookspec
def ifsrepr_register_architectures(register):
    """Register encoder/decoder network architectures.

    Parameters
    ----------
    register : callable
        ``register(architecture)`` where ``architecture`` has ``name`` (str)
        and ``build(n_lines, image_size, **options) -> torch.nn.Module``.
    """


@hookspec
def ifsrepr_register_pretrained(register):
    """Register named pretrained models.

    Parameters
    ----------
    register : callable
        ``register(model)`` where ``model`` has ``name`` (str),
        ``architecture`` (str), ``config`` (dict), ``url`` or ``path`` (where
        the weights live), ``sha256`` (hex digest of the weights file) and
        ``citation`` (str). `ifsrepr.plugins.PretrainedModel` is a ready-made
        class with these fields.
    """
