"""elastogan.app: the web app (clinician preview, blinded reader study) and the study lead's commands.

| module | holds |
|---|---|
| ``cli`` | ``elastogan app`` and ``elastogan study create|add-reader|unlock|export|report`` |
| ``server`` | launching the Gradio page, locked down (logins, the app's own file folder, no telemetry) |
| ``guard`` | the ASGI door: security headers, per-user files, Gradio's file/upload routes closed to readers, login notice |
| ``served_files`` | the files the app hands out, each to one user, from a 0700 folder, removed when done |
| ``ui`` | the page: Preview, Reader study and Study lead tabs wired to the handlers |
| ``preview`` | the clinician preview as a plain function (ratio, NCC, SYNTHETIC downloads) |
| ``uploads`` | uploaded files checked at the door (size, pixels, format) |
| ``secondary_capture`` | the synthetic E-mode as a DICOM Secondary Capture labelled SYNTHETIC |
| ``study_create`` | rendering real and synthetic elastograms through one path, opaque names |
| ``study_db`` | the SQLite study database (WAL, transactions, views and answers, migration from version 1) |
| ``designs`` | reading designs: split, paired sessions, staged, repeats; counterbalancing |
| ``accounts`` / ``passwords`` | accounts, constant-cost logins, throttling in the database, scrypt hashes |
| ``reading_order`` | each reader's seed; version 1's order (both images of a case, far apart) |
| ``reader_png`` | what a reader's browser receives: uncompressed PNGs at ≥ 512 px across |
| ``reading`` | reader and lead handlers as plain functions, roles checked on every call |
| ``study_export`` | the answers as the ``elastogan stats`` CSVs, every reading in ``readings.csv``, the report |
"""
