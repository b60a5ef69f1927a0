"""Super-resolution degradations: sizes, determinism, drawn parameters, bad inputs."""

import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from ldmdata.builders.degrade import (
    DEGRADATIONS,
    INTERPOLATIONS,
    KERNEL_TYPES,
    RealEsrganParams,
    _bivariate_kernel,
    _filter,
    _resize,
    _sinc_kernel,
    bicubic_lr,
    realesrgan_lr,
)
from ldmdata.errors import LdmdataError


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A real photograph (scikit-image's astronaut), 128x96 so the tests stay fast."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((128, 96), Image.Resampling.LANCZOS)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_names():
    assert DEGRADATIONS == ("bicubic", "realesrgan")


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_bicubic_size_and_mode(photo, scale):
    lr = bicubic_lr(photo, scale)
    assert lr.size == (128 // scale, 96 // scale)
    assert lr.mode == "RGB"


def test_bicubic_is_antialiased():
    # A one-pixel checkerboard averages out to flat grey; a point sampler would keep it.
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    lr = np.asarray(bicubic_lr(Image.fromarray(board).convert("RGB"), 4), dtype=float)
    assert abs(lr.mean() - 127.5) < 2
    assert lr.std() < 2


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_realesrgan_sizes_exact(photo, scale):
    for seed in range(8):
        lr, drawn = realesrgan_lr(photo, scale, np.random.default_rng(seed))
        assert lr.size == (128 // scale, 96 // scale)
        assert lr.mode == "RGB"
        assert drawn["lr_size"] == [128 // scale, 96 // scale]
        assert drawn["hr_size"] == [128, 96]
        assert drawn["scale"] == scale


def test_realesrgan_same_seed_same_bytes_and_params(photo):
    a_img, a_params = realesrgan_lr(photo, 4, np.random.default_rng(123))
    b_img, b_params = realesrgan_lr(photo, 4, np.random.default_rng(123))
    assert png_bytes(a_img) == png_bytes(b_img)
    assert a_params == b_params


def test_realesrgan_follows_generator_state(photo):
    rng = np.random.default_rng(5)
    first = realesrgan_lr(photo, 4, rng)
    second = realesrgan_lr(photo, 4, rng)  # the generator moved on
    assert first[1] != second[1]
    assert png_bytes(first[0]) != png_bytes(second[0])


def test_realesrgan_different_seeds_differ(photo):
    outputs = {png_bytes(realesrgan_lr(photo, 4, np.random.default_rng(s))[0]) for s in range(6)}
    params = {json.dumps(realesrgan_lr(photo, 4, np.random.default_rng(s))[1]) for s in range(6)}
    assert len(outputs) == 6
    assert len(params) == 6


def test_params_json_round_trip_and_complete(photo):
    for seed in range(20):
        _, drawn = realesrgan_lr(photo, 4, np.random.default_rng(seed))
        assert json.loads(json.dumps(drawn)) == drawn
        r1, r2, final = drawn["round1"], drawn["round2"], drawn["final"]
        assert r1["blur"]["applied"] is True
        for blur in (r1["blur"], r2["blur"]):
            if blur["applied"]:
                assert blur["kernel"] in KERNEL_TYPES + ("sinc",)
                assert blur["size"] in (7, 9, 11, 13, 15, 17, 19, 21)
                keys = {"omega_c"} if blur["kernel"] == "sinc" else {
                    "sigma_x", "sigma_y", "angle", "beta"}
                assert keys <= set(blur)
        for resize in (r1["resize"], r2["resize"]):
            assert resize["direction"] in ("up", "down", "keep")
            assert resize["interpolation"] in INTERPOLATIONS
            assert {"factor", "size"} <= set(resize)
        for noise in (r1["noise"], r2["noise"]):
            assert noise["type"] in ("gaussian", "poisson")
            assert isinstance(noise["gray"], bool)
            assert ("sigma" if noise["type"] == "gaussian" else "scale") in noise
        assert 30 <= r1["jpeg_quality"] <= 95 and 30 <= final["jpeg_quality"] <= 95
        assert final["order"] in ("resize_sinc_then_jpeg", "jpeg_then_resize_sinc")
        assert final["interpolation"] in INTERPOLATIONS
        assert isinstance(final["sinc"]["applied"], bool)


def test_drawn_values_stay_in_the_paper_ranges(photo):
    seen_kernels, seen_orders = set(), set()
    for seed in range(60):
        _, d = realesrgan_lr(photo, 4, np.random.default_rng(seed))
        blur = d["round1"]["blur"]
        seen_kernels.add(blur["kernel"])
        if blur["kernel"] != "sinc":
            assert 0.2 <= blur["sigma_x"] <= 3.0 and 0.2 <= blur["sigma_y"] <= 3.0
            assert -math.pi <= blur["angle"] <= math.pi
        resize = d["round1"]["resize"]
        assert 0.15 <= resize["factor"] <= 1.5
        if d["round1"]["noise"]["type"] == "gaussian":
            assert 1 <= d["round1"]["noise"]["sigma"] <= 30
        r2 = d["round2"]["blur"]
        if r2["applied"] and r2["kernel"] != "sinc":
            assert 0.2 <= r2["sigma_x"] <= 1.5
        assert 0.3 <= d["round2"]["resize"]["factor"] <= 1.2
        seen_orders.add(d["final"]["order"])
    assert {"iso", "aniso"} <= seen_kernels
    assert len(seen_orders) == 2


def test_realesrgan_differs_from_bicubic(photo):
    bicubic = np.asarray(bicubic_lr(photo, 4), dtype=float)
    for seed in range(4):
        lr = np.asarray(realesrgan_lr(photo, 4, np.random.default_rng(seed))[0], dtype=float)
        assert np.abs(lr - bicubic).mean() > 1.0
        # ...but it is still the same picture, not noise.
        assert np.corrcoef(lr.ravel(), bicubic.ravel())[0, 1] > 0.5


def test_custom_params_take_effect(photo):
    # No blur, no resize, no sinc, near-lossless JPEG and tiny noise: close to a plain resize.
    gentle = RealEsrganParams(
        kernel_sizes=(3,), blur_sigma=(0.01, 0.01), blur_sigma2=(0.01, 0.01),
        sinc_prob=0.0, sinc_prob2=0.0, final_sinc_prob=0.0,
        resize_prob=(0.0, 0.0, 1.0), resize_prob2=(0.0, 0.0, 1.0),
        gaussian_noise_prob=1.0, gaussian_noise_prob2=1.0,
        noise_range=(0.01, 0.01), noise_range2=(0.01, 0.01),
        jpeg_range=(100, 100), jpeg_range2=(100, 100),
    )
    lr, drawn = realesrgan_lr(photo, 2, np.random.default_rng(0), gentle)
    assert drawn["round1"]["resize"]["direction"] == "keep"
    assert drawn["final"]["sinc"] == {"applied": False}
    area = np.asarray(photo, dtype=float).reshape(48, 2, 64, 2, 3).mean(axis=(1, 3))
    assert np.abs(np.asarray(lr, dtype=float) - area).mean() < 12


def test_small_and_odd_images():
    tiny = Image.new("RGB", (4, 8), (200, 10, 60))
    lr, drawn = realesrgan_lr(tiny, 4, np.random.default_rng(0))
    assert lr.size == (1, 2)
    wide = Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 200, 3), np.uint8))
    assert realesrgan_lr(wide, 2, np.random.default_rng(2))[0].size == (100, 4)


@pytest.mark.parametrize("scale", [0, -2, 2.0, 2.5, True, "4", 3])
def test_bad_scale_errors(photo, scale):
    with pytest.raises(LdmdataError):
        bicubic_lr(photo, scale)
    with pytest.raises(LdmdataError):
        realesrgan_lr(photo, scale, np.random.default_rng(0))


def test_bad_inputs_error(photo):
    with pytest.raises(LdmdataError, match="RGB"):
        bicubic_lr(photo.convert("L"), 2)
    with pytest.raises(LdmdataError, match="RGB"):
        realesrgan_lr(photo.convert("RGBA"), 2, np.random.default_rng(0))
    with pytest.raises(LdmdataError, match="PIL"):
        bicubic_lr(np.zeros((8, 8, 3), np.uint8), 2)
    with pytest.raises(LdmdataError, match="Generator"):
        realesrgan_lr(photo, 2, 42)


@pytest.mark.parametrize("bad", [
    {"sinc_prob": 1.5},
    {"kernel_prob": (0.5, 0.5)},
    {"resize_prob": (0.5, 0.6, 0.1)},
    {"blur_sigma": (3.0, 0.2)},
    {"resize_range": (1.2, 1.5)},
    {"jpeg_range": (30, 120)},
    {"kernel_sizes": (8,)},
    {"noise_range": ("a", "b")},
])
def test_bad_params_error(bad):
    with pytest.raises(LdmdataError):
        RealEsrganParams(**bad)


def test_params_from_dict():
    params = RealEsrganParams.from_dict({"blur_sigma": [0.5, 2.0], "final_sinc_prob": 0.0})
    assert params.blur_sigma == (0.5, 2.0)  # lists from YAML become tuples
    assert params.jpeg_range == (30, 95)
    hash(params)  # frozen and hashable
    with pytest.raises(LdmdataError, match="unknown"):
        RealEsrganParams.from_dict({"blur_sigmaa": [0.5, 2.0]})


# ---- the building blocks against independent references -----------------------------------


@pytest.mark.parametrize("shape", [(40, 33), (5, 7), (1, 3)])
def test_filter_matches_direct_correlation(shape):
    img = np.random.default_rng(0).random(shape + (3,), dtype=np.float32)
    kernels = [
        _sinc_kernel(9, 1.3),
        _bivariate_kernel(21, 3.0, 0.4, 0.7, "gaussian", 1.0),
        _bivariate_kernel(7, 1.0, 2.0, -1.0, "plateau", 1.5),
        _bivariate_kernel(11, 1.5, 1.5, 0.0, "generalized", 0.6),
    ]
    for kernel in kernels:
        pad = kernel.shape[0] // 2
        padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        expected = np.stack([
            ndimage.correlate(padded[..., c], kernel, mode="constant")[pad:-pad, pad:-pad]
            for c in range(3)
        ], axis=-1)
        assert np.abs(_filter(img, kernel) - expected).max() < 1e-5


def test_kernels_are_normalised_and_point_symmetric():
    for kernel in (_sinc_kernel(13, 0.8), _bivariate_kernel(15, 2.5, 0.6, 2.2, "gaussian", 1.0)):
        assert kernel.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-12)


