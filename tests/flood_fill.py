"""An independent reference for connected components: 8-connected flood fill, pixel by pixel."""

from __future__ import annotations

from collections import deque

import numpy as np


def component_areas(region: np.ndarray) -> np.ndarray:
    """Each pixel of a 2-D bool array: the area of its 8-connected component (0 outside the region)."""
    height, width = region.shape
    areas = np.zeros(region.shape, dtype=np.int64)
    seen = np.zeros(region.shape, dtype=bool)
    for start in zip(*np.nonzero(region)):
        if seen[start]:
            continue
        seen[start] = True
        queue, members = deque([start]), []
        while queue:
            y, x = queue.popleft()
            members.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < height and 0 <= nx < width and region[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        for member in members:
            areas[member] = len(members)
    return areas
