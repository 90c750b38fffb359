"""sam2_server: one SAM 2 model serving the tracker nodes of many cameras over ZeroMQ (no ROS).

``sam2-server`` (``sam2_server.cli``) runs it; ``sam2_server.client.TrackerClient`` (torch-free)
is what a tracker node uses. The wire format is ``sam2_server.protocol``; docs/server.md has the
whole story (streams, batching, faults, security).

Nothing is imported here, so ``import sam2_server.client`` stays free of torch.
"""
