import numpy as np
import pandas as pd
import pytest
import torch

from probmix.io.data import as_data, as_sample_weight, check_n_features


def test_array_likes_become_float64_tensors():
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    for x in ([[1, 2], [3, 4]], np.array([[1, 2], [3, 4]], dtype=np.int32),
              np.asfortranarray([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
              pd.DataFrame({"a": [1, 3], "b": [2.0, 4.0]}), np.array([[1, 2], [3, 4]], np.float16)):
        t = as_data(x)
        assert t.dtype == torch.float64 and t.is_contiguous()
        torch.testing.assert_close(t, expected)


def test_dtype_and_device_are_honoured():
    t = as_data(np.ones((3, 2)), dtype=torch.float32, device="cpu")
    assert t.dtype == torch.float32 and t.device.type == "cpu"


def test_one_dimensional_input_suggests_reshape():
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        as_data(np.arange(5.0))


def test_nan_rows_are_counted_with_first_index():
    x = np.ones((6, 2))
    x[2, 0] = np.nan
    x[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"2 of 6 rows \(first at row 2\)"):
        as_data(x, name="data")


def test_non_numeric_columns_are_named():
    df = pd.DataFrame({"energy": [1.0, 2.0], "detector": ["a", "b"], "run": ["x", "y"]})
    with pytest.raises(TypeError, match="detector, run"):
        as_data(df)


@pytest.mark.parametrize("bad, err, word", [
    (np.zeros((0, 2)), ValueError, "empty"),
    (np.zeros((3, 0)), ValueError, "no features"),
    (np.zeros((2, 2, 2)), ValueError, "3-D"),
    ([[1, 2], [3]], ValueError, "rows of different lengths"),
    (np.array([["a", "b"]]), TypeError, "strings"),
    (np.ones((2, 2), complex), TypeError, "complex"),
    (np.array([[1, object()]], dtype=object), TypeError, "non-numeric"),
])
def test_bad_input_gets_a_clear_error(bad, err, word):
    with pytest.raises(err, match=word):
        as_data(bad)


def test_too_few_rows_for_the_components():
    with pytest.raises(ValueError, match="at least 3"):
        as_data(np.ones((2, 2)), min_samples=3)


def test_wrong_feature_count_at_predict_time():
    with pytest.raises(ValueError, match="3 feature.*fitted on 2"):
        check_n_features(as_data(np.ones((4, 3))), 2)


def test_sample_weight_validation():
    assert as_sample_weight(None, 3, device="cpu", dtype=torch.float64) is None
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        as_sample_weight([1, 2], 3, device="cpu", dtype=torch.float64)
    with pytest.raises(ValueError, match="non-negative"):
        as_sample_weight([1, -1, 2], 3, device="cpu", dtype=torch.float64)
    with pytest.raises(ValueError, match="sums to zero"):
        as_sample_weight([0, 0, 0], 3, device="cpu", dtype=torch.float64)
