"""Authenticity: can real elastograms be told from synthetic ones?

``readers`` holds the statistics of a reader study (people judging images). The other modules
ask the same question without readers (DESIGN §9): classifier two-sample tests with a texture
observer and a CNN observer (``c2st``, ``texture_observer``, ``cnn_observer``), a Fréchet
distance on texture features (``frechet``), a memorisation check (``memorisation``) and the
radially averaged power spectrum (``spectrum``); ``report.authenticity_metrics`` runs them all.
"""
