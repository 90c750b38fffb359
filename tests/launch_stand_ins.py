"""Stand-ins for the launch API (launch / launch_ros are not on PyPI): the launch-file tests import
the real launch files against these and read what they would have started."""


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
