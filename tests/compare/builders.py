"""Constructed SAEs whose comparison, absorption and probing results are known in advance.

- `unit_directions`: seeded random unit rows (nearly orthogonal in wide spaces);
- `sae_with_decoder`: a ReLU SAE with given decoder rows (encoder their transpose), saved or not;
- `split_pair`: a small SAE and a larger one in which one latent is split into three children;
- `absorbing_sae` / `letter_activations`: first-letter activations and an SAE whose latent for
  `a` is absorbed, on a known set of words, by token-specific latents;
- `planted_probe_sae`: an SAE with one latent equal to a binary label (written in the input).

This module knows nothing about the tests that use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from saescope.compare.first_letter import LETTERS
from saescope.sae import SAEConfig, SparseAutoencoder, get_architecture
from saescope.sae.formats import save_sae


def unit_directions(n: int, d: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, d, generator=gen)
    return rows / rows.norm(dim=1, keepdim=True)


def sae_with_decoder(
    w_dec: Tensor,
    w_enc: Tensor | None = None,
    b_enc: Tensor | None = None,
    model: str = "tiny",
    hookpoint: str = "resid_post:1",
    training: dict[str, object] | None = None,
) -> SparseAutoencoder:
    """A ReLU SAE with these decoder rows (encoder: `w_enc` [d_in, d_sae], else the decoder's transpose)."""
    d_sae, d_in = w_dec.shape
    cfg = SAEConfig(
        architecture="relu",
        d_in=d_in,
        d_sae=d_sae,
        model=model,
        hookpoint=hookpoint,
        hookpoint_alias=hookpoint,
        training=training or {},
    )
    sae = get_architecture("relu")(cfg)
    with torch.no_grad():
        sae.W_dec.copy_(w_dec)
        sae.W_enc.copy_(w_dec.T if w_enc is None else w_enc)
        sae.b_enc.copy_(torch.zeros(d_sae) if b_enc is None else b_enc)
        sae.b_dec.zero_()
    return sae.eval()


def saved(sae: SparseAutoencoder, folder: Path) -> Path:
    save_sae(sae, folder)
    return folder


class SplitPair(NamedTuple):
    small: Tensor
    """[n, d] decoder of the smaller SAE."""
    large: Tensor
    """[n + 2 + extra, d] decoder of the larger one."""
    children: tuple[int, int, int]
    """The three latents of the larger SAE that split latent 0 of the smaller one."""


def split_pair(n: int = 40, d: int = 64, extra: int = 10, seed: int = 0) -> SplitPair:
    """Latent 0 of the small SAE split into three directions near it in the large SAE (cosine
    ≈ 0.8 each); every other latent copied with a little noise; `extra` random latents added."""
    small = unit_directions(n, d, seed)
    noise = unit_directions(3 + n + extra, d, seed + 1)
    children = torch.stack([small[0] + 0.7 * noise[i] for i in range(3)])
    copies = small[1:] + 0.1 * noise[3 : 3 + n - 1]
    rows = torch.cat([copies, children, noise[3 + n - 1 :][:extra]])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed + 2))
    large = rows[order]
    where = {int(old): new for new, old in enumerate(order.tolist())}
    first_child = n - 1
    picked = tuple(sorted(where[first_child + i] for i in range(3)))
    return SplitPair(small, large / large.norm(dim=1, keepdim=True), picked)  # type: ignore[arg-type]


class LetterData(NamedTuple):
    x_train: Tensor
    letters_train: list[str]
    x_test: Tensor
    letters_test: list[str]
    absorbed_test: int
    """Held-out words of `a` carrying an absorbing direction."""
    a_test: int
    """Held-out words of `a`."""


ABSORBERS = 10
"""Token-specific absorbing latents of letter `a`."""
D_IN = 26 + ABSORBERS + 4


def letter_activations(per_letter: int = 60, absorbed_per_token: int = 1, seed: int = 0) -> LetterData:
    """Activations `3·e_letter + noise` for `per_letter` training and held-out words of each letter;
    among the words of `a`, `absorbed_per_token` per absorbing direction (training and held-out alike)
    also carry `3·t_j`, one of `ABSORBERS` token directions."""
    gen = torch.Generator().manual_seed(seed)

    def split(offset: int) -> tuple[Tensor, list[str], int]:
        rows, letters, absorbed = [], [], 0
        for i, letter in enumerate(LETTERS):
            for w in range(per_letter):
                x = 0.05 * torch.randn(D_IN, generator=gen)
                x[i] += 3.0
                if letter == "a" and w < ABSORBERS * absorbed_per_token:
                    x[26 + w // absorbed_per_token] += 3.0
                    absorbed += 1
                rows.append(x)
                letters.append(letter)
        return torch.stack(rows), letters, absorbed

    x_train, l_train, _ = split(0)
    x_test, l_test, absorbed = split(1)
    return LetterData(x_train, l_train, x_test, l_test, absorbed, per_letter)


def absorbing_sae() -> SparseAutoencoder:
    """26 letter latents (decoder e_letter) and `ABSORBERS` latents absorbing `a` on their token
    direction t_j (decoder (e_a + t_j)/√2); the latent of `a` is switched off where any t_j is."""
    d_sae = 26 + ABSORBERS
    w_dec = torch.zeros(d_sae, D_IN)
    w_enc = torch.zeros(D_IN, d_sae)
    for i in range(26):
        w_dec[i, i] = 1.0
        w_enc[i, i] = 1.0
    for j in range(ABSORBERS):
        w_dec[26 + j, 0] = w_dec[26 + j, 26 + j] = 2**-0.5
        w_enc[26 + j, 26 + j] = 1.0
        w_enc[26 + j, 0] = -2.0  # the latent of `a` does not fire where a token direction is
    return sae_with_decoder(w_dec, w_enc, b_enc=torch.full((d_sae,), -1.0))


def planted_probe_sae(d_in: int, d_sae: int, seed: int = 0) -> SparseAutoencoder:
    """Latent 0 is `relu(x_0 − 0.5)`: 0.5 where the input's first coordinate is 1 (the label), 0
    where it is 0; the other latents read random directions."""
    w_dec = unit_directions(d_sae, d_in, seed)
    w_dec[0] = torch.zeros(d_in)
    w_dec[0, 0] = 1.0
    b_enc = torch.zeros(d_sae)
    b_enc[0] = -0.5
    return sae_with_decoder(w_dec, b_enc=b_enc)
