"""A local web demo of any checkpoint: ``python -m amodal_lightning.demo ckpt_path=PATH`` (needs the ``[demo]`` extra).

A person picks an image (an upload or one of the generated test scenes), marks objects on it (a click on a visible
region, or a drawn mask) and sees each object's amodal mask, the ensemble's samples and their uncertainty; for a
layer model, the image's layers.

- :mod:`~amodal_lightning.demo.inputs`: decoding an upload, the click rule, drawn masks, the marks' label map and
  the test scenes (plain numpy);
- :mod:`~amodal_lightning.demo.predictions`: the loaded model and the glue from an image and its marks to the
  result images (plain numpy and torch);
- :mod:`~amodal_lightning.demo.app`: the Gradio page (:func:`~amodal_lightning.demo.app.build_app`) and serving it;
- ``__main__``: the Hydra entry point (``conf/demo.yaml``).

Only :mod:`~amodal_lightning.demo.app` imports Gradio, so the core install, which lacks it, imports the rest.
"""
