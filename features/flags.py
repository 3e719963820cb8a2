"""Case-system flags: the accounts table's flags as of the export, for serving only.

They describe the account today, not at a historical as_of, so models must not use them
(they would leak the present into training snapshots).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import FLAG_COLUMNS, NO_CALL_FLAGS, SPECIAL_HANDLING_FLAGS
from features.timeline import Snapshots


def flag_features(accounts: pd.DataFrame, snaps: Snapshots) -> dict[str, np.ndarray]:
    """Each flag column as bool, plus no_call (any of NO_CALL_FLAGS) and special_handling
    (dispute, complaint or hardship: a special-handling queue, not the dialer)."""
    flags = {name: accounts[name].fillna(False).to_numpy(dtype=bool)[snaps.account] for name in FLAG_COLUMNS}
    flags["no_call"] = np.logical_or.reduce([flags[name] for name in NO_CALL_FLAGS])
    flags["special_handling"] = np.logical_or.reduce([flags[name] for name in SPECIAL_HANDLING_FLAGS])
    return flags
