"""elastogan.app: the web app (clinician preview, blinded reader study) and the study lead's commands.

| module | holds |
|---|---|
| ``cli`` | ``elastogan app`` and ``elastogan study create|add-reader|export|report`` |
| ``server`` | launching the Gradio page, locked down (logins, no telemetry/monitoring) |
| ``ui`` | the page: Preview, Reader study and Study lead tabs wired to the handlers |
| ``preview`` | the clinician preview as a plain function (ratio, NCC, SYNTHETIC downloads) |
| ``uploads`` | uploaded files checked at the door (size, pixels, format) |
| ``secondary_capture`` | the synthetic E-mode as a DICOM Secondary Capture labelled SYNTHETIC |
| ``study_create`` | rendering real and synthetic elastograms through one path, opaque names |
| ``study_db`` | the SQLite study database (WAL, transactions, answers stored exactly once) |
| ``accounts`` / ``passwords`` | reader and lead accounts, scrypt password hashes |
| ``reading_order`` | each reader's reproducible order, the two images of a case far apart |
| ``reading`` | reader and lead handlers as plain functions, roles checked on every call |
| ``study_export`` | the answers as the ``elastogan stats`` CSVs, and the report |
"""
