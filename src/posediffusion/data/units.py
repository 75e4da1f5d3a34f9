"""Length units of motion files and the plausible size of a person (torch-free: read at ``--help`` time)."""

from __future__ import annotations

#: Length units and their size in millimetres. ``cmu`` is the CMU ASF unit that the CMU BVH conversions
#: keep: the ASF ``:length 0.45`` means one unit = 1/0.45 inch = 56.44 mm (checked against 131_01).
UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4, "cmu": 25.4 / 0.45}
#: Plausible median thigh (hip-knee) length in mm: an adult's is about 400-500 mm (CMU: 288-477 mm).
THIGH_MM = (100.0, 1000.0)
