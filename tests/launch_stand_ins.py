"""Stand-ins for the launch API (launch / launch_ros are not on PyPI): the launch-file tests import
the real launch files against these and read what they would have started."""

import sys
import types
from pathlib import Path


class Recorded:
    """Any launch action or description: keeps the arguments it was built with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    """launch.substitutions.LaunchConfiguration: the value of a launch argument in a context."""

    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


def load_launch_file(path: Path, module_name: str, fakes: dict, monkeypatch) -> dict:
    """Run a launch file with ``fakes`` (module name -> attributes) in place of the launch packages
    (undone by ``monkeypatch``); returns its namespace."""
    for name, attributes in fakes.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    namespace = {"__name__": module_name, "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace
