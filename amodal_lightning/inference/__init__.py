"""Inference: layer-after-layer prediction with ensembles, its evaluation beside reference rows, and its outputs.

``sequential`` (the component), ``ensemble`` (combination rules), ``evaluation`` (metrics over whole images),
``resolution`` (model size <-> data size), ``loading`` (checkpoint -> module), ``outputs`` and ``render`` (files
and pictures).
"""
