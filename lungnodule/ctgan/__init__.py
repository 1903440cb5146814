"""Stage 3: CT-GAN, a 3-D conditional GAN that injects or removes lung nodules in CT scans.

Modules: `config` (settings and presets), `cubes` (cut / resample / paste 1 mm cubes), `normalization`
(histogram equalisation and normalisation), `sites` (healthy lung sites), `dataset` (training sets),
`model` (3-D pix2pix), `training`, `tampering`, `heldout` (tampering the held-out scans, figures, how the detector sees them), `viewer`
(display-free state of the GUI), `augmentation` (evaluation (b): the MGI-CNN retrained with GAN-injected
nodules).
"""

from .config import MODES, PRESETS, CTGANConfig

__all__ = ["MODES", "PRESETS", "CTGANConfig", "extract_cube", "paste_cube", "CubeNormalizer", "build_trainset",
           "train", "test", "tamper", "tamper_file", "load_tamper_model", "TamperSession"]


def __getattr__(name):
    # SimpleITK- and Keras-dependent parts load on first use, so `import lungnodule.ctgan` stays light.
    if name in ("extract_cube", "paste_cube"):
        from . import cubes
        return getattr(cubes, name)
    if name == "CubeNormalizer":
        from .normalization import CubeNormalizer
        return CubeNormalizer
    if name == "build_trainset":
        from .dataset import build_trainset
        return build_trainset
    if name == "train":
        from .training import train
        return train
    if name == "test":
        from .heldout import test
        return test
    if name in ("tamper", "tamper_file"):
        from . import tampering
        return getattr(tampering, name)
    if name == "load_tamper_model":
        from .tampering import load_tamper_model
        return load_tamper_model
    if name == "TamperSession":
        from .viewer import TamperSession
        return TamperSession
    raise AttributeError(name)
