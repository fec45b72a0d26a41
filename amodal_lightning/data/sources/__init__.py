"""Data sources: where images and their ground truth come from, one class each behind one interface
(:class:`~amodal_lightning.data.sources.base.Source`), chosen in a data config by ``source._target_``.

``data=synthetic``  :class:`~amodal_lightning.data.sources.scenes.GeneratedScenes`, generated in memory
``data=sas``        :class:`~amodal_lightning.data.sources.sas.SasFolders`, a SAS-layout root
``data=objects``    :class:`~amodal_lightning.data.sources.objects.ObjectFolders`, a per-object root
``data=cocoa`` ...  :class:`~amodal_lightning.data.sources.annotations.AnnotationFile`, a COCO-style annotation file
                    (``cocoa``, ``cocoa_cls``, ``d2sa``, ``kins``, ``kins2020``, ``amodal_coco``)
"""
