"""Image registration: rigid, affine and B-spline, multimodal, with evaluation.

Functions
---------
- :func:`rigid`, :func:`affine`, :func:`deformable` (B-spline free-form
  deformation) and :func:`register` (stages in turn) align a *moving*
  image to a *fixed* one and return a :class:`RegistrationResult`.
- :func:`landmark_registration`: rigid, similarity or affine fit to
  paired LPS points.
- :func:`evaluate`: target registration error (TRE) against landmarks or
  a known transform, label overlap through :mod:`medlab.measure`, and
  Jacobian statistics (folding) of deformations.
- :func:`resample`, :func:`transform_points`, :func:`load_transform`:
  use a transform (e.g. one read from an ITK ``.tfm``/``.h5`` file).

Conventions
-----------
* Transforms map **fixed** physical points (LPS mm) to **moving** ones:
  ITK's convention, the direction resampling needs (for each fixed voxel,
  where to read the moving image). If the moving image was made by
  moving the fixed anatomy by ``M`` (a point ``p`` goes to ``M(p)``),
  the registration recovers ``T = M``. Resampling the moving image with
  ``T`` brings it onto the fixed grid.
* Everything happens in physical space, so spacing, origin and direction
  cosines are honoured; the images need not share a grid.
* 3D images register with 3D transforms. Single-slice images (shape
  ``(1, rows, columns)``, e.g. PNG/MHA slices) register as 2D images in
  the LPS x-y plane with 2D transforms (a ``z`` coordinate is carried
  through unchanged). A 2D image against a 3D one is an error.

Defaults (no tuning needed on typical data)
-------------------------------------------
* Mattes mutual information, 50 bins (works across modalities);
  ``metric='correlation'`` or ``'mean_squares'`` for the same modality.
* Centred initialisation (``initial='geometry'``: the grid centres are
  superposed); ``'moments'`` superposes intensity centres of mass,
  ``'identity'`` keeps a shared frame of reference (PET/CT); a transform,
  a previous result or paired landmarks also work.
* Coarse multi-start when the start is a guess (``'geometry'``,
  ``'moments'`` or ``'identity'``): the coarsest level also starts from
  the start rotated by +-15 degrees about each axis and optimises the start
  and the two best-scoring rotations; their distinct optima go through the
  finer levels and the finest level's metric, over every voxel, picks one.
  On real multimodal pairs the result then depends much less on the start
  pose. A given transform, result or landmarks is trusted and not searched
  around.
* A 3-level pyramid, shrink factors ``(4, 2, 1)`` applied per axis towards
  isotropic voxels, Gaussian smoothing of ``0.5 * factor * finest
  spacing`` mm on shrunk levels.
* Rigid and affine stages sample the metric on the moving image when it
  covers a smaller field of view than the fixed one (a cropped MR against a
  CT) and its voxels are not 8 times larger, so that the samples stay
  inside the other image as the pose changes, and return the inverse of
  that registration (still fixed -> moving).
* ``sampling='auto'``: an image of at most a million voxels (rigid and
  affine) is sampled at every voxel on every level, unless the other
  image's voxels are more than 8 times larger or smaller (PET against CT):
  random samples of a small image make a rough landscape whose optima lie
  millimetres apart (on the cohort's MR/CT pairs the result depended on
  the start pose by up to 11.5 mm), and a regular grid against a much
  coarser image adds interpolation artefacts. Otherwise random sampling of
  20% of the voxels per level, at least 5 000 and at most 20 000
  (``max_samples``), seeded (``seed=0``). Mattes mutual
  information runs single-threaded, because ITK's threaded histogram
  differs in the last bits run to run: the same inputs give the same
  transform, bit for bit.
* Rigid and affine: every optimiser step is a length in mm of motion of the
  fixed image's corners (SimpleITK's physical-shift scales with the
  learning rate re-estimated at each iteration), half a level voxel, so
  rotations, scalings and translations are balanced without hand-set
  scales. Coarse levels take constant steps (gradient descent) to get
  close and hand the best position they visited (not the last, which
  depends on where the steps happened to bounce) to the next level; the
  finest level uses regular-step gradient descent, halving (x0.7) the
  step when the gradient turns back, until a step moves no corner by more
  than 1e-4 voxel or the metric stops improving. At most 200 iterations
  per level. 3D rigid uses a versor
  (``VersorRigid3DTransform``), 2D an Euler angle.
* B-spline: cubic, control grid refined by 2 per level down to
  ``grid_spacing_mm`` (32 mm), L-BFGS (accuracy 1e-6: libLBFGS's 1e-5
  stops mutual information early), 50 iterations per level.
* Masks (``fixed_mask``, ``moving_mask``) must be on their image's grid;
  a mask on another grid is an error that says how to resample it
  (nearest neighbour) rather than a silent resampling.
* A progress bar (tqdm) shows long runs; ``progress=False`` hides it.
  Nothing is printed.

Examples
--------
>>> import medlab as ml                                           # doctest: +SKIP
>>> result = ml.registration.rigid(ct, mr)                        # doctest: +SKIP
>>> mr_on_ct = result.resample(mr)                                # doctest: +SKIP
>>> result.metric_trace.plot(y="metric")                          # doctest: +SKIP
>>> ml.registration.evaluate(result, truth=known)["tre_mean_mm"]  # doctest: +SKIP
"""

from ._convert import RegistrationError
from ._engine import affine, deformable, register, rigid
from ._evaluate import evaluate, target_registration_error
from ._landmarks import landmark_registration
from ._result import RegistrationResult, load_transform, resample, transform_points

__all__ = [
    "RegistrationError",
    "RegistrationResult",
    "affine",
    "deformable",
    "evaluate",
    "landmark_registration",
    "load_transform",
    "register",
    "resample",
    "rigid",
    "target_registration_error",
    "transform_points",
]
