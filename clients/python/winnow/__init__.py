# SPDX-License-Identifier: MIT
"""winnow: the Python client of winnowd (standard library only; numpy optional).

    import winnow
    c = winnow.Client()                      # $WINNOW_URL / $WINNOW_KEY, or 127.0.0.1:8080
    c.create_dataset("pool", {"image": {"dim": 768, "dtype": "f16"}, "text": 768})
    c.ingest_arrays("pool", uids, {"image": img_f16, "text": txt_f32}, meta=rows)
    c.put_filter("pool", "clip", "clip_score",
                 {"image_space": "image", "text_space": "text"}, wait=True)
    c.put_subset("pool", "top30", [{"filter": "clip", "top_fraction": 0.3}], wait=True)
    c.export_npy("pool", "top30", "top30.npy")

Every error is a winnow.WinnowError carrying the problem's fields. See docs/python.md.
"""

from .client import Client, Export
from .errors import WinnowError
from ._np import Hits, decode_hits, hex_to_uids, uids_to_hex

__all__ = ["Client", "Export", "Hits", "WinnowError", "decode_hits", "hex_to_uids",
           "uids_to_hex"]
__version__ = "0.1.0"
