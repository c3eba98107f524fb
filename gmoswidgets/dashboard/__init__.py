"""Front end: ``make demo`` (:mod:`.demo`) and the Voilà server of the dashboard (:mod:`.server`).

Like ``cli/`` and ``widgets/``, this folder sits above the kernel: the kernel
never imports it.
"""
