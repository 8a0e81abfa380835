"""Per-category settings for MVTec AD, and the published numbers to compare against.

MVTec AD (Bergmann, Fauser, Sattlegger, Steger, CVPR 2019) has 5 texture and 10
object categories.  Two named setups (:data:`SETUPS`); every result records which:

``"cvpr2019"`` -- what the CVPR 2019 paper states for its Table 3, whose numbers
are the anchors (:func:`cvpr2019_preset`): the VISAPP autoencoder with d = 100;
textures trained on 128 px patches (rotated crops) and evaluated with a stride-30
sliding window; objects as whole images at 256 x 256 (one extra stride-2
convolution, see :mod:`ssimlib.models`), mirrored and rotated where the object
allows; the SSIM-AE on gray images ("SSIM does not operate on colour images"),
the L2-AE on the images' own channels; 10,000 augmented patches.

``"reimplementation"`` -- the presets below, which follow a widely used TensorFlow
re-implementation of the SSIM autoencoder (github.com/plutoyuxie/
AutoEncoder-SSIM-for-unsupervised-anomaly-detection-), whose README gives one
command line per category:

* Textures: images resized to 256 px (carpet: 512 px), trained on random
  128 px patches, latent size d = 100, evaluated with the sliding window.
* Objects: images resized to 266 px, trained on random 256 px crops,
  d = 500, evaluated with the sliding window (4 overlapping 256 px windows).
* Every category: 10,000 augmented training patches, 200 epochs, Adam with
  learning rate 2e-4, SSIM loss.

Augmentation is stated as what IS used (the reference's command lines switch
augmentations off).  It maps onto :func:`ssimlib.data.sample_patches`
(``rotate``, ``max_angle``, ``flip``); where that function lacks what the
reference does, :func:`ssimlib.experiments.mvtec.training_patches` implements the closest
thing and says so (horizontal-only flips; rotating the whole image without the
inner crop).  Differences from the reference that remain: every flip has
probability 1/2 (reference: 0.3 each).
"""

from dataclasses import asdict, dataclass, fields, replace

TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
OBJECTS = (
    "bottle", "cable", "capsule", "hazelnut", "metal_nut",
    "pill", "screw", "toothbrush", "transistor", "zipper",
)
CATEGORIES = tuple(sorted(TEXTURES + OBJECTS))
SETUPS = ("cvpr2019", "reimplementation")
# The training losses of a preset's model, a ConvAutoencoder: SSIM-AE, L2-AE, and SSIM + L1 for colour.
LOSSES = ("ssim", "l2", "ssim_l1")
# The residual kinds of a preset's anomaly map, for option checks made before Keras loads (the names of
# ssimlib.inference.RESIDUAL_KINDS: each loss's own residual).
RESIDUALS = LOSSES
BACKGROUNDS = ("white", "black")
# How NanoTWICE's training crops are drawn (ssimlib.data.CropStream options; "fixed": one set for all epochs).
# The paper: "trained on 10 000 defect-free patches ... randomly cropped from the given training images".
CROP_PROTOCOLS = {
    "fixed": None,
    "fresh": {},
    "fresh+flips+rot90": {"flip": True, "rot90": True},
}
# Share of training patches that are rotated (the reference's p_rotate = 0.3).
ROTATE_SHARE = 0.3


@dataclass(frozen=True)
class CategoryPreset:
    """How to train and evaluate one category.

    ``resize``: images are resized to ``resize x resize`` px (None: kept as they are).
    ``gray``: True converts to luminance, False keeps/makes RGB, None keeps the files' channels.
    ``rotate``/``max_angle``: a share :data:`ROTATE_SHARE` of the patches is turned by a
    random angle in ``[-max_angle, max_angle]`` degrees.  ``rotate_crop`` True cuts the
    patch from inside a rotated larger region (no image border enters it); False
    rotates the whole resized image and fills its corners with the background.
    ``flip``: ``"both"`` (horizontal and vertical), ``"horizontal"`` or ``"none"``.
    ``background``: ``"white"``/``"black"``: residuals on the near-white/near-black
    background are suppressed (:func:`ssimlib.experiments.mvtec.object_mask`); None: not.
    ``residual``: the residual kind of :func:`ssimlib.inference.residual_map`
    (``"ssim"`` for gray, ``"ssim_l1"`` for colour; None: chosen from the channels).
    ``setup``: which of :data:`SETUPS` the preset belongs to.

    The training schedule (patches, epochs, batch, learning rate) is not part of
    a preset: :data:`ssimlib.experiments.mvtec.SCHEDULE` and the notebooks' parameters set it,
    and each model's manifest records it.
    """

    name: str
    kind: str  # "texture", "object" or "unknown"
    resize: int | None
    patch_size: int
    latent_dim: int
    gray: bool | None
    rotate: bool
    max_angle: float
    rotate_crop: bool
    flip: str
    background: str | None
    residual: str | None
    loss: str = "ssim"
    setup: str = "reimplementation"

    @classmethod
    def from_dict(cls, stored):
        """The preset recorded as ``stored`` (:meth:`as_dict`); keys this class no longer has are ignored.

        Manifests from earlier versions also hold ``n_patches``, ``epochs``,
        ``batch_size`` and ``learning_rate``, which never set the training; what a
        model was trained with is its manifest's ``training.settings``.
        """
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})

    @property
    def channels(self):
        """1 or 3, or None when it depends on the files (``gray`` None)."""
        return None if self.gray is None else (1 if self.gray else 3)

    def as_dict(self):
        return asdict(self)


