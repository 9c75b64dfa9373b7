"""pytest: import this strategy's app.py and the SDK from the source tree."""

import sys
from pathlib import Path

_here = Path(__file__).resolve().parent
for _path in (_here, _here.parents[2] / "sdk" / "python" / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
