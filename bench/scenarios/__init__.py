"""One module per scenario: ``NUMBER``, ``TITLE`` and ``run(ctx) -> list[Row]``."""
