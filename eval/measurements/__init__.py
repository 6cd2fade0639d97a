"""The measurements a radiologist reads, and how far to trust the Preview (issue 14): EI/B,
Bland–Altman, weighted κ and paired-DeLong AUCs of real vs synthetic elastograms
(:mod:`.agreement`), and the OOD figure (:mod:`.ood_scores`)."""
