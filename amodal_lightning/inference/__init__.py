"""Inference: the generic machinery a task's predictions, evaluation and pictures are built from.

``base`` (the :class:`~.base.Inference` and :class:`~.base.Evaluator` interfaces every kind of output implements),
``layers`` and ``sequential`` (layer-after-layer prediction), ``instance`` (per-object completion: crops, paste-back),
``layer_instances`` and ``found_instances`` (the objects of an image found in its layers, completed by a per-object
model), ``members``, ``views`` and ``ensemble`` (drawing and combining an ensemble), ``evaluation``,
``instance_evaluation`` and ``instance_ap_evaluation`` (metrics beside reference rows), ``resolution`` (model size
<-> data size), ``loading`` (checkpoint -> module), ``outputs``, ``object_outputs``, ``instance_outputs``,
``render`` and ``render_objects`` (files and pictures).
A task (:mod:`amodal_lightning.tasks`) chooses and composes them.
"""
