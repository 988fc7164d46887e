"""The network layer: shapes, fast == reference ConvLSTM, masks and NaNs, losses, registry, PCA."""

import inspect

import numpy as np
import pytest
import torch

import ifsrepr
from ifsrepr.models import (
    AutoencoderLoss,
    CNNLSTMAutoencoder,
    ConvLSTMAutoencoder,
    ConvLSTMCell,
    ModelConfigError,
    ModelInputError,
    NotFittedError,
    PCABaseline,
    ReferenceConvLSTMCell,
    copy_weights,
    kl_divergence,
    reconstruction_loss,
)
from ifsrepr.models.builtin import CNN_LSTM, CONVLSTM, PCA

T, S = 5, 16  # lines, map size: small enough for fast tests
SMALL = dict(hidden_channels=6, frontend_channels=(4, 8), latent_dim=7)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # One thread: these tensors are tiny, and on a busy machine waiting for a
    # second OpenMP thread made single calls ~100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    yield
    torch.set_num_threads(threads)


def small_convlstm(**options):
    return ConvLSTMAutoencoder(T, S, **{**SMALL, **options})


def batch(n=3, dtype=torch.float32):
    return torch.randn(n, T, 1, S, S, dtype=dtype)


# -- shapes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        lambda: small_convlstm(),
        lambda: small_convlstm(peephole=False),
        lambda: small_convlstm(num_layers=2, hidden_channels=[6, 4]),
        lambda: small_convlstm(variant="vae"),
        lambda: small_convlstm(mask_channel=True),
        lambda: small_convlstm(kernel_size=5),
        lambda: CNNLSTMAutoencoder(
            T, S, frontend_channels=(4, 8), feature_dim=12, hidden_size=10, latent_dim=7
        ),
        lambda: CNNLSTMAutoencoder(
            T,
            S,
            frontend_channels=(4, 8),
            feature_dim=12,
            hidden_size=10,
            latent_dim=7,
            variant="vae",
            num_layers=2,
        ),
    ],
)
def test_shapes(model):
    net = model()
    x = batch()
    x_hat, latent, extras = net(x)
    assert x_hat.shape == x.shape
    assert latent.shape == (3, 7)
    assert net.encode(x).shape == (3, 7)
    assert net.decode(latent).shape == x.shape
    # (batch, lines, H, W) works too and keeps its rank
    assert net(x[:, :, 0])[0].shape == (3, T, S, S)
    assert set(extras) == ({"mu", "logvar", "z"} if net.variant == "vae" else set())


def test_non_square_images():
    net = ConvLSTMAutoencoder(T, (16, 24), **SMALL)
    x = torch.randn(2, T, 1, 16, 24)
    assert net(x)[0].shape == x.shape


def test_wrong_input_shape_is_a_clear_error():
    net = small_convlstm()
    with pytest.raises(ModelInputError, match=r"n_lines=5.*got \(2, 4, 1, 16, 16\)"):
        net(torch.zeros(2, 4, 1, S, S))
    with pytest.raises(ModelInputError, match="image_size"):
        net(torch.zeros(2, T, 1, 8, 8))
    with pytest.raises(ModelInputError):
        net(np.zeros((2, T, 1, S, S)))


# -- fast cell == reference cell -------------------------------------------------------------------


def _perturb(module, scale=0.3):
    # Non-trivial weights (peepholes start at 0) so every term is exercised.
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def _grads_in_reference_layout(model, **options):
    """The gradients of ``model`` as a reference-cell model's parameters (for comparison)."""
    holder = ConvLSTMAutoencoder(T, S, **{**SMALL, **options, "cell": model.options["cell"]})
    holder = holder.double()
    with torch.no_grad():
        for (_, p), (_, g) in zip(holder.named_parameters(), model.named_parameters(), strict=True):
            p.copy_(g.grad)
    target = ConvLSTMAutoencoder(T, S, **{**SMALL, **options, "cell": "reference"}).double()
    copy_weights(holder, target)
    return dict(target.named_parameters())