def _texture(name, resize=256, gray=False, max_angle=45.0):
    return CategoryPreset(
        name, "texture", resize, 128, 100, gray, rotate=True, max_angle=max_angle, rotate_crop=True,
        flip="both", background=None, residual="ssim" if gray else "ssim_l1",
    )


def _object(name, gray=False, rotate=False, rotate_crop=True, flip="both", background=None):
    return CategoryPreset(
        name, "object", 266, 256, 500, gray, rotate=rotate, max_angle=45.0 if rotate else 0.0,
        rotate_crop=rotate_crop, flip=flip, background=background, residual="ssim" if gray else "ssim_l1",
    )


# One entry per category.  "off" lists what the reference switches off.
PRESETS = {
    p.name: p
    for p in (
        _object("bottle", background="white"),  # off: rotate
        _object("cable", flip="none"),  # off: rotate, flips
        _object("capsule", flip="none", background="white"),  # off: rotate, flips
        _texture("carpet", resize=512, max_angle=10.0),  # rotation within 10 deg
        _texture("grid", gray=True),  # everything on
        _object("hazelnut", rotate=True, rotate_crop=False, background="black"),  # off: rotate-crop
        _texture("leather"),
        _object("metal_nut", rotate=True, rotate_crop=False, flip="none",
                background="black"),  # off: rotate-crop, flips
        _object("pill", flip="none", background="black"),  # off: rotate, flips
        _object("screw", gray=True, background="white"),  # off: rotate
        _texture("tile"),
        _object("toothbrush", flip="horizontal"),  # off: rotate, vertical flip
        _object("transistor", flip="horizontal"),  # off: rotate, vertical flip
        _texture("wood", max_angle=15.0),  # rotation within 15 deg
        _object("zipper", gray=True),  # off: rotate
    )
}

# A folder of your own (any name not in PRESETS): images kept at their size and
# channels, 128 px patches and d = 100 as in the VISAPP paper, no rotation or flips
# (orientation may matter for an unknown part), no background mask, residual from
# the channels (ssim on gray, ssim_l1 on colour).
DEFAULT_PRESET = CategoryPreset(
    "unknown", "unknown", None, 128, 100, None, rotate=False, max_angle=0.0, rotate_crop=True,
    flip="none", background=None, residual=None,
)


# Objects whose appearance does not depend on their orientation in the image (seen from
# above, or lying at random angles in the training images), so the CVPR 2019 setup rotates
# them: a judgment from the training images, which the paper does not list.
ROTATABLE_OBJECTS = ("bottle", "hazelnut", "metal_nut", "screw")


def cvpr2019_preset(category, loss="ssim"):
    """The CVPR 2019 Table 3 setup of ``category`` for a model trained with ``loss`` (see the module docstring).

    Starts from the re-implementation's preset for what the paper leaves open
    (texture resolution, which flips an object allows, background masks) and
    applies what it states.  Objects are rotated where :data:`ROTATABLE_OBJECTS`
    says so, turning the whole image (corners filled) since a whole-image crop
    leaves no room for an inner crop; translation is not implemented.
    """
    base = get_preset(category)
    gray = True if loss in ("ssim", "ms_ssim") else base.gray
    changes = {"setup": "cvpr2019", "latent_dim": 100, "gray": gray, "loss": loss,
               "residual": "l2" if loss == "l2" else "ssim" if gray else base.residual}
    if base.kind == "object":
        rotate = category in ROTATABLE_OBJECTS
        changes.update(resize=256, patch_size=256, rotate=rotate, max_angle=45.0 if rotate else 0.0, rotate_crop=False)
    elif base.kind == "texture":
        changes.update(patch_size=128, rotate=True, rotate_crop=True)
    return replace(base, **changes)


