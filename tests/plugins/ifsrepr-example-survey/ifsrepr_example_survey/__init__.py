"""An example third-party ifsrepr plugin for the made-up EXAMPLE-IFU survey.

It exists to prove that a package outside ifsrepr can add a reader through
the ``ifsrepr`` entry-point group, and to show how short such a plugin is.
"""

from .plugin import ExampleSurveyReader, write_example_cube

__all__ = ["ExampleSurveyReader", "write_example_cube"]
