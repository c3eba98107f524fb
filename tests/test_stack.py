"""The combine engine (gmoswidgets.primitives.stack) on small synthetic arrays."""
import math
import tracemalloc

import numpy as np
import pytest
from astropy.io import fits

from gmoswidgets import dq
from gmoswidgets.errors import FileProblem, ParameterError
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.primitives import StepContext, get_primitive
from gmoswidgets.numerics import combine
from gmoswidgets.numerics.combine import _sorted_valid, combine_arrays
from gmoswidgets.primitives import stack
from gmoswidgets.primitives.stack import flat_rejection

SHAPE = (40, 30)


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def combination(request, monkeypatch):
    """Every test runs with the numpy combination and with the compiled kernel."""
    monkeypatch.setattr(combine, "compiled_pays", lambda elements: request.param == "compiled")
    monkeypatch.setattr(stack, "compiled_pays", lambda elements: request.param == "compiled")
    return request.param


def _noise(n, sigma=1.0, level=100.0, seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return [(level + rng.normal(0, sigma, shape)).astype(np.float32) for _ in range(n)]


def _ones(n, value=1.0, dtype=np.float32, shape=SHAPE):
    return [np.full(shape, value, dtype) for _ in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 17, 33, 40])
@pytest.mark.parametrize("used", [0.7, 1.0])
def test_sorting_network_sorts_with_unused_inputs_last(n, used):
    rng = np.random.default_rng(n)
    values = rng.normal(size=(n, 500)).astype(np.float32)
    valid = rng.random((n, 500)) < used
    before = values.copy()
    expected = np.sort(np.where(valid, values, np.inf), axis=0)
    # every rank, the middle ones (a median) and one end (minmax): only the ranks asked are right
    for first, last in {(0, n - 1), ((n - 1) // 2, n // 2), (n // 2, n // 2), (0, min(1, n - 1))}:
        rows = _sorted_valid(values, valid, first, last)
        assert np.array_equal(np.stack(rows[first:last + 1]), expected[first:last + 1])
    assert np.array_equal(values, before)       # read, never written


def test_mean_without_rejection_and_its_variance():
    datas = _noise(6)
    out, var, mask = combine_arrays(datas, _ones(6, 2.0), _ones(6, 0, np.uint16))
    assert out.dtype == np.float32 and var.dtype == np.float32 and mask.dtype == np.uint16
    np.testing.assert_allclose(out, np.mean(datas, axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, 2.0 / 6)          # mean(VAR) / n
    assert not mask.any()


def test_median_variance_has_the_pi_over_2_factor():
    datas = _noise(5)
    out, var, _ = combine_arrays(datas, _ones(5), operation="median")
    np.testing.assert_allclose(out, np.median(datas, axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, (1.0 / 5) * math.pi / 2, rtol=1e-6)


def test_lmedian_takes_the_lower_middle_value():
    datas = [np.full(SHAPE, v, np.float32) for v in (4.0, 1.0, 3.0, 2.0)]
    out, _, _ = combine_arrays(datas, operation="lmedian")
    assert np.all(out == 2.0)


def test_wtmean_weights_by_inverse_variance():
    datas = [np.full(SHAPE, 1.0, np.float32), np.full(SHAPE, 4.0, np.float32)]
    variances = [np.full(SHAPE, 1.0, np.float32), np.full(SHAPE, 3.0, np.float32)]
    out, var, _ = combine_arrays(datas, variances, operation="wtmean")
    np.testing.assert_allclose(out, (1.0 + 4.0 / 3) / (1 + 1 / 3), rtol=1e-6)
    np.testing.assert_allclose(var, 1 / (1 + 1 / 3), rtol=1e-6)
    with pytest.raises(ParameterError, match="VAR"):
        combine_arrays(datas, operation="wtmean")


def test_variance_without_var_planes_is_the_gemcombine_estimate():
    datas = _noise(8, seed=3)
    _, var, _ = combine_arrays(datas)
    stack = np.array(datas, dtype=np.float64)
    expected = ((stack - stack.mean(axis=0)) ** 2).sum(axis=0) / (8 * 7)
    np.testing.assert_allclose(var, expected, rtol=1e-4)


def test_propagated_variance_matches_the_scatter_of_the_mean():
    rng = np.random.default_rng(11)
    sigma = 3.0
    datas = [rng.normal(0, sigma, (300, 300)).astype(np.float32) for _ in range(10)]
    variances = _ones(10, sigma ** 2, shape=(300, 300))
    for method in ("none", "sigclip", "varclip"):
        out, var, _ = combine_arrays(datas, variances, reject_method=method)
        # rejection of Gaussian tails adds a little scatter; stay within 6 %
        assert out.var() == pytest.approx(var.mean(), rel=0.06), method


def test_dq_hierarchy_prefers_good_pixels_then_ors_the_flags():
    datas = [np.full(SHAPE, v, np.float32) for v in (10.0, 20.0, 1000.0, 2000.0)]
    masks = _ones(4, 0, np.uint16)
    masks[2][0, 0] = dq.BAD_PIXEL
    masks[3][0, 0] = dq.SATURATED
    # pixel (1, 1): nothing good; saturated beats bad pixel
    for m in masks:
        m[1, 1] = dq.BAD_PIXEL
    masks[0][1, 1] = dq.SATURATED
    masks[1][1, 1] = dq.SATURATED | dq.NON_LINEAR
    # pixel (2, 2): unilluminated everywhere -> all used, flag kept
    for m in masks:
        m[2, 2] = dq.UNILLUMINATED
    out, _, mask = combine_arrays(datas, masks=masks)
    assert out[0, 0] == pytest.approx(15.0) and mask[0, 0] == 0
    assert out[1, 1] == pytest.approx(15.0)
    assert mask[1, 1] == dq.SATURATED | dq.NON_LINEAR
    assert out[2, 2] == pytest.approx(757.5) and mask[2, 2] == dq.UNILLUMINATED
    # apply_dq=False uses every input
    out, _, _ = combine_arrays(datas, masks=masks, apply_dq=False)
    assert out[0, 0] == pytest.approx(757.5)


def test_minmax_rejects_extremes_and_scales_nlow_with_masked_inputs():
    values = (1.0, 2.0, 3.0, 4.0, 100.0, -50.0)
    datas = [np.full(SHAPE, v, np.float32) for v in values]
    variances = [np.full(SHAPE, v, np.float32) for v in (1, 1, 1, 1, 50, 50)]
    out, var, _ = combine_arrays(datas, variances, reject_method="minmax", nlow=1, nhigh=1)
    np.testing.assert_allclose(out, 2.5)
    np.testing.assert_allclose(var, 4 / 16)            # rejected inputs are not in VAR
    # 3 of 6 inputs masked at one pixel: nl = int(3 * 1 / 6 + 0.001) = 0 there
    masks = _ones(6, 0, np.uint16)
    for m in masks[:3]:
        m[0, 0] = dq.BAD_PIXEL
    out, _, _ = combine_arrays(datas, masks=masks, reject_method="minmax", nlow=1, nhigh=1)
    assert out[0, 0] == pytest.approx((4.0 + 100.0 - 50.0) / 3)


def test_minmax_rejects_exactly_n_inputs_when_values_tie():
    datas = [np.full(SHAPE, v, np.float32) for v in (1.0, 1.0, 1.0, 5.0, 9.0, 9.0)]
    variances = [np.full(SHAPE, float(i + 1), np.float32) for i in range(6)]
    out, var, _ = combine_arrays(datas, variances, reject_method="minmax", nlow=2, nhigh=1)
    np.testing.assert_allclose(out, (1.0 + 5.0 + 9.0) / 3)
    np.testing.assert_allclose(var, (3 + 4 + 5) / 9)     # the first tied inputs are dropped


@pytest.mark.parametrize("method", ["sigclip", "varclip"])
def test_clipping_removes_a_cosmic_ray(method):
    datas = _noise(8, sigma=1.0, seed=5)
    datas[3][5, 5] += 500.0
    # VAR twice the true noise: only the cosmic ray is beyond 3 sigma
    out, var, _ = combine_arrays(datas, _ones(8, 4.0), reject_method=method)
    clean = np.mean([d[5, 5] for i, d in enumerate(datas) if i != 3])
    assert out[5, 5] == pytest.approx(clean, abs=1e-4)
    assert var[5, 5] == pytest.approx(4 / 7)


def test_no_pixel_loses_every_input_to_clipping():
    datas = [np.full(SHAPE, v, np.float32) for v in (0.0, 10.0)]
    out, _, mask = combine_arrays(datas, _ones(2, 1e-6), reject_method="varclip")
    assert np.all(out == 5.0) and not mask.any()


def test_chunking_does_not_change_the_result():
    datas = _noise(7, seed=9, shape=(200, 50))
    datas[2][17, 3] = 1e4
    variances = _ones(7, shape=(200, 50))
    masks = _ones(7, 0, np.uint16, shape=(200, 50))
    masks[4][100:120] = dq.COSMIC_RAY
    whole = combine_arrays(datas, variances, masks, reject_method="sigclip", memory=None)
    chunked = combine_arrays(datas, variances, masks, reject_method="sigclip", memory=1e-5)
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)


def test_working_memory_stays_within_the_budget():
    shape = (1000, 500)
    datas = _noise(10, shape=shape)            # 20 MB of inputs
    variances = _ones(10, shape=shape)
    masks = _ones(10, 0, np.uint16, shape=shape)
    tracemalloc.start()
    combine_arrays(datas, variances, masks, reject_method="varclip", memory=0.005)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    outputs = 500 * 1000 * (4 + 4 + 2)
    assert peak < outputs + 5e6 * 1.5, peak / 1e6


def _awkward_inputs(n=9, shape=(300, 40)):
    """Noise with cosmic rays, NaNs, flagged and fully flagged pixels."""
    datas = _noise(n, seed=11, shape=shape)
    rng = np.random.default_rng(12)
    variances = [np.full(shape, 1.0, np.float32) + rng.random(shape, np.float32) for _ in range(n)]
    masks = _ones(n, 0, np.uint16, shape=shape)
    for k in range(n):
        hits = rng.integers(0, shape[0], 30), rng.integers(0, shape[1], 30)
        datas[k][hits] += 500.0
        masks[k][rng.integers(0, shape[0], 20), rng.integers(0, shape[1], 20)] = dq.BAD_PIXEL
    datas[3][5, 5] = np.nan
    for mask in masks:
        mask[7, 8] = dq.SATURATED
    return datas, variances, masks


@pytest.mark.parametrize("operation, reject_method", [
    ("mean", "varclip"), ("mean", "sigclip"), ("median", "minmax"), ("wtmean", "none"),
    ("lmedian", "sigclip")])
def test_combining_on_threads_equals_the_sequential_combination(operation, reject_method):
    datas, variances, masks = _awkward_inputs()
    options = dict(operation=operation, reject_method=reject_method, nlow=1, nhigh=2,
                   memory=2e-5)                       # many chunks of a few rows
    fractions = []
    one = combine_arrays(datas, variances, masks, **options)
    three = combine_arrays(datas, variances, masks, workers=3, progress=fractions.append,
                           **options)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
    assert len(fractions) > 10 and fractions == sorted(fractions) and fractions[-1] == 1.0


def test_stacking_primitive_on_threads_equals_the_sync_executor():
    from gmoswidgets.executor import ThreadExecutor
    frames = [_frame(100.0 + i, name=f"b{i}.fits", obstype="BIAS", shape=(400, 64))
              for i in range(6)]
    rng = np.random.default_rng(3)
    for frame in frames:
        for ext in frame.exts:
            ext.data += rng.normal(0, 2, ext.data.shape).astype(np.float32)
        frame.exts[0].data[rng.integers(0, 400, 40), rng.integers(0, 64, 40)] = 1e4
    options = dict(reject_method="minmax", nhigh=1, memory=0.001)     # 10 chunks per extension
    [sync] = get_primitive("stackFrames")(frames, StepContext(), **options)
    with ThreadExecutor(max_workers=2) as executor:
        [threads] = get_primitive("stackFrames")(frames, StepContext(executor=executor), **options)
    for a, b in zip(sync.exts, threads.exts):
        for plane in ("data", "variance", "mask"):
            np.testing.assert_array_equal(getattr(a, plane), getattr(b, plane))
    assert sync[0].data.max() < 200                  # the hits were rejected


def test_working_memory_of_threads_stays_within_the_budget():
    shape = (1000, 500)
    datas, variances = _noise(10, shape=shape), _ones(10, shape=shape)
    masks = _ones(10, 0, np.uint16, shape=shape)
    tracemalloc.start()
    combine_arrays(datas, variances, masks, reject_method="varclip", memory=0.005, workers=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 500 * 1000 * (4 + 4 + 2) + 5e6 * 1.5, peak / 1e6


def test_flat_rejection_by_number_of_inputs():
    assert flat_rejection(2) == ("none", 0, 0)
    assert flat_rejection(5) == ("minmax", 1, 1)
    assert flat_rejection(10) == ("minmax", 2, 2)
    assert flat_rejection(11) == ("minmax", 2, 3)


# -- frame-level -----------------------------------------------------------------

def _frame(level, gain=2.0, rdnoise=4.0, name="a.fits", obstype="OBJECT", obj="starfield",
           shape=SHAPE):
    phu = fits.Header({"INSTRUME": "GMOS-N", "OBSTYPE": obstype, "OBJECT": obj})
    exts = []
    for k in range(2):
        ny, nx = shape
        hdr = fits.Header({"GAIN": gain, "RDNOISE": rdnoise, "DATASEC": f"[1:{nx},1:{ny}]",
                           "DETSEC": f"[{1 + nx * k}:{nx + nx * k},1:{ny}]", "CCDSUM": "1 1"})
        exts.append(Extension(np.full(shape, level * (1 + k), np.float32), hdr,
                              np.ones(shape, np.float32), np.zeros(shape, np.uint16)))
    frame = Frame(phu, exts)
    frame.filename = name
    return frame


def test_stackFrames_scale_zero_and_header():
    frames = [_frame(100.0, gain=2.0, rdnoise=3.0, name="a.fits"),
              _frame(200.0, gain=1.0, rdnoise=4.0, name="b.fits")]
    func = get_primitive("stackFrames")
    [out] = func(frames, StepContext(), reject_method="none", scale=True)
    assert out.filename == "a.fits" and out.phu["NCOMBINE"] == 2
    np.testing.assert_allclose(out[0].data, 100.0)
    np.testing.assert_allclose(out[1].data, 200.0)
    # the second frame's VAR is scaled by 0.5**2
    np.testing.assert_allclose(out[0].variance, (1 + 0.25) / 4)
    assert out[0].header["RDNOISE"] == pytest.approx(math.sqrt((9 + 16) / 2))
    assert out[0].header["GAIN"] == pytest.approx(2 / (1 / 2 + 1))
    [out] = func(frames, StepContext(), reject_method="none", zero=True)
    np.testing.assert_allclose(out[1].data, 200.0)
    [out] = func(frames, StepContext(), reject_method="none", zero=True, separate_ext=False)
    # one offset per frame from the pooled medians (150 and 300): (100 + 200 - 150) / 2
    np.testing.assert_allclose(out[0].data, 75.0)
    for frame in frames:                                     # inputs untouched
        assert frame[0].data[0, 0] in (100.0, 200.0)


def test_stack_primitives_check_inputs():
    ctx = StepContext()
    with pytest.raises(FileProblem, match="BIAS"):
        get_primitive("stackBiases")([_frame(1.0), _frame(2.0)], ctx)
    odd = _frame(1.0, name="odd.fits")
    odd.exts[1].data = np.zeros((5, 5), np.float32)
    with pytest.raises(FileProblem, match="odd.fits"):
        get_primitive("stackFrames")([_frame(1.0), odd], ctx)
    [single] = get_primitive("stackFrames")([_frame(1.0)], ctx)
    assert single[0].data[0, 0] == 1.0


def test_stackFlats_scales_to_the_first_and_writes_relint():
    flats = [_frame(v, name=f"f{i}.fits", obj="Twilight", shape=(60, 60))
             for i, v in enumerate((1000.0, 500.0, 800.0))]
    [out] = get_primitive("stackFlats")(flats, StepContext())
    np.testing.assert_allclose(out[0].data, 1000.0, rtol=1e-6)
    assert out.phu["RELINT"] == pytest.approx(1.0)


def test_declared_defaults_are_dragons():
    frames = get_primitive("stackFrames").defaults()
    assert frames["operation"] == "mean" and frames["reject_method"] == "sigclip"
    assert frames["memory"] == 1.0 and frames["max_iters"] is None and frames["mclip"] is True
    biases = get_primitive("stackBiases").defaults()
    assert biases["reject_method"] == "varclip" and "scale" not in biases
    flats = get_primitive("stackFlats").defaults()
    assert flats["reject_method"] == "minmax" and flats["nlow"] is None


def _random_stack(n, seed, flagged, with_var, shape=(37, 53)):
    """Noise with outliers, exact ties, NaNs and every DQ bit: the awkward cases of each step."""
    rng = np.random.default_rng(seed)
    datas = [rng.normal(100, 5, shape).astype(np.float32) for _ in range(n)]
    for data in datas:
        data[rng.random(shape) < 0.02] += 80
        data[rng.random(shape) < 0.02] = 100.0
        data[rng.random(shape) < 0.005] = np.nan
    variances = ([np.abs(rng.normal(25, 3, shape)).astype(np.float32) for _ in range(n)]
                 if with_var else None)
    masks = None
    if flagged:
        bits = np.array([1, 2, 4, 8, 16, 32, 64], np.uint16)
        masks = [np.where(rng.random(shape) < 0.05, rng.choice(bits, shape), 0).astype(np.uint16)
                 for _ in range(n)]
    return datas, variances, masks


@pytest.mark.parametrize("n", [2, 3, 5, 10, 12])
@pytest.mark.parametrize("flagged, with_var", [(True, True), (False, False), (True, False)])
def test_compiled_kernel_gives_the_bits_of_the_numpy_combination(n, flagged, with_var,
                                                                 combination):
    """Every operation, rejection and option: the compiled kernel's SCI, VAR and DQ are numpy's."""
    if combination == "compiled":
        pytest.skip("compares both paths itself")
    datas, variances, masks = _random_stack(n, n, flagged, with_var)
    rng = np.random.default_rng(n + 100)
    rejections = [("none", {}), ("minmax", dict(nlow=1, nhigh=1)), ("minmax", dict(nlow=2, nhigh=3)),
                  ("sigclip", {}), ("sigclip", dict(mclip=False)), ("varclip", {}),
                  ("varclip", dict(mclip=False, max_iters=2)),
                  ("sigclip", dict(lsigma=1.5, hsigma=2.0, apply_dq=False))]
    for operation in ("mean", "wtmean", "median", "lmedian"):
        if operation == "wtmean" and not with_var:
            continue
        for reject_method, extra in rejections:
            for scaled in (False, True):
                options = dict(operation=operation, reject_method=reject_method, **extra)
                if scaled:
                    options.update(scales=rng.uniform(0.8, 1.2, n), zeros=rng.uniform(-3, 3, n))
                reference = combine_arrays(datas, variances, masks, compiled=False, **options)
                kernel = combine_arrays(datas, variances, masks, compiled=True, **options)
                for a, b in zip(reference, kernel):
                    np.testing.assert_array_equal(a, b, err_msg=str(options))


@pytest.mark.parametrize("operation, reject_method", [("mean", "varclip"), ("mean", "sigclip"),
                                                      ("wtmean", "varclip"), ("median", "minmax"),
                                                      ("mean", "none")])
def test_constant_planes_give_the_result_of_full_planes(operation, reject_method):
    """A bias's constant VAR and all-zero DQ (broadcast scalars) are not expanded: same bits."""
    from gmoswidgets.primitives._calib import constant_plane
    datas, _, _ = _random_stack(7, 21, flagged=False, with_var=False, shape=(120, 90))
    datas[2][3:9, 4] += 300.0
    noise = [4.0 + k for k in range(7)]
    full_var = [np.full(datas[0].shape, v, np.float32) for v in noise]
    full_dq = _ones(7, 0, np.uint16, shape=datas[0].shape)
    const_var = [constant_plane(v, datas[0].shape, np.float32) for v in noise]
    const_dq = [constant_plane(0, datas[0].shape, np.uint16) for _ in range(7)]
    options = dict(operation=operation, reject_method=reject_method, nlow=1, nhigh=2,
                   scales=np.linspace(0.9, 1.1, 7), memory=1e-4)
    full = combine_arrays(datas, full_var, full_dq, **options)
    const = combine_arrays(datas, const_var, const_dq, **options)
    for a, b in zip(full, const):
        np.testing.assert_array_equal(a, b)