def get_preset(category):
    """The preset of an MVTec AD ``category``, or :data:`DEFAULT_PRESET` (renamed) for any other name."""
    return PRESETS.get(category) or replace(DEFAULT_PRESET, name=category)


def configure(category, patch_size=None, latent_dim=None, resize=None, residual=None, loss="ssim", channels=None,
              setup="reimplementation"):
    """The preset of ``category`` in ``setup`` (one of :data:`SETUPS`) with the given overrides (None keeps it).

    ``residual`` None picks ``"l2"`` for ``loss="l2"`` (the L2-AE compares
    pixels), else the preset's kind; ``channels`` (1 or 3, known once the
    images are loaded) settles a residual the preset leaves open.
    """
    if setup not in SETUPS:
        raise ValueError(f"setup must be one of {', '.join(SETUPS)}, got {setup!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    preset = cvpr2019_preset(category, loss) if setup == "cvpr2019" else get_preset(category)
    changes = {"loss": loss}
    for key, value in (("patch_size", patch_size), ("latent_dim", latent_dim), ("resize", resize)):
        if value is not None:
            changes[key] = value
    if residual is None:
        residual = "l2" if loss == "l2" else preset.residual
    if residual is None and channels is not None:
        residual = "ssim" if channels == 1 else "ssim_l1"
    changes["residual"] = residual
    return replace(preset, **changes)


def describe(preset):
    """One line: resolution, channels, patch, d, augmentation, background mask, residual."""
    size = f"resized to {preset.resize} px" if preset.resize else "kept at their size"
    channels = {True: "gray", False: "colour", None: "channels as stored"}[preset.gray]
    augment = []
    if preset.rotate:
        how = "inner crop" if preset.rotate_crop else "whole image, corners filled"
        augment.append(f"rotation within {preset.max_angle:g} deg on {ROTATE_SHARE:.0%} of patches ({how})")
    augment.append({"both": "horizontal and vertical flips", "horizontal": "horizontal flips",
                    "none": "no flips"}[preset.flip])
    mask = f"{preset.background} background masked" if preset.background else "no background mask"
    return (
        f"{preset.name} ({preset.kind}, {preset.setup} setup): images {size}, {channels}, "
        f"{preset.patch_size} px patches, "
        f"d = {preset.latent_dim}; augmentation: {', '.join(augment)}; {mask}; residual {preset.residual}"
    )


# ---------------------------------------------------------------------------
# Published anchors
# ---------------------------------------------------------------------------

# MVTec AD, CVPR 2019, Table 3: pixel-level ROC AUC of SSIM-AE and L2-AE per category.
PAPER_PIXEL_AUROC = {
    "carpet": {"SSIM-AE": 0.87, "L2-AE": 0.59},
    "grid": {"SSIM-AE": 0.94, "L2-AE": 0.90},
    "leather": {"SSIM-AE": 0.78, "L2-AE": 0.75},
    "tile": {"SSIM-AE": 0.59, "L2-AE": 0.51},
    "wood": {"SSIM-AE": 0.73, "L2-AE": 0.73},
    "bottle": {"SSIM-AE": 0.93, "L2-AE": 0.86},
    "cable": {"SSIM-AE": 0.82, "L2-AE": 0.86},
    "capsule": {"SSIM-AE": 0.94, "L2-AE": 0.88},
    "hazelnut": {"SSIM-AE": 0.97, "L2-AE": 0.95},
    "metal_nut": {"SSIM-AE": 0.89, "L2-AE": 0.86},
    "pill": {"SSIM-AE": 0.91, "L2-AE": 0.85},
    "screw": {"SSIM-AE": 0.96, "L2-AE": 0.96},
    "toothbrush": {"SSIM-AE": 0.92, "L2-AE": 0.93},
    "transistor": {"SSIM-AE": 0.90, "L2-AE": 0.86},
    "zipper": {"SSIM-AE": 0.88, "L2-AE": 0.77},
}
PAPER_MEAN_PIXEL_AUROC = {"SSIM-AE": 0.87, "L2-AE": 0.82}
# Mean AU-PRO up to a pixel FPR of 0.3 over the 15 categories, reported later by the
# same authors (Uninformed Students, CVPR 2020; MVTec AD journal version, IJCV 2021).
PAPER_MEAN_AU_PRO = {"SSIM-AE": 0.694, "L2-AE": 0.790}


def model_label(loss):
    """The papers' name of the model trained with ``loss``: ``"SSIM-AE"``, ``"L2-AE"`` or the loss name."""
    return {"ssim": "SSIM-AE", "l2": "L2-AE"}.get(loss, f"AE ({loss} loss)")