def test_anisotropic_kernel_orientation():
    # sigma_x > sigma_y with angle 0 spreads along x (columns).
    kernel = _bivariate_kernel(21, 3.0, 0.5, 0.0, "gaussian", 1.0)
    assert kernel[10, :].sum() > 5 * kernel[:, 10].sum()
    turned = _bivariate_kernel(21, 3.0, 0.5, math.pi / 2, "gaussian", 1.0)
    np.testing.assert_allclose(turned, kernel.T, atol=1e-9)


def test_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(3).random((37, 29, 3), dtype=np.float32)
    tensor = torch.from_numpy(img).permute(2, 0, 1)[None]
    for size in [(60, 75), (13, 7), (1, 1), (29, 10)]:
        for mode in INTERPOLATIONS:
            extra = {} if mode == "area" else {"align_corners": False}
            ref = torch.nn.functional.interpolate(tensor, size=size[::-1], mode=mode, **extra)
            ours = _resize(img, size, mode)
            assert np.abs(ref[0].permute(1, 2, 0).numpy() - ours).max() < 1e-5


@pytest.mark.parametrize("fft_cost", [0.0, 1e12])  # always the FFT path / always separable
def test_blur_resize_equals_filter_then_resize(monkeypatch, fft_cost):
    import ldmdata.builders.degrade as degrade

    monkeypatch.setattr(degrade, "_FFT_COST", fft_cost)
    rng = np.random.default_rng(4)
    kernels = [
        _bivariate_kernel(21, 2.0, 2.0, 0.0, "gaussian", 1.0),  # rank 1
        _bivariate_kernel(13, 2.5, 0.5, 0.9, "generalized", 0.8),
        _sinc_kernel(7, 1.1),
    ]
    for shape, size in [((48, 40), (13, 17)), ((30, 30), (45, 44)), ((2, 9), (1, 1)),
                        ((25, 31), (31, 25))]:
        img = rng.random(shape + (3,), dtype=np.float32)
        for kernel in kernels:
            for mode in INTERPOLATIONS:
                expected = _resize(_filter(img, kernel), size, mode)
                got = degrade._blur_resize(img, kernel, size, mode)
                assert got.shape == expected.shape == (size[1], size[0], 3)
                assert np.abs(got - expected).max() < 1e-4
