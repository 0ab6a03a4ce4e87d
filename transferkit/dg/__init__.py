"""Domain generalization: train on several labelled domains, predict a domain never seen in training.

Every method is a loss over the one trainer (:class:`~transferkit.nn.trainer.Trainer`), one file
each, registered in :data:`transferkit.registry.METHODS`: ``erm``, ``dg-coral``, ``dg-mmd``,
``groupdro``, ``mixup``, ``vrex``, ``irm``, ``swa`` (ERM with weight averaging) and ``randconv``
(random convolutions of the images, for image data). They set ``uses_target = False``: the
loader drops every target row, so a run needs none and never sees one.
:mod:`transferkit.dg.protocol` runs the leave-one-domain-out protocol with the three model-selection
rules side by side.
"""
