"""Tasks: which samples an image gives, what the network is conditioned on and generates, and what becomes of it.

Every source yields the same per-image record (:class:`~amodal_lightning.data.record.ImageRecord`); a task
(:class:`~amodal_lightning.tasks.base.Task`, the protocol every task implements) says how many samples an image
gives and makes them, turns a batch into the ``(conditioning, target)`` pair the diffusion works on under an input
convention (:mod:`.conventions`), and builds the objects that predict, evaluate and draw a trained model's outputs.
A task is chosen by its config (``task=<name>``, ``conf/task/<name>.yaml``, whose ``_target_`` names its class) and
built by :func:`amodal_lightning.task_config.build_task`.

``layers``    SAS's layers, one after another (:class:`.layers.LayersTask`)
``instance``  one object's amodal mask from its visible mask (:class:`.instance.InstanceTask`)
``gestalt``   one object's whole appearance (RGB) and amodal mask from its visible mask (:class:`.gestalt.GestaltTask`)
"""