@pytest.mark.parametrize("peephole", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("variant", ["ae", "vae"])
@pytest.mark.parametrize("decoder_input", ["latent", "queries"])
def test_fast_cell_matches_reference(peephole, num_layers, variant, decoder_input):
    options = dict(
        peephole=peephole,
        num_layers=num_layers,
        variant=variant,
        hidden_channels=[6, 5][:num_layers],
        decoder_input=decoder_input,
    )
    models = {
        cell: ConvLSTMAutoencoder(T, S, **{**SMALL, **options, "cell": cell}).double().eval()
        for cell in ("fast", "batched", "reference")
    }
    _perturb(models["fast"])
    copy_weights(models["fast"], models["batched"])
    copy_weights(models["fast"], models["reference"])
    x = batch(dtype=torch.float64)
    results = {}
    for cell, model in models.items():
        x_hat, latent, _ = model(x)
        (x_hat.square().sum() + latent.sin().sum()).backward()
        results[cell] = (x_hat.detach(), latent.detach())
    ref_hat, ref_latent = results["reference"]
    ref_grads = dict(models["reference"].named_parameters())
    for cell in ("fast", "batched"):
        torch.testing.assert_close(results[cell][0], ref_hat, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(results[cell][1], ref_latent, rtol=1e-10, atol=1e-12)
        grads = _grads_in_reference_layout(models[cell], **options)
        for name, p in ref_grads.items():
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-9, atol=1e-10, msg=name)


def test_copy_weights_both_ways_and_float32_tolerance():
    fast = small_convlstm(num_layers=2, hidden_channels=[6, 5])
    ref = small_convlstm(num_layers=2, hidden_channels=[6, 5], cell="reference")
    _perturb(ref)
    copy_weights(ref, fast)
    x = batch()
    torch.testing.assert_close(fast(x)[0], ref(x)[0], rtol=1e-4, atol=1e-5)
    back = small_convlstm(num_layers=2, hidden_channels=[6, 5], cell="reference")
    copy_weights(fast, back)
    for (n, a), (_, b) in zip(ref.state_dict().items(), back.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=n)
    with pytest.raises(ValueError, match="line up|differ"):
        copy_weights(fast, small_convlstm(num_layers=2, hidden_channels=[6, 4], cell="reference"))


@pytest.mark.parametrize("peephole", [True, False])
@pytest.mark.parametrize(
    "with_state, broadcast, with_context",
    [
        (False, False, False),
        (True, False, False),
        (True, True, False),
        (False, True, True),
        (True, False, True),
    ],
)
def test_cell_level_equivalence(peephole, with_state, broadcast, with_context, monkeypatch):
    # Tiny chunks force the chunked input convolution through several pieces.
    monkeypatch.setattr(ConvLSTMCell, "CPU_CHUNK_BYTES", 1)
    kw = dict(kernel_size=3, peephole=peephole, spatial_size=(4, 4))
    fast = ConvLSTMCell(3, 4, **kw).double()
    ref = ReferenceConvLSTMCell(3, 4, **kw).double()
    _perturb(fast)
    copy_weights(fast, ref)
    inputs = torch.randn(1 if broadcast else 2, 6, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    state = None
    if with_state:
        state = tuple(
            torch.randn(2, 4, 4, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)
        )
    context = None
    if with_context:
        context = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    results = []
    for cell in (fast, ref):
        out, (h, c) = cell(inputs, state, context=context)
        loss = out.square().sum() + h.sum() + c.cos().sum()
        leaves = [inputs, *(state or ()), *([context] if with_context else [])]
        results.append((out, h, c, *torch.autograd.grad(loss, leaves)))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # Without autograd the fast cell streams its input gates chunk by chunk and
    # keeps nothing for a backward pass: same results.
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            out, (h, c) = fast(inputs, state, context=context)
        for a, b in zip((out, h, c), results[1][:3], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_recurrence_takes_a_generator_of_chunks():
    from ifsrepr.models.fused import fused_convlstm

    hidden, batch = 3, 2
    gates = torch.randn(5, batch, 4 * hidden, 4, 4, dtype=torch.float64)
    weight = torch.randn(4 * hidden, hidden, 3, 3, dtype=torch.float64, requires_grad=True)
    kw = dict(hidden=hidden, padding=1, batch=batch)
    out, c = fused_convlstm([gates[:2], gates[2:]], None, weight, None, **kw)
    with torch.no_grad():
        lazy_out, lazy_c = fused_convlstm(
            iter([gates[:2], gates[2:]]), None, weight, None, steps=5, **kw
        )
        with pytest.raises(ValueError, match="steps"):
            fused_convlstm(iter([gates]), None, weight, None, **kw)
    torch.testing.assert_close(lazy_out, out.detach())
    torch.testing.assert_close(lazy_c, c.detach())
    # With autograd on, a generator is read into a list and gradients flow as usual.
    again, _ = fused_convlstm(iter([gates[:2], gates[2:]]), None, weight, None, steps=5, **kw)
    (grad,) = torch.autograd.grad(again.sum(), weight)
    torch.testing.assert_close(grad, torch.autograd.grad(out.sum(), weight)[0])


@pytest.mark.parametrize("cell", ["fast", "reference"])
def test_inference_in_chunks_of_images_is_the_same(cell, monkeypatch):
    # In inference on CPU the front and back ends run a chunk of images at a
    # time (one image per chunk here), and the fast cell streams its input gates.
    net = small_convlstm(cell=cell, num_layers=2, hidden_channels=[6, 5]).double().eval()
    _perturb(net)
    x = batch(dtype=torch.float64)
    expected = net(x)
    monkeypatch.setattr(ConvLSTMAutoencoder, "CPU_CHUNK_BYTES", 1)
    monkeypatch.setattr(ConvLSTMCell, "CPU_CHUNK_BYTES", 1)
    with torch.inference_mode():
        got = net(x)
    for a, b in zip(got[:2], expected[:2], strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("broadcast", [False, True])
def test_fused_recurrence_gradcheck(broadcast):
    # The hand-written backward pass against finite differences, for every input.
    from ifsrepr.models.fused import fused_convlstm

    def d(*shape):
        return (0.5 * torch.randn(*shape, dtype=torch.float64)).requires_grad_()

    hidden, batch = 2, 2
    gates = d(3, 1 if broadcast else batch, 4 * hidden, 3, 3)
    h0, c0 = d(batch, hidden, 3, 3), d(batch, hidden, 3, 3)
    weight = d(4 * hidden, hidden, 3, 3)
    peep = d(hidden, 3, 3), d(hidden, 1, 1), d(hidden, 3, 3)
    context = d(batch, 4 * hidden, 3, 3)

    def run(gates, h0, c0, weight, pi, pf, po, context):
        out, c = fused_convlstm(
            [gates[:2], gates[2:]],
            (h0, c0),
            weight,
            (pi, pf, po),
            context,
            hidden=hidden,
            padding=1,
            batch=batch,
        )
        return out, c

    assert torch.autograd.gradcheck(run, (gates, h0, c0, weight, *peep, context))
    if not broadcast:

        def no_state(gates, weight, po):
            return fused_convlstm(
                [gates], None, weight, (peep[0], peep[1], po), hidden=hidden, padding=1, batch=batch
            )[1]

        assert torch.autograd.gradcheck(no_state, (gates, weight, peep[2]))


def test_fused_cell_under_cpu_autocast():
    fast = small_convlstm()
    x = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_hat, latent, _ = fast(x)
        loss = reconstruction_loss(x_hat.float(), x)
    loss.backward()
    assert torch.isfinite(latent).all()
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters())
    torch.testing.assert_close(x_hat.float(), fast(x)[0], rtol=0.1, atol=0.1)
    # And without autograd (input gates computed chunk by chunk, inside the recurrence).
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        inferred = fast(x)[0]
    torch.testing.assert_close(inferred.float(), x_hat.float(), rtol=0.02, atol=0.02)


# -- masks and NaNs --------------------------------------------------------------------------------


def masked_batch(n=3):
    x = batch(n)
    weight = torch.rand_like(x) + 0.5
    weight[:, :, :, :4, :] = 0  # a masked strip in every line
    weight[0, 2] = 0  # galaxy 0 is fully masked in line 2
    return x, weight


@pytest.mark.parametrize(
    "model",
    [
        lambda: small_convlstm(),
        lambda: small_convlstm(mask_channel=True, variant="vae"),
        lambda: CNNLSTMAutoencoder(
            T, S, frontend_channels=(4, 8), feature_dim=12, hidden_size=10, latent_dim=7
        ),
    ],
)
def test_nan_in_masked_pixels_never_reaches_the_latent(model):
    net = model().eval()
    x, weight = masked_batch()
    poisoned = x.clone()
    poisoned[weight == 0] = float("nan")
    poisoned[1, 0, 0, 10, 10] = float("inf")
    weight[1, 0, 0, 10, 10] = 1.0  # non-finite data counts as masked even with a weight
    clean_weight = weight.clone()
    clean_weight[1, 0, 0, 10, 10] = 0.0
    clean = torch.where(clean_weight > 0, x, 0.0)
    latent = net.encode(poisoned, weight)
    assert torch.isfinite(latent).all()
    torch.testing.assert_close(latent, net.encode(clean, clean_weight))
    # Without weights, NaN alone marks the pixel.
    assert torch.isfinite(net.encode(poisoned)).all()
    # And training through it stays finite.
    net.train()
    x_hat, _, extras = net(poisoned, weight)
    loss, _ = AutoencoderLoss(beta=0.5)(x_hat, poisoned, weight, extras)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_loss_ignores_masked_pixels():
    x, weight = masked_batch()
    x_hat = torch.randn_like(x, requires_grad=True)
    base = reconstruction_loss(x_hat, x, weight)
    changed = x.clone()
    changed[weight == 0] = torch.randn(int((weight == 0).sum())) * 100
    changed[0, 2, 0, 0, 0] = float("nan")
    for kind in ("weighted", "masked"):
        torch.testing.assert_close(
            reconstruction_loss(x_hat, changed, weight, kind=kind),
            reconstruction_loss(x_hat, x, weight, kind=kind),
        )
    torch.testing.assert_close(reconstruction_loss(x_hat, changed, weight), base)
    base.backward()
    assert (x_hat.grad[weight == 0] == 0).all()


def test_loss_values_and_reductions():
    x = torch.zeros(2, 3, 1, 2, 2)
    x_hat = torch.ones_like(x)
    x_hat[1] = 2.0
    weight = torch.ones_like(x)
    weight[1] = 3.0
    # weighted: (1*12*1 + 3*12*4) / (12 + 36)
    assert float(reconstruction_loss(x_hat, x, weight)) == pytest.approx((12 + 144) / 48)
    assert float(reconstruction_loss(x_hat, x, weight, kind="masked")) == pytest.approx(2.5)
    torch.testing.assert_close(
        reconstruction_loss(x_hat, x, weight, reduction="galaxy"), torch.tensor([1.0, 4.0])
    )
    assert reconstruction_loss(x_hat, x, weight, reduction="line").shape == (2, 3)
    assert reconstruction_loss(x_hat, x, weight, reduction="none").shape == x.shape
    # scale invariant in the weights
    torch.testing.assert_close(
        reconstruction_loss(x_hat, x, 1e-6 * weight), reconstruction_loss(x_hat, x, weight)
    )
    # the paper's plain MSE counts masked pixels with target 0
    weight[0] = 0
    x_nan = x.clone()
    x_nan[0] = float("nan")
    assert float(reconstruction_loss(x_hat, x_nan, weight, kind="mse")) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="kind"):
        reconstruction_loss(x_hat, x, kind="l1")


def test_loss_with_nothing_usable_is_zero_not_nan():
    x = torch.full((2, 3, 1, 2, 2), float("nan"))
    x_hat = torch.randn(2, 3, 1, 2, 2, requires_grad=True)
    weight = torch.zeros_like(x)
    for kind in ("weighted", "masked"):
        for reduction in ("mean", "galaxy", "line"):
            loss = reconstruction_loss(x_hat, x, weight, kind=kind, reduction=reduction)
            assert torch.all(loss == 0)
    loss = reconstruction_loss(x_hat, x, weight)
    loss.backward()
    assert torch.isfinite(x_hat.grad).all()
    # one galaxy empty in one line: that (galaxy, line) entry is 0, the rest finite
    x = torch.randn(2, 3, 1, 2, 2)
    weight = torch.ones_like(x)
    weight[0, 1] = 0
    per_line = reconstruction_loss(x_hat, x, weight, reduction="line")
    assert per_line[0, 1] == 0 and torch.isfinite(per_line).all()


def test_vae_path():
    net = small_convlstm(variant="vae")
    x = batch()
    net.train()
    x_hat, latent, extras = net(x)
    assert torch.equal(latent, extras["mu"])
    assert not torch.equal(extras["z"], extras["mu"])  # sampled while training
    loss_fn = AutoencoderLoss(beta=2.0)
    total, parts = loss_fn(x_hat, x, None, extras)
    expected_kl = kl_divergence(extras["mu"], extras["logvar"]) / (T * S * S)
    torch.testing.assert_close(parts["kl"], expected_kl.detach())
    torch.testing.assert_close(total, parts["reconstruction"] + 2.0 * expected_kl)
    total.backward()
    net.eval()
    a, b = net(x), net(x)
    torch.testing.assert_close(a[0], b[0])  # deterministic in evaluation
    torch.testing.assert_close(a[1], net.encode(x))
    assert float(kl_divergence(torch.zeros(4, 3), torch.zeros(4, 3))) == 0.0


# -- learning --------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["convlstm", "cnn-lstm"])
def test_tiny_model_overfits_tiny_dataset(architecture):
    # Smooth blobs whose brightness differs per line and galaxy: learnable structure.
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    centres = torch.rand(4, 2) * 8 + 4
    blobs = torch.exp(
        -((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) / 8
    )
    x = (blobs[:, None] * torch.rand(4, T)[:, :, None, None]).unsqueeze(2)
    weight = torch.ones_like(x)
    if architecture == "convlstm":
        net = ConvLSTMAutoencoder(T, S, hidden_channels=8, frontend_channels=(8, 8), latent_dim=8)
        lr = 5e-3
    else:
        net = CNNLSTMAutoencoder(
            T, S, frontend_channels=(8, 8), feature_dim=32, hidden_size=32, latent_dim=8
        )
        lr = 1e-2
    # (over seeds 0-7 the drop was >= 60x for both with these settings)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = AutoencoderLoss()
    losses = []
    for _ in range(120):
        optimiser.zero_grad()
        x_hat, _, extras = net(x, weight)
        loss, _ = loss_fn(x_hat, x, weight, extras)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


# -- registry and options --------------------------------------------------------------------------


def test_architectures_are_registered_through_the_plugin_hook():
    registry = ifsrepr.plugins.get_architectures()
    assert {"convlstm", "cnn-lstm", "pca"} <= set(registry.names())
    assert registry.registration("convlstm").plugin == "architectures"
    for name, cls in (
        ("convlstm", ConvLSTMAutoencoder),
        ("cnn-lstm", CNNLSTMAutoencoder),
        ("pca", PCABaseline),
    ):
        arch = registry.get(name)
        assert isinstance(arch.default_options, dict)
        model = arch.build(T, S) if name == "pca" else None
        if model is not None:
            assert isinstance(model, cls) and model.latent_dim == 128


@pytest.mark.parametrize(
    "arch, cls",
    [(CONVLSTM, ConvLSTMAutoencoder), (CNN_LSTM, CNNLSTMAutoencoder), (PCA, PCABaseline)],
)
def test_default_options_match_the_classes(arch, cls):
    params = inspect.signature(cls).parameters
    keyword = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert set(keyword) == set(arch.default_options)
    for name, value in arch.default_options.items():
        default = keyword[name]
        assert (list(default) if isinstance(default, tuple) else default) == value, name


def test_options_rebuild_the_same_network():
    net = CONVLSTM.build(T, S, **SMALL, num_layers=2, variant="vae")
    again = CONVLSTM.build(net.n_lines, net.image_size, **net.options)
    assert net.options == again.options
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}
    again.load_state_dict(net.state_dict())
    x = batch()
    torch.testing.assert_close(net.eval()(x)[0], again.eval()(x)[0])


@pytest.mark.parametrize(
    "arch, options, message",
    [
        (CONVLSTM, {"hiden_channels": 3}, r"no option hiden_channels; valid options: cell, "),
        (CONVLSTM, {"variant": "gan"}, r"variant must be one of 'ae', 'vae'"),
        (CONVLSTM, {"kernel_size": 4}, r"kernel_size must be odd"),
        (CONVLSTM, {"hidden_channels": 0}, r"hidden_channels must be an integer >= 1"),
        (CONVLSTM, {"num_layers": 2, "hidden_channels": [4, 4, 4]}, r"3 entries but num_layers"),
        (CONVLSTM, {"frontend_channels": [4, 4, 4, 4, 4]}, r"not divisible by 32"),
        (CONVLSTM, {"peephole": "yes"}, r"peephole must be one of True, False"),
        (CONVLSTM, {"cell": "slow"}, r"cell must be one of"),
        (CNN_LSTM, {"hidden_size": -1}, r"hidden_size must be an integer"),
        (CNN_LSTM, {"frontend_channels": [4] * 5}, r"not divisible"),
        (PCA, {"fill": "median"}, r"fill must be one of"),
        (PCA, {"latent_dim": 3}, r"no option latent_dim"),
    ],
)
def test_invalid_options_are_clear_errors(arch, options, message):
    with pytest.raises(ModelConfigError, match=message) as info:
        arch.build(T, S, **options)
    assert isinstance(info.value, ifsrepr.IFSReprError)
    assert arch.name in str(info.value)


def test_bad_image_size():
    with pytest.raises(ModelConfigError, match="image_size"):
        CONVLSTM.build(T, (16, 16, 16))
    with pytest.raises(ModelConfigError, match="image_size"):
        CONVLSTM.build(T, "big")


# -- PCA baseline ----------------------------------------------------------------------------------


def low_rank_data(n=60, rank=4, noise=1e-3):
    basis = torch.randn(rank, T * S * S)
    coeff = torch.randn(n, rank) * torch.linspace(3, 1, rank)
    flat = coeff @ basis + 0.5 + noise * torch.randn(n, T * S * S)
    return flat.view(n, T, 1, S, S)


def explained(x, x_hat, weight=None):
    w = torch.ones_like(x) if weight is None else weight
    mean = (w * x).sum(0) / w.sum(0).clamp_min(1e-9)
    return 1 - float((w * (x - x_hat) ** 2).sum() / (w * (x - mean) ** 2).sum())


@pytest.mark.parametrize("fill", ["iterative", "mean", "zero"])
def test_pca_round_trip_on_low_rank_data(fill):
    x = low_rank_data()
    pca = PCA.build(T, S, n_components=8, fill=fill).fit(x)
    x_hat, latent, extras = pca(x)
    assert latent.shape == (60, 8) and extras == {}
    assert explained(x, x_hat) > 0.999
    assert float(pca.explained_variance_ratio_[:4].sum()) > 0.999
    comps = pca.components_[:4]
    torch.testing.assert_close(comps @ comps.T, torch.eye(4), atol=1e-4, rtol=0)


def test_pca_with_masked_pixels():
    x = low_rank_data(n=80)
    weight = torch.ones_like(x)
    weight[::2, :, :, :3] = 0  # a strip missing in half the galaxies
    weight[torch.rand_like(x) < 0.1] = 0
    poisoned = torch.where(weight > 0, x, float("nan"))
    # As many components as the data's rank: surplus ones would fit the noise of the
    # observed pixels and leave the masked ones undetermined.
    iterative = PCABaseline(T, S, n_components=4, n_iter=15).fit(poisoned, weight)
    zero = PCABaseline(T, S, n_components=4, fill="zero").fit(poisoned, weight)
    x_hat = iterative(poisoned, weight)[0]
    assert torch.isfinite(x_hat).all()
    score = explained(x, x_hat, weight)
    assert score > 0.99
    # imputation recovers the masked pixels of low-rank data; zero filling cannot
    assert explained(x, x_hat) > 0.98
    assert score > explained(x, zero(poisoned, weight)[0], weight)


def test_pca_edge_cases():
    pca = PCABaseline(T, S, n_components=16)
    with pytest.raises(NotFittedError, match="fit"):
        pca.encode(batch())
    x = low_rank_data(n=6)
    pca.fit(x.numpy())  # numpy works, and fewer galaxies than components too
    latent = pca.encode(x)
    assert latent.shape == (6, 16)
    assert torch.all(latent[:, 5:] == 0)
    assert pca.trained_by_gradient is False
    with pytest.raises(ModelInputError, match="at least 2"):
        PCABaseline(T, S).fit(x[:1])
    # the state dict carries the fit
    again = PCABaseline(T, S, n_components=16)
    again.load_state_dict(pca.state_dict())
    torch.testing.assert_close(again.encode(x), latent)


def test_pca_randomised_path(monkeypatch):
    x = low_rank_data(n=40)
    monkeypatch.setattr(PCABaseline, "EXACT_MAX_SAMPLES", 0)
    pca = PCABaseline(T, S, n_components=6, fill="mean").fit(x)
    assert explained(x, pca(x)[0]) > 0.999
