"""``catdog.io``: the files catdog writes."""

from __future__ import annotations

import json


def test_json_files_stay_valid_with_non_finite_numbers(tmp_path):
    from catdog.io import write_json

    path = write_json(tmp_path / "h.json", {"loss": [0.5, float("nan"), float("inf")]})

    def strict(constant):
        raise ValueError(f"not JSON: {constant}")

    assert json.loads(path.read_text(), parse_constant=strict) == {"loss": [0.5, None, None]}
