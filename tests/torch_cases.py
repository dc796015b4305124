"""Conformance cases against torch.optim: the same gradient sequences through both updates.

Each case: a landscape, one of our optimizers and the torch.optim constructor it must equal,
and a table of gradient noise. At step t both sides take ``g = grad L(x_t) + noise[t]`` at
their own current ``x_t`` and update; the trajectories must agree to 1e-12 relative.
``make_torch_reference.py`` writes torch's trajectories to ``data/torch_reference.npz``.
"""
import importlib

import numpy as np

from gibbs_sgd import landscapes as ls
from gibbs_sgd import optimizers as op

N_STEPS = 1000
LANDS = {
    "quadratic": ls.Quadratic([[2.0, 0.5], [0.5, 0.7]], center=[0.3, -0.2]),
    "double-well": ls.DoubleWell(barrier=1.0, tilt=0.2),
    "rosenbrock": ls.Rosenbrock(b=5.0),
}

# name: (landscape, our optimizer, torch class name, torch kwargs, noise scale)
CASES = {
    "sgd": ("quadratic", op.SGD(lr=0.05), "SGD", dict(lr=0.05), 0.5),
    "sgd-momentum": ("quadratic", op.HeavyBall(lr=0.02, momentum=0.9), "SGD", dict(lr=0.02, momentum=0.9), 0.5),
    "sgd-dampening": ("double-well", op.HeavyBall(lr=0.01, momentum=0.8, dampening=0.3), "SGD",
                      dict(lr=0.01, momentum=0.8, dampening=0.3), 1.0),
    "sgd-nesterov": ("rosenbrock", op.HeavyBall(lr=0.005, momentum=0.9, nesterov=True), "SGD",
                     dict(lr=0.005, momentum=0.9, nesterov=True), 0.3),
    "rmsprop": ("quadratic", op.RMSprop(lr=0.01), "RMSprop", dict(lr=0.01), 0.5),
    "rmsprop-momentum": ("double-well", op.RMSprop(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.9), "RMSprop",
                         dict(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.9), 1.0),
    "rmsprop-centered": ("quadratic", op.RMSprop(lr=0.01, alpha=0.95, centered=True), "RMSprop",
                         dict(lr=0.01, alpha=0.95, centered=True), 0.5),
    "rmsprop-centered-momentum": ("rosenbrock", op.RMSprop(lr=0.002, alpha=0.99, eps=1e-4, momentum=0.5, centered=True),
                                  "RMSprop", dict(lr=0.002, alpha=0.99, eps=1e-4, momentum=0.5, centered=True), 0.3),
    "adam": ("quadratic", op.Adam(lr=0.01), "Adam", dict(lr=0.01), 0.5),
    "adam-betas": ("double-well", op.Adam(lr=0.005, betas=(0.5, 0.99), eps=1e-3), "Adam",
                   dict(lr=0.005, betas=(0.5, 0.99), eps=1e-3), 1.0),
    "adam-amsgrad": ("rosenbrock", op.Adam(lr=0.003, betas=(0.8, 0.95), amsgrad=True), "Adam",
                     dict(lr=0.003, betas=(0.8, 0.95), amsgrad=True), 0.3),
    "adam-amsgrad-quadratic": ("quadratic", op.Adam(lr=0.02, betas=(0.0, 0.9), eps=1e-6, amsgrad=True), "Adam",
                               dict(lr=0.02, betas=(0.0, 0.9), eps=1e-6, amsgrad=True), 0.5),
}


def noise_table(name: str) -> np.ndarray:
    land = LANDS[CASES[name][0]]
    seed = sum(map(ord, name))
    return CASES[name][4] * np.random.default_rng(seed).standard_normal((N_STEPS, land.dim))


def start(name: str) -> np.ndarray:
    land = LANDS[CASES[name][0]]
    return land.box.mean(axis=1) + 0.1 * (land.box[:, 1] - land.box[:, 0]) * np.linspace(-1, 1, land.dim)


def our_trajectory(name: str) -> np.ndarray:
    """Our scalar update function, fed the case's gradient sequence (float64)."""
    land_name, opt, *_ = CASES[name]
    land = LANDS[land_name]
    module, fn = opt.kernel_functions()["update"].split(":")
    update = getattr(importlib.import_module(module), fn)
    noise = noise_table(name)
    x = start(name)
    s = np.zeros(max(opt.n_state, 1) * land.dim)
    p = opt.kernel_params()
    coef = opt.step_coefficients(N_STEPS)
    out = np.empty((N_STEPS + 1, land.dim))
    out[0] = x
    for t in range(N_STEPS):
        g = np.atleast_1d(land.grad(x)).astype(np.float64) + noise[t]
        update(x, g, s, opt.lr, p, coef[t])
        out[t + 1] = x
    return out


def torch_trajectory(name: str) -> np.ndarray:
    """torch.optim's trajectory for the same gradient sequence (float64, CPU)."""
    import torch

    land_name, _, cls, kwargs, _ = CASES[name]
    land = LANDS[land_name]
    noise = noise_table(name)
    x = torch.tensor(start(name), dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, cls)([x], foreach=False, **kwargs)
    out = np.empty((N_STEPS + 1, land.dim))
    out[0] = x.detach().numpy()
    for t in range(N_STEPS):
        g = np.atleast_1d(land.grad(x.detach().numpy().copy())).astype(np.float64) + noise[t]
        x.grad = torch.from_numpy(g)
        opt.step()
        out[t + 1] = x.detach().numpy()
    return out
