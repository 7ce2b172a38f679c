"""The shared argument rules of ``catdog._rules``."""

import pytest

from catdog._rules import ENGINES, TUNERS, check_choice, check_strategy
from catdog.errors import InvalidArgumentError


def test_check_choice_returns_a_valid_value():
    assert check_choice("engine", "litert", ENGINES) == "litert"
    assert check_choice("quantize", None, (None, "float16")) is None


def test_check_choice_names_the_choices_and_the_close_ones():
    with pytest.raises(InvalidArgumentError) as raised:
        check_choice("tuner", "hyperbnd", TUNERS)
    assert str(raised.value) == (
        "tuner must be one of 'random', 'hyperband' or 'bayesian', got 'hyperbnd'. "
        "Did you mean 'hyperband'?"
    )
    assert "\n" not in str(raised.value)


def test_check_choice_without_close_matches_or_strings():
    with pytest.raises(InvalidArgumentError) as raised:
        check_choice("engine", "onnxruntime", ENGINES)
    assert str(raised.value).endswith("got 'onnxruntime'.")  # no "Did you mean"
    with pytest.raises(InvalidArgumentError, match=r"^x must be one of 1 or 2, got 3\.$"):
        check_choice("x", 3, (1, 2))
    with pytest.raises(InvalidArgumentError, match=r"must be one of 'a', got \['a'\]"):
        check_choice("x", ["a"], ("a",))  # an unhashable value is refused, not a TypeError


def test_check_choice_appends_the_hint():
    with pytest.raises(InvalidArgumentError) as raised:
        check_strategy("mirored")
    assert str(raised.value) == (
        "strategy must be one of 'none', 'mirrored', 'multi_worker' or None, got 'mirored'. "
        "Did you mean 'mirrored'? None: mirrored when several GPUs are visible."
    )
    check_strategy(None)


def test_no_hand_written_choice_checks_are_left():
    """Every "X must be one of Y" message comes from check_choice (one wording, one home)."""
    from pathlib import Path

    import catdog

    root = Path(catdog.__file__).parent
    found = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "_rules.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "must be one of {" in line
    ]
    assert found == []


def test_a_class_named_unknown_is_refused_where_data_is_read_and_models_are_built(tmp_path, capsys):
    from catdog import build_model, from_directory
    from catdog.cli import main
    from catdog.data.synthetic import make_synthetic_dataset

    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    for split in ("train", "validation"):
        (root / split / "dogs").rename(root / split / "Unknown")
    with pytest.raises(InvalidArgumentError, match="The class name 'Unknown' is catdog's answer"):
        from_directory(root, image_size=(16, 16))
    with pytest.raises(InvalidArgumentError, match="'unknown' is catdog's answer"):
        build_model("baseline", input_shape=(16, 16, 3), class_names=["cats", "unknown"])
    argv = ["train", "--data", root, "--out", tmp_path / "run", "--model", "baseline"]
    assert main([str(a) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "rename that class" in err[0], err
    assert not (tmp_path / "run" / "model.keras").exists()
